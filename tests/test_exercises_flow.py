"""The checks of notebook 05b: pass on the reference, teach on plausible mistakes (stubs: test_exercise_checks.py)."""

import pytest

from course_utils.exercises import ExerciseError
from course_utils.exercises import flow as ex


@pytest.mark.parametrize(
    ("check", "reference"),
    [
        (ex.check_interpolate, ex.interpolate_reference),
        (ex.check_velocity_target, ex.velocity_target_reference),
        (ex.check_euler_step, ex.euler_step_reference),
    ],
)
def test_references_pass(check, reference, capsys):
    assert check(reference)
    assert "✅" in capsys.readouterr().out


def _s(t):
    return t.view(-1, 1, 1, 1)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda x0, e, t: _s(t) * x0 + (1 - _s(t)) * e, "wrong way"),  # t drawn the wrong way round
        (lambda x0, e, t: (1 - _s(t)).sqrt() * x0 + _s(t).sqrt() * e, "diffusion's"),
        (lambda x0, e, t: (1 - t[0]) * x0 + t[0] * e, "first one"),
        (lambda x0, e, t: (1 - t) * x0 + t * e, "shape"),  # forgot to reshape t: a broadcasting error
        (lambda x0, e, t: None, "return"),
        (lambda x0, e, t: ((1 - _s(t)) * x0 + _s(t) * e)[0], "shape"),
        (lambda x0, e, t: (1 - _s(t)) * x0, "not right"),
    ],
)
def test_interpolate_mistakes_get_a_helpful_message(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        ex.check_interpolate(wrong)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda x0, e: x0 - e, "sign is flipped"),
        (lambda x0, e: e, "diffusion's target"),
        (lambda x0, e: -x0, "noise left out"),
        (lambda x0, e: None, "return"),
        (lambda x0, e: (e - x0).flatten(), "shape"),
        (lambda x0, e: 2 * (e - x0), "not right"),
    ],
)
def test_velocity_target_mistakes_get_a_helpful_message(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        ex.check_velocity_target(wrong)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda v, x, t, n: x + (t - n) * v(x, t), "wrong way"),
        (lambda v, x, t, n: x + (n - t) * v(x, n), "where you are"),
        (lambda v, x, t, n: x - v(x, t), "scaled by the time step"),
        (lambda v, x, t, n: (n - t) * v(x, t), "starts from x"),
        (lambda v, x, t, n: None, "return"),
        (lambda v, x, t, n: x + n * v(x, t), "not right"),
    ],
)
def test_euler_step_mistakes_get_a_helpful_message(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        ex.check_euler_step(wrong)
