"""Checks for notebook 02 (VAE): the reparameterization trick, the Gaussian KL and the VAE loss.

Each check runs the student's function on cases built so that the classic mistakes (a forgotten
0.5 in ``exp(0.5 * logvar)``, the log-variance used as a standard deviation, a mean over pixels
where a sum belongs...) each produce a recognisable number, and names the mistake it sees.
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
    return value


def check_reparameterize(student_fn: Callable) -> CheckResult:
    """Check ``student_fn(mu, logvar)``: one draw ``mu + exp(0.5 * logvar) * eps`` per row, differentiable."""

    def test() -> None:
        torch.manual_seed(0)
        n = 40_000
        mu = torch.tensor([2.0, -1.0, 0.0]).repeat(n, 1).requires_grad_()
        logvar = torch.tensor([1.0, -2.0, 0.0]).repeat(n, 1).requires_grad_()
        z = _tensor(student_fn(mu, logvar), "z")
        expect_shape(z, (n, 3), "z")
        expect_true(z.requires_grad, _NO_GRADIENT)
        z.sum().backward()
        expect_true(
            mu.grad is not None and torch.allclose(mu.grad, torch.ones_like(mu)),
            "the gradient of z with respect to mu should be 1 (z = mu + std * eps). " + _NO_GRADIENT,
        )
        z = z.detach()
        var = z.var(dim=0)
        expected_var = torch.tensor([1.0, -2.0, 0.0]).exp()
        if var.max() < 1e-8:
            raise ExerciseError(
                "z has no randomness at all: multiply the standard deviation by eps = torch.randn_like(std)."
            )
        expect_true(
            logvar.grad is not None and logvar.grad.abs().sum() > 0,
            "no gradient reaches logvar: the noise must be MULTIPLIED by std = exp(0.5 * logvar). " + _NO_GRADIENT,
        )
        expect_close(
            z.mean(dim=0),
            torch.tensor([2.0, -1.0, 0.0]),
            "the average of many draws of z",
            hint="The cloud is centred on mu: use mu + std * eps with eps from torch.randn_like (mean 0), "
            "not torch.rand (uniform in [0, 1), mean 0.5).",
            atol=0.05,
            rtol=0,
        )
        if torch.allclose(var, expected_var.pow(2), rtol=0.1):
            raise ExerciseError(
                "the spread is wrong in a telling way: your z has variance exp(logvar)**2, so you used "
                "std = exp(logvar). The standard deviation is the square root of the variance: "
                "std = exp(0.5 * logvar). Don't forget the 0.5!"
            )
        if torch.allclose(var, torch.tensor([1.0, -2.0, 0.0]).pow(2), atol=0.05, rtol=0.1):
            raise ExerciseError(
                "you used logvar itself as the standard deviation; it is the LOG of the VARIANCE: "
                "std = exp(0.5 * logvar)."
            )
        expect_close(
            var,
            expected_var,
            "the variance of many draws of z (it should be exp(logvar))",
            hint="std = torch.exp(0.5 * logvar); eps = torch.randn_like(std); return mu + std * eps.",
            atol=0.02,
            rtol=0.06,
        )

    return check("reparameterization trick", test)


_NO_GRADIENT = (
    "Gradients must flow from z back to mu and logvar: build z from them with ordinary arithmetic "
    "(mu + std * eps). Sampling with torch.normal(mu, std) or Normal(mu, std).sample() cuts the gradient."
)


def check_kl_divergence(student_fn: Callable) -> CheckResult:
    """Check ``student_fn(mu, logvar)``: KL(N(mu, exp(logvar)) || N(0, I)) per row, summed over latent dimensions."""

    def test() -> None:
        g = torch.Generator().manual_seed(0)
        mu = torch.randn(5, 4, generator=g)
        logvar = torch.randn(5, 4, generator=g) * 0.8
        expected = losses.kl_divergence(mu, logvar)
        got = _tensor(student_fn(mu.clone(), logvar.clone()), "the KL divergence").detach()
        if got.numel() == 1:
            raise ExerciseError(
                "the KL should be one number PER ROW (per picture), shape (N,), but you returned a single number: "
                "sum over the latent dimensions only, .sum(dim=1)."
            )
        expect_true(
            tuple(got.shape) == (5,),
            f"the KL should have shape (N,) = (5,), one number per picture, but it has {tuple(got.shape)}: "
            "sum over the latent dimensions with .sum(dim=1).",
        )
        expect_true(
            bool(torch.isfinite(got).all()),
            "the KL contains NaN: did you take the log of logvar? logvar is ALREADY the log of the variance "
            "(it can be negative); the variance is logvar.exp().",
        )
        terms = 1 + logvar - mu.pow(2) - logvar.exp()
        mistakes = {
            "you forgot the factor 0.5 (the formula is -0.5 * sum(1 + logvar - mu**2 - exp(logvar)))": -terms.sum(1),
            "the sign is flipped: KL is never negative; the formula starts with MINUS 0.5": 0.5 * terms.sum(1),
            "you averaged over the latent dimensions; SUM them (each dimension adds its own KL)": -0.5 * terms.mean(1),
            "exp(logvar) and logvar are swapped somewhere: the variance is exp(logvar), its log is logvar": -0.5
            * (1 + logvar.exp() - mu.pow(2) - logvar).sum(1),
        }
        for message, wrong in mistakes.items():
            if torch.allclose(got, wrong, rtol=1e-4, atol=1e-5):
                raise ExerciseError(message + ".")
        expect_close(
            got,
            expected,
            "the KL divergence",
            hint="KL = -0.5 * sum(1 + logvar - mu**2 - exp(logvar)) over the latent dimensions (dim=1).",
        )
        zero = _tensor(student_fn(torch.zeros(2, 3), torch.zeros(2, 3)), "the KL divergence").detach()
        expect_close(zero, torch.zeros(2), "the KL of the prior itself (mu = 0, logvar = 0)", hint="It must be 0.")

    return check("KL divergence to the prior", test)


def check_vae_loss(student_fn: Callable) -> CheckResult:
    """Check ``student_fn(x_hat, x, mu, logvar, beta)``: mean over pictures of (BCE summed over pixels + beta * KL)."""

    def test() -> None:
        g = torch.Generator().manual_seed(1)
        x = (torch.rand(6, 1, 8, 8, generator=g) > 0.6).float()
        x_hat = torch.rand(6, 1, 8, 8, generator=g) * 0.9 + 0.05
        mu = torch.randn(6, 3, generator=g)
        logvar = torch.randn(6, 3, generator=g) * 0.5
        for beta in (1.0, 4.0):
            expected = losses.vae_loss(x_hat, x, mu, logvar, beta=beta).loss
            got = _tensor(student_fn(x_hat.clone(), x.clone(), mu.clone(), logvar.clone(), beta), "the loss").detach()
            expect_true(
                got.numel() == 1,
                f"the loss should be one number (averaged over the batch), but it has shape {tuple(got.shape)}: "
                "finish with .mean() over the pictures.",
            )
            got = got.reshape(())
            bce = losses.reconstruction_loss(x_hat, x)
            kl = losses.kl_divergence(mu, logvar)
            pixels = x[0].numel()
            mistakes = {
                "the reconstruction term is averaged over the pixels (F.binary_cross_entropy's default "
                "reduction='mean'), which makes it ~1/64 of its true size here (1/784 on MNIST) so the KL "
                "swamps it and every picture comes out as the same blur. Sum over each picture's pixels": (
                    bce / pixels + beta * kl
                ).mean(),
                "beta is not used: the KL term must be multiplied by beta": (bce + kl).mean(),
                "beta multiplies the wrong term: loss = reconstruction + beta * KL": (beta * bce + kl).mean(),
                "you summed over the batch; take the mean over the pictures": (bce + beta * kl).sum(),
                "the KL is missing: loss = reconstruction + beta * KL": bce.mean(),
            }
            for message, wrong in mistakes.items():
                if not torch.isclose(wrong, expected) and torch.isclose(got, wrong.to(got.dtype), rtol=1e-4):
                    raise ExerciseError(f"(beta={beta:g}) {message}.")
            expect_close(
                got,
                expected,
                f"the loss with beta={beta:g}",
                hint="loss = mean over pictures of [BCE summed over the picture's pixels + beta * KL].",
            )

    return check("VAE loss (negative ELBO with beta)", test)


# =========================================================================== the importance-weighted bound


def log_mean_exp_reference(log_weights: torch.Tensor) -> torch.Tensor:
    """The IWAE bound from a ``K x N`` tensor of log-weights: ``logsumexp`` over the K samples ``- log K``."""
    return losses.log_mean_exp(log_weights, dim=0)


def check_log_mean_exp(student_fn: Callable) -> CheckResult:
    """Check ``student_fn(log_weights) -> N``: log of the mean of exp(log_weights) over dim 0, computed stably."""

    def test() -> None:
        g = torch.Generator().manual_seed(0)
        small = torch.randn(5, 3, generator=g)
        got = _tensor(student_fn(small.clone()), "the bound").detach()
        if got.numel() == 1:
            raise ExerciseError(
                "the bound should be one number PER PICTURE, shape (N,), but you returned a single number: "
                "average over the K samples only (dim=0)."
            )
        expect_true(
            tuple(got.shape) == (3,),
            f"for log-weights of shape (K, N) = (5, 3) the bound has shape (N,) = (3,), got {tuple(got.shape)}: "
            "the K samples of each picture are in dim 0.",
        )
        mistakes = [
            (
                small.mean(dim=0),
                "that is the mean of the log-weights, the ELBO itself: the log must come AFTER the average of "
                "the weights, log(mean(exp(log_w))), which is larger (Jensen)",
            ),
            (
                small.logsumexp(dim=0),
                "you forgot to divide by K: logsumexp adds the K weights up; subtract log K to average them",
            ),
        ]
        for wrong, message in mistakes:
            if torch.allclose(got, wrong, atol=1e-5):
                raise ExerciseError(message + ".")
        expect_close(got, log_mean_exp_reference(small), "the bound on small log-weights",
                     hint="torch.logsumexp(log_weights, dim=0) - math.log(K).")  # fmt: skip
        one = torch.tensor([[-3.0, 7.0]])
        expect_close(_tensor(student_fn(one), "the bound"), one[0], "the bound with K = 1 (it is the log-weight)")
        # Real log-weights: about -100 nats or less per picture. exp(-1000) rounds to 0 in float32.
        real = torch.tensor([[-1000.0, -90.0], [-1001.0, -95.0], [-1003.0, -92.0]])
        got = _tensor(student_fn(real.clone()), "the bound").detach()
        expect_true(
            bool(torch.isfinite(got).all()),
            "on real log-weights (about -1000 nats) your bound is -inf: exp(-1000) rounds to 0 and log(0) = -inf. "
            "Subtract the largest log-weight before exp and add it back after, or use torch.logsumexp, which does.",
        )
        expect_close(got, log_mean_exp_reference(real), "the bound on log-weights of about -1000 nats",
                     hint="torch.logsumexp(log_weights, dim=0) - math.log(K).")  # fmt: skip

    return check("the importance-weighted bound (log-mean-exp)", test)
