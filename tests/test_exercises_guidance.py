"""The check of the classifier-free guidance exercise: pass on the reference, teach on plausible mistakes."""

import pytest
import torch

from course_utils.exercises import ExerciseError
from course_utils.exercises import guidance as ex


def test_reference_passes(capsys):
    assert ex.check_guided_eps(ex.guided_eps_reference)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda u, c, w: c + w * (c - u), "started from eps_cond"),
        (lambda u, c, w: u + w * (u - c), "wrong way"),
        (lambda u, c, w: w * (c - u), "unconditional prediction is missing"),
        (lambda u, c, w: w * u + (c - u), "wrong term"),
        (lambda u, c, w: u + w * c, "not eps_cond alone"),
        (lambda u, c, w: (1 + w) * c - w * u, "paper's convention"),  # the same formula as the first
        (lambda u, c, w: w * u + (1 - w) * c, "swapped"),
        (lambda u, c, w: None, "return"),
        (lambda u, c, w: u[:1] + w * (c[:1] - u[:1]), "shape"),
        (lambda u, c, w: u + 0.5 * w * (c - u), "not right"),
    ],
)
def test_mistakes_get_a_helpful_message(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        ex.check_guided_eps(wrong)


def test_hide_labels_reference_passes(capsys):
    assert ex.check_hide_labels(ex.hide_labels_reference)
    assert "✅" in capsys.readouterr().out


def _in_place(labels, p, null, g):
    labels[torch.rand(labels.shape, generator=g) < p] = null
    return labels


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda y, p, null, g: None, "return"),
        (_in_place, "changed the labels it was given"),
        (lambda y, p, null, g: torch.where(torch.rand(y.shape, generator=g) < p, 0, y), "no label"),
        (lambda y, p, null, g: torch.where(torch.rand(y.shape, generator=g) > p, null, y), "1 - p"),
        (lambda y, p, null, g: torch.where(torch.rand(y.shape) < p, null, y), "generator"),
        (lambda y, p, null, g: torch.where(torch.rand(y.shape, generator=g) < p, float(null), y.float()), "integers"),
        (lambda y, p, null, g: torch.where(torch.rand(y.shape, generator=g) < p / 2, null, y), "about 10%"),
        (lambda y, p, null, g: y[:-1], "shape"),
        (
            lambda y, p, null, g: torch.where(torch.rand(y.shape, generator=torch.Generator()) < p, null, y),
            "other seeds",
        ),
    ],
)
def test_hide_labels_mistakes_get_a_helpful_message(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        ex.check_hide_labels(wrong)
