"""Checks for notebook 09's exercises: the sampling knobs of a text generator.

* :func:`check_temperature_probs`: ``temperature_probs(logits, temperature)`` turns the model's
  scores into the distribution a sampler draws from, softmax(logits / temperature).
* :func:`check_top_k_filter`: ``top_k_filter(logits, k)`` keeps only the ``k`` best-scored
  characters (the others get -inf, so probability exactly 0).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from course_utils import text as reference
from course_utils.exercises import CheckResult, ExerciseError, check, expect_close, expect_shape, expect_true

_LOGITS = torch.tensor([[2.0, 1.0, 0.0, -1.0, 0.5], [0.5, 0.25, 3.0, -2.0, 1.0], [-1.0, 0.0, 1.0, 2.0, 4.0]])


def _call(student_fn: Callable, *args) -> torch.Tensor:
    logits = args[0]
    before = logits.clone()
    out = student_fn(*args)
    if not torch.equal(logits, before):
        raise ExerciseError(
            "your function changed the logits it was given (an in-place operation such as `logits /= t` or "
            "`logits[...] = ...`); work on a copy, e.g. `scaled = logits / temperature` or `logits.clone()`."
        )
    if not isinstance(out, torch.Tensor):
        raise ExerciseError(f"return a tensor, not a {type(out).__name__} (did you forget `return`?)")
    return out.detach()


def check_temperature_probs(student_fn: Callable[[torch.Tensor, float], torch.Tensor]) -> CheckResult:
    """Check ``student_fn(logits, temperature) -> probabilities`` against softmax(logits / temperature)."""

    def test() -> None:
        for temperature in (1.0, 0.5, 2.0, 0.1):
            what = f"temperature_probs(logits, temperature={temperature})"
            out = _call(student_fn, _LOGITS.clone(), temperature)
            expect_shape(out, _LOGITS.shape, what)
            want = reference.temperature_probs(_LOGITS, temperature)
            if temperature != 1.0:
                if torch.allclose(out, torch.softmax(_LOGITS * temperature, dim=-1), atol=1e-5):
                    raise ExerciseError(
                        f"{what}: you multiplied the logits by the temperature; divide instead. A temperature below 1 "
                        f"must make the distribution sharper (here the top probability should rise to "
                        f"{want[0].max():.3f}), but multiplying flattens it ({out[0].max():.3f})."
                    )
                if torch.allclose(out, torch.softmax(_LOGITS, dim=-1), atol=1e-5):
                    raise ExerciseError(
                        f"{what}: the temperature has no effect; divide the logits by it before softmax."
                    )
                if torch.allclose(out, torch.softmax(_LOGITS, dim=-1) / temperature, atol=1e-5) or torch.allclose(
                    out, (torch.softmax(_LOGITS, dim=-1) ** (1 / temperature)), atol=1e-5
                ):
                    raise ExerciseError(
                        f"{what}: divide the logits by the temperature before the softmax, not the probabilities after."
                    )
            sums = out.sum(dim=-1)
            if torch.allclose(out.sum(dim=0), torch.ones(out.shape[1]), atol=1e-4) and not torch.allclose(
                sums, torch.ones_like(sums), atol=1e-4
            ):
                raise ExerciseError(
                    f"{what}: the columns sum to 1, not the rows. Each row holds one position's scores for every "
                    "character, so take the softmax over the last dimension: `torch.softmax(..., dim=-1)`."
                )
            expect_true(
                torch.allclose(sums, torch.ones_like(sums), atol=1e-4),
                f"{what}: each row must be a probability distribution over the characters, summing to 1, but the "
                f"rows sum to {[round(float(s), 3) for s in sums]}. Did you forget the softmax?",
            )
            expect_close(out, want, what, hint="Expected torch.softmax(logits / temperature, dim=-1).")

    return check("Exercise: temperature-scaled probabilities", test)


def check_top_k_filter(student_fn: Callable[[torch.Tensor, int], torch.Tensor]) -> CheckResult:
    """Check ``student_fn(logits, k) -> logits`` keeping the ``k`` largest per row and -inf elsewhere."""

    def test() -> None:
        vocab = _LOGITS.shape[1]
        for k in (2, 1, 3, vocab):
            what = f"top_k_filter(logits, k={k})"
            out = _call(student_fn, _LOGITS.clone(), k)
            expect_shape(out, _LOGITS.shape, what)
            want = reference.filter_top_k(_LOGITS, k)
            if k < vocab and torch.allclose(out, torch.where(torch.isinf(want), torch.zeros_like(want), want)):
                raise ExerciseError(
                    f"{what}: you set the dropped logits to 0, but a logit of 0 is not a probability of 0 "
                    "(softmax gives it exp(0) = 1 before normalising), so those characters could still be drawn. "
                    "Use float('-inf'): exp(-inf) = 0."
                )
            if torch.isnan(out).any():
                raise ExerciseError(f"{what}: the result contains NaN; dropped entries should be float('-inf').")
            if torch.allclose(out, torch.softmax(want, dim=-1), atol=1e-5):
                raise ExerciseError(
                    f"{what}: you returned probabilities; return the filtered logits, with the kept ones unchanged "
                    "and the others -inf (the softmax comes later, in the sampler)."
                )
            kept = torch.isfinite(out).sum(dim=-1)
            if not torch.all(kept == k):
                raise ExerciseError(
                    f"{what}: each row should keep exactly {k} finite logits, but the rows keep {kept.tolist()}. "
                    "Is there an off-by-one, or a comparison with > where >= is needed (or the other way round)?"
                )
            smallest = torch.topk(_LOGITS, k, dim=-1, largest=False).indices
            if k < vocab and torch.isfinite(out.gather(-1, smallest)).all():
                raise ExerciseError(
                    f"{what}: you kept the {k} smallest logits; keep the largest (torch.topk does by default)."
                )
            finite = torch.isfinite(want)
            if not torch.equal(torch.isfinite(out), finite):
                raise ExerciseError(f"{what}: the wrong characters were kept; keep the {k} with the largest logits.")
            expect_close(
                out[finite],
                want[finite],
                f"{what} (the kept logits)",
                hint="Leave the kept logits unchanged: this function filters, softmax comes later.",
            )

    return check("Exercise: top-k filtering", test)
