"""Unit-test set-up: draw figures off-screen and keep every folder the package writes inside a temp dir."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_folders(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path_factory.mktemp("course")
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(root / "checkpoints"))
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(root / "results"))
    monkeypatch.setenv("COURSE_DATA_DIR", str(root / "data"))
    monkeypatch.setenv("COURSE_PROFILE", "fast")


@pytest.fixture
def one_thread():
    """Run a test's tiny models the way the course runs small sequential work: ``config.use_threads("sequential")``."""
    import torch

    from course_utils import config

    previous = torch.get_num_threads()
    config.use_threads("sequential")
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def package_source(tmp_path):
    """A copy of what building the package reads (pyproject.toml, README.md, course_utils/), in a temp folder.

    setuptools builds in the source tree's ``build/`` folder, so two tests building from the project itself at the
    same time (pytest-xdist) collided there ("File exists: build/bdist.../course_utils-0.1.0.dist-info").
    """
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    source = tmp_path / "package-source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(root / name, source / name)
    shutil.copytree(root / "course_utils", source / "course_utils", ignore=shutil.ignore_patterns("__pycache__"))
    return source
