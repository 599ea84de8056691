"""Tests for tools/class_hub.py: nbgitpuller links and publishing the student version to a git repository.

The last test pulls with nbgitpuller's own ``GitPuller`` (no hub, no browser), so its merge rule is checked on every
machine; tests/browser/test_hub.py runs the same story through a real JupyterHub in Chromium.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.parse
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import class_hub as hub  # noqa: E402

HUB = "https://hub.example.edu"
REPO_URL = "https://github.com/teacher/generative-models-student"
SECRET = "secret_answer = x * 2"


def write_course(folder: Path, names: tuple[str, ...] = ("00_intro", "01_next")) -> Path:
    """Tiny solution notebooks: a title, an exercise with a solution region, and a closing remark."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        cells = [
            new_markdown_cell(f"# {name}\n\nRead this first."),
            new_code_cell(
                f"def double(x):\n    ### BEGIN SOLUTION\n    {SECRET}\n    return secret_answer\n    ### END SOLUTION"
            ),
            new_code_cell("print('set-up check')"),
            new_markdown_cell("## The end\n\nWell done."),
        ]
        nbformat.write(
            new_notebook(
                cells=cells,
                metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            ),
            folder / f"{name}.ipynb",
        )
    return folder


def edit_cell(path: Path, index: int, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in cell ``index`` of the notebook at ``path`` (it must be there)."""
    nb = nbformat.read(path, as_version=4)
    assert old in nb.cells[index].source, f"{old!r} not in cell {index} of {path.name}"
    nb.cells[index].source = nb.cells[index].source.replace(old, new)
    nbformat.write(nb, path)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


# ------------------------------------------------------------------------------------------------------ links


def test_link_carries_nbgitpullers_parameters_encoded() -> None:
    link = hub.nbgitpuller_link(HUB + "/", REPO_URL, "00_intro.ipynb", branch="spring-2026", target="my course")
    parts = urllib.parse.urlsplit(link)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "hub.example.edu", "/hub/user-redirect/git-pull")
    assert len(parts.query.split("&")) == 4, f"a value broke out of its parameter: {parts.query}"
    assert "/" not in parts.query and " " not in parts.query
    assert urllib.parse.parse_qs(parts.query, strict_parsing=True) == {
        "repo": [REPO_URL],
        "branch": ["spring-2026"],
        # urlpath is a URL path itself: the space is quoted inside it, then the whole value is encoded again
        "urlpath": ["lab/tree/my%20course/00_intro.ipynb"],
        "targetpath": ["my course"],
    }


def test_link_keeps_a_hub_under_a_path_prefix_and_scp_style_repos() -> None:
    link = hub.nbgitpuller_link("https://uni.example.edu/jupyter/", "git@github.com:t/s.git", "01_next.ipynb")
    assert link.startswith(
        "https://uni.example.edu/jupyter/hub/user-redirect/git-pull?repo=git%40github.com%3At%2Fs.git&"
    )
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
    assert query["branch"] == ["main"] and query["targetpath"] == [hub.DEFAULT_TARGET]
    assert query["urlpath"] == [f"lab/tree/{hub.DEFAULT_TARGET}/01_next.ipynb"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hub_url": "hub.example.edu"}, "must be the hub's address"),
        ({"hub_url": "https://hub.example.edu/hub/"}, "without /hub"),
        ({"hub_url": "https://hub.example.edu/?next=x"}, "without /hub, a query"),
        ({"repo_url": "student-repo"}, "relative path"),
        ({"repo_url": "https://github.com/t/my repo"}, "without spaces"),
        ({"branch": "spring 2026"}, "not a git branch name"),
        ({"branch": "-x"}, "not a git branch name"),
        ({"branch": "a..b"}, "not a git branch name"),
        ({"target": "../elsewhere"}, "relative folder inside"),
        ({"target": "/home/alice"}, "relative folder inside"),
        ({"target": ""}, "relative folder inside"),
        ({"notebook": "notebooks/00_intro.ipynb"}, "file name"),
        ({"notebook": "00_intro.py"}, "file name"),
    ],
)
def test_link_rejects_wrong_input_with_a_clear_message(kwargs: dict, message: str) -> None:
    args = {"hub_url": HUB, "repo_url": REPO_URL, "notebook": "00_intro.ipynb", "branch": "main", "target": "course"}
    with pytest.raises(hub.HubError, match=message.replace("?", r"\?")):
        hub.nbgitpuller_link(**{**args, **kwargs})


def test_links_lists_the_published_notebooks(tmp_path: Path) -> None:
    with pytest.raises(hub.HubError, match="publish"):
        hub.links(HUB, REPO_URL, tmp_path)
    repo = tmp_path / "repo"
    hub.publish(repo, write_course(tmp_path / "course"))
    found = hub.links(HUB, REPO_URL, repo, target="gm")
    assert [name for name, _ in found] == ["00_intro.ipynb", "01_next.ipynb"]
    assert all("urlpath=lab%2Ftree%2Fgm%2F" + name in link for name, link in found)


# ------------------------------------------------------------------------------------------------------ publish


def test_publish_commits_only_student_notebooks_and_a_readme(tmp_path: Path) -> None:
    course = write_course(tmp_path / "course")
    done = hub.publish(tmp_path / "repo", course)
    repo = done.repo
    assert done.commit == git(repo, "rev-parse", "HEAD")
    assert git(repo, "symbolic-ref", "--short", "HEAD") == "main"
    assert git(repo, "ls-files").splitlines() == ["00_intro.ipynb", "01_next.ipynb", "README.md"]
    assert git(repo, "log", "--format=%s") == "Publish the student version of notebooks 00, 01"
    for name in ("00_intro.ipynb", "01_next.ipynb"):
        text = (repo / name).read_text()
        assert SECRET not in text and "raise NotImplementedError()" in text
    assert "- 00_intro.ipynb\n- 01_next.ipynb\n" in (repo / "README.md").read_text()
    assert not list(repo.glob("EXERCISES*")), "the instructor's overview must not reach the students"


def test_publish_again_adds_a_commit_only_for_a_change(tmp_path: Path) -> None:
    course = write_course(tmp_path / "course")
    first = hub.publish(tmp_path / "repo", course)
    assert hub.publish(tmp_path / "repo", course).commit is None  # the same notebooks: nothing to commit
    edit_cell(course / "01_next.ipynb", 3, "Well done.", "Well done, see you next week.")
    second = hub.publish(tmp_path / "repo", course, selection="01", message="Week 2 remark")
    assert second.commit and second.commit != first.commit
    # An ordinary commit on top (nbgitpuller can merge it), touching only the selected notebook.
    assert git(first.repo, "rev-parse", "HEAD~1") == first.commit
    assert git(first.repo, "log", "-1", "--format=%s") == "Week 2 remark"
    assert git(first.repo, "show", "--name-only", "--format=", "HEAD") == "01_next.ipynb"


def test_publish_releases_notebooks_one_at_a_time(tmp_path: Path) -> None:
    course = write_course(tmp_path / "course")
    repo = hub.publish(tmp_path / "repo", course, selection="00").repo
    assert git(repo, "ls-files").splitlines() == ["00_intro.ipynb", "README.md"]
    hub.publish(repo, course, selection="01")
    assert git(repo, "ls-files").splitlines() == ["00_intro.ipynb", "01_next.ipynb", "README.md"]
    assert "- 00_intro.ipynb\n- 01_next.ipynb\n" in (repo / "README.md").read_text()


def test_publish_refuses_what_it_cannot_publish_into(tmp_path: Path) -> None:
    course = write_course(tmp_path / "course")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(hub.HubError, match="neither empty nor a git repository"):
        hub.publish(tmp_path / "notes", course)
    repo = hub.publish(tmp_path / "repo", course).repo
    (repo / "00_intro.ipynb").write_text("{}")
    with pytest.raises(hub.HubError, match="uncommitted changes"):
        hub.publish(repo, course)
    git(repo, "checkout", "--", "00_intro.ipynb")
    with pytest.raises(hub.HubError, match="not 'spring'"):
        hub.publish(repo, course, branch="spring")
    with pytest.raises(hub.HubError, match="no notebook"):
        hub.publish(repo, course, selection="07")


def test_command_line_publish_and_links(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    course = write_course(tmp_path / "course")
    repo = tmp_path / "repo"
    assert hub.main(["publish", "--repo", str(repo), "--notebooks", str(course)]) == 0
    out = capsys.readouterr().out
    assert "2 student notebooks; commit " in out and "remote add origin" in out
    assert hub.main(["links", "--hub", HUB, "--repo-url", REPO_URL, "--repo", str(repo)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" ")[0] for line in lines] == ["00_intro.ipynb", "01_next.ipynb"]
    assert lines[0].split(" ")[1] == hub.nbgitpuller_link(HUB, REPO_URL, "00_intro.ipynb")
    assert hub.main(["links", "--hub", "hub.example.edu", "--repo-url", REPO_URL, "--repo", str(repo)]) == 1
    assert "error: --hub 'hub.example.edu'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------------ the merge


def test_a_students_edits_survive_the_next_publish(tmp_path: Path) -> None:
    """nbgitpuller's documented merge rule on what publish writes: the student's lines win where both changed the
    same lines, the instructor's other changes (same notebook, other notebook, a new notebook) arrive, and a notebook
    the student deleted comes back."""
    from nbgitpuller.pull import GitPuller

    course = write_course(tmp_path / "course", ("00_intro", "01_next", "02_later"))
    repo = hub.publish(tmp_path / "repo", course, selection="00,01").repo
    home = tmp_path / "alice" / "course"
    url = repo.as_uri()  # file://: a shallow clone, as from a git host

    def pull() -> None:
        for _line in GitPuller(url, str(home), branch="main").pull():
            pass

    pull()
    edit_cell(home / "00_intro.ipynb", 0, "# 00_intro", "# 00_intro, with Alice's notes")
    edit_cell(home / "00_intro.ipynb", 1, "# YOUR CODE HERE\n    raise NotImplementedError()", "return 2 * x")
    edit_cell(course / "00_intro.ipynb", 0, "# 00_intro", "# 00_intro (updated)")  # the same line: Alice's wins
    edit_cell(course / "00_intro.ipynb", 3, "Well done.", "Well done, on to 01.")  # another cell: arrives
    edit_cell(course / "01_next.ipynb", 3, "Well done.", "Well done, on to 02.")  # another notebook: arrives
    (home / "01_next.ipynb").unlink()  # "start over": the next click brings a fresh copy
    hub.publish(repo, course)  # also releases 02
    pull()

    mine = nbformat.read(home / "00_intro.ipynb", as_version=4)
    nbformat.validate(mine)
    assert mine.cells[0].source.startswith("# 00_intro, with Alice's notes")
    assert "return 2 * x" in mine.cells[1].source
    assert mine.cells[3].source.endswith("Well done, on to 01.")
    assert nbformat.read(home / "01_next.ipynb", as_version=4).cells[3].source.endswith("Well done, on to 02.")
    assert (home / "02_later.ipynb").is_file()
