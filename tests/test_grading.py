"""nbgrader's metadata, derived from the markers (tools/grading.py), and the whole grading loop with nbgrader itself.

The unit tests pin the rules that turn markers into metadata and show that a disagreement is caught. The slow test
runs the loop an instructor runs, with nbgrader's own commands and gradebook database, for every notebook:
``generate_assignment`` with its default settings, three students' submissions (the solutions typed into the student
version, the untouched student version, and the student version with one typical wrong answer, taken from the checks'
own tests), ``autograde``, the scores read from the gradebook, ``generate_feedback`` and ``export``.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import grading  # noqa: E402
from tools import make_student as ms  # noqa: E402
from tools.nbrun import NOTEBOOK_DIR, list_notebooks, notebook_number  # noqa: E402

NOTEBOOKS = list_notebooks(NOTEBOOK_DIR)
STUB = "# YOUR CODE HERE\n{indent}raise NotImplementedError()"
# One typical wrong answer per notebook: (the function, the line the student writes), each one of the mistakes the
# check's own tests feed it (file and the mistake's label in its parametrize list).
WRONG_ANSWERS = {
    "00": ("softmax", "return logits.exp() / logits.exp().sum(dim=1, keepdim=True)"),  # test_gaussian_artist: overflow
    "01": ("reconstruction_error", "return F.binary_cross_entropy(x_hat, x)"),  # autoencoder: "averaged over pixels"
    "02": ("reparameterize_exercise", "return mu + torch.exp(logvar) * torch.randn_like(mu)"),  # vae: "the 0.5"
    "03": ("discriminator_probability", "return torch.sigmoid(discriminator(images01))"),  # gan: forgot to_signed
    "04": ("discriminator_loss", "return losses.discriminator_loss(fake_logits, real_logits)"),  # gan: "swapped"
    "05": ("q_sample", "return schedule.alpha_bar[t].view(-1, 1, 1, 1) * (x0 - noise) + noise"),  # "square roots"
    "05b": ("velocity_target", "return x0 - eps"),  # test_exercises_flow: "sign is flipped"
    "06": ("guided_eps", "return eps_uncond + w * (eps_uncond - eps_cond)"),  # guidance: "wrong way"
    "07": ("unit_variance_scale", "return 1.0 / latents.var().item()"),  # latent: "variance"
    "08": ("frechet_distance_diagonal", "return ((mu1 - mu2) ** 2).sum() + ((var1 - var2) ** 2).sum()"),  # "STD"
    "09": ("temperature_probs", "return torch.softmax(logits * temperature, dim=-1)"),  # text: "multiplied"
}
# A wrong answer that the visible check accepts and only the hidden test rejects: it ignores the generator.
HIDDEN_TEST_CATCHES = ("sample_gaussian", "return mean + std * torch.randn(n, mean.shape[0])")


def _hidden_lines(nb: nbformat.NotebookNode) -> set[str]:
    """The non-blank lines between the hidden-test markers of a solution notebook."""
    lines, inside = set(), False
    for cell in nb.cells:
        for line in cell.source.splitlines():
            if line.strip() in (ms.BEGIN_HIDDEN, ms.END_HIDDEN):
                inside = line.strip() == ms.BEGIN_HIDDEN
            elif inside and len(line.strip()) > 3:  # not a lone bracket, which any cell may hold
                lines.add(line.strip())
    return lines


def _nb(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    return new_notebook(cells=list(cells))


# --- the rules -------------------------------------------------------------------------------------------------------


def test_each_kind_of_cell_gets_its_metadata():
    nb = _nb(
        new_code_cell("from course_utils.exercises.basics import check_softmax\nimport torch"),
        new_code_cell("def softmax(x):\n    ### BEGIN SOLUTION\n    return x.softmax(1)\n    ### END SOLUTION"),
        new_code_cell("check_softmax(softmax)\n### BEGIN HIDDEN TESTS\ncheck_other(softmax)\n### END HIDDEN TESTS"),
        new_markdown_cell("Why?"),
        new_markdown_cell("### BEGIN SOLUTION\nBecause.\n### END SOLUTION"),
        new_code_cell("checks.check_a(f)  # two checks in one cell: worth two points\nchecks.check_b(g)"),
        new_code_cell("plotting.check_layout(fig)\n# check_softmax(softmax) in a comment is no call"),
    )
    meta = grading.grading_metadata(nb)
    assert meta[0] == grading._meta("check-imports", grade=False, solution=False, locked=True)
    assert meta[1] == grading._meta("softmax", grade=False, solution=True, locked=False)
    # the hidden test's check earns no point of its own: the student cannot see what it asks
    assert meta[2] == grading._meta("check_softmax", grade=True, solution=False, locked=True, points=1)
    assert meta[3] is None
    assert meta[4] == grading._meta("answer-1", grade=True, solution=True, locked=False, points=2)
    assert meta[5]["points"] == 2 and meta[5]["grade_id"] == "check_a-check_b"
    assert meta[6] is None


def test_a_solution_cell_that_calls_its_check_is_refused():
    nb = _nb(new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n\ncheck_f(f)"))
    with pytest.raises(grading.GradingMetadataError, match="cell 0.*check_f.*cell of its own"):
        grading.grading_metadata(nb, "demo.ipynb")


def test_two_exercises_with_one_name_are_refused():
    solution = "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"
    with pytest.raises(grading.GradingMetadataError, match="grade_id 'f' is already cell 0"):
        grading.grading_metadata(_nb(new_code_cell(solution), new_code_cell(solution)))


def test_apply_then_check_and_every_kind_of_drift_is_named():
    nb = _nb(
        new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"),
        new_code_cell("check_f(f)"),
        new_code_cell("print('hello')"),
    )
    assert grading.apply_metadata(nb) == 2
    assert grading.metadata_problems(nb) == []
    assert grading.apply_metadata(nb) == 0
    # a marker removed by an edit: the cell still says "solution"
    nb.cells[0].source = "def f():\n    return 1"
    # metadata added by hand to an ordinary cell
    nb.cells[2].metadata["nbgrader"] = grading._meta("hello", grade=True, solution=False, locked=True, points=5)
    problems = grading.metadata_problems(nb, "demo.ipynb")
    assert [p.split(" (")[0] for p in problems] == ["demo.ipynb, cell 0", "demo.ipynb, cell 2"]
    assert grading.apply_metadata(nb) == 2 and "nbgrader" not in nb.cells[2].metadata


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_stored_metadata_agrees_with_the_markers(path):
    nb = nbformat.read(path, as_version=4)
    assert grading.metadata_problems(nb, path.name) == [], "run `make grading` and commit the notebooks"
    auto, _manual = grading.points(nb)
    exercises = [e for e in ms.find_exercises(nb, path.name) if e.kind == "code"]
    assert auto == len(exercises) * grading.CHECK_POINTS, "each code exercise is worth its check's points"


def test_the_command_line_check_fails_on_drift(tmp_path, capsys):
    source = NOTEBOOKS[0]
    nb = nbformat.read(source, as_version=4)
    solution = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution"))
    del solution.metadata["nbgrader"]
    nbformat.write(nb, tmp_path / source.name)
    assert grading.main(["--notebooks", str(tmp_path)]) == 1
    assert "run `make grading`" in capsys.readouterr().err
    assert grading.main(["--notebooks", str(tmp_path), "--write"]) == 0
    assert grading.main(["--notebooks", str(tmp_path)]) == 0


def test_course_folder_refuses_a_notebook_that_is_not_ready(tmp_path):
    nb = _nb(new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"))
    (tmp_path / "notebooks").mkdir()
    nbformat.write(nb, tmp_path / "notebooks" / "00_demo.ipynb")
    with pytest.raises(grading.GradingMetadataError, match="00_demo.ipynb is not ready to grade"):
        grading.write_course(tmp_path / "course", tmp_path / "notebooks")


# --- the whole loop with nbgrader ------------------------------------------------------------------------------------


def _nbgrader(course: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run one nbgrader command in the course folder, as the instructor types it; fail with its log."""
    done = subprocess.run(["nbgrader", *args], cwd=course, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _grading_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    # nbgrader calls its `alembic` next to itself: the environment's bin folder first, as an activated venv has it
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), env.get("PYTHONPATH", "")] if p)
    env.pop("MPLBACKEND", None)
    env.pop("NBGRADER_EXECUTION", None)
    env["COURSE_PROFILE"] = "fast"
    # The models trained by the notebooks' nbval run when there is one (make test), else trained once here.
    env["COURSE_CHECKPOINT_DIR"] = os.environ.get("NOTEBOOK_TEST_CHECKPOINTS") or str(tmp_path / "checkpoints")
    env["COURSE_RESULTS_DIR"] = str(tmp_path / "results")
    return env


def _answer(release_cell: nbformat.NotebookNode, source_cell: nbformat.NotebookNode, wrong: str | None) -> str:
    """The cell as a student hands it in: the stub replaced by the solution, or by one wrong line."""
    if wrong is None:
        return "\n".join(
            line for line in source_cell.source.splitlines() if line.strip() not in (ms.BEGIN_SOLUTION, ms.END_SOLUTION)
        )
    match = re.search(r"^( *)# YOUR CODE HERE\n *raise NotImplementedError\(\)", release_cell.source, re.MULTILINE)
    assert match, f"no stub in {release_cell.source!r}"
    return release_cell.source.replace(match.group(0), f"{match.group(1)}{wrong}")


def _submission(release: Path, source: Path, *, solve: bool, wrong: tuple[str, str] | None) -> nbformat.NotebookNode:
    """A student's notebook: the released one, each exercise solved (``solve``) or left as it is, and optionally
    the function ``wrong[0]`` answered with the line ``wrong[1]``."""
    nb = nbformat.read(release, as_version=4)
    solutions = {
        c.metadata["nbgrader"]["grade_id"]: c
        for c in nbformat.read(source, as_version=4).cells
        if c.metadata.get("nbgrader", {}).get("solution")
    }
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id not in solutions:
            continue
        if wrong is not None and grade_id == wrong[0]:
            cell.source = _answer(cell, solutions[grade_id], wrong[1])
        elif solve:
            cell.source = _answer(cell, solutions[grade_id], None)
    return nb


def _cell_scores(gradebook_url: str, assignment: str, notebook: str, student: str) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(gradebook_url) as gb:
        submission = gb.find_submission_notebook(notebook, assignment, student)
        return {grade.name: grade.score for grade in submission.grades}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_nbgrader_grades_three_students_exactly(path, tmp_path):
    number = notebook_number(path)  # "05", or "05b" for the notebook placed after 05
    course = tmp_path / "course"
    env = _grading_env(tmp_path)
    [assignment] = grading.write_course(course, NOTEBOOK_DIR, number)
    _nbgrader(course, "generate_assignment", assignment, env=env)  # nbgrader's default settings
    release = course / "release" / assignment / path.name
    source = course / "source" / assignment / path.name

    # One source: the release equals the course's own student version, cell for cell.
    student, _ = ms.make_student_notebook(nbformat.read(path, as_version=4), path.name)
    released = nbformat.read(release, as_version=4)
    assert [c.source for c in released.cells] == [c.source for c in student.cells]
    # Hidden tests stay hidden: none of their lines reaches the student (they run again when grading, below).
    hidden = _hidden_lines(nbformat.read(path, as_version=4))
    assert not hidden & {line.strip() for c in released.cells for line in c.source.splitlines()}

    students = {
        "solutions": _submission(release, source, solve=True, wrong=None),
        "untouched": _submission(release, source, solve=False, wrong=None),
        "one-wrong": _submission(release, source, solve=True, wrong=WRONG_ANSWERS[number]),
    }
    if number == "00":
        assert len(hidden) >= 3, "notebook 00's check cell holds the hidden test this test relies on"
        students["hidden-test"] = _submission(release, source, solve=True, wrong=HIDDEN_TEST_CATCHES)
    for name, nb in students.items():
        folder = course / "submitted" / name / assignment
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / path.name)

    started = time.perf_counter()
    _nbgrader(course, "autograde", assignment, env=env)
    per_submission = (time.perf_counter() - started) / len(students)

    solution_nb = nbformat.read(path, as_version=4)
    auto, manual = grading.points(solution_nb)
    tests = {
        c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
        for c in solution_nb.cells
        if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"]["solution"]
    }
    url = f"sqlite:///{course / 'gradebook.db'}"
    from nbgrader.api import Gradebook

    with Gradebook(url) as gb:
        for name in students:
            submission = gb.find_submission(assignment, name)
            assert submission.max_score == auto + manual
            # a written answer waits for the teacher, unless it was left as the stub (nbgrader scores that 0)
            assert submission.needs_manual_grade == (manual > 0 and name != "untouched"), name
    scores = {name: _cell_scores(url, assignment, path.stem, name) for name in students}
    assert {k: scores["solutions"][k] for k in tests} == tests, "the solutions must earn every autograded point"
    assert {k: scores["untouched"][k] for k in tests} == dict.fromkeys(tests, 0), "a stub must score 0"
    # the one wrong answer loses exactly its own check: the first test cell after its function
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in solution_nb.cells]
    its_check = next(i for i in ids[ids.index(WRONG_ANSWERS[number][0]) :] if i in tests)
    assert {k for k in tests if scores["one-wrong"][k] != tests[k]} == {its_check}, scores["one-wrong"]
    assert scores["one-wrong"][its_check] == 0
    with Gradebook(url) as gb:
        totals = {name: gb.find_submission(assignment, name).score for name in students}
    assert totals["solutions"] == auto
    assert totals["untouched"] == 0
    assert totals["one-wrong"] == auto - grading.CHECK_POINTS
    if number == "00":
        assert totals["hidden-test"] == auto - grading.CHECK_POINTS, "the hidden test must run when grading"

    _nbgrader(course, "generate_feedback", assignment, env=env)
    for name in students:
        page = course / "feedback" / name / assignment / f"{path.stem}.html"
        assert page.is_file(), f"no feedback page for {name}"
        assert f"Score: {totals[name]:.1f} / {auto + manual:.1f}" in page.read_text(encoding="utf-8")
    _nbgrader(course, "export", env=env)
    with open(course / "grades.csv", newline="") as handle:
        rows = {row["student_id"]: float(row["raw_score"]) for row in csv.DictReader(handle)}
    assert rows == totals
    assert per_submission < 120, f"autograding one submission of {path.name} took {per_submission:.0f} s"
