"""The checks of notebook 05: pass on the reference, teach on plausible mistakes (stubs: test_exercise_checks.py)."""

import pytest
import torch

from course_utils.exercises import ExerciseError
from course_utils.exercises import diffusion as ex


@pytest.mark.parametrize(
    ("check", "reference"), [(ex.check_q_sample, ex.q_sample_reference), (ex.check_ddim_step, ex.ddim_step_reference)]
)
def test_references_pass(check, reference, capsys):
    assert check(reference)
    assert "✅" in capsys.readouterr().out


def _ab(schedule, t):
    return schedule.alpha_bar[t].view(-1, 1, 1, 1)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda x0, t, n, s: _ab(s, t) * x0 + (1 - _ab(s, t)) * n, "square roots are missing"),
        (lambda x0, t, n, s: s.alphas[t].view(-1, 1, 1, 1).sqrt() * x0 + (1 - s.alphas[t].view(-1, 1, 1, 1)).sqrt() * n,
         "instead of"),
        (lambda x0, t, n, s: (1 - _ab(s, t)).sqrt() * x0 + _ab(s, t).sqrt() * n, "swapped"),
        (lambda x0, t, n, s: _ab(s, t).sqrt() * x0 + (1 - _ab(s, t)) * n, "noise coefficient"),
        (lambda x0, t, n, s: s.alpha_bar[t[0]].sqrt() * x0 + (1 - s.alpha_bar[t[0]]).sqrt() * n, "first one"),
        (lambda x0, t, n, s: s.alpha_bar[t].sqrt() * x0 + (1 - s.alpha_bar[t]).sqrt() * n, "shape"),
        (lambda x0, t, n, s: None, "return"),
        (lambda x0, t, n, s: _ab(s, t).sqrt() * x0, "not right"),
    ],
)  # fmt: skip
def test_q_sample_mistakes_get_a_helpful_message(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        ex.check_q_sample(wrong)


def _x0(x, e, a):
    return (x - (1 - a).sqrt() * e) / a.sqrt()


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda x, e, a, p: _x0(x, e, a), "guess of x_0 itself"),
        (lambda x, e, a, p: p.sqrt() * _x0(x, e, a) + (1 - a).sqrt() * e, "earlier step"),
        (lambda x, e, a, p: p * _x0(x, e, a) + (1 - p) * e, "square roots are missing"),
        (lambda x, e, a, p: p.sqrt() * (x - (1 - a) * e) / a + (1 - p).sqrt() * e, "needs square roots"),
        (lambda x, e, a, p: p.sqrt() * (x + (1 - a).sqrt() * e) / a.sqrt() + (1 - p).sqrt() * e, "subtracts"),
        (lambda x, e, a, p: p.sqrt() * _x0(x, e, a) + (1 - p).sqrt() * e + 0.01, "not right"),
        (lambda x, e, a, p: x[:1], "shape"),
    ],
)
def test_ddim_step_mistakes_get_a_helpful_message(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        ex.check_ddim_step(wrong)


def test_reference_matches_the_library():
    from course_utils import diffusion

    x, e = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    a, p = torch.tensor(0.3), torch.tensor(0.8)
    assert torch.allclose(
        ex.ddim_step_reference(x, e, a, p), diffusion.ddim_step(x, e, a, p, eta=0.0, clip=None), atol=1e-6
    )
