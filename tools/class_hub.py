"""Serve the course to a class on JupyterHub: publish the student version to a git repository, write nbgitpuller links.

Each student's link runs nbgitpuller on the hub: the first click clones the published repository into the student's
home, every later click pulls the instructor's new commits and keeps the student's own changes (nbgitpuller's
automatic merging). For that merge to work the published repository only grows by ordinary commits (never amend or
force-push it) and holds only what students receive: the student notebooks and a short README.

Usage::

    python tools/class_hub.py publish                      # all notebooks -> build/class-repo, one commit
    python tools/class_hub.py publish --notebook 00,01     # release notebooks week by week
    python tools/class_hub.py links --hub https://hub.example.edu \\
        --repo-url https://github.com/you/generative-models-student
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as `python tools/class_hub.py`: make the `tools` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.make_student import EXERCISE_MODULES, MarkerError, build_student  # noqa: E402
from tools.nbrun import NOTEBOOK_DIR, NOTEBOOK_PATTERN, PROJECT_ROOT  # noqa: E402

DEFAULT_REPO = PROJECT_ROOT / "build" / "class-repo"
DEFAULT_BRANCH = "main"
DEFAULT_TARGET = "generative-models"
# Who commits when git has no identity configured (a fresh CI machine): publishing must not fail for that.
FALLBACK_IDENTITY = ("-c", "user.name=Course publisher", "-c", "user.email=course-publisher@localhost")
STUDENT_README = """# Generative Models, hands-on: your notebooks

Open a notebook from the link your instructor gave you. Each click on a link fetches the newest version of the course
and keeps your own changes: where you and the instructor changed the same lines, yours win.

- To start a notebook over, delete it and click its link again: you get a fresh copy.
- Do not run git commands in this folder yourself: the links do it for you.

Notebooks here:

{names}
"""
_BRANCH = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]+(?<![./])$")
_REPO_SCHEMES = ("https", "http", "git", "ssh", "file")


class HubError(ValueError):
    """An input of ``publish`` or ``links`` is wrong; the message says what and how to fix it."""


@dataclass
class Publication:
    """What :func:`publish` did: the notebooks it wrote and the commit it made (None when nothing changed)."""

    repo: Path
    notebooks: list[Path]
    commit: str | None
    message: str


# ------------------------------------------------------------------------------------------------------ publish


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``git args`` in ``repo``; a failure raises HubError with git's own message."""
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise HubError(f"`git {' '.join(args)}` failed in {repo}: {(result.stderr or result.stdout).strip()}")
    return result


def _prepare_repo(repo: Path, branch: str) -> None:
    """Make ``repo`` a git repository on ``branch`` with a clean working tree (create it on first use)."""
    check_branch(branch)
    if repo.exists() and not repo.is_dir():
        raise HubError(f"{repo} is a file; give a folder for the student repository")
    if not (repo / ".git").exists():
        if repo.exists() and any(repo.iterdir()):
            raise HubError(f"{repo} is neither empty nor a git repository: publish into an empty or a new folder")
        repo.mkdir(parents=True, exist_ok=True)
        _git(repo, "init", "-q", "-b", branch)
        return
    current = _git(repo, "symbolic-ref", "--short", "HEAD").stdout.strip()
    if current != branch:
        raise HubError(f"{repo} is on branch {current!r}, not {branch!r}: check out {branch!r} or pass --branch")
    dirty = _git(repo, "status", "--porcelain").stdout.strip()
    if dirty:
        raise HubError(
            f"{repo} has uncommitted changes ({dirty.splitlines()[0].strip()} ...): commit or discard them first; "
            "publish commits only what it writes"
        )


def publish(
    repo: Path = DEFAULT_REPO,
    notebook_dir: Path = NOTEBOOK_DIR,
    selection: str | None = None,
    message: str | None = None,
    branch: str = DEFAULT_BRANCH,
    exercise_modules: Path = EXERCISE_MODULES,
) -> Publication:
    """Write the student version of the selected notebooks into the git repository ``repo`` and commit them.

    The repository is created on first use. Notebooks published before and not selected now stay as they are (so
    notebooks can be released one week at a time); the README lists every notebook the repository holds. Nothing is
    committed when nothing changed. Raises HubError for a wrong repository, branch or selection.
    """
    repo = Path(repo).resolve()
    _prepare_repo(repo, branch)
    with tempfile.TemporaryDirectory() as scratch:  # the exercise overview is for the instructor, not the students
        try:
            built = build_student(notebook_dir, repo, Path(scratch) / "EXERCISES.md", selection, exercise_modules)
        except (MarkerError, ValueError) as exc:
            raise HubError(str(exc)) from exc
    held = sorted(p.name for p in repo.glob("*.ipynb"))
    listing = "\n".join(f"- {name}" for name in held)
    (repo / "README.md").write_text(STUDENT_README.format(names=listing), encoding="utf-8")
    _git(repo, "add", "README.md", *(p.name for p in built.notebooks))
    names = ", ".join(p.stem.split("_")[0] for p in built.notebooks)
    message = message or f"Publish the student version of notebooks {names}"
    if _git(repo, "diff", "--cached", "--quiet", check=False).returncode == 0:
        return Publication(repo, built.notebooks, None, message)
    identity = () if _git(repo, "config", "user.email", check=False).stdout.strip() else FALLBACK_IDENTITY
    _git(repo, *identity, "commit", "-q", "-m", message)
    commit = _git(repo, "rev-parse", "HEAD").stdout.strip()
    return Publication(repo, built.notebooks, commit, message)


# ------------------------------------------------------------------------------------------------------ links


def check_branch(branch: str) -> str:
    """Return ``branch`` if it is a plausible git branch name, else raise HubError."""
    if not branch or not _BRANCH.match(branch) or branch.endswith(".lock"):
        raise HubError(f"{branch!r} is not a git branch name (letters, digits, '.', '_', '-', '/'; e.g. 'main')")
    return branch


def check_hub_url(hub_url: str) -> str:
    """The hub's address without a trailing slash; raise HubError unless it is an http(s) URL with a host."""
    parts = urllib.parse.urlsplit(hub_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise HubError(f"--hub {hub_url!r} must be the hub's address, like https://hub.example.edu")
    if parts.query or parts.fragment or parts.path.rstrip("/").endswith("/hub"):
        raise HubError(f"--hub {hub_url!r}: give the hub's base address, without /hub, a query or a fragment")
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def check_repo_url(repo_url: str) -> str:
    """Return ``repo_url`` if the students' servers can clone it, else raise HubError."""
    if not repo_url or repo_url != repo_url.strip() or any(c.isspace() for c in repo_url):
        raise HubError(f"--repo-url {repo_url!r} must be a git URL without spaces")
    scheme = urllib.parse.urlsplit(repo_url).scheme
    scp_like = re.match(r"^[\w.-]+@[\w.-]+:", repo_url)  # git@github.com:you/repo.git
    if scheme not in _REPO_SCHEMES and not scp_like and not repo_url.startswith("/"):
        raise HubError(
            f"--repo-url {repo_url!r} is neither a URL ({', '.join(_REPO_SCHEMES)}) nor an absolute path: "
            "a relative path would be read on each student's server, from its own folder"
        )
    return repo_url


def check_target(target: str) -> str:
    """Return ``target`` if it is a folder path inside the student's home, else raise HubError."""
    parts = target.split("/")
    if not target or target.startswith("/") or "\\" in target or any(p in ("", ".", "..") for p in parts):
        raise HubError(f"--target {target!r} must be a relative folder inside the student's home, e.g. 'course'")
    return target


def nbgitpuller_link(
    hub_url: str, repo_url: str, notebook: str, branch: str = DEFAULT_BRANCH, target: str = DEFAULT_TARGET
) -> str:
    """The nbgitpuller link that pulls ``repo_url`` into ``~/target`` and opens ``notebook`` there in JupyterLab.

    It goes through ``/hub/user-redirect/git-pull``, so one link serves every student (the hub fills in the user),
    with nbgitpuller's query parameters ``repo``, ``branch``, ``urlpath`` and ``targetpath``. ``urlpath`` is a URL
    path itself, so the notebook's path is quoted in it before the whole query is encoded.
    """
    if "/" in notebook or not notebook.endswith(".ipynb"):
        raise HubError(f"{notebook!r} must be a notebook's file name, like 00_generative_vs_discriminative.ipynb")
    query = [
        ("repo", check_repo_url(repo_url)),
        ("branch", check_branch(branch)),
        ("urlpath", "lab/tree/" + urllib.parse.quote(f"{check_target(target)}/{notebook}")),
        ("targetpath", target),
    ]
    encoded = urllib.parse.urlencode(query, quote_via=urllib.parse.quote, safe="")
    return f"{check_hub_url(hub_url)}/hub/user-redirect/git-pull?{encoded}"


def links(
    hub_url: str, repo_url: str, repo: Path = DEFAULT_REPO, branch: str = DEFAULT_BRANCH, target: str = DEFAULT_TARGET
) -> list[tuple[str, str]]:
    """One ``(notebook, link)`` per course notebook published in the local student repository ``repo``."""
    names = sorted(p.name for p in Path(repo).glob("*.ipynb") if NOTEBOOK_PATTERN.match(p.name))
    if not names:
        raise HubError(f"no published notebooks in {repo}: run `python tools/class_hub.py publish` first (or --repo)")
    return [(name, nbgitpuller_link(hub_url, repo_url, name, branch, target)) for name in names]


# ------------------------------------------------------------------------------------------------------ command line


def main(argv: list[str] | None = None) -> int:
    """Command line: ``publish`` or ``links`` (see the module's docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    pub = commands.add_parser("publish", help="commit the student version into the class repository")
    pub.add_argument("--repo", type=Path, default=DEFAULT_REPO, help="the student repository folder (created once)")
    pub.add_argument("--notebooks", type=Path, default=NOTEBOOK_DIR, help="folder of solution notebooks")
    pub.add_argument("--notebook", default=None, help="only these notebooks, e.g. 00,01 (the others stay as they are)")
    pub.add_argument("--message", default=None, help="the commit message")
    pub.add_argument("--branch", default=DEFAULT_BRANCH)
    lnk = commands.add_parser("links", help="print one nbgitpuller link per published notebook")
    lnk.add_argument("--hub", required=True, help="the hub's address, e.g. https://hub.example.edu")
    lnk.add_argument("--repo-url", required=True, help="where students' servers clone the student repository from")
    lnk.add_argument("--repo", type=Path, default=DEFAULT_REPO, help="the local student repository (for its notebooks)")
    lnk.add_argument("--branch", default=DEFAULT_BRANCH)
    lnk.add_argument("--target", default=DEFAULT_TARGET, help="the folder in each student's home")
    args = parser.parse_args(argv)
    try:
        if args.command == "publish":
            done = publish(args.repo, args.notebooks, args.notebook, args.message, args.branch)
            what = f"commit {done.commit[:12]}: {done.message}" if done.commit else "nothing changed, no commit"
            print(f"{done.repo}: {len(done.notebooks)} student notebooks; {what}")
            if done.commit and _git(done.repo, "remote", check=False).stdout.strip():
                print(f"next: git -C {done.repo} push")
            elif done.commit:
                print(f"next: git -C {done.repo} remote add origin <URL students' servers can clone>, then push")
        else:
            for name, link in links(args.hub, args.repo_url, args.repo, args.branch, args.target):
                print(f"{name} {link}")
    except HubError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
