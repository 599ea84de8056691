"""Checks for notebook 01 (autoencoder): the reconstruction error and the noise of a denoising autoencoder.

Each check runs the student's function on small cases built so that one plausible mistake at a
time shows up, and names that mistake in its message.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from course_utils import losses
from course_utils.exercises import CheckResult, ExerciseError, check, expect_close, expect_shape, expect_true


def _tensor(value: object, what: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise ExerciseError(
            f"{what} should be a torch tensor, but it is a {type(value).__name__}. Did you forget return?"
        )
    return value.detach().double()


def check_reconstruction_error(student_fn: Callable) -> CheckResult:
    """Check ``student_fn(x_hat, x)``: BCE summed over each picture's pixels, averaged over pictures."""

    def test() -> None:
        g = torch.Generator().manual_seed(0)
        x = torch.rand(4, 1, 8, 8, generator=g)
        x_hat = torch.rand(4, 1, 8, 8, generator=g) * 0.9 + 0.05
        expected = losses.reconstruction_loss(x_hat, x, "bce").mean()
        got = _tensor(student_fn(x_hat.clone(), x.clone()), "the reconstruction error")
        expect_true(
            got.numel() == 1,
            f"the reconstruction error should be one number (the mean over the batch), but it has shape "
            f"{tuple(got.shape)}. Sum over each picture's pixels, then take .mean() over the pictures.",
        )
        got = got.reshape(())
        n_pixels = x[0].numel()
        if torch.isclose(got, expected.double() / n_pixels, rtol=1e-4):
            raise ExerciseError(
                f"you averaged over the pixels too (got {got.item():.4f}, {n_pixels} times too small). "
                "F.binary_cross_entropy's default reduction='mean' does that; use reduction='none', then "
                ".sum over the pixels of each picture (dims 1, 2, 3) and .mean() over the pictures."
            )
        if torch.isclose(got, -expected.double(), rtol=1e-4):
            raise ExerciseError("the sign is flipped: the error is MINUS the log-likelihood, a positive number.")
        swapped = torch.nn.functional.binary_cross_entropy(x, x_hat, reduction="none").sum(dim=(1, 2, 3)).mean()
        if torch.isclose(got, swapped.double(), rtol=1e-4):
            raise ExerciseError(
                "the arguments are swapped: the model's output x_hat is the probability (inside the log), "
                "the original x is the target: F.binary_cross_entropy(x_hat, x)."
            )
        if torch.isclose(got, expected.double() * len(x), rtol=1e-4):
            raise ExerciseError("you summed over the batch as well; average over the pictures with .mean().")
        expect_close(
            got,
            expected,
            "the reconstruction error",
            hint="Per pixel: -(x * log(x_hat) + (1 - x) * log(1 - x_hat)); sum per picture; mean over pictures.",
        )

    return check("reconstruction error (BCE per picture)", test)


def check_add_noise(student_fn: Callable) -> CheckResult:
    """Check ``student_fn(images, noise_std)``: images plus Gaussian noise of that std, clamped to [0, 1]."""

    def test() -> None:
        torch.manual_seed(0)
        grey = torch.full((200, 1, 10, 10), 0.5)
        noisy = _tensor(student_fn(grey, 0.1), "the noisy pictures")
        expect_true(
            torch.equal(grey, torch.full_like(grey, 0.5)),
            "your function changed the input pictures in place (+= or clamp_); build a new tensor instead: "
            "the clean pictures are still needed as the target.",
        )
        expect_shape(noisy, grey.shape, "the noisy pictures")
        expect_true(
            not torch.equal(noisy, grey.double()),
            "the pictures came back unchanged: add noise_std * torch.randn_like(images) to them.",
        )
        mean, std = noisy.mean().item(), noisy.std().item()
        if abs(mean - 0.5) > 0.02:
            raise ExerciseError(
                f"on grey pictures (0.5) the mean of the noisy ones should stay 0.5 but is {mean:.3f}: "
                "torch.rand gives uniform noise in [0, 1), which is never negative; use torch.randn (mean 0)."
            )
        if abs(std - 0.1) > 0.01:
            raise ExerciseError(
                f"with noise_std=0.1 the noise should have standard deviation 0.1, but it has {std:.3f}. "
                "Multiply the standard normal noise (torch.randn_like) by noise_std."
            )
        ink = torch.ones(100, 1, 10, 10)
        noisy_ink = _tensor(student_fn(ink.clone(), 0.5), "the noisy pictures")
        expect_true(
            noisy_ink.min() >= 0 and noisy_ink.max() <= 1,
            f"pixels must stay in [0, 1] but go from {noisy_ink.min():.2f} to {noisy_ink.max():.2f}: "
            "clamp the result with .clamp(0, 1) (the BCE loss needs targets and inputs in [0, 1]).",
        )
        first = _tensor(student_fn(grey.clone(), 0.1), "the noisy pictures")
        expect_true(not torch.equal(first, noisy), "two calls gave the same noise: draw fresh noise on every call.")

    return check("add noise (denoising autoencoder)", test)
