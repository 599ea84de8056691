"""Checks for notebook 08 (evaluation): the Frechet distance with diagonal covariances, and KID's unbiased MMD.

Each check compares the student's function with the reference in :mod:`course_utils.metrics` on small cases
built to expose one mistake at a time, so a wrong answer gets a hint about *that* mistake.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from course_utils import metrics
from course_utils.exercises import CheckResult, ExerciseError, check, expect_close, expect_true


def frechet_distance_diagonal_reference(
    mu1: torch.Tensor, var1: torch.Tensor, mu2: torch.Tensor, var2: torch.Tensor
) -> torch.Tensor:
    """Frechet distance between N(mu1, diag(var1)) and N(mu2, diag(var2)): ``sum (mu1-mu2)^2 + sum (s1-s2)^2``."""
    return ((mu1 - mu2) ** 2).sum() + ((var1.sqrt() - var2.sqrt()) ** 2).sum()


def _scalar(value: object, what: str) -> torch.Tensor:
    expect_true(value is not None, f"{what} is None: did you forget to `return` the result?")
    tensor = torch.as_tensor(value, dtype=torch.float64) if not isinstance(value, torch.Tensor) else value.double()
    expect_true(
        tensor.numel() == 1,
        f"{what} should be one number (sum over the dimensions), but it has shape {tuple(tensor.shape)}. "
        "Did you forget the .sum()?",
    )
    return tensor.reshape(())


def check_frechet_distance_diagonal(student_fn: Callable) -> CheckResult:
    """Check ``student_fn(mu1, var1, mu2, var2)``: the Frechet distance for diagonal covariances (variances given)."""

    def test() -> None:
        d = 4
        ones = torch.ones(d, dtype=torch.float64)
        # 1. Same variances, shifted means: only the mean term counts.
        mu1 = torch.tensor([0.0, 1.0, 2.0, 0.0], dtype=torch.float64)
        mu2 = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
        got = _scalar(student_fn(mu1, ones, mu2, ones), "the distance")
        expect_close(
            got,
            5.0,
            "the distance for equal variances, means (0, 1, 2, 0) and (1, 1, 0, 0)",
            hint="With equal covariances only the means differ, and the answer is the SQUARED distance between them: "
            "sum((mu1 - mu2) ** 2), not its square root.",
        )
        # 2. Same means, different variances: only the covariance term counts.
        zeros = torch.zeros(d, dtype=torch.float64)
        var1 = torch.tensor([1.0, 4.0, 9.0, 1.0], dtype=torch.float64)
        var2 = torch.tensor([4.0, 4.0, 1.0, 0.25], dtype=torch.float64)
        got = _scalar(student_fn(zeros, var1, zeros, var2), "the distance")
        expect_close(
            got,
            1.0 + 0.0 + 4.0 + 0.25,
            "the distance for equal means, variances (1, 4, 9, 1) and (4, 4, 1, 0.25)",
            hint="Tr(S1 + S2 - 2 (S1 S2)^(1/2)) with diagonal S is sum(var1 + var2 - 2 sqrt(var1 * var2)) = "
            "sum((sqrt(var1) - sqrt(var2)) ** 2): compare STANDARD DEVIATIONS, not variances.",
        )
        # 3. Identical Gaussians: exactly 0.
        got = _scalar(student_fn(mu1, var1, mu1.clone(), var1.clone()), "the distance")
        expect_close(got, 0.0, "the distance between a Gaussian and itself", atol=1e-9)
        # 4. A random case, against the full-covariance reference in course_utils.metrics.
        g = torch.Generator().manual_seed(0)
        mu1, mu2 = torch.randn(6, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
        var1 = torch.rand(6, generator=g, dtype=torch.float64) + 0.1
        var2 = torch.rand(6, generator=g, dtype=torch.float64) + 0.1
        expected = metrics.frechet_distance(mu1, torch.diag(var1), mu2, torch.diag(var2))
        got = _scalar(student_fn(mu1, var1, mu2, var2), "the distance")
        expect_close(got, expected, "the distance for random means and variances", hint="Add both terms.")

    return check("Frechet distance with diagonal covariances", test)


def mmd2_unbiased_reference(x: torch.Tensor, y: torch.Tensor, kernel: Callable) -> torch.Tensor:
    """The unbiased squared MMD (the reference for the exercise; see :func:`course_utils.metrics.mmd2_unbiased`)."""
    return torch.tensor(metrics.mmd2_unbiased(x, y, kernel), dtype=torch.float64)


def check_mmd2_unbiased(student_fn: Callable) -> CheckResult:
    """Check ``student_fn(x, y, kernel)``: the unbiased squared MMD that KID averages."""

    def test() -> None:
        g = torch.Generator().manual_seed(1)
        x = torch.randn(7, 3, generator=g, dtype=torch.float64)
        y = torch.randn(5, 3, generator=g, dtype=torch.float64) + 0.5
        kernel = metrics.polynomial_kernel
        got = _scalar(student_fn(x, y, kernel), "MMD^2")
        expected = mmd2_unbiased_reference(x, y, kernel)
        k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
        biased = k_xx.mean() + k_yy.mean() - 2 * k_xy.mean()
        if torch.isclose(got, biased, rtol=1e-6):
            raise ExerciseError(
                f"you computed the biased estimate ({float(got):.5g}, expected {float(expected):.5g}): the sums over "
                "k(x_i, x_j) and k(y_i, y_j) must leave out i == j (the diagonal, where a sample meets itself) and "
                "divide by m (m - 1) pairs instead of m * m."
            )
        m, n = len(x), len(y)
        wrong_divisor = (k_xx.sum() - k_xx.trace()) / m**2 + (k_yy.sum() - k_yy.trace()) / n**2 - 2 * k_xy.mean()
        if torch.isclose(got, wrong_divisor, rtol=1e-6):
            raise ExerciseError(
                "you left out the diagonal but still divided by m * m: there are m (m - 1) pairs with i != j."
            )
        no_factor_two = mmd2_unbiased_reference(x, y, kernel) + k_xy.mean()
        if torch.isclose(got, no_factor_two, rtol=1e-6):
            raise ExerciseError("the cross term counts twice: subtract 2 * mean(k(x_i, y_j)).")
        expect_close(
            got,
            expected,
            "MMD^2 for 7 samples x and 5 samples y",
            hint="MMD^2 = mean_{i!=j} k(x_i, x_j) + mean_{i!=j} k(y_i, y_j) - 2 mean_{i,j} k(x_i, y_j), with the "
            "kernel passed in (use kernel(x, x), kernel(y, y) and kernel(x, y)).",
        )
        # The same sample on both sides: the unbiased estimate is near 0 (and can be slightly negative).
        z = torch.randn(400, 3, generator=g, dtype=torch.float64)
        got_same = _scalar(student_fn(z[:200], z[200:], kernel), "MMD^2")
        expect_close(got_same, mmd2_unbiased_reference(z[:200], z[200:], kernel), "MMD^2 of two halves of one sample")

    return check("Unbiased MMD^2 (the heart of KID)", test)
