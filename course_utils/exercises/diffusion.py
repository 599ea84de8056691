"""Checks for notebook 05 (diffusion): write the forward jump ``q_sample`` and one DDIM step.

Each check compares the student's function with the reference on small random cases and, when
the answer is wrong, recognises the usual slips (a missing square root, ``alpha`` instead of
``alpha_bar``, swapped coefficients, one timestep for the whole batch) to say which one it is.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from course_utils import diffusion
from course_utils.exercises import CheckResult, ExerciseError, check, expect_close, expect_shape, expect_true


def q_sample_reference(
    x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, schedule: diffusion.NoiseSchedule
) -> torch.Tensor:
    """``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise`` (Ho et al. eq. 4), one ``t`` per image."""
    alpha_bar = schedule.alpha_bar[t].view(-1, 1, 1, 1)
    return alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise


def ddim_step_reference(
    x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t: torch.Tensor, alpha_bar_prev: torch.Tensor
) -> torch.Tensor:
    """One deterministic DDIM step (Song et al. eq. 12, sigma = 0): guess x_0, then re-noise it to the earlier level."""
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


def _matches(candidate: torch.Tensor, got: torch.Tensor) -> bool:
    return candidate.shape == got.shape and torch.allclose(candidate.double(), got.double(), atol=1e-4, rtol=1e-3)


def check_q_sample(student_fn: Callable) -> CheckResult:
    """Check ``student_fn(x0, t, noise, schedule) -> x_t``: the closed-form jump to step ``t``."""

    def test() -> None:
        schedule = diffusion.make_schedule(100, "linear")
        g = torch.Generator().manual_seed(0)
        x0 = torch.rand(4, 1, 8, 8, generator=g) * 2 - 1
        noise = torch.randn(4, 1, 8, 8, generator=g)
        t = torch.tensor([3, 40, 75, 99])  # a different timestep for each image
        try:
            got = student_fn(x0.clone(), t.clone(), noise.clone(), schedule)
        except NotImplementedError:
            raise
        except RuntimeError as error:  # usually a broadcasting error
            raise ExerciseError(
                f"q_sample raised {error}. alpha_bar[t] has shape (N,): reshape it to (N, 1, 1, 1) with "
                ".view(-1, 1, 1, 1) so that it multiplies each image of shape N x 1 x H x W."
            ) from None
        expect_true(got is not None, "q_sample returned None: did you forget `return x_t`?")
        expect_shape(got, (4, 1, 8, 8), "x_t for 4 images of 1x8x8")
        got = torch.as_tensor(got).detach()
        ab = schedule.alpha_bar[t].view(-1, 1, 1, 1)
        a = schedule.alphas[t].view(-1, 1, 1, 1)
        mistakes = [
            (
                ab * x0 + (1 - ab) * noise,
                "the square roots are missing: the coefficients are sqrt(alpha_bar_t) and "
                "sqrt(1 - alpha_bar_t), so that the variance of x_t stays near 1 "
                "(variances add, standard deviations do not).",
            ),
            (
                a.sqrt() * x0 + (1 - a).sqrt() * noise,
                "you used schedule.alphas (one step of noise) instead of "
                "schedule.alpha_bar (the product over all steps up to t): the jump from x_0 to x_t needs alpha_bar.",
            ),
            (
                (1 - ab).sqrt() * x0 + ab.sqrt() * noise,
                "the two coefficients are swapped: the image gets "
                "sqrt(alpha_bar_t) (near 1 at small t) and the noise gets sqrt(1 - alpha_bar_t).",
            ),
            (
                ab.sqrt() * x0 + (1 - ab) * noise,
                "the noise coefficient needs a square root too: sqrt(1 - alpha_bar_t).",
            ),
        ]
        for wrong, hint in mistakes:
            if _matches(wrong, got):
                raise ExerciseError(hint)
        if _matches(schedule.alpha_bar[t[0]].sqrt() * x0 + (1 - schedule.alpha_bar[t[0]]).sqrt() * noise, got):
            raise ExerciseError(
                "every image got the timestep of the first one: index alpha_bar with the whole t and "
                "reshape it to (N, 1, 1, 1) so that each image gets its own coefficient."
            )
        expect_close(
            got,
            q_sample_reference(x0, t, noise, schedule),
            "x_t",
            hint="x_t = sqrt(alpha_bar[t]) * x0 + sqrt(1 - alpha_bar[t]) * noise, alpha_bar[t] shaped (N, 1, 1, 1).",
        )

    return check("q_sample", test)


def check_ddim_step(student_fn: Callable) -> CheckResult:
    """Check ``student_fn(x_t, eps, alpha_bar_t, alpha_bar_prev) -> x_prev``: one deterministic DDIM step."""

    def test() -> None:
        g = torch.Generator().manual_seed(1)
        x_t = torch.randn(3, 1, 8, 8, generator=g)
        eps = torch.randn(3, 1, 8, 8, generator=g)
        ab_t, ab_prev = torch.tensor(0.2), torch.tensor(0.7)
        got = student_fn(x_t.clone(), eps.clone(), ab_t.clone(), ab_prev.clone())
        expect_true(got is not None, "ddim_step returned None: did you forget `return x_prev`?")
        expect_shape(got, (3, 1, 8, 8), "x_prev for 3 images of 1x8x8")
        got = torch.as_tensor(got).detach()
        x0_hat = (x_t - (1 - ab_t).sqrt() * eps) / ab_t.sqrt()
        mistakes = [
            (
                x0_hat,
                "you returned the guess of x_0 itself: that jumps all the way to the end in one step. Re-noise it "
                "to the earlier level: sqrt(alpha_bar_prev) * x0_hat + sqrt(1 - alpha_bar_prev) * eps.",
            ),
            (
                ab_prev.sqrt() * x0_hat + (1 - ab_t).sqrt() * eps,
                "the noise put back must match the earlier step: use "
                "sqrt(1 - alpha_bar_prev), not sqrt(1 - alpha_bar_t).",
            ),
            (
                ab_prev * x0_hat + (1 - ab_prev) * eps,
                "square roots are missing in the last line: sqrt(alpha_bar_prev) and sqrt(1 - alpha_bar_prev).",
            ),
            (
                (x_t - (1 - ab_t) * eps) / ab_t * ab_prev.sqrt() + (1 - ab_prev).sqrt() * eps,
                "the guess of x_0 needs "
                "square roots: x0_hat = (x_t - sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha_bar_t).",
            ),
            (
                ab_prev.sqrt() * (x_t + (1 - ab_t).sqrt() * eps) / ab_t.sqrt() + (1 - ab_prev).sqrt() * eps,
                "x0_hat subtracts the predicted noise: "
                "x0_hat = (x_t - sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha_bar_t).",
            ),
        ]
        for wrong, hint in mistakes:
            if _matches(wrong, got):
                raise ExerciseError(hint)
        expect_close(
            got,
            ddim_step_reference(x_t, eps, ab_t, ab_prev),
            "x_prev",
            hint="x0_hat = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t), then sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev) eps.",
        )
        # With a perfect noise estimate, one step from any level lands on the same image.
        x0 = torch.rand(3, 1, 8, 8, generator=g) * 2 - 1
        x_noisy = ab_t.sqrt() * x0 + (1 - ab_t).sqrt() * eps
        expect_close(
            student_fn(x_noisy, eps, ab_t, torch.tensor(1.0)),
            x0,
            "a step to alpha_bar_prev = 1 with the true noise",
            hint="with alpha_bar_prev = 1 a DDIM step should return exactly the clean image.",
            atol=1e-4,
        )

    return check("ddim_step", test)
