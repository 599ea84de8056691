"""Tests for course_utils.exercises.text: the reference passes, plausible mistakes get a teaching message."""

from __future__ import annotations

import pytest
import torch

from course_utils import text
from course_utils.exercises import ExerciseError
from course_utils.exercises import text as checks


def _stub(*args):
    raise NotImplementedError()


# ------------------------------------------------------------------------------ temperature


def test_temperature_reference_passes(capsys):
    assert checks.check_temperature_probs(lambda logits, t: torch.softmax(logits / t, dim=-1))
    assert "passed" in capsys.readouterr().out


def test_temperature_stub_is_not_implemented(capsys):
    assert not checks.check_temperature_probs(_stub)
    assert "not implemented yet" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "words"),
    [
        (lambda logits, t: torch.softmax(logits * t, dim=-1), "multiplied"),
        (lambda logits, t: torch.softmax(logits, dim=-1), "no effect"),
        (lambda logits, t: logits / t, "forget the softmax"),
        (lambda logits, t: torch.softmax(logits / t, dim=0), "columns sum to 1"),
        (lambda logits, t: torch.softmax(logits, dim=-1) ** (1 / t), "before the softmax"),
        (lambda logits, t: torch.softmax(logits.div_(t), dim=-1), "in-place"),
        (lambda logits, t: None, "forget `return`"),
        (lambda logits, t: torch.softmax(logits / (t + 0.1), dim=-1), "not right"),
    ],
)
def test_temperature_wrong_answers_are_explained(wrong, words):
    with pytest.raises(ExerciseError, match="temperature-scaled probabilities") as caught:
        checks.check_temperature_probs(wrong)
    assert words in str(caught.value)


# ------------------------------------------------------------------------------------ top-k


def _keep_smallest(logits, k):
    out = torch.full_like(logits, float("-inf"))
    kept = torch.topk(logits, k, dim=-1, largest=False).indices
    return out.scatter(-1, kept, logits.gather(-1, kept))


def _zeros_instead_of_inf(logits, k):
    kth = torch.topk(logits, k, dim=-1).values[:, -1:]
    return torch.where(logits >= kth, logits, torch.zeros_like(logits))


def _off_by_one(logits, k):
    kth = torch.topk(logits, k, dim=-1).values[:, -1:]
    return torch.where(logits > kth, logits, torch.full_like(logits, float("-inf")))


def test_top_k_reference_passes(capsys):
    assert checks.check_top_k_filter(text.filter_top_k)

    def kth_value(logits, k):  # a second correct answer: compare with the k-th largest value
        return logits.masked_fill(logits < torch.topk(logits, k, dim=-1).values[:, -1:], float("-inf"))

    assert checks.check_top_k_filter(kth_value)
    assert capsys.readouterr().out.count("passed") == 2


def test_top_k_stub_is_not_implemented(capsys):
    assert not checks.check_top_k_filter(_stub)
    assert "not implemented yet" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "words"),
    [
        (_zeros_instead_of_inf, "float('-inf')"),
        (_off_by_one, "exactly"),
        (_keep_smallest, "smallest"),
        (lambda logits, k: torch.softmax(text.filter_top_k(logits, k), dim=-1), "unchanged"),
        (lambda logits, k: text.filter_top_k(logits, k)[:, :-1], "shape"),
    ],
)
def test_top_k_wrong_answers_are_explained(wrong, words):
    with pytest.raises(ExerciseError, match="top-k filtering") as caught:
        checks.check_top_k_filter(wrong)
    assert words in str(caught.value)
