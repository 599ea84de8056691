"""Build the course as a static web site: execute every notebook and write it as HTML, with an index page.

Each notebook runs top to bottom in a fresh kernel (profile ``full`` by default, ``--profile fast`` for a quick
check) and is exported with nbconvert's HTML exporter, figures embedded in the page. ``build/html/index.html``
links the notebooks in course order and says which ran and how long they took. Everything works offline: the data
falls back to the bundled digits, and building needs no network (viewing math and widgets in the pages loads
MathJax and the widget manager from a CDN when online; the text, code and figures need nothing).

Usage::

    python tools/build_course.py                     # full profile -> build/html/
    python tools/build_course.py --profile fast      # quick
    python tools/build_course.py --no-execute        # convert the stored notebooks as they are
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import re
import sys
import time
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

if __package__ in (None, ""):  # run as `python tools/build_course.py`: make the `tools` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.nbrun import NOTEBOOK_DIR, PROJECT_ROOT, cuda_available, list_notebooks, run_notebook  # noqa: E402

DEFAULT_OUT = PROJECT_ROOT / "build" / "html"
COURSE_TITLE = "Generative Models, hands-on"
_HEADING = re.compile(r"^\s{0,3}#\s+(.+?)\s*$", re.MULTILINE)


def notebook_title(nb: nbformat.NotebookNode, fallback: str) -> str:
    """The first level-1 markdown heading of a notebook, or ``fallback``."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = _HEADING.search(cell.source)
            if match:
                return match.group(1).strip()
    return fallback


def export_html(nb: nbformat.NotebookNode, title: str) -> str:
    """The notebook as one self-contained HTML page (JupyterLab look, figures embedded)."""
    exporter = HTMLExporter(template_name="lab")
    nb.metadata["title"] = title
    body, _ = exporter.from_notebook_node(nb)
    return body


def index_html(entries: list[dict], profile: str, executed: bool) -> str:
    """The index page: the notebooks in course order with links, and how each run went."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    how = f"executed in the <code>{profile}</code> profile" if executed else "converted without executing"
    items = []
    for entry in entries:
        if entry["ok"]:
            status = f"ran in {entry['seconds']:.0f} s" if executed else "not executed"
            css = "ok"
        else:
            status = "FAILED: " + html.escape(entry["error"])
            css = "failed"
        items.append(
            f'<li class="{css}"><a href="{html.escape(entry["html"])}">{html.escape(entry["title"])}</a> '
            f'<span class="file">{html.escape(entry["notebook"])}</span> <span class="status">{status}</span></li>'
        )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{COURSE_TITLE}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 48rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }}
li {{ margin: 0.6rem 0; }}
.file {{ color: #666; font-family: monospace; font-size: 0.9em; }}
.status {{ display: block; font-size: 0.85em; color: #2a7a2a; }}
.failed .status {{ color: #b00020; font-weight: bold; }}
</style>
</head>
<body>
<h1>{COURSE_TITLE}</h1>
<p>The course notebooks in order, {how}, built {stamp}.</p>
<ol start="0">
{chr(10).join(items)}
</ol>
</body>
</html>
"""


def build_course(
    notebook_dir: Path = NOTEBOOK_DIR,
    out_dir: Path = DEFAULT_OUT,
    profile: str = "full",
    execute: bool = True,
    selection: str | None = None,
    timeout: int = 3600,
    progress=print,
) -> list[dict]:
    """Execute (unless ``execute=False``) and export each notebook to ``out_dir``; write ``index.html``.

    Returns one entry per notebook: ``notebook``, ``title``, ``html`` (file name), ``ok``, ``seconds``, ``error``.
    A notebook that fails is still exported, with its outputs up to the error, and marked failed in the index.
    """
    if profile not in ("full", "fast"):
        raise ValueError(f"profile must be 'full' or 'fast', got {profile!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    skip = () if cuda_available() else ("gpu",)
    entries = []
    for path in list_notebooks(Path(notebook_dir), selection):
        progress(f"{'executing' if execute else 'converting'} {path.name} ...")
        start = time.perf_counter()
        nb = nbformat.read(path, as_version=4)
        ok, error = True, ""
        if execute:
            result = run_notebook(nb, cwd=path.parent, env={"COURSE_PROFILE": profile}, timeout=timeout,
                                  skip_tags=skip, monitor=False, name=path.name)  # fmt: skip
            ok, error = result.ok, (result.errors[0].describe() if result.errors else "")
        title = notebook_title(nb, path.stem)
        target = out_dir / f"{path.stem}.html"
        target.write_text(export_html(nb, title), encoding="utf-8")
        entries.append(
            {"notebook": path.name, "title": title, "html": target.name, "ok": ok,
             "seconds": time.perf_counter() - start, "error": error}
        )  # fmt: skip
        progress(f"  {target}: {'ok' if ok else 'FAILED ' + error}")
    (out_dir / "index.html").write_text(index_html(entries, profile, execute), encoding="utf-8")
    return entries


def main(argv: list[str] | None = None) -> int:
    """Command line; exits 1 when a notebook failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=("full", "fast"), default="full", help="run profile (default: full)")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOK_DIR, help="folder of the notebooks")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the HTML pages")
    parser.add_argument("--notebook", default=None, help="only these notebooks, e.g. 05 or 00,05")
    parser.add_argument("--no-execute", action="store_true", help="convert the stored notebooks without running them")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds one cell may run")
    args = parser.parse_args(argv)
    try:
        entries = build_course(
            args.notebooks, args.out, args.profile, not args.no_execute, args.notebook, args.timeout,
            progress=lambda message: print(message, file=sys.stderr, flush=True),
        )  # fmt: skip
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not entries:
        print(f"error: no notebooks (NN_name.ipynb) in {args.notebooks}", file=sys.stderr)
        return 2
    failed = [e["notebook"] for e in entries if not e["ok"]]
    print(f"{len(entries)} pages and {args.out / 'index.html'}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
