"""Tests for tools/build_course.py on a tiny course written here."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import build_course  # noqa: E402


def _course(folder: Path) -> Path:
    folder.mkdir()
    plot = "import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0])\nplt.show()"
    title = new_markdown_cell("# The critic & the artist\n\nGoals.")
    first = [title, new_code_cell("print(6 * 7)"), new_code_cell(plot)]
    nbformat.write(new_notebook(cells=first), folder / "00_intro.ipynb")
    broken = [new_markdown_cell("# Broken one"), new_code_cell("raise RuntimeError('no luck')")]
    nbformat.write(new_notebook(cells=broken), folder / "01_broken.ipynb")
    return folder


def test_builds_pages_and_an_index_in_course_order(tmp_path):
    src, out = _course(tmp_path / "nb"), tmp_path / "html"
    entries = build_course.build_course(src, out, profile="fast", timeout=120, progress=lambda m: None)
    assert [(e["notebook"], e["ok"]) for e in entries] == [("00_intro.ipynb", True), ("01_broken.ipynb", False)]
    page = (out / "00_intro.html").read_text()
    assert "42" in page and "The critic &amp; the artist" in page  # executed output and escaped title
    assert "data:image/png;base64," in page  # the figure is embedded (tests set MPLBACKEND=Agg; kernels must not)
    assert "no luck" in (out / "01_broken.html").read_text()  # a failed notebook is still shown, with its error
    index = (out / "index.html").read_text()
    links = re.findall(r'<a href="([^"]+)">', index)
    assert links == ["00_intro.html", "01_broken.html"]
    assert "FAILED: cell 1: RuntimeError: no luck" in index
    assert "<code>fast</code> profile" in index


def test_command_line_without_execution_and_exit_status(tmp_path):
    src = _course(tmp_path / "nb")
    assert build_course.main(["--notebooks", str(src), "--out", str(tmp_path / "a"), "--no-execute"]) == 0
    assert "converted without executing" in (tmp_path / "a" / "index.html").read_text()
    assert (
        build_course.main(
            ["--notebooks", str(src), "--out", str(tmp_path / "b"), "--profile", "fast", "--notebook", "01"]
        )
        == 1
    )
    assert build_course.main(["--notebooks", str(src), "--out", str(tmp_path / "c"), "--notebook", "09"]) == 2
