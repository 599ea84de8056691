"""Checks for notebook 00: the critic's probabilities and the artist's first samples."""

from __future__ import annotations

from collections.abc import Callable

import torch

from course_utils.exercises import CheckResult, check, expect_close, expect_shape, expect_true


def check_softmax(softmax: Callable[[torch.Tensor], torch.Tensor]) -> CheckResult:
    """``softmax(logits)`` turns a batch of logits (N x C) into probabilities that sum to 1 per row."""

    def test() -> None:
        logits = torch.tensor([[2.0, 1.0, 0.1], [0.0, 0.0, 0.0], [1000.0, 0.0, -1000.0]])
        probs = softmax(logits)
        expect_shape(probs, logits.shape, "softmax(logits)")
        expect_true(
            torch.isfinite(torch.as_tensor(probs)).all().item(),
            "softmax gave NaN or infinity for the logits [1000, 0, -1000]: exp(1000) overflows. Subtract each "
            "row's largest logit before exp (it cancels in the ratio).",
        )
        expect_close(
            torch.as_tensor(probs).sum(dim=1),
            torch.ones(3),
            "each row's sum",
            hint="Divide exp(logits) by its sum over the classes (dim=1), not over the batch.",
        )
        expect_close(probs, torch.softmax(logits, dim=1), "softmax(logits)", hint="P(y) = exp(l_y) / sum_k exp(l_k).")

    return check("softmax", test)


def check_sample_gaussian(sample_gaussian: Callable[..., torch.Tensor]) -> CheckResult:
    """``sample_gaussian(mean, std, n, generator)`` draws ``n`` samples of a diagonal Gaussian."""

    def test() -> None:
        mean = torch.tensor([0.0, 5.0, -3.0])
        std = torch.tensor([1.0, 0.1, 2.0])
        samples = sample_gaussian(mean, std, 20000, torch.Generator().manual_seed(0))
        expect_shape(samples, (20000, 3), "sample_gaussian(mean, std, 20000, generator)")
        samples = torch.as_tensor(samples)
        expect_close(
            samples.mean(dim=0), mean, "the mean of your samples", hint="Shift the noise by the mean.", atol=0.05
        )
        expect_close(
            samples.std(dim=0),
            std,
            "the spread (standard deviation) of your samples",
            hint="Multiply standard normal noise by the standard deviation, not by the variance or its square root.",
            atol=0.05,
            rtol=0.03,
        )

    return check("sample_gaussian", test)
