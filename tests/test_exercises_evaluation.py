"""Notebook 08's checks: pass on the reference, teach on plausible mistakes (stubs: test_exercise_checks.py)."""

from __future__ import annotations

import pytest
import torch

from course_utils import metrics
from course_utils.exercises import ExerciseError
from course_utils.exercises import evaluation as ex

# --------------------------------------------------------------------------- Frechet distance, diagonal


def test_diagonal_reference_passes(capsys):
    assert ex.check_frechet_distance_diagonal(ex.frechet_distance_diagonal_reference)
    assert "✅" in capsys.readouterr().out


def test_diagonal_reference_matches_full_frechet_distance():
    mu1, mu2 = torch.tensor([0.5, -1.0]), torch.tensor([0.0, 2.0])
    var1, var2 = torch.tensor([2.0, 0.5]), torch.tensor([1.0, 3.0])
    expected = metrics.frechet_distance(mu1, torch.diag(var1), mu2, torch.diag(var2))
    assert float(ex.frechet_distance_diagonal_reference(mu1, var1, mu2, var2)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (lambda m1, v1, m2, v2: (m1 - m2).norm() + ((v1.sqrt() - v2.sqrt()) ** 2).sum(), "SQUARED distance"),
        (lambda m1, v1, m2, v2: ((m1 - m2) ** 2).sum() + ((v1 - v2) ** 2).sum(), "STANDARD DEVIATIONS"),
        (lambda m1, v1, m2, v2: ((m1 - m2) ** 2).sum() + (v1 + v2 - 2 * v1 * v2).sum(), "STANDARD DEVIATIONS"),
        (lambda m1, v1, m2, v2: (m1 - m2) ** 2 + (v1.sqrt() - v2.sqrt()) ** 2, "forget the .sum"),
    ],
)
def test_diagonal_plausible_mistakes_get_a_hint(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ex.check_frechet_distance_diagonal(wrong)


# --------------------------------------------------------------------------- unbiased MMD


def test_mmd_reference_passes(capsys):
    def student(x, y, kernel):
        return ex.mmd2_unbiased_reference(x, y, kernel)

    assert ex.check_mmd2_unbiased(student)
    assert "✅" in capsys.readouterr().out


def _biased(x, y, kernel):
    return kernel(x, x).mean() + kernel(y, y).mean() - 2 * kernel(x, y).mean()


def _wrong_divisor(x, y, kernel):
    kxx, kyy = kernel(x, x), kernel(y, y)
    return (kxx.sum() - kxx.trace()) / len(x) ** 2 + (kyy.sum() - kyy.trace()) / len(y) ** 2 - 2 * kernel(x, y).mean()


def _no_factor_two(x, y, kernel):
    kxx, kyy, m, n = kernel(x, x), kernel(y, y), len(x), len(y)
    return (kxx.sum() - kxx.trace()) / (m * (m - 1)) + (kyy.sum() - kyy.trace()) / (n * (n - 1)) - kernel(x, y).mean()


def _plain_dot_kernel(x, y, kernel):
    # Ignores the kernel passed in and uses a linear one.
    kxx, kyy, m, n = x @ x.T, y @ y.T, len(x), len(y)
    return (kxx.sum() - kxx.trace()) / (m * (m - 1)) + (kyy.sum() - kyy.trace()) / (n * (n - 1)) - 2 * (x @ y.T).mean()


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (_biased, "biased estimate"),
        (_wrong_divisor, "m \\(m - 1\\) pairs"),
        (_no_factor_two, "counts twice"),
        (_plain_dot_kernel, "kernel passed in"),
    ],
)
def test_mmd_plausible_mistakes_get_a_hint(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ex.check_mmd2_unbiased(wrong)


def test_a_missing_return_gets_a_teaching_message():
    with pytest.raises(ExerciseError, match="forget to `return`"):
        ex.check_frechet_distance_diagonal(lambda mu1, var1, mu2, var2: None)
    with pytest.raises(ExerciseError, match="forget to `return`"):
        ex.check_mmd2_unbiased(lambda x, y, kernel: None)
