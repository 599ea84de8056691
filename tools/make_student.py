"""Generate the student version of every notebook, and the instructor's overview of every exercise.

The solution notebooks in ``notebooks/`` are the single source of truth. In a code cell, each region between the
whole lines ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes::

    # YOUR CODE HERE
    raise NotImplementedError()

indented like the ``### BEGIN SOLUTION`` line; in a markdown cell it becomes ``YOUR ANSWER HERE``. Regions between
``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` are removed. Outputs and execution counts are cleared. These
are nbgrader's markers and stubs, so the same notebooks also work with nbgrader; this script needs neither a database
nor a server.

Usage::

    python tools/make_student.py                 # -> build/student/*.ipynb and build/EXERCISES.md
    python tools/make_student.py --notebook 02   # one notebook
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

if __package__ in (None, ""):  # run as `python tools/make_student.py`: make the `tools` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.nbrun import NOTEBOOK_DIR, PROJECT_ROOT, list_notebooks  # noqa: E402

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
TEXT_STUB = ("YOUR ANSWER HERE",)
# Anything that looks like a marker: a marker that is not a whole line of its own is an error (it would leak).
_LOOSE_MARKER = re.compile(r"#\s*(BEGIN|END)\s+(SOLUTION|HIDDEN TESTS)", re.IGNORECASE)
_CHECK_CALL = re.compile(r"\b(check_\w+)\s*\(")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_DEF = re.compile(r"^(\s*)(?:async\s+)?def\s+(\w+)\s*\(")
_CLASS = re.compile(r"^(\s*)class\s+(\w+)\b")

DEFAULT_OUT = PROJECT_ROOT / "build" / "student"
DEFAULT_OVERVIEW = PROJECT_ROOT / "build" / "EXERCISES.md"
EXERCISE_MODULES = PROJECT_ROOT / "course_utils" / "exercises"


class MarkerError(ValueError):
    """A solution or hidden-tests region is malformed (unclosed, nested, or a marker not on a line of its own)."""


def strip_solutions(source: str, cell_type: str = "code", where: str = "cell") -> tuple[str, int]:
    """Replace every solution region in one cell's source by the student stub; drop hidden-test regions.

    Returns the new source and the number of solution regions replaced. ``where`` names the cell in error messages.
    Raises ``MarkerError`` for an unclosed or nested region, an END without BEGIN, or a marker that shares its line
    with other text (which could let solution text through).
    """
    stub = CODE_STUB if cell_type == "code" else TEXT_STUB
    out: list[str] = []
    state = None  # None, "solution" or "hidden"
    regions = 0
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        text = line.strip()
        here = f"{where}, line {number}"
        if text in (BEGIN_SOLUTION, BEGIN_HIDDEN):
            if state is not None:
                raise MarkerError(f"{here}: {text!r} inside an open region; close it with its END line first")
            state = "solution" if text == BEGIN_SOLUTION else "hidden"
            if state == "solution":
                regions += 1
                indent = line[: len(line) - len(line.lstrip())]
                out.extend(f"{indent}{s}\n" for s in stub)
            continue
        if text in (END_SOLUTION, END_HIDDEN):
            expected = END_SOLUTION if state == "solution" else END_HIDDEN
            if state is None or text != expected:
                raise MarkerError(f"{here}: {text!r} without a matching BEGIN line")
            state = None
            continue
        loose = _LOOSE_MARKER.search(line) if cell_type == "code" else _LOOSE_MARKER.match(text)
        if loose:
            raise MarkerError(
                f"{here}: a solution marker must be a whole line of its own ({BEGIN_SOLUTION!r} / {END_SOLUTION!r}), "
                f"found {text!r}"
            )
        if state is None:
            out.append(line)
    if state is not None:
        raise MarkerError(f"{where}: a region opened with ### BEGIN {state.upper()} is never closed")
    new = "".join(out)
    if not source.endswith("\n") and new.endswith("\n"):
        new = new[:-1]
    return new, regions


def make_student_notebook(nb: nbformat.NotebookNode, name: str = "notebook") -> tuple[nbformat.NotebookNode, int]:
    """Return a student copy of a solution notebook (stubs, no outputs) and the number of regions replaced."""
    student = nbformat.from_dict(nb)  # deep copy
    student.metadata.pop("widgets", None)
    total = 0
    for index, cell in enumerate(student.cells):
        if cell.cell_type == "raw":
            continue
        cell.source, count = strip_solutions(cell.source, cell.cell_type, f"{name}, cell {index}")
        total += count
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in ("execution", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
    return student, total


@dataclass
class Exercise:
    """One exercise found in a solution notebook."""

    notebook: str
    number: int
    kind: str  # "code" (a function to write) or "written" (a markdown answer)
    title: str
    function: str | None
    cell_index: int
    checks: list[str] = field(default_factory=list)
    check_docs: list[str] = field(default_factory=list)


def check_docstrings(folder: Path = EXERCISE_MODULES) -> dict[str, str]:
    """``{check_name: first docstring line}`` for every ``check_*`` function in ``course_utils/exercises/*.py``.

    Read with ``ast`` (no import), so it is fast and works even when a module would fail to import.
    """
    docs: dict[str, str] = {}
    for path in sorted(Path(folder).glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("check_"):
                doc = (ast.get_docstring(node) or "").strip().splitlines()
                docs[node.name] = doc[0] if doc else ""
    return docs


def _enclosing_function(source: str) -> str | None:
    """The name of the ``def`` (or class) whose body holds the first solution region in a code cell."""
    lines = source.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == BEGIN_SOLUTION:
            indent = len(line) - len(line.lstrip())
            for previous in reversed(lines[:i]):
                match = _DEF.match(previous) or _CLASS.match(previous)
                if match and len(match.group(1)) < indent:
                    return match.group(2)
            return None
    return None


def find_exercises(nb: nbformat.NotebookNode, name: str, docs: dict[str, str] | None = None) -> list[Exercise]:
    """List the exercises of a solution notebook: each cell holding solution regions is one exercise.

    Its title is the nearest markdown heading above it; for code, the function is the ``def`` around the region and
    the checks are the ``check_*`` calls in that cell and the code cells after it, up to the next exercise or heading.
    """
    docs = docs if docs is not None else {}
    exercises: list[Exercise] = []
    heading = name
    current: Exercise | None = None
    for index, cell in enumerate(nb.cells):
        lines = [line.rstrip() for line in cell.source.splitlines()]
        if cell.cell_type == "markdown":
            lines = _outside_fences(lines)
        has_region = any(line.strip() == BEGIN_SOLUTION for line in lines)
        if cell.cell_type == "markdown":
            lines = [line.strip() for line in lines]
        if cell.cell_type == "markdown":
            before = lines[: lines.index(BEGIN_SOLUTION)] if BEGIN_SOLUTION in lines else lines
            found = [m.group(2) for m in map(_HEADING.match, before) if m]
            if found:
                heading = found[-1]
                current = None  # a new section ends the previous exercise's checks
        if has_region:
            kind = "code" if cell.cell_type == "code" else "written"
            function = _enclosing_function(cell.source) if kind == "code" else None
            current = Exercise(name, len(exercises) + 1, kind, heading, function, index)
            exercises.append(current)
        if cell.cell_type == "code" and current is not None:
            for check in _CHECK_CALL.findall(cell.source):
                if check not in current.checks:
                    current.checks.append(check)
                    current.check_docs.append(docs.get(check, ""))
    return exercises


def _outside_fences(lines: list[str]) -> list[str]:
    """Markdown lines outside fenced code blocks (a ``# comment`` in a fence is not a heading)."""
    kept, fenced = [], False
    for line in lines:
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced:
            kept.append(line)
    return kept


def exercises_markdown(exercises_by_notebook: dict[str, list[Exercise]]) -> str:
    """The instructor overview (``build/EXERCISES.md``): one table per notebook, a total at the top."""
    total = sum(len(v) for v in exercises_by_notebook.values())
    lines = [
        "# Exercises in the course",
        "",
        "Generated by `python tools/make_student.py` from the solution notebooks; do not edit by hand.",
        "",
        f"{total} exercises in {len(exercises_by_notebook)} notebooks.",
        "",
        "| notebook | exercises |",
        "|---|---|",
    ]
    lines += [f"| `{nb}` | {len(ex)} |" for nb, ex in exercises_by_notebook.items()]
    for nb, exercises in exercises_by_notebook.items():
        lines += ["", f"## `{nb}`", ""]
        if not exercises:
            lines.append("No exercises.")
            continue
        lines += ["| # | section | the student writes | checked by | what the check tests |", "|---|---|---|---|---|"]
        for ex in exercises:
            what = f"`{ex.function}()`" if ex.function else ("a written answer" if ex.kind == "written" else "code")
            missing = "read by the instructor" if ex.kind == "written" else "**no check found**"
            checks = ", ".join(f"`{c}`" for c in ex.checks) or missing
            doc = "; ".join(d for d in ex.check_docs if d) or "-"
            lines.append(f"| {ex.number} | {_cell(ex.title)} | {what} | {checks} | {_cell(doc)} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


@dataclass
class StudentBuild:
    """What ``build_student`` wrote."""

    notebooks: list[Path]
    overview: Path
    exercises: dict[str, list[Exercise]]
    seconds: float


def build_student(
    notebook_dir: Path = NOTEBOOK_DIR,
    out_dir: Path = DEFAULT_OUT,
    overview: Path = DEFAULT_OVERVIEW,
    selection: str | None = None,
    exercise_modules: Path = EXERCISE_MODULES,
) -> StudentBuild:
    """Write the student version of each notebook to ``out_dir`` and the exercise overview to ``overview``."""
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    docs = check_docstrings(exercise_modules)
    written: list[Path] = []
    exercises: dict[str, list[Exercise]] = {}
    for path in list_notebooks(Path(notebook_dir), selection):
        nb = nbformat.read(path, as_version=4)
        student, _ = make_student_notebook(nb, path.name)
        target = out_dir / path.name
        nbformat.write(student, target)
        written.append(target)
        exercises[path.name] = find_exercises(nb, path.name, docs)
    overview = Path(overview)
    overview.parent.mkdir(parents=True, exist_ok=True)
    overview.write_text(exercises_markdown(exercises), encoding="utf-8")
    return StudentBuild(written, overview, exercises, time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    """Command line: generate the student notebooks and the overview, print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOK_DIR, help="folder of solution notebooks")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the student notebooks")
    parser.add_argument("--overview", type=Path, default=DEFAULT_OVERVIEW, help="the exercise overview to write")
    parser.add_argument("--notebook", default=None, help="only these notebooks, e.g. 02 or 00,05")
    args = parser.parse_args(argv)
    try:
        result = build_student(args.notebooks, args.out, args.overview, args.notebook)
    except (MarkerError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in result.notebooks:
        print(f"{path}: {len(result.exercises[path.name])} exercises")
    total = sum(len(v) for v in result.exercises.values())
    print(
        f"{len(result.notebooks)} student notebooks, {total} exercises, overview {result.overview} "
        f"({result.seconds:.2f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
