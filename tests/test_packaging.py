"""The course's install files agree with each other, and the package builds with all its parts."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"torch": "pytorch-cpu"}  # conda-forge's CPU-only PyTorch
# Optional packages the conda environments carry too, with pyproject's version range: the class hub's image is
# binder/'s environment, and students' nbgitpuller links need nbgitpuller in it.
CONDA_FROM_EXTRAS = {"nbgitpuller": "grading"}


def split_requirement(requirement: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    assert match, f"cannot parse requirement {requirement!r}"
    return match.group(1).lower(), match.group(2).replace(" ", "")


def pyproject_dependencies() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return dict(split_requirement(r) for r in project["dependencies"])


def conda_dependencies(path: Path) -> dict[str, str]:
    packages = {}
    in_dependencies = False
    for line in path.read_text().splitlines():
        if line.startswith("dependencies:"):
            in_dependencies = True
        elif in_dependencies and line.strip().startswith("- "):
            name, spec = split_requirement(line.strip()[2:])
            packages[name] = spec
        elif in_dependencies and line and not line.startswith(" "):
            in_dependencies = False
    return packages


def pyproject_extra(extra: str) -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return dict(split_requirement(r) for r in project["optional-dependencies"][extra])


def test_environment_yml_lists_the_same_packages_as_pyproject():
    conda = conda_dependencies(ROOT / "environment.yml")
    expected = {CONDA_NAMES.get(name, name): spec for name, spec in pyproject_dependencies().items()}
    expected |= {name: pyproject_extra(extra)[name] for name, extra in CONDA_FROM_EXTRAS.items()}
    extra = set(conda) - set(expected) - {"python", "pip"}
    missing = set(expected) - set(conda)
    assert not missing and not extra, f"environment.yml drifted from pyproject.toml: missing {missing}, extra {extra}"
    for name, spec in expected.items():
        assert conda[name] == spec, f"{name}: pyproject says {spec!r}, environment.yml says {conda[name]!r}"


def test_binder_environment_matches_the_root_environment():
    assert conda_dependencies(ROOT / "binder" / "environment.yml") == conda_dependencies(ROOT / "environment.yml")
    text = (ROOT / "binder" / "environment.yml").read_text()
    assert "conda-forge" in text and "pytorch-cpu" in text and "-e ." not in text


def test_torch_range_admits_the_release_we_test_on():
    from importlib.metadata import version

    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    installed = Version(version("torch")).release  # 2.14.1+cpu counts as 2.14.1
    spec = SpecifierSet(pyproject_dependencies()["torch"])
    assert Version(".".join(map(str, installed))) in spec, f"pyproject's torch{spec} excludes the tested torch"
    # The range is bounded above: a torch release nobody has tested is never installed by accident.
    assert any(s.operator == "<" for s in spec), f"torch{spec} has no upper bound"


def test_binder_postbuild_installs_the_package():
    post_build = ROOT / "binder" / "postBuild"
    text = post_build.read_text()
    assert text.startswith("#!/bin/bash\n")
    assert "set -euo pipefail" in text
    assert re.search(r"^python -m pip install --no-deps -e \.$", text, re.MULTILINE)
    assert os.stat(post_build).st_mode & stat.S_IXUSR, "binder/postBuild must be executable"


def test_package_builds_with_every_subpackage_and_data_file(tmp_path, package_source):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(package_source),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("course_utils-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "course_utils").rglob("*.py")}
    assert sources <= names, f"missing from the wheel: {sorted(sources - names)}"


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_command():
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```(?:bash|sh)?\n(.*?)```", readme, re.DOTALL).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.split("#")[0].strip()]
    assert commands == ["make lab", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.MULTILINE)


def test_binder_badge_opens_notebook_00_in_jupyterlab():
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"\(https://mybinder\.org/v2/gh/[^)\s]+\?urlpath=lab/tree/([^)\s]+)\)", readme)
    assert match, "README needs a Binder badge whose link opens JupyterLab (urlpath=lab/tree/...)"
    assert match.group(1) == "notebooks/00_generative_vs_discriminative.ipynb"
    assert (ROOT / match.group(1)).exists()
