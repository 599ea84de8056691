"""Checks for the notebooks' exercises.

A notebook exercise is a function the student writes; the cell after it calls a ``check_*``
function from one of this package's topic modules (``exercises.vae``, ``exercises.gan``, ...).
Every check is built on :func:`check`, which turns the three possible outcomes into feedback:

* passed: one green line;
* the function still raises ``NotImplementedError`` (the student has not written it yet): one
  line saying so, and the notebook carries on, because later cells never rely on the student's
  function. Under nbgrader's autograder or its "Validate" button (:func:`grading`), the stub's
  ``NotImplementedError`` propagates instead, so the check cell fails and scores 0;
* a wrong answer: an :class:`ExerciseError` whose message says what was expected, what came out,
  and a hint, so the cell turns red and the student knows where to look.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch


class ExerciseError(AssertionError):
    """A wrong answer to an exercise; the message teaches what to fix."""


class CheckResult:
    """The outcome of a check: true when it passed, false when the exercise is not written yet.

    It shows nothing when it ends a notebook cell: the line the check printed already says everything.
    """

    def __init__(self, passed: bool) -> None:
        self.passed = passed

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return f"CheckResult(passed={self.passed})"

    def _ipython_display_(self) -> None:
        pass


def grading() -> bool:
    """True while nbgrader grades or validates the notebook (it sets ``NBGRADER_EXECUTION`` for the kernel).

    A student working in the notebook gets ``False``: an unfinished exercise is a friendly line, not an error.
    """
    return os.environ.get("NBGRADER_EXECUTION", "").strip().lower() in ("autograde", "validate")


def check(title: str, test: Callable[[], None]) -> CheckResult:
    """Run ``test`` (which raises :class:`ExerciseError` on a wrong answer) and report the outcome.

    The result is true when the check passed and false when the exercise is not implemented yet. While nbgrader
    grades (:func:`grading`), an unfinished exercise raises ``NotImplementedError`` instead, so it scores 0.
    """
    try:
        test()
    except NotImplementedError:
        if grading():
            raise NotImplementedError(f"{title}: not implemented (scored 0 by the autograder)") from None
        print(
            f"⏳ {title}: not implemented yet. Write your code in place of `raise NotImplementedError()` and run again."
        )
        return CheckResult(False)
    except ExerciseError as error:
        raise ExerciseError(f"❌ {title}: {error}") from None
    print(f"✅ {title}: passed")
    return CheckResult(True)


def _to_tensor(value: Any, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu")
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise ExerciseError(f"{what} should be a tensor or a number, but it is a {type(value).__name__}") from None


def expect_shape(tensor: Any, shape: Sequence[int], what: str) -> None:
    """Fail unless ``tensor`` has exactly ``shape``."""
    actual = tuple(_to_tensor(tensor, what).shape)
    if actual != tuple(shape):
        raise ExerciseError(f"{what} should have shape {tuple(shape)}, but it has shape {actual}.")


def expect_close(actual: Any, expected: Any, what: str, hint: str = "", atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Fail unless ``actual`` matches ``expected`` (same shape, values within tolerance)."""
    got = _to_tensor(actual, what).to(torch.float64)
    want = _to_tensor(expected, what).to(torch.float64)
    if got.shape != want.shape:
        raise ExerciseError(
            f"{what} should have shape {tuple(want.shape)}, but it has shape {tuple(got.shape)}. {hint}"
        )
    if not torch.isfinite(got).all():
        raise ExerciseError(f"{what} contains NaN or infinity. {hint}".strip())
    if not torch.allclose(got, want, atol=atol, rtol=rtol):
        worst = (got - want).abs().argmax()
        raise ExerciseError(
            f"{what} is not right: at position {tuple(int(i) for i in torch.unravel_index(worst, got.shape))} "
            f"expected {want.flatten()[worst].item():.6g} but got {got.flatten()[worst].item():.6g}. {hint}".strip()
        )


def expect_true(condition: bool, message: str) -> None:
    """Fail with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ExerciseError(message)
