"""Checks for the capstone's exercises: the unit-variance scale of the latents, and encoding a picture to latents.

Each check compares the student's function with a reference and, when the answer is wrong, recognises the
usual slips (the scale not inverted, a variance for a standard deviation, the centre of the cloud instead of a
draw from it, the scale forgotten) to say which one it is.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import torch

from course_utils.exercises import CheckResult, ExerciseError, check, expect_close, expect_true


def unit_variance_scale_reference(latents: torch.Tensor) -> float:
    """The number that gives ``latents`` a standard deviation of 1: ``1 / std`` over all of their values."""
    return 1.0 / latents.std().item()


def _number(value: object, what: str) -> float:
    expect_true(value is not None, f"{what} returned None: did you forget `return`?")
    tensor = torch.as_tensor(value).detach().double()
    expect_true(
        tensor.numel() == 1,
        f"{what} should be one number for all the latents, but it has shape {tuple(tensor.shape)}: take the std "
        "over every value at once (latents.std()), not per position or per channel.",
    )
    return float(tensor)


def check_unit_variance_scale(student_fn: Callable) -> CheckResult:
    """Check ``student_fn(latents) -> scale``: multiplying the latents by it gives them unit variance."""

    def test() -> None:
        g = torch.Generator().manual_seed(0)
        latents = 0.3 + 2.5 * torch.randn(64, 4, 7, 7, generator=g)  # a spread far from 1, a mean away from 0
        got = _number(student_fn(latents.clone()), "unit_variance_scale")
        want = unit_variance_scale_reference(latents)
        mistakes = [
            (latents.std().item(), "that is the standard deviation itself: the scale must *divide* by it, 1 / std."),
            (1.0 / latents.var().item(), "you divided by the variance: divide by the standard deviation, 1 / std."),
            (1.0 / latents.abs().mean().item(), "the mean size |z| is not the spread: use the standard deviation."),
            (1.0 / latents.pow(2).mean().sqrt().item(), "the root mean square counts the mean too: use latents.std()."),
            (
                1.0 / latents.abs().max().item(),
                "dividing by the largest value squeezes them into [-1, 1] but does not "
                "give them variance 1: use the standard deviation.",
            ),
        ]
        for wrong, hint in mistakes:
            if abs(got - wrong) < 1e-4 * abs(wrong) + 1e-7:
                raise ExerciseError(hint)
        expect_close(got, want, "the scale", hint="scale = 1 / latents.std()", rtol=1e-4)
        scaled = latents * got
        expect_true(abs(scaled.std().item() - 1) < 1e-3, "the scaled latents should have a standard deviation of 1")

    return check("unit_variance_scale", test)


def to_latent_reference(vae: object, x: torch.Tensor) -> torch.Tensor:
    """Latents of pictures ``x``: one draw from each picture's cloud, times the VAE's ``latent_scale``."""
    mu, logvar = vae.encode(x)  # type: ignore[attr-defined]
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    return z * vae.latent_scale  # type: ignore[attr-defined]


def check_to_latent(student_fn: Callable) -> CheckResult:
    """Check ``student_fn(vae, x) -> latents``: draw from the cloud ``vae.encode(x)`` and multiply by the scale.

    A stand-in VAE gives every picture the same cloud, so the mean and spread of many draws can be checked.
    """

    def test() -> None:
        g = torch.Generator().manual_seed(0)
        mu0 = torch.randn(2, 3, 3, generator=g)
        logvar0 = torch.randn(2, 3, 3, generator=g).clamp(-1.5, 1.5)
        scale = 0.5

        def encode(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            n = x.shape[0]
            return mu0.expand(n, -1, -1, -1).clone(), logvar0.expand(n, -1, -1, -1).clone()

        vae = SimpleNamespace(encode=encode, latent_scale=torch.tensor(scale))
        x = torch.rand(4000, 1, 6, 6, generator=g)
        torch.manual_seed(1)
        got = student_fn(vae, x)
        expect_true(got is not None, "to_latent returned None: did you forget `return`?")
        shape = tuple(torch.as_tensor(got).shape)
        expect_true(
            shape == (4000, 2, 3, 3),
            f"the latents should have shape (4000, 2, 3, 3), one grid per picture, got {shape}",
        )
        got = torch.as_tensor(got).detach().double()
        mean, spread = got.mean(0), got.std(0)
        std0 = (0.5 * logvar0).exp().double()
        expect_true(
            spread.min() > 0.01,
            "every picture got the same latents: draw from the cloud, mu + exp(0.5 * logvar) * eps, with fresh "
            "noise eps = torch.randn_like(mu); do not return the centre mu alone.",
        )
        if torch.allclose(mean, mu0.double(), atol=0.1) and not torch.allclose(mean, scale * mu0.double(), atol=0.1):
            raise ExerciseError("the latents are not scaled: multiply them by vae.latent_scale at the end.")
        if torch.allclose(mean, mu0.double() / scale, atol=0.2):
            raise ExerciseError(
                "you divided by vae.latent_scale: multiply by it (dividing is the way back, to decode)."
            )
        expect_close(
            mean,
            scale * mu0.double(),
            "the average of many draws",
            hint="it should be latent_scale * mu.",
            atol=0.08,
            rtol=0.05,
        )
        if torch.allclose(spread, std0, rtol=0.1):
            raise ExerciseError("the centre is scaled but the noise is not: multiply the whole draw by the scale.")
        if torch.allclose(spread, scale * logvar0.double().exp(), rtol=0.1):
            raise ExerciseError("the spread is exp(logvar), a variance: the standard deviation is exp(0.5 * logvar).")
        expect_close(
            spread,
            scale * std0,
            "the spread of many draws",
            hint="it should be latent_scale * exp(0.5 * logvar).",
            atol=0.05,
            rtol=0.1,
        )

    return check("to_latent", test)
