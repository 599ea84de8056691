"""Tests for tools/make_student.py on tiny notebooks written here (the real notebooks: test_student_notebooks.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import make_student as ms  # noqa: E402

SOLUTION_CELL = '''def double(x):
    """Return twice x."""
    y = 1
    ### BEGIN SOLUTION
    secret_answer = x * 2
    return secret_answer
    ### END SOLUTION
'''


def test_region_becomes_indented_stub_and_keeps_the_rest():
    student, count = ms.strip_solutions(SOLUTION_CELL)
    assert count == 1
    assert student == (
        'def double(x):\n    """Return twice x."""\n    y = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()\n'
    )


def test_stub_runs_and_raises_not_implemented():
    student, _ = ms.strip_solutions(SOLUTION_CELL)
    namespace: dict = {}
    exec(compile(student, "<student>", "exec"), namespace)
    with pytest.raises(NotImplementedError):
        namespace["double"](3)


def test_several_regions_top_level_and_no_trailing_newline():
    source = "a = 1\n### BEGIN SOLUTION\nb = 2\n### END SOLUTION\nc = 3\n### BEGIN SOLUTION\nd = 4\n### END SOLUTION"
    student, count = ms.strip_solutions(source)
    assert count == 2
    assert (
        student
        == "a = 1\n# YOUR CODE HERE\nraise NotImplementedError()\nc = 3\n# YOUR CODE HERE\nraise NotImplementedError()"
    )


def test_markdown_region_becomes_your_answer_here():
    source = "**Question.** Why?\n\n### BEGIN SOLUTION\nBecause the KL term pulls codes together.\n### END SOLUTION\n"
    student, count = ms.strip_solutions(source, "markdown")
    assert count == 1
    assert student == "**Question.** Why?\n\nYOUR ANSWER HERE\n"


def test_hidden_tests_are_removed_without_stub():
    source = "check(f)\n### BEGIN HIDDEN TESTS\nassert f(2) == 4\n### END HIDDEN TESTS\n"
    student, count = ms.strip_solutions(source)
    assert (student, count) == ("check(f)\n", 0)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("### BEGIN SOLUTION\nx = 1\n", "never closed"),
        ("x = 1\n### END SOLUTION\n", "without a matching BEGIN"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "inside an open region"),
        ("### BEGIN SOLUTION\nx = 1\n### END HIDDEN TESTS\n", "without a matching BEGIN"),
        ("x = 1  ### BEGIN SOLUTION\nx = 2\n### END SOLUTION\n", "whole line"),
    ],
)
def test_malformed_markers_are_errors_that_name_the_place(source, message):
    with pytest.raises(ms.MarkerError, match=message) as info:
        ms.strip_solutions(source, where="nb.ipynb, cell 3")
    assert "nb.ipynb, cell 3" in str(info.value)


def test_markdown_may_mention_the_markers_in_prose():
    source = "Solutions sit between `### BEGIN SOLUTION` and `### END SOLUTION` lines."
    assert ms.strip_solutions(source, "markdown") == (source, 0)


def _solution_notebook() -> nbformat.NotebookNode:
    run = new_code_cell("print(double(2))", execution_count=3, outputs=[new_output("stream", text="4\n")])
    return new_notebook(
        cells=[
            new_markdown_cell("# Doubling\n\nLearning goals."),
            new_markdown_cell("## Exercise 1: double a number\n\n```python\n# not a heading\n```"),
            new_code_cell(SOLUTION_CELL, execution_count=1),
            new_code_cell("from course_utils.exercises.demo import check_double\ncheck_double(double)"),
            run,
            new_markdown_cell("## Exercise 2: explain\n\n### BEGIN SOLUTION\nIt doubles.\n### END SOLUTION"),
            new_markdown_cell("## Recap"),
            new_code_cell("check_unrelated()"),
        ]
    )


def test_student_notebook_has_stubs_and_no_outputs_and_leaves_original_alone():
    nb = _solution_notebook()
    student, count = ms.make_student_notebook(nb, "demo.ipynb")
    assert count == 2
    assert all(c.outputs == [] and c.execution_count is None for c in student.cells if c.cell_type == "code")
    text = "\n".join(c.source for c in student.cells)
    assert "secret_answer" not in text and "It doubles." not in text and "SOLUTION" not in text
    assert "raise NotImplementedError()" in student.cells[2].source
    assert "YOUR ANSWER HERE" in student.cells[5].source
    assert nb.cells[4].outputs and "secret_answer" in nb.cells[2].source  # the solution notebook is untouched


def test_find_exercises_reads_title_function_and_checks(tmp_path):
    (tmp_path / "demo.py").write_text(
        'def check_double(fn):\n    """Doubles 0, 1 and -2.5 exactly; says which input went wrong."""\n'
    )
    docs = ms.check_docstrings(tmp_path)
    assert docs == {"check_double": "Doubles 0, 1 and -2.5 exactly; says which input went wrong."}
    found = ms.find_exercises(_solution_notebook(), "demo.ipynb", docs)
    assert [(e.number, e.kind, e.title, e.function, e.checks) for e in found] == [
        (1, "code", "Exercise 1: double a number", "double", ["check_double"]),
        (2, "written", "Exercise 2: explain", None, []),
    ]
    assert found[0].check_docs == ["Doubles 0, 1 and -2.5 exactly; says which input went wrong."]


def test_build_student_writes_notebooks_and_overview(tmp_path):
    src = tmp_path / "notebooks"
    src.mkdir()
    nbformat.write(_solution_notebook(), src / "01_demo.ipynb")
    nbformat.write(new_notebook(cells=[new_markdown_cell("# Nothing to do")]), src / "00_intro.ipynb")
    nbformat.write(new_notebook(), src / "scratch.ipynb")  # not a course notebook: ignored
    out, overview = tmp_path / "student", tmp_path / "EXERCISES.md"
    result = ms.build_student(src, out, overview, exercise_modules=tmp_path)
    assert sorted(p.name for p in out.iterdir()) == ["00_intro.ipynb", "01_demo.ipynb"]
    student = nbformat.read(out / "01_demo.ipynb", as_version=4)
    assert "secret_answer" not in nbformat.writes(student)
    text = overview.read_text()
    assert "2 exercises in 2 notebooks." in text
    assert "| 1 | Exercise 1: double a number | `double()` | `check_double` |" in text
    assert "| 2 | Exercise 2: explain | a written answer | read by the instructor | - |" in text
    assert {k: len(v) for k, v in result.exercises.items()} == {"00_intro.ipynb": 0, "01_demo.ipynb": 2}


def test_command_line_reports_errors_with_exit_status(tmp_path, capsys):
    src = tmp_path / "notebooks"
    src.mkdir()
    broken = new_notebook(cells=[new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n")])
    nbformat.write(broken, src / "03_broken.ipynb")
    status = ms.main(["--notebooks", str(src), "--out", str(tmp_path / "s"), "--overview", str(tmp_path / "E.md")])
    assert status == 1
    assert "03_broken.ipynb, cell 0" in capsys.readouterr().err
