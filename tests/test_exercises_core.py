import pytest
import torch

from course_utils.exercises import ExerciseError, check, expect_close, expect_shape, expect_true


def test_check_reports_pass_stub_and_wrong_answer(capsys):
    assert check("double", lambda: expect_close(2 * torch.ones(3), torch.full((3,), 2.0), "2x"))
    assert "✅ double: passed" in capsys.readouterr().out

    def stub():
        raise NotImplementedError()

    assert not check("double", stub)
    assert "not implemented yet" in capsys.readouterr().out

    with pytest.raises(ExerciseError, match="❌ double: 2x is not right.*expected 2 but got 3.*hint!"):
        check("double", lambda: expect_close(torch.full((3,), 3.0), torch.full((3,), 2.0), "2x", hint="hint!"))


def test_expectations_explain_shape_and_nan_problems():
    with pytest.raises(ExerciseError, match=r"shape \(2, 3\), but it has shape \(3, 2\)"):
        expect_shape(torch.zeros(3, 2), (2, 3), "z")
    with pytest.raises(ExerciseError, match="NaN"):
        expect_close(torch.tensor([float("nan")]), torch.tensor([1.0]), "loss")
    with pytest.raises(ExerciseError, match="tensor or a number"):
        expect_close("abc", torch.tensor([1.0]), "loss")
    with pytest.raises(ExerciseError, match="custom"):
        expect_true(False, "custom")
    expect_true(True, "never shown")


def test_other_errors_propagate_unchanged():
    def buggy():
        raise TypeError("student typo")

    with pytest.raises(TypeError, match="student typo"):
        check("x", buggy)
