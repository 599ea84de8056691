"""Check for the classifier-free guidance exercise: mix the two noise predictions with a scale ``w``.

The check compares the student's function with the reference on random predictions at several
scales and, when the answer is wrong, recognises the usual slips (``w`` on the wrong term, the
difference the wrong way round, the unconditional prediction forgotten, starting from the
conditional one as in the paper's ``1 + w`` convention) to say which one it is.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from course_utils.exercises import CheckResult, ExerciseError, check, expect_close, expect_shape, expect_true


def guided_eps_reference(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, w: float) -> torch.Tensor:
    """``eps_uncond + w * (eps_cond - eps_uncond)``: start at "any image", go ``w`` steps towards "this class"."""
    return eps_uncond + w * (eps_cond - eps_uncond)


def _matches(candidate: torch.Tensor, got: torch.Tensor) -> bool:
    return candidate.shape == got.shape and torch.allclose(candidate.double(), got.double(), atol=1e-5, rtol=1e-4)


def check_guided_eps(student_fn: Callable) -> CheckResult:
    """Check ``student_fn(eps_uncond, eps_cond, w) -> eps``: classifier-free guidance's mix of two predictions."""

    def test() -> None:
        g = torch.Generator().manual_seed(0)
        eps_uncond = torch.randn(4, 1, 8, 8, generator=g)
        eps_cond = torch.randn(4, 1, 8, 8, generator=g)
        u, c = eps_uncond, eps_cond
        for w in (3.0, 0.0, 1.0, 7.5):
            got = student_fn(u.clone(), c.clone(), w)
            expect_true(got is not None, "guided_eps returned None: did you forget `return eps`?")
            expect_shape(got, (4, 1, 8, 8), f"the guided noise at w={w:g} for 4 images of 1x8x8")
            got = torch.as_tensor(got).detach()
            mistakes = [
                (
                    c + w * (c - u),
                    "you started from eps_cond: the guided prediction starts from the unconditional one, "
                    "eps_uncond + w * (eps_cond - eps_uncond), so that w = 0 gives the unconditional model. "
                    "(Your formula, also written (1 + w) * eps_cond - w * eps_uncond, is the paper's convention: "
                    "Ho & Salimans' w is this course's w minus 1.)",
                ),
                (
                    u + w * (u - c),
                    "the difference points the wrong way: eps_cond - eps_uncond is the direction from "
                    "'any digit' towards 'this digit', and guidance walks along it.",
                ),
                (
                    w * (c - u),
                    "the unconditional prediction is missing: add eps_uncond, the starting point, "
                    "to w times the difference.",
                ),
                (
                    w * u + (c - u),
                    "w multiplies the wrong term: it scales the difference (eps_cond - eps_uncond), not eps_uncond.",
                ),
                (
                    u + w * c,
                    "w must scale the difference eps_cond - eps_uncond, not eps_cond alone "
                    "(at w = 1 the result should be exactly eps_cond).",
                ),
                (
                    w * u + (1 - w) * c,
                    "the weights are swapped: eps_cond gets w and eps_uncond gets 1 - w.",
                ),
            ]
            for wrong, hint in mistakes:
                if not _matches(guided_eps_reference(u, c, w), wrong) and _matches(wrong, got):
                    raise ExerciseError(f"at w={w:g}, {hint}")
            expect_close(
                got,
                guided_eps_reference(u, c, w),
                f"the guided noise at w={w:g}",
                hint="eps = eps_uncond + w * (eps_cond - eps_uncond).",
            )

    return check("guided_eps", test)
