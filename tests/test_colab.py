"""Google Colab: every notebook opens there from a badge and installs course_utils itself, first thing.

Colab has PyTorch, NumPy and friends but not this course's package. The set-up cell at the top of each notebook
installs it from the course's repository when it cannot be imported, and does nothing where it can (a local
``make lab``). The last test plays Colab: a fresh virtual environment that sees the installed libraries but not
course_utils runs the set-up cell, with ``COURSE_PACKAGE_SOURCE`` pointing at this checkout instead of GitHub.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.nbrun import list_notebooks  # noqa: E402  (the course's notebooks, 05b_ included, in course order)

NOTEBOOKS = list_notebooks(ROOT / "notebooks")
REPOSITORY = "generative-models-hands-on/course"  # the one the README's Binder badge names


def setup_cell(path: Path) -> nbformat.NotebookNode:
    return next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")


def colab_url(path: Path) -> str:
    return f"https://colab.research.google.com/github/{REPOSITORY}/blob/main/notebooks/{path.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_each_notebook_has_its_colab_badge_and_the_same_set_up_cell_first(path):
    cells = nbformat.read(path, as_version=4).cells
    top = "".join(c.source for c in cells[:3] if c.cell_type == "markdown")
    assert f"]({colab_url(path)})" in top, f"{path.name} needs an 'Open in Colab' badge that opens itself"
    first_code = setup_cell(path).source
    assert first_code == setup_cell(NOTEBOOKS[0]).source, f"{path.name}'s set-up cell differs from notebook 00's"
    assert f"git+https://github.com/{REPOSITORY}" in first_code and 'find_spec("course_utils")' in first_code


def test_readme_links_every_notebook_to_colab():
    readme = (ROOT / "README.md").read_text()
    for path in NOTEBOOKS:
        assert colab_url(path) in readme, f"README lacks the Colab link of {path.name}"


def run_setup_cell(python: Path, cwd: Path, source: str) -> subprocess.CompletedProcess:
    code = setup_cell(NOTEBOOKS[0]).source + "\nimport course_utils\nprint(course_utils.__file__)\n"
    code += "from course_utils import config\nprint(config.PROJECT_ROOT)\n"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(COURSE_PACKAGE_SOURCE=source, PIP_DISABLE_PIP_VERSION_CHECK="1")
    return subprocess.run([str(python), "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_set_up_cell_does_nothing_where_the_course_is_installed(tmp_path):
    result = run_setup_cell(Path(sys.executable), tmp_path, source="/nonexistent: an install would fail")
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.split()[0]).is_relative_to(ROOT), "it must import the installed checkout"


@pytest.mark.slow
def test_set_up_cell_installs_the_package_in_a_kernel_without_it(tmp_path, package_source):
    # A "Colab" environment: a new venv that sees this environment's libraries (torch, numpy, ...) through a .pth
    # line, which adds the folder without running the editable-install hook that makes course_utils importable here.
    colab = tmp_path / "colab-venv"
    venv.EnvBuilder(with_pip=False).create(colab)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(colab), "platbase": str(colab)}))
    (site / "libraries.pth").write_text(sysconfig.get_path("purelib") + "\n")
    python = colab / "bin" / "python"
    missing = subprocess.run([str(python), "-c", "import course_utils"], cwd=tmp_path, capture_output=True, text=True)
    assert missing.returncode != 0 and "No module named 'course_utils'" in missing.stderr

    workdir = tmp_path / "content"  # Colab's working folder
    workdir.mkdir()
    result = run_setup_cell(python, workdir, source=str(package_source))  # the checkout's package
    assert result.returncode == 0, result.stdout + result.stderr
    installed, project_root = result.stdout.split()[:2]
    assert Path(installed).is_relative_to(colab), f"course_utils came from {installed}, not the new install"
    # Installed as a plain package, the course keeps its data and checkpoints in the working folder.
    assert Path(project_root) == workdir
