"""The course served to a class on a real JupyterHub, as README's "Serve the course to a class on JupyterHub" says.

The instructor publishes the student version of notebooks 00 and 01 (tools/class_hub.py) to a local git repository.
Two students, alice and bob, click the nbgitpuller link of notebook 00 in headless Chromium: the hub asks them to log
in, starts their servers, nbgitpuller clones the repository into their homes and JupyterLab opens the notebook, where
each runs the first cells until the set-up check (PyTorch version, device, profile fast) is on the page.

Then alice changes notebook 00 (its title line and an exercise); the instructor publishes a new title line (the same
line alice changed), a closing remark in 00, a remark in 01, and releases notebook 02. alice clicks the link again.
nbgitpuller's documented merge rule must hold: her lines win where both changed the same lines, everything else the
instructor changed arrives. bob's home never sees alice's changes.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from hub_driver import HUB_REPORT, Hub, class_hub, log_in
from jupyterlab_driver import (
    PROJECT_ROOT,
    PlaywrightTimeout,
    cell_output_area,
    is_environment_check,
    notebook_cells,
    run_cell,
    tree_cpu_seconds,
    wait_for_notebook,
)

from tools.class_hub import nbgitpuller_link, publish

pytestmark = pytest.mark.browser

STUDENTS = ["alice", "bob"]
TARGET = "generative-models"
NB00 = "00_generative_vs_discriminative.ipynb"
NB01 = "01_autoencoder.ipynb"
NB02 = "02_variational_autoencoder.ipynb"
TIMEOUT_S = 180  # a cold start on a busy machine: hub, server, JupyterLab, kernel, `import torch`
ALICE_TITLE = "# 00 · Alice's copy, with her notes"
NEW_TITLE = "# 00 · The critic and the artist (updated by the instructor)"
NEW_REMARK_00 = "Instructor's note: notebook 01 is out."
NEW_REMARK_01 = "Instructor's note: the encoder is explained again in section 1."
ALICE_ANSWER = "alice_answer = 42  # my own answer"


def edit_source(path: Path, index: int, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in cell ``index`` of the notebook at ``path`` (it must be there)."""
    nb = nbformat.read(path, as_version=4)
    assert old in nb.cells[index].source, f"{old!r} is not in cell {index} of {path}"
    nb.cells[index].source = nb.cells[index].source.replace(old, new, 1)
    nbformat.write(nb, path)


def first_line(path: Path, index: int = 0) -> str:
    return nbformat.read(path, as_version=4).cells[index].source.splitlines()[0]


def open_link(page: Any, hub: Hub, user: str, link: str, log_in_first: bool = False) -> None:
    """Follow the nbgitpuller link of notebook 00 (logging in when asked) until JupyterLab shows it, kernel idle."""
    page.goto(link, wait_until="domcontentloaded")
    if log_in_first:
        log_in(page, hub, user)
    try:
        wait_for_notebook(page, f"{TARGET}/{NB00}", timeout_s=TIMEOUT_S)
    except (PlaywrightTimeout, TimeoutError) as exc:
        home = sorted(str(p.relative_to(hub.home(user))) for p in hub.home(user).glob("*/*.ipynb"))
        raise AssertionError(
            f"{user}: the link did not open {TARGET}/{NB00} in JupyterLab ({exc}); the page is at {page.url}; "
            f"notebooks in {user}'s home: {home}"
        ) from exc
    # The student's own server (JupyterLab then rewrites the rest of the URL as it pleases).
    assert page.url.startswith(f"{hub.url}/user/{user}/lab"), page.url


def show_environment_check(page: Any, user: str, folder: Path) -> str:
    """Run the first code cells of the open notebook 00 until the set-up check is on the page; return its text."""
    code_cells = [cell["index"] for cell in notebook_cells(page) if cell["type"] == "code"]
    for index in code_cells[:3]:
        run_cell(page, index, timeout_s=TIMEOUT_S)
        cell = notebook_cells(page)[index]
        errors = [f"{out['ename']}: {out['evalue']}" for out in cell["outputs"] if out["type"] == "error"]
        assert not errors, f"{user}: cell {index} of notebook 00 shows an error: {errors}"
        if is_environment_check("".join(out["text"] or "" for out in cell["outputs"])):
            area = cell_output_area(page, index)
            shown = area.inner_text()
            assert is_environment_check(shown), f"{user}: the set-up check is not visible on the page: {shown!r}"
            area.screenshot(path=str(folder / f"{user}-cell{index:02d}-environment-check.png"))
            return shown
    raise AssertionError(f"{user}: none of the first cells {code_cells[:3]} of notebook 00 shows the set-up check")


def test_a_class_on_jupyterhub(hub_available: None, chromium: Any, tmp_path: Path) -> None:
    started, cpu_before = time.monotonic(), tree_cpu_seconds()
    course = tmp_path / "course"  # the instructor's solution notebooks (a copy: the test edits them)
    course.mkdir()
    for name in (NB00, NB01, NB02):
        shutil.copy(PROJECT_ROOT / "notebooks" / name, course / name)
    first = publish(tmp_path / "class-repo", course, selection="00,01")
    repo_url = first.repo.as_uri()  # file://, so nbgitpuller makes the same shallow clone as from a git host
    screenshots = PROJECT_ROOT / "build" / "screenshots" / "hub"
    shutil.rmtree(screenshots, ignore_errors=True)
    screenshots.mkdir(parents=True)

    with class_hub(tmp_path / "hub", STUDENTS) as hub:
        link = nbgitpuller_link(hub.url, repo_url, NB00, branch="main", target=TARGET)
        pages = {}
        for user in STUDENTS:
            context = chromium.new_context(viewport={"width": 1400, "height": 1600})
            context.set_default_timeout(TIMEOUT_S * 1000)
            page = pages[user] = context.new_page()
            open_link(page, hub, user, link, log_in_first=True)
            print(f"{user}: {show_environment_check(page, user, screenshots).strip()}")
            clone = hub.home(user) / TARGET
            assert sorted(p.name for p in clone.glob("*.ipynb")) == [NB00, NB01], f"{user}'s clone: {clone}"

        _alice_edits_then_the_instructor_publishes(hub, course, first.repo)
        open_link(pages["alice"], hub, "alice", link)  # alice clicks the same link again
        _check_the_merge(hub, pages["alice"], first.repo, first.commit)
        cpu = tree_cpu_seconds() - cpu_before  # before the teardown kills the hub's processes
        for page in pages.values():
            page.context.close()

    seconds = time.monotonic() - started
    HUB_REPORT.append(f"hub test: {seconds:.0f} s, {cpu:.0f} CPU seconds (pytest, hub, proxy, 2 servers, Chromium)")
    print(HUB_REPORT[-1])


def _alice_edits_then_the_instructor_publishes(hub: Hub, course: Path, repo: Path) -> None:
    """alice changes the title line and answers the first exercise of 00 (her files, as JupyterLab would save them);
    the instructor changes the same title line, a closing remark of 00, a remark of 01, and releases 02."""
    mine = hub.home("alice") / TARGET / NB00
    edit_source(mine, 0, first_line(mine), ALICE_TITLE)
    cells = nbformat.read(mine, as_version=4).cells
    exercise = next(i for i, cell in enumerate(cells) if "raise NotImplementedError()" in cell.source)
    edit_source(mine, exercise, "raise NotImplementedError()", ALICE_ANSWER)

    edit_source(course / NB00, 0, first_line(course / NB00), NEW_TITLE)
    last = len(nbformat.read(course / NB00, as_version=4).cells) - 1
    closing = first_line(course / NB00, last)
    edit_source(course / NB00, last, closing, f"{NEW_REMARK_00}\n\n{closing}")
    edit_source(course / NB01, 0, first_line(course / NB01), first_line(course / NB01) + "\n\n" + NEW_REMARK_01)
    second = publish(repo, course)  # every notebook in the course folder: 00 and 01 changed, 02 is new
    assert second.commit, "the instructor's changes made no commit"


def _check_the_merge(hub: Hub, page: Any, repo: Path, first_commit: str) -> None:
    """nbgitpuller's merge rule, in alice's browser and files; bob's home as it was before."""
    cells = notebook_cells(page)  # what alice sees after the second click
    assert cells[0]["source"].startswith(ALICE_TITLE), f"alice's title line was lost: {cells[0]['source'][:80]!r}"
    assert any(ALICE_ANSWER in c["source"] for c in cells), "alice's answer to the first exercise was lost"
    assert cells[-1]["source"].startswith(NEW_REMARK_00), "the instructor's new remark in 00 did not arrive"

    clone = hub.home("alice") / TARGET
    nbformat.validate(nbformat.read(clone / NB00, as_version=4))  # the merge left a valid notebook
    assert NEW_REMARK_01 in nbformat.read(clone / NB01, as_version=4).cells[0].source, "01's change did not arrive"
    assert (clone / NB02).is_file(), "the newly released notebook 02 did not arrive"

    bob = hub.home("bob") / TARGET
    published = (repo / NB00).read_text()  # now the second version; bob's copy must still be the first one
    assert (bob / NB00).read_text() != published
    assert ALICE_TITLE not in (bob / NB00).read_text() and ALICE_ANSWER not in (bob / NB00).read_text()
    original = subprocess.run(
        ["git", "show", f"{first_commit}:{NB00}"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout
    assert (bob / NB00).read_text() == original, "bob's notebook 00 changed although bob did nothing"
