"""The generated student notebooks: no solution text leaks, and they run with only the stubs' NotImplementedError.

Every solution notebook in ``notebooks/`` is turned into its student version with ``tools/make_student.py``; each
student notebook is then executed in a fresh kernel (``COURSE_PROFILE=fast``), cell by cell, continuing past errors.
The only errors allowed are ``NotImplementedError`` from the stubs (a check cell catches those and prints "not
implemented yet"), so a cell that depends on an unfinished exercise and breaks with a NameError or similar fails
here. The solution notebooks themselves run under nbval in CI.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import pytest
from helpers import data_world
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import make_student as ms  # noqa: E402
from tools.nbrun import NOTEBOOK_DIR, cuda_available, list_notebooks, run_notebook  # noqa: E402

NOTEBOOKS = list_notebooks(NOTEBOOK_DIR)
SKIP_TAGS = () if cuda_available() else ("gpu",)
TRIVIAL = {"", "pass", "return", "else:", "try:", "...", ")", "]", "}", "),", "],", "})"}


def solution_text_lines(nb: nbformat.NotebookNode) -> set[str]:
    """Stripped lines found only inside solution regions (lines that also occur elsewhere are not a leak)."""
    inside, outside = set(), set()
    for cell in nb.cells:
        in_region = False
        for line in cell.source.splitlines():
            text = line.strip()
            if text == ms.BEGIN_SOLUTION:
                in_region = True
            elif text == ms.END_SOLUTION:
                in_region = False
            else:
                (inside if in_region else outside).add(text)
    return {line for line in inside - outside if line not in TRIVIAL and not line.startswith("#")}


def leaked_lines(solution: nbformat.NotebookNode, student: nbformat.NotebookNode) -> list[str]:
    """Solution-only lines that survive anywhere in the student notebook (sources or outputs)."""
    secret = solution_text_lines(solution)
    text = nbformat.writes(student)
    student_lines = {line.strip() for cell in student.cells for line in cell.source.splitlines()}
    return sorted(line for line in secret if line in student_lines or (len(line) > 12 and line in text))


def run_problems(result, n_checked_exercises: int) -> list[str]:
    """What is wrong with a student notebook's run: errors other than NotImplementedError, checks not reached."""
    problems = [f"{e.describe()}  [{e.source_head}]" for e in result.errors if e.ename != "NotImplementedError"]
    not_implemented = sum(
        "not implemented yet" in out.get("text", "")
        for cell in result.notebook.cells
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream"
    )
    if not_implemented < n_checked_exercises:
        problems.append(
            f"only {not_implemented} check(s) said 'not implemented yet' for {n_checked_exercises} checked exercises"
        )
    return problems


@pytest.fixture(scope="session")
def student_build(tmp_path_factory) -> ms.StudentBuild:
    out = tmp_path_factory.mktemp("student")
    return ms.build_student(NOTEBOOK_DIR, out, out / "EXERCISES.md")


@pytest.fixture(scope="session")
def run_env(tmp_path_factory) -> dict[str, str]:
    # One checkpoint folder for the whole session: the critic is trained once, by the first notebook that needs it.
    # NOTEBOOK_TEST_CHECKPOINTS may name the folder where CI's nbval run of the solutions (fast profile) left
    # its checkpoints: the student notebooks then resume the trained models instead of training them again.
    checkpoints = os.environ.get("NOTEBOOK_TEST_CHECKPOINTS") or str(tmp_path_factory.mktemp("checkpoints"))
    return {
        **data_world(),  # the digits, whatever lies in data/, unless the caller named a data set
        "COURSE_PROFILE": "fast",
        "COURSE_CHECKPOINT_DIR": checkpoints,
        "COURSE_RESULTS_DIR": str(tmp_path_factory.mktemp("results")),
    }


def test_every_notebook_gets_a_student_version_quickly(student_build):
    assert [p.name for p in student_build.notebooks] == [p.name for p in NOTEBOOKS]
    assert student_build.seconds < 10, f"generating the student versions took {student_build.seconds:.1f} s"
    overview = student_build.overview.read_text()
    for path in NOTEBOOKS:
        assert f"## `{path.name}`" in overview


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_no_solution_text_leaks_and_outputs_are_cleared(path, student_build):
    solution = nbformat.read(path, as_version=4)
    student = nbformat.read(student_build.notebooks[NOTEBOOKS.index(path)], as_version=4)
    assert len(student.cells) == len(solution.cells)
    assert leaked_lines(solution, student) == []
    assert "SOLUTION" not in "".join(c.source for c in student.cells)
    assert all(not c.outputs and c.execution_count is None for c in student.cells if c.cell_type == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_code_exercise_has_a_stub_and_a_check(path, student_build):
    exercises = student_build.exercises[path.name]
    code = [e for e in exercises if e.kind == "code"]
    assert len(code) >= 2 or path.name.startswith("00"), f"{path.name} has {len(code)} code exercises (want 2 or more)"
    for exercise in code:
        assert exercise.checks, f"exercise {exercise.number} ({exercise.title}) in {path.name} calls no check_*()"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_student_notebook_runs_with_only_not_implemented_errors(path, student_build, run_env):
    student = nbformat.read(student_build.notebooks[NOTEBOOKS.index(path)], as_version=4)
    checked = sum(1 for e in student_build.exercises[path.name] if e.kind == "code" and e.checks)
    result = run_notebook(
        student, cwd=NOTEBOOK_DIR, env=run_env, timeout=600, stop_on_error=False, skip_tags=SKIP_TAGS, name=path.name
    )
    assert run_problems(result, checked) == []


# The checks above, tried on tiny notebooks, so we know they catch what they should.


def _tiny(cells) -> nbformat.NotebookNode:
    return new_notebook(cells=[new_markdown_cell("# Tiny")] + [new_code_cell(c) for c in cells])


CHECK = (
    "def check_f(fn):\n    try:\n        fn(1)\n    except NotImplementedError:\n"
    "        print('⏳ f: not implemented yet')"
)
STUB = "def f(x):\n    ### BEGIN SOLUTION\n    y_secret = x + 41\n    return y_secret\n    ### END SOLUTION"


def test_run_check_accepts_a_guarded_stub_and_rejects_a_dependent_cell(tmp_path):
    good, _ = ms.make_student_notebook(_tiny([STUB, CHECK, "check_f(f)", "f(2)", "print('after')"]))
    result = run_notebook(good, cwd=tmp_path, stop_on_error=False, name="good")
    assert [e.ename for e in result.errors] == ["NotImplementedError"]  # an unguarded call is still allowed
    assert run_problems(result, 1) == []
    assert result.notebook.cells[-1].outputs[0]["text"] == "after\n"  # ran past the error

    bad, _ = ms.make_student_notebook(_tiny([STUB, CHECK, "check_f(f)", "z = f(2)", "print(z)"]))
    problems = run_problems(run_notebook(bad, cwd=tmp_path, stop_on_error=False, name="bad"), 1)
    assert len(problems) == 1 and "NameError" in problems[0]


def test_leak_check_finds_solution_text_left_behind():
    solution = _tiny([STUB, "print(f(1))"])
    student, _ = ms.make_student_notebook(solution)
    assert leaked_lines(solution, student) == []
    student.cells[1].source += "\n# copied: y_secret = x + 41"
    assert leaked_lines(solution, student) == ["y_secret = x + 41"]
    student.cells[1].source = STUB.replace("    ### BEGIN SOLUTION\n", "")
    assert "return y_secret" in leaked_lines(solution, student)
