"""Checks for the classifier-free guidance exercises: hide labels during training, and mix the two noise
predictions with a scale ``w`` when sampling.

The guidance check compares the student's function with the reference on random predictions at several
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


def hide_labels_reference(
    labels: torch.Tensor, p: float, null_label: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A copy of ``labels``, each one replaced by ``null_label`` with probability ``p`` (coins from ``generator``)."""
    hide = torch.rand(labels.shape, generator=generator) < p
    return torch.where(hide, torch.full_like(labels, null_label), labels)


def check_hide_labels(student_fn: Callable) -> CheckResult:
    """Check ``student_fn(labels, p, null_label, generator) -> labels``: hide each label with probability ``p``."""

    def test() -> None:
        labels = torch.arange(20_000) % 10
        null = 10

        def call(p: float, seed: int) -> torch.Tensor:
            given = labels.clone()
            got = student_fn(given, p, null, torch.Generator().manual_seed(seed))
            expect_true(got is not None, "hide_labels returned None: did you forget to return the new labels?")
            expect_true(
                torch.equal(given, labels),
                "hide_labels changed the labels it was given: build a new tensor (torch.where, or labels.clone() "
                "first), the caller still needs the true labels.",
            )
            got = torch.as_tensor(got)
            expect_shape(got, tuple(labels.shape), "the labels the network sees")
            expect_true(
                not got.is_floating_point(),
                f"labels must stay integers (they index the embedding table), got {got.dtype}",
            )
            return got

        got = call(0.1, 0)
        changed = got != labels
        expect_true(
            bool((got[changed] == null).all()),
            f"a hidden label must become the 'no label' token null_label ({null}), and the others stay as they were; "
            f"found {sorted(set(got[changed].tolist()) - {null})[:5]} where labels changed",
        )
        share = changed.double().mean().item()
        expect_true(
            not 0.85 < share < 0.95,
            f"you hid {share:.0%} of the labels, about 1 - p: hide a label when the coin falls below p, "
            "torch.rand(...) < p, so that about p of them are hidden.",
        )
        expect_true(
            0.085 < share < 0.115, f"with p = 0.1 about 10% of the labels should be hidden, you hid {share:.1%}"
        )
        expect_true(bool((call(0.0, 0) == labels).all()), "with p = 0 no label may be hidden")
        expect_true(bool((call(1.0, 0) == null).all()), "with p = 1 every label must be hidden")
        expect_true(
            torch.equal(call(0.1, 0), got),
            "two calls with generators seeded the same hid different labels: draw the coins with the generator, "
            "torch.rand(labels.shape, generator=generator), so that a run can be repeated and resumed.",
        )
        expect_true(
            not torch.equal(call(0.1, 1), got),
            "generators with other seeds hid the same labels: "
            "draw the coins with torch.rand(..., generator=generator).",
        )

    return check("hide_labels", test)
