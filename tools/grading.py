"""nbgrader's cell metadata, derived from the solution markers, and an nbgrader course folder for the class.

No cell is marked by hand. What a cell holds decides what nbgrader makes of it:

=========================================  ==========================  ===============================
the cell holds                             nbgrader's kind             points
=========================================  ==========================  ===============================
``### BEGIN SOLUTION`` in code             autograded answer           (scored by its check cell)
``### BEGIN SOLUTION`` in markdown         manually graded answer      ``WRITTEN_POINTS``
a call of an exercise check (``check_*``)  autograder tests, locked    ``CHECK_POINTS`` per check
the import of the exercise checks          read-only, locked           -
=========================================  ==========================  ===============================

A solution cell must not call its check: nbgrader scores a test cell, not an answer cell, so a cell with both is an
error that says to split it. ``grade_id`` is the name a teacher reads in the gradebook and in each student's feedback:
the function the student writes (``softmax``), its check (``check_softmax``), ``answer-<n>`` for written answers and
``check-imports`` for the locked import cell.

Usage::

    python tools/grading.py                  # check: exit 1 and name each cell whose metadata disagrees
    python tools/grading.py --write          # write the metadata into notebooks/ (``make grading``)
    python tools/grading.py --course ~/course  # an nbgrader course folder: nbgrader_config.py and source/<notebook>/

``make lint`` runs the check, so CI fails when a marker and its metadata disagree.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import nbformat

if __package__ in (None, ""):  # run as `python tools/grading.py`: make the `tools` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.make_student import BEGIN_HIDDEN, BEGIN_SOLUTION, END_HIDDEN, _enclosing_function  # noqa: E402
from tools.nbrun import NOTEBOOK_DIR, list_notebooks  # noqa: E402

CHECK_POINTS = 1
WRITTEN_POINTS = 2
SCHEMA_VERSION = 3
# A call of an exercise check: `check_softmax(...)` or `checks.check_q_sample(...)`, never `other.check_x(...)`.
_CHECK_CALL = re.compile(r"(?<![\w.])(?:checks\.)?(check_\w+)\s*\(")
_CHECK_IMPORT = re.compile(r"^\s*from\s+course_utils\.exercises\b.*\bimport\b", re.MULTILINE)
# Seconds one cell may run under nbgrader (its default, 30 s, is shorter than a training cell on a slow laptop).
CELL_TIMEOUT = 600

NBGRADER_CONFIG = '''\
"""nbgrader's settings for the course "Generative Models, hands-on" (written by tools/grading.py).

Each notebook is one assignment, named after the notebook (00_generative_vs_discriminative, ...).
"""

import os

c = get_config()  # noqa: F821 (nbgrader provides it)
c.CourseDirectory.course_id = "generative-models-hands-on"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
# A training cell may take minutes in the full profile; grading runs the fast profile (set below), seconds a cell.
c.Execute.timeout = {timeout}
# Grade in the fast profile: the same code as the lesson, tiny models. The trained models are shared by every
# submission through one checkpoint folder, so each model trains once for the whole class, not once per student.
os.environ.setdefault("COURSE_PROFILE", "fast")
os.environ.setdefault("COURSE_CHECKPOINT_DIR", os.path.join(c.CourseDirectory.root, "grading-checkpoints"))
os.environ.setdefault("COURSE_RESULTS_DIR", os.path.join(c.CourseDirectory.root, "grading-results"))
'''


class GradingMetadataError(ValueError):
    """A notebook cannot be graded as it stands (a solution cell that also calls its check, a repeated grade_id)."""


def _visible_lines(source: str) -> list[str]:
    """The cell's lines outside hidden-test regions: what the student sees and the points are counted from."""
    lines, hidden = [], False
    for line in source.splitlines():
        text = line.strip()
        if text in (BEGIN_HIDDEN, END_HIDDEN):
            hidden = text == BEGIN_HIDDEN
        elif not hidden:
            lines.append(line)
    return lines


def check_calls(source: str) -> list[str]:
    """The exercise checks a code cell calls outside its hidden tests, each once, in order."""
    found: list[str] = []
    for line in _visible_lines(source):
        code = line.split("#", 1)[0]
        found += [name for name in _CHECK_CALL.findall(code) if name not in found]
    return found


def _has_solution(cell: nbformat.NotebookNode) -> bool:
    return any(line.strip() == BEGIN_SOLUTION for line in cell.source.splitlines())


def _meta(grade_id: str, *, grade: bool, solution: bool, locked: bool, points: int | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": locked,
        "schema_version": SCHEMA_VERSION,
        "solution": solution,
        "task": False,
    }
    if points is not None:
        meta["points"] = points
    return meta


def grading_metadata(nb: nbformat.NotebookNode, name: str = "notebook") -> list[dict[str, Any] | None]:
    """nbgrader's metadata for each cell of a solution notebook (``None``: an ordinary cell), from its content.

    Raises ``GradingMetadataError`` when a solution cell also calls a check, or two cells would share a grade_id.
    """
    result: list[dict[str, Any] | None] = []
    written = 0
    seen: dict[str, int] = {}
    for index, cell in enumerate(nb.cells):
        meta = None
        where = f"{name}, cell {index}"
        if cell.cell_type == "markdown" and _has_solution(cell):
            written += 1
            meta = _meta(f"answer-{written}", grade=True, solution=True, locked=False, points=WRITTEN_POINTS)
        elif cell.cell_type == "code" and _has_solution(cell):
            if check_calls(cell.source):
                raise GradingMetadataError(
                    f"{where}: the solution cell also calls {', '.join(check_calls(cell.source))}; nbgrader scores "
                    "a test cell, not an answer: move the check call into a cell of its own right below"
                )
            function = _enclosing_function(cell.source) or f"solution-{index}"
            meta = _meta(function, grade=False, solution=True, locked=False)
        elif cell.cell_type == "code" and check_calls(cell.source):
            calls = check_calls(cell.source)
            meta = _meta("-".join(calls), grade=True, solution=False, locked=True, points=CHECK_POINTS * len(calls))
        elif cell.cell_type == "code" and _CHECK_IMPORT.search(cell.source):
            meta = _meta("check-imports", grade=False, solution=False, locked=True)
        if meta is not None:
            if meta["grade_id"] in seen:
                raise GradingMetadataError(
                    f"{where}: grade_id {meta['grade_id']!r} is already cell {seen[meta['grade_id']]}'s; each "
                    "exercise needs its own function name and check"
                )
            seen[meta["grade_id"]] = index
        result.append(meta)
    return result


def metadata_problems(nb: nbformat.NotebookNode, name: str = "notebook") -> list[str]:
    """Each cell whose stored nbgrader metadata differs from what its markers and checks say, in plain words."""
    problems = []
    for index, (cell, wanted) in enumerate(zip(nb.cells, grading_metadata(nb, name), strict=True)):
        stored = cell.metadata.get("nbgrader")
        if stored != wanted:
            first = cell.source.strip().splitlines()[0][:60] if cell.source.strip() else "(empty)"
            problems.append(
                f"{name}, cell {index} ({first!r}): nbgrader metadata is {stored}, the markers say {wanted}"
            )
    return problems


def apply_metadata(nb: nbformat.NotebookNode, name: str = "notebook") -> int:
    """Write the derived metadata into ``nb`` (in place); return how many cells changed."""
    changed = 0
    for cell, wanted in zip(nb.cells, grading_metadata(nb, name), strict=True):
        if cell.metadata.get("nbgrader") == wanted:
            continue
        changed += 1
        if wanted is None:
            del cell.metadata["nbgrader"]
        else:
            cell.metadata["nbgrader"] = wanted
    return changed


def points(nb: nbformat.NotebookNode) -> tuple[int, int]:
    """(autograded points, manually graded points) a notebook's stored metadata is worth."""
    auto = manual = 0
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            if meta.get("solution"):
                manual += meta["points"]
            else:
                auto += meta["points"]
    return auto, manual


def write_course(root: Path, notebook_dir: Path = NOTEBOOK_DIR, selection: str | None = None) -> list[str]:
    """Make (or refresh) an nbgrader course folder at ``root``; return the assignment names.

    Writes ``nbgrader_config.py`` and copies each solution notebook to ``source/<notebook>/<notebook>.ipynb``: one
    assignment per notebook, named after it. Nothing else of the folder (gradebook, submissions) is touched.
    """
    root = Path(root).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text(NBGRADER_CONFIG.format(timeout=CELL_TIMEOUT), encoding="utf-8")
    names = []
    for path in list_notebooks(Path(notebook_dir), selection):
        nb = nbformat.read(path, as_version=4)
        problems = metadata_problems(nb, path.name)
        if problems:
            raise GradingMetadataError(
                f"{path.name} is not ready to grade (run `make grading`):\n" + "\n".join(problems[:5])
            )
        target = root / "source" / path.stem
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target / path.name)
        names.append(path.stem)
    return names


def main(argv: list[str] | None = None) -> int:
    """Command line: check (default) or write the metadata, or make an nbgrader course folder."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOK_DIR, help="folder of solution notebooks")
    parser.add_argument("--notebook", default=None, help="only these notebooks, e.g. 02 or 00,05")
    parser.add_argument("--write", action="store_true", help="write the metadata instead of checking it")
    parser.add_argument("--course", type=Path, help="make an nbgrader course folder here (nbgrader_config.py, source/)")
    args = parser.parse_args(argv)
    try:
        if args.course:
            names = write_course(args.course, args.notebooks, args.notebook)
            print(f"nbgrader course at {args.course}: {len(names)} assignments ({', '.join(names)})")
            print(f"next: cd {args.course} && nbgrader generate_assignment {names[0]}")
            return 0
        paths = list_notebooks(args.notebooks, args.notebook)
        problems = []
        for path in paths:
            nb = nbformat.read(path, as_version=4)
            if args.write:
                if apply_metadata(nb, path.name):
                    nbformat.write(nb, path)
                    print(f"{path.name}: nbgrader metadata written")
            else:
                problems += metadata_problems(nb, path.name)
    except (GradingMetadataError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if problems:
        print("\n".join(problems), file=sys.stderr)
        print(f"{len(problems)} cells disagree with their markers: run `make grading` and commit.", file=sys.stderr)
        return 1
    if not args.write:
        print(f"nbgrader metadata of {len(paths)} notebooks agrees with their markers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
