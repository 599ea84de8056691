"""Drive JupyterLab in headless Chromium and look at a notebook the way a student sees it.

nbval executes notebooks but never renders them: widget views and images are ignored, so a notebook can pass CI
while JupyterLab shows "Error displaying widget", a ``HBox(children=...)`` line instead of a progress bar, or a
slider that redraws nothing. This module

* starts JupyterLab from the running Python environment on a free localhost port with a random token
  (:func:`lab_server`, a context manager that kills the server's whole process group however the block ends);
* opens a notebook at the same URL path the Binder badge uses (``/lab/tree/notebooks/<name>.ipynb``), runs every
  cell through JupyterLab's own ``notebook:run-all-cells`` command and waits until the kernel is idle;
* collects what a student would notice as a list of plain-language problems (:func:`inspect_notebook`): error
  outputs, widgets that do not render as live controls, sliders that do not change their picture, figures that are
  not images, progress bars printed as text; and writes screenshots of what it looked at.

The tests in this folder decide what is required; this module only observes and reports.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

try:  # only the type of a timeout; the suite is skipped (or fails in CI) without Playwright
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # pragma: no cover
    PlaywrightTimeout = TimeoutError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_PATH = Path(os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium"))
# Headless Chromium as root in a container: no sandbox, no GPU, and nothing that phones home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
INSTALL_HINT = "run `bash tools/install_browser.sh` (Debian's chromium package and Playwright for Python)"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
# What a widget looks like when the browser could not render it: its text/plain repr.
WIDGET_TEXT_FALLBACK = re.compile(
    r"^\s*(HBox|VBox|Box|GridBox|Tab|Accordion|IntSlider|FloatSlider|SelectionSlider|IntProgress|FloatProgress|"
    r"Image|Output|Dropdown|Button|interactive|Play)\(",
    re.MULTILINE,
)
FIGURE_TEXT = re.compile(r"<Figure size \d+x\d+ with \d+ Axes>")
BROKEN_WIDGET_TEXT = ("Error displaying widget", "Loading widget", "model not found")
MAX_WIDGET_HEIGHT = 900  # CSS pixels of notebook a laptop screen shows at once
ERROR_IN_WIDGET_TEXT = re.compile(r"\b[A-Z]\w*(Error|Exception)\b\s*:")


def missing_browser() -> str | None:
    """Why the browser tests cannot run here (Chromium or Playwright missing), or None when they can."""
    if not CHROMIUM_PATH.exists():
        return f"Chromium not found at {CHROMIUM_PATH}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed"
    return None


def chromium_version() -> str:
    """The version line of the Chromium the tests drive (e.g. ``Chromium 156.0.8078.108 ...``)."""
    result = subprocess.run([str(CHROMIUM_PATH), "--version"], capture_output=True, text=True, timeout=60)
    return result.stdout.strip()


# ----------------------------------------------------------------------------------------------------- server


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """True when a server could bind ``port`` on 127.0.0.1 now (nothing is listening there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As servers do: connections left in TIME_WAIT by a stopped server do not keep its port taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def process_group_alive(pgid: int) -> bool:
    """True while any process of the group ``pgid`` is still running."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    # Zombies count as gone: look for a live member in /proc where we can.
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for status in proc.glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


# JupyterLab settings for a test run: never autosave (the notebooks in git stay without outputs), render every cell
# (no windowing, so off-screen widgets exist and can be screenshotted), and no news or update checks.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none", "recordTiming": True},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"checkForUpdates": False, "fetchNews": "false"},
    "@jupyterlab/extensionmanager-extension/plugin.jupyterlab-settings": {"enabled": False},
}


@dataclass
class LabServer:
    """A running JupyterLab server (see :func:`lab_server`)."""

    root: Path
    port: int
    token: str
    process: subprocess.Popen
    log_path: Path
    work_dir: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        """The browser URL for ``path`` (e.g. ``lab/tree/notebooks/00_x.ipynb``), logged in with the token."""
        return f"{self.base_url}/{path.lstrip('/')}?token={self.token}"

    def api(self, method: str, path: str, timeout: float = 10) -> Any:
        """Call the server's REST API (``GET api/sessions`` ...) and return the decoded JSON (None when empty)."""
        request = urllib.request.Request(
            f"{self.base_url}/{path.lstrip('/')}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Stop every kernel session, so the next notebook starts on a quiet machine (quietly gives up if the
        server is already gone: its process group takes the kernels with it)."""
        try:
            for session in self.api("GET", "api/sessions"):
                self.api("DELETE", f"api/sessions/{session['id']}", timeout=60)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass

    def log_tail(self, n: int = 40) -> str:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def reset_workspaces(self) -> None:
        """Forget open tabs, so opening the next notebook does not also reopen (and run kernels for) the last one."""
        for file in (self.work_dir / "workspaces").glob("*"):
            file.unlink()


def server_environment(work_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the server and its kernels: ours, isolated Jupyter folders, ``COURSE_PROFILE=fast``."""
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # the kernel must pick the inline backend, or figures never reach the page
    python_path = [str(PROJECT_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env.update(
        {
            "COURSE_PROFILE": "fast",
            "PYTHONPATH": os.pathsep.join(dict.fromkeys(python_path)),
            # Own config/runtime/data/IPython folders: a developer's ~/.jupyter cannot change what the test sees.
            "JUPYTER_CONFIG_DIR": str(work_dir / "config"),
            "JUPYTER_RUNTIME_DIR": str(work_dir / "runtime"),
            "JUPYTER_DATA_DIR": str(work_dir / "data"),
            "IPYTHONDIR": str(work_dir / "ipython"),
            # The benchmark's results under build/results are left alone. The checkpoint folder is the project's
            # (or COURSE_CHECKPOINT_DIR): after the nbval run in CI the models load instead of training again, as
            # on a student's second visit; this suite is about what the page shows, not about training speed.
            "COURSE_RESULTS_DIR": str(work_dir / "results"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


def stop_process_group(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop ``process`` and everything it started (kernels): SIGTERM to the group, then SIGKILL if needed."""
    pgid = process.pid  # started with start_new_session=True: the server leads its own group
    # A short grace for a clean exit (the server stops its kernels), then SIGKILL for whatever is left.
    for sig, wait in ((signal.SIGTERM, min(timeout, 5.0)), (signal.SIGKILL, timeout)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            process.poll()
            if not process_group_alive(pgid):
                break
            time.sleep(0.1)
        else:
            continue
        break
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
        pass


@contextmanager
def lab_server(
    root: Path, work_dir: Path, env: dict[str, str] | None = None, startup_timeout: float = 120.0
) -> Iterator[LabServer]:
    """Run JupyterLab on ``root`` for the duration of the ``with`` block.

    The server runs from this Python environment (``sys.executable``), listens on a free 127.0.0.1 port with a random
    token, exposes the app as ``window.jupyterapp`` and keeps its settings, workspaces and kernels' state under
    ``work_dir``. On leaving the block, normally or by an exception, its process group (server and kernels) is killed
    and the port is free again.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    settings = work_dir / "settings"
    for name, values in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))
    (work_dir / "workspaces").mkdir(exist_ok=True)
    token = secrets.token_hex(24)
    last_error = ""
    for _attempt in range(3):  # the free port may be taken between choosing and binding it: try another
        port = free_port()
        log_path = work_dir / f"jupyterlab-{port}.log"
        command = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.expose_app_in_browser=True",
            # JupyterLab makes a checkpoint of every notebook it opens: keep them out of the project's folders.
            f"--FileCheckpoints.checkpoint_dir={work_dir / 'notebook-checkpoints'}",
            f"--LabApp.user_settings_dir={settings}",
            f"--LabApp.workspaces_dir={work_dir / 'workspaces'}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command,
                cwd=root,
                env=server_environment(work_dir, env),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        server = LabServer(root, port, token, process, log_path, work_dir)
        try:
            if _wait_until_answering(server, startup_timeout):
                yield server
                return
            last_error = f"JupyterLab did not answer on port {port} within {startup_timeout:.0f} s"
        finally:
            stop_process_group(process)
        last_error += f"; its log ends with:\n{server.log_tail()}"
        if "already in use" not in last_error:
            break
    raise RuntimeError(last_error)


def _wait_until_answering(server: LabServer, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            server.api("GET", "api/status", timeout=5)
            return True
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            time.sleep(0.25)
    return False


# ----------------------------------------------------------------------------------------------------- browser


def launch_chromium(playwright: Any) -> Any:
    """Headless Debian Chromium driven by Playwright (browser downloads are not available here)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM_PATH), args=CHROMIUM_ARGS, headless=True)


_PANEL = "window.jupyterapp.shell.currentWidget"

_JS_RUN = """({command, index}) => {
  const panel = window.jupyterapp.shell.currentWidget;
  if (!window.__course) {
    window.__course = {done: false, result: null, failure: null, kernelErrors: [], kernelStderr: [],
                       commMessagesHandled: 0};
    // Errors the kernel reports outside a cell (for example in a widget callback) never reach a cell's outputs.
    panel.sessionContext.session.kernel.iopubMessage.connect((_, msg) => {
      const parent = (msg.parent_header || {}).msg_type;
      if (msg.header.msg_type === 'status' && parent === 'comm_msg' && msg.content.execution_state === 'idle') {
        window.__course.commMessagesHandled += 1;  // a control's change reached the kernel and was handled
      } else if (msg.header.msg_type === 'error') {
        window.__course.kernelErrors.push({parent, ename: msg.content.ename, evalue: msg.content.evalue});
      } else if (msg.header.msg_type === 'stream' && msg.content.name === 'stderr' && parent !== 'execute_request') {
        window.__course.kernelStderr.push({parent, text: msg.content.text.slice(0, 2000)});
      }
    });
  }
  Object.assign(window.__course, {done: false, result: null, failure: null});
  if (index !== null) panel.content.activeCellIndex = index;
  window.jupyterapp.commands.execute(command).then(
    (result) => { window.__course.done = true; window.__course.result = result; },
    (error) => { window.__course.done = true; window.__course.failure = String(error); });
}"""

_JS_CELLS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  return panel.content.widgets.map((cell, index) => {
    const model = cell.model;
    const base = {index, type: model.type, tags: model.getMetadata('tags') || [],
                  source: model.sharedModel.getSource()};
    if (model.type !== 'code') return {...base, executionCount: null, outputs: []};
    const join = (v) => (Array.isArray(v) ? v.join('') : typeof v === 'string' ? v : null);
    const outputs = model.outputs.toJSON().map((out) => {
      const data = out.data || {};
      const text = out.output_type === 'stream' ? join(out.text) : join(data['text/plain']);
      return {type: out.output_type, mimes: Object.keys(data), name: out.name || null, ename: out.ename || null,
              evalue: out.evalue || null, text: text === null ? null : text.slice(0, 2000)};
    });
    // With recordTiming on, JupyterLab stores when the kernel started and finished each cell.
    const timing = model.getMetadata('execution') || {};
    const began = Date.parse(timing['shell.execute_reply.started'] || timing['iopub.execute_input']);
    const ended = Date.parse(timing['shell.execute_reply']);
    const seconds = Number.isFinite(began) && Number.isFinite(ended) ? (ended - began) / 1000 : null;
    const pending = (cell.promptNode && cell.promptNode.textContent.includes('*')) || false;
    return {...base, executionCount: model.executionCount, state: model.executionState || null, pending, outputs,
            seconds};
  });
}"""


@dataclass
class NotebookReport:
    """What :func:`inspect_notebook` saw: ``problems`` is empty when a student would see a healthy notebook."""

    path: str
    problems: list[str] = field(default_factory=list)
    cells: list[dict] = field(default_factory=list)
    screenshots: list[Path] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # worth a look, not failures: stderr text, browser console errors
    skipped: list[int] = field(default_factory=list)  # cells left out of the run (unguarded gpu cells)

    def summary(self) -> str:
        lines = [f"{self.path}: {len(self.problems)} problem(s); seen: {self.counts}; seconds: {self.seconds}"]
        lines += [f"  - {problem}" for problem in self.problems]
        timed = sorted((c for c in self.cells if c.get("seconds") is not None), key=lambda c: -c["seconds"])
        if timed:
            slowest = ", ".join(f"cell {c['index']} {c['seconds']:.1f} s" for c in timed[:4])
            lines.append(f"  slowest cells: {slowest} (all cells: {sum(c['seconds'] for c in timed):.1f} s)")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def open_notebook(page: Any, server: LabServer, rel_path: str, timeout_s: float = 120.0) -> float:
    """Open ``rel_path`` at ``/lab/tree/<rel_path>`` and wait until its kernel is started and idle.

    Returns the seconds JupyterLab took to show the notebook (the rest of the wait is the kernel starting).
    """
    start = time.monotonic()
    page.goto(server.url(f"lab/tree/{rel_path}"), wait_until="domcontentloaded", timeout=timeout_s * 1000)
    page.wait_for_function(
        f"(path) => window.jupyterapp && {_PANEL} && {_PANEL}.context && {_PANEL}.context.path === path",
        arg=rel_path,
        timeout=timeout_s * 1000,
    )
    shown = time.monotonic() - start
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        # A notebook without kernel metadata asks the student to pick one: accept the default as a student would.
        accept = page.locator(".jp-Dialog .jp-mod-accept")
        if accept.count():
            accept.first.click()
        ready = page.evaluate(
            f"() => {{ const k = {_PANEL}.sessionContext.session?.kernel; "
            "return !!k && k.status === 'idle' && k.connectionStatus === 'connected'; }"
        )
        if ready:
            return shown
        time.sleep(0.25)
    raise TimeoutError(f"the kernel of {rel_path} was not idle {timeout_s:.0f} s after opening it")


def run_all_cells(page: Any, timeout_s: float) -> dict:
    """Run every cell with JupyterLab's ``notebook:run-all-cells`` and wait until it is done and the kernel idle."""
    return _run_command(page, "notebook:run-all-cells", None, timeout_s)


def run_cell(page: Any, index: int, timeout_s: float) -> dict:
    """Run cell ``index`` alone (JupyterLab's ``notebook:run-cell``) and wait until the kernel is idle."""
    return _run_command(page, "notebook:run-cell", index, timeout_s)


def _run_command(page: Any, command: str, index: int | None, timeout_s: float) -> dict:
    page.evaluate(_JS_RUN, {"command": command, "index": index})
    page.wait_for_function(
        f"() => window.__course.done && {_PANEL}.sessionContext.session.kernel.status === 'idle'",
        timeout=timeout_s * 1000,
        polling=250,
    )
    return page.evaluate("() => window.__course")


def notebook_cells(page: Any) -> list[dict]:
    """Every cell of the open notebook: index, type, tags, source, execution count, outputs (summarised), seconds."""
    return page.evaluate(_JS_CELLS)


def cell_output_area(page: Any, index: int) -> Any:
    """The output area element of cell ``index`` of the open notebook."""
    return page.evaluate_handle(f"(i) => {_PANEL}.content.widgets[i].outputArea.node", index).as_element()


def _wait_kernel_idle(page: Any, timeout_s: float = 60.0) -> None:
    page.wait_for_function(
        f"() => {_PANEL}.sessionContext.session.kernel.status === 'idle'", timeout=timeout_s * 1000, polling=100
    )


def _screenshot(element: Any, folder: Path, name: str, report: NotebookReport) -> bytes:
    """Screenshot one element (JupyterLab scrolls inside its panels, so a page screenshot would miss it)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    png = element.screenshot(path=str(path), animations="disabled", timeout=30_000)
    report.screenshots.append(path)
    return png


def inspect_notebook(
    page: Any, server: LabServer, rel_path: str, screenshot_dir: Path, run_timeout_s: float = 180.0
) -> NotebookReport:
    """Open ``rel_path`` in JupyterLab, run all cells, and report what a student would see go wrong.

    Problems reported: a cell that did not run or shows an error; an error the kernel reported outside any cell
    (a widget callback); a widget output that does not render as a live control ("Loading widget...", "Error
    displaying widget", or its ``HBox(children=...)`` text); a progress bar that is not a drawn bar; a cell ending in
    ``plt.show()`` without a figure image, or a figure printed as ``<Figure size ...>``; in cells tagged ``widget``, a
    slider or dropdown whose change does not change the widget's picture, or a widget that shows an error message.
    Screenshots of every widget cell (before and after moving its first control), of the first progress bar and of
    the first figure go to ``screenshot_dir``.
    """
    report = NotebookReport(rel_path)
    notebook_file = server.root / rel_path
    digest = _sha256(notebook_file)
    console: list[str] = []
    page.on("pageerror", lambda error: console.append(f"uncaught error in the page: {error}"))
    page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
    start = time.monotonic()
    report.seconds["show"] = round(open_notebook(page, server, rel_path), 1)
    report.seconds["kernel"] = round(time.monotonic() - start - report.seconds["show"], 1)

    start = time.monotonic()
    unguarded = report.skipped = _unguarded_gpu_cells(report, notebook_cells(page))
    try:
        if unguarded:  # already a problem; run the other cells one by one, so the rest of the notebook is checked
            state = _run_cells_except(page, unguarded, run_timeout_s)
        else:
            state = run_all_cells(page, run_timeout_s)
    except PlaywrightTimeout:
        running = [c["index"] for c in notebook_cells(page) if c.get("state") == "running" or c.get("pending")]
        where = f"cell {running[0]} was still running" if running else "no cell was marked running"
        report.problems.append(f"running all cells did not finish within {run_timeout_s:.0f} s ({where})")
        page.evaluate(f"() => {_PANEL}.sessionContext.session.kernel.interrupt()")
        report.cells = notebook_cells(page)
        return report
    report.seconds["run_all"] = round(time.monotonic() - start, 1)
    if state.get("failure"):
        report.problems.append(f"run-all failed in JupyterLab: {state['failure']}")

    start = time.monotonic()
    _wait_for_widgets_to_settle(page)
    report.cells = notebook_cells(page)
    _check_cells_ran(report)
    _check_kernel_messages(report, state["kernelErrors"], state["kernelStderr"], "while running")
    seen_errors, seen_stderr = len(state["kernelErrors"]), len(state["kernelStderr"])
    folder = screenshot_dir / Path(rel_path).stem
    shutil.rmtree(folder, ignore_errors=True)  # no stale pictures from an earlier run beside this run's
    _check_rendered_outputs(page, report, folder)
    for cell in report.cells:
        if "widget" in cell["tags"] and cell["type"] == "code":
            _check_widget_cell(page, report, cell, folder)
    # Errors raised by callbacks while the controls moved.
    state = page.evaluate("() => window.__course")
    when = "after moving a control"
    _check_kernel_messages(report, state["kernelErrors"][seen_errors:], state["kernelStderr"][seen_stderr:], when)
    report.seconds["checks"] = round(time.monotonic() - start, 1)
    for cell in report.cells:
        for out in cell["outputs"]:
            if out["type"] == "stream" and out["name"] == "stderr" and (out["text"] or "").strip():
                report.notes.append(f"cell {cell['index']} prints to stderr: {out['text'].strip()[:160]!r}")
    report.notes += [f"browser console: {text[:200]}" for text in console if re.search(r"(?i)widget|model|view", text)]
    if _sha256(notebook_file) != digest:
        saved = nbformat.read(notebook_file, as_version=4)
        if any(cell.get("outputs") or cell.get("execution_count") for cell in saved.cells if cell.cell_type == "code"):
            report.problems.append(f"JupyterLab saved outputs into {rel_path} (autosave must stay off)")
        else:
            report.notes.append(f"{rel_path} changed on disk during the run, without outputs: edited meanwhile?")
    return report


# The markdown of a diagram: a fenced code block whose language is mermaid.
MERMAID_FENCE = re.compile(r"^\s*(```|~~~)\s*mermaid\s*$", re.MULTILINE)

# JupyterLab 4 (@jupyterlab/mermaid) replaces each ```mermaid block by a div.jp-RenderedMermaid: on success it holds
# figure > img whose src is the drawing as an SVG data URL; on failure the div also has the class jp-mod-warning and
# holds details.jp-RenderedMermaid-Details with the diagram's source and mermaid's error message.
_JS_DIAGRAMS = f"""() => {_PANEL}.content.widgets.flatMap((cell, index) =>
  cell.model.type !== 'markdown' ? [] : [...cell.node.querySelectorAll('.jp-RenderedMermaid')].map((node) => {{
    const img = node.querySelector('figure > img');
    const src = (img && img.getAttribute('src')) || '';
    const prefix = 'data:image/svg+xml,';
    const svg = src.startsWith(prefix) ? decodeURIComponent(src.slice(prefix.length)) : '';
    const details = node.querySelector('.jp-RenderedMermaid-Details');
    return {{cell: index, warning: node.classList.contains('jp-mod-warning'), svg: /<svg[\\s>]/.test(svg),
             errorDrawing: /syntax error|class="error-icon"/i.test(svg),
             loaded: !!img && img.complete && img.naturalWidth > 0,
             width: img ? img.naturalWidth : 0, height: img ? img.naturalHeight : 0,
             error: details ? details.innerText : null}};
  }}))"""


def mermaid_blocks(notebook_file: Path) -> dict[int, int]:
    """How many ```mermaid blocks each markdown cell of ``notebook_file`` holds: ``{cell index: count}``."""
    notebook = nbformat.read(notebook_file, as_version=4)
    found = {}
    for index, cell in enumerate(notebook.cells):
        count = len(MERMAID_FENCE.findall(cell.source)) if cell.cell_type == "markdown" else 0
        if count:
            found[index] = count
    return found


def inspect_diagrams(
    page: Any, server: LabServer, rel_path: str, screenshot_dir: Path, timeout_s: float = 60.0
) -> NotebookReport:
    """Open ``rel_path`` in JupyterLab (running nothing) and check that every ```mermaid block is drawn as an SVG.

    Markdown cells render when the notebook opens; mermaid draws each diagram a moment later. Problems reported: a
    diagram that shows mermaid's error (with its message), one drawn as mermaid's "Syntax error" picture, one that is
    not an SVG image or did not load, and a notebook where fewer diagrams appear than its markdown holds.
    ``counts["diagrams"]`` is the number drawn correctly; a screenshot of each goes to
    ``screenshot_dir/diagrams/<notebook>-cellNN-diagramK.png``.
    """
    report = NotebookReport(rel_path)
    expected = mermaid_blocks(server.root / rel_path)
    total = sum(expected.values())
    report.seconds["show"] = round(open_notebook(page, server, rel_path), 1)
    start = time.monotonic()
    try:  # every block replaced by a finished diagram (drawn and loaded, or an error)
        page.wait_for_function(
            f"(n) => ({_JS_DIAGRAMS})().filter((d) => d.warning || d.loaded).length >= n",
            arg=total,
            timeout=timeout_s * 1000,
            polling=250,
        )
    except PlaywrightTimeout:
        pass  # reported below, diagram by diagram
    report.seconds["diagrams"] = round(time.monotonic() - start, 1)
    diagrams = page.evaluate(_JS_DIAGRAMS)
    folder = screenshot_dir / "diagrams"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(f"{Path(rel_path).stem}-cell*.png"):
        stale.unlink()
    drawn = 0
    for index, count in expected.items():
        mine = [d for d in diagrams if d["cell"] == index]
        if len(mine) < count:
            report.problems.append(f"cell {index}: {count} mermaid block(s) in the markdown, {len(mine)} diagram(s)")
        for k, diagram in enumerate(mine):
            if diagram["warning"]:
                error = " ".join((diagram["error"] or "").split())[-300:]
                report.problems.append(f"cell {index}: diagram {k} shows a mermaid error: {error}")
            elif diagram["errorDrawing"]:
                report.problems.append(f"cell {index}: diagram {k} is drawn as mermaid's syntax-error picture")
            elif not (diagram["svg"] and diagram["loaded"]):
                report.problems.append(f"cell {index}: diagram {k} is not a loaded SVG image ({diagram})")
            else:
                drawn += 1
                figure = page.evaluate_handle(
                    f"([i, k]) => {_PANEL}.content.widgets[i].node.querySelectorAll('.jp-RenderedMermaid figure')[k]",
                    [index, k],
                ).as_element()
                _screenshot(figure, folder, f"{Path(rel_path).stem}-cell{index:02d}-diagram{k}", report)
    stray = [d["cell"] for d in diagrams if d["cell"] not in expected]
    if stray:
        report.notes.append(f"diagrams in cells {stray}, which hold no ```mermaid block in the file")
    report.counts = {"mermaid_blocks": total, "diagrams": drawn}
    return report


def _cuda_available() -> bool:
    """Whether the kernels see a CUDA GPU (they run in this Python environment, on this machine)."""
    import torch

    return torch.cuda.is_available()


def _unguarded_gpu_cells(report: NotebookReport, cells: list[dict]) -> list[int]:
    """Cells tagged ``gpu`` that would run on a machine without CUDA (this one) because they never ask for it.

    nbval skips them in CI, but JupyterLab's "Run All" runs every cell: on a student's laptop such a cell fails or
    trains a GPU-sized model on the CPU. Each is reported; the caller leaves them out of the run.
    """
    if _cuda_available():
        return []
    found = []
    for cell in cells:
        if cell["type"] == "code" and "gpu" in cell["tags"] and "is_available()" not in cell["source"]:
            found.append(cell["index"])
            report.problems.append(
                f'cell {cell["index"]} is tagged gpu but never checks torch.cuda.is_available(): "Run All" on a '
                "machine without a GPU runs it anyway (wrap its body in `if torch.cuda.is_available():`)"
            )
    return found


def _run_cells_except(page: Any, skipped: list[int], timeout_s: float) -> dict:
    """Run the code cells in order, one at a time, leaving out ``skipped``; stop after a cell that fails."""
    deadline = time.monotonic() + timeout_s
    state: dict = {}
    for cell in notebook_cells(page):
        if cell["type"] != "code" or cell["index"] in skipped:
            continue
        state = run_cell(page, cell["index"], max(1.0, deadline - time.monotonic()))
        if any(out["type"] == "error" for out in notebook_cells(page)[cell["index"]]["outputs"]):
            break
    return state


def _wait_for_widgets_to_settle(page: Any, timeout_s: float = 20.0) -> None:
    """Give widget views a moment to leave their "Loading widget..." state before they are judged."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        loading = page.evaluate(
            f"() => Array.from({_PANEL}.content.node.querySelectorAll('.jp-OutputArea-output'))"
            ".some(n => n.textContent.includes('Loading widget'))"
        )
        if not loading:
            return
        time.sleep(0.25)


def _check_cells_ran(report: NotebookReport) -> None:
    for cell in report.cells:
        if cell["type"] != "code" or not cell["source"].strip() or cell["index"] in report.skipped:
            continue
        if cell["executionCount"] is None:
            report.problems.append(f"cell {cell['index']} did not run (run-all stopped before it)")
            break  # every later cell is skipped for the same reason
    for cell in report.cells:
        for out in cell["outputs"]:
            if out["type"] == "error":
                tagged = f" (tagged {', '.join(cell['tags'])})" if cell["tags"] else ""
                report.problems.append(
                    f"cell {cell['index']}{tagged} shows an error: {out['ename']}: {out['evalue'][:300]}"
                )


def _check_kernel_messages(report: NotebookReport, errors: list[dict], stderr: list[dict], when: str) -> None:
    """Report errors the kernel sent outside a cell's execution (a widget callback's traceback, for instance)."""
    for error in errors:
        if error["parent"] == "execute_request":
            continue  # a cell's own error: reported with its cell
        what = f"{error['ename']}: {error['evalue']}"
        report.problems.append(f"the kernel reported {what} {when} (in a {error['parent']})")
    for message in stderr:
        if "Traceback" in message["text"] or "Exception" in message["text"]:
            last = message["text"].strip().splitlines()[-1]
            report.problems.append(f"the kernel printed a traceback {when} (in a {message['parent']}): {last}")


_JS_OUTPUT_NODES = """(area) => Array.from(
    area.querySelectorAll(':scope > .jp-OutputArea-child > .jp-OutputArea-output')).map((node) => ({
    mime: node.getAttribute('data-mime-type'),
    widget: !!node.querySelector('.jupyter-widgets'),
    text: node.textContent.slice(0, 500),
    images: Array.from(node.querySelectorAll('img')).map((img) => ({complete: img.complete, width: img.naturalWidth})),
    bars: Array.from(node.querySelectorAll('.widget-hprogress, .widget-vprogress')).map((bar) => {
      const inner = bar.querySelector('.progress-bar');
      const box = bar.getBoundingClientRect();
      return {width: box.width, height: box.height, filled: inner ? inner.getBoundingClientRect().width : -1};
    }),
  }))"""


def _check_rendered_outputs(page: Any, report: NotebookReport, folder: Path) -> None:
    counts = {"widget_views": 0, "progress_bars": 0, "figures": 0}
    shot_bar = shot_figure = False
    for cell in report.cells:
        if cell["type"] != "code":
            continue
        index = cell["index"]
        area = cell_output_area(page, index)
        nodes = page.evaluate(_JS_OUTPUT_NODES, area)
        for out in cell["outputs"]:
            if out["type"] == "stream" and out["name"] == "stderr" and "IProgress not found" in (out["text"] or ""):
                report.problems.append(f"cell {index}: tqdm fell back to text ('IProgress not found': no ipywidgets)")
        widget_outputs = [out for out in cell["outputs"] if WIDGET_MIME in out["mimes"]]
        for node in nodes:
            text = node["text"]
            broken = [marker for marker in BROKEN_WIDGET_TEXT if marker in text]
            if broken:
                report.problems.append(f"cell {index}: a widget shows {broken[0]!r} instead of a live control")
            elif node["mime"] in (None, "text/plain") and not node["widget"] and WIDGET_TEXT_FALLBACK.search(text):
                report.problems.append(
                    f"cell {index}: a widget is shown as its text {text.strip()[:60]!r}... instead of a live control"
                )
            if FIGURE_TEXT.search(text) and node["mime"] != "image/png":
                report.problems.append(f"cell {index}: a figure is printed as {FIGURE_TEXT.search(text)[0]!r}")
            if node["widget"]:
                counts["widget_views"] += 1
            for bar in node["bars"]:
                counts["progress_bars"] += 1
                if bar["width"] < 20 or bar["height"] < 4 or bar["filled"] < 0:
                    report.problems.append(f"cell {index}: a progress bar is not drawn as a bar ({bar})")
            if node["bars"] and not shot_bar:
                shot_bar = True
                _screenshot(area, folder, f"cell{index:02d}-progress", report)
            if node["mime"] == "image/png":
                if any(img["complete"] and img["width"] > 0 for img in node["images"]):
                    counts["figures"] += 1
                    if not shot_figure:
                        shot_figure = True
                        _screenshot(area, folder, f"cell{index:02d}-figure", report)
                else:
                    report.problems.append(f"cell {index}: a figure image did not load in the page")
        if len([n for n in nodes if n["widget"]]) < len(widget_outputs):
            report.problems.append(
                f"cell {index}: {len(widget_outputs)} widget output(s) but only "
                f"{len([n for n in nodes if n['widget']])} rendered as live controls (the others show nothing: "
                "their model is gone or the page has no widget manager)"
            )
        code = "\n".join(line.split("#", 1)[0] for line in cell["source"].splitlines())
        gpu_only = "gpu" in cell["tags"] and not _cuda_available()  # a guarded gpu cell draws nothing on a CPU
        if "plt.show()" in code and cell["executionCount"] is not None and not gpu_only:
            if not any(n["mime"] == "image/png" for n in nodes) and not any(
                "image/png" in out["mimes"] for out in cell["outputs"]
            ):
                report.problems.append(f"cell {index} ends with plt.show() but shows no figure image")
    report.counts.update(counts)


_JS_CONTROLS = """(area) => {
  const sliders = Array.from(area.querySelectorAll('.widget-slider')).filter((s) => s.querySelector('.noUi-handle'));
  const selects = Array.from(area.querySelectorAll('.widget-dropdown select'));
  const images = Array.from(area.querySelectorAll('img.widget-image'));
  const errors = Array.from(area.querySelectorAll('.widget-html-content, .widget-label, .jp-OutputArea-output pre'))
    .map((n) => n.textContent).filter((t) => t.trim());
  return {sliders: sliders.length, selects: selects.map((s) => s.options.length),
          srcs: images.map((img) => img.src), texts: errors};
}"""


def _check_widget_cell(page: Any, report: NotebookReport, cell: dict, folder: Path) -> None:
    """Move every slider (and change every dropdown) of a widget cell and check that its picture changes."""
    index = cell["index"]
    area = cell_output_area(page, index)
    if not page.evaluate("(area) => !!area.querySelector('.jupyter-widgets')", area):
        report.problems.append(f"cell {index} is tagged 'widget' but shows no live widget")
        return
    controls = page.evaluate(_JS_CONTROLS, area)
    _check_widget_size(page, report, index, area)
    _screenshot(area, folder, f"cell{index:02d}-widget-before", report)
    if not controls["srcs"]:
        report.problems.append(f"cell {index} is tagged 'widget' but its widget shows no picture (ipywidgets.Image)")
        return
    if controls["sliders"] == 0 and not any(n > 1 for n in controls["selects"]):
        report.problems.append(f"cell {index} is tagged 'widget' but has no slider or dropdown to move")
        return
    _report_widget_error_text(report, index, controls["texts"], "before any control moved")
    moves = [("slider", i) for i in range(controls["sliders"])]
    moves += [("dropdown", i) for i, n in enumerate(controls["selects"]) if n > 1]
    report.counts["controls_moved"] = report.counts.get("controls_moved", 0)
    after = _picture_pixels(page, area)
    for number, (kind, i) in enumerate(moves):
        state = page.evaluate(_JS_WIDGET_STATE, area)
        before = after  # the picture as the last move left it
        if kind == "slider":
            description = _drag_slider(page, area, i)
        else:
            description = _change_dropdown(page, area, i)
        changed = _wait_for_new_picture(page, area, state["srcs"], state["handled"])
        after = _picture_pixels(page, area)
        report.counts["controls_moved"] += 1
        if number == 0:
            _screenshot(area, folder, f"cell{index:02d}-widget-after", report)
        texts = page.evaluate(_JS_CONTROLS, area)["texts"]
        if _report_widget_error_text(report, index, texts, f"after {description}"):
            continue
        if not changed or after == before:
            report.problems.append(f"cell {index}: {description} did not change the picture it drives")


_JS_WIDGET_SIZE = """(area) => {
  const box = area.querySelector('.jupyter-widgets').getBoundingClientRect();
  const images = Array.from(area.querySelectorAll('img.widget-image')).map((img) => {
    const shown = img.getBoundingClientRect();
    return {natural: [img.naturalWidth, img.naturalHeight], shown: [Math.round(shown.width), Math.round(shown.height)]};
  });
  return {height: Math.round(box.height), images};
}"""


def _check_widget_size(page: Any, report: NotebookReport, index: int, area: Any) -> None:
    """A student must see a widget's controls and its picture at once: the widget has to fit on a laptop screen."""
    size = page.evaluate(_JS_WIDGET_SIZE, area)
    if size["height"] > MAX_WIDGET_HEIGHT:
        pictures = ", ".join(
            f"a {i['natural'][0]}x{i['natural'][1]} image shown at {i['shown'][0]}x{i['shown'][1]}"
            for i in size["images"]
        )
        report.problems.append(
            f"cell {index}: the widget is {size['height']} px tall ({pictures or 'no picture'}): on a laptop screen "
            f"(at most {MAX_WIDGET_HEIGHT} px) a student cannot see its controls and its picture at once"
        )


def _report_widget_error_text(report: NotebookReport, index: int, texts: list[str], when: str) -> bool:
    for text in texts:
        match = ERROR_IN_WIDGET_TEXT.search(text)
        if match:
            report.problems.append(f"cell {index}: the widget shows an error {when}: {text.strip()[:120]!r}")
            return True
    return False


def _picture_pixels(page: Any, area: Any) -> list[bytes]:
    """Screenshots of the widget's pictures (the ipywidgets.Image elements), to compare before and after."""
    images = area.query_selector_all("img.widget-image")
    return [image.screenshot(animations="disabled", timeout=30_000) for image in images]


def _wait_for_new_picture(
    page: Any, area: Any, before_srcs: list[str], handled_before: int, timeout_s: float = 60.0
) -> bool:
    """Wait until a picture's source changes (the kernel sent a new image), or the kernel has handled the control's
    change and stayed idle for a while without sending one."""
    deadline = time.monotonic() + timeout_s
    idle_since = None
    while time.monotonic() < deadline:
        state = page.evaluate(_JS_WIDGET_STATE, area)
        if state["srcs"] != before_srcs:
            _wait_kernel_idle(page)
            time.sleep(0.3)  # the new image decodes
            return True
        if state["handled"] > handled_before and state["idle"]:
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > 1.5:
                return False
        else:
            idle_since = None
        time.sleep(0.1)
    return False


_JS_WIDGET_STATE = f"""(area) => ({{
  srcs: Array.from(area.querySelectorAll('img.widget-image')).map((img) => img.src),
  handled: window.__course.commMessagesHandled,
  idle: {_PANEL}.sessionContext.session.kernel.status === 'idle',
}})"""


def _drag_slider(page: Any, area: Any, i: int) -> str:
    """Drag slider ``i`` with the mouse to the far side of its track, as a student would."""
    slider = area.query_selector_all(".widget-slider")[i]
    label = (slider.query_selector(".widget-label").text_content() or "").strip() or f"#{i}"
    slider.scroll_into_view_if_needed()
    track = slider.query_selector(".noUi-target").bounding_box()
    handle = slider.query_selector(".noUi-handle").bounding_box()
    x0, y = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
    middle = track["x"] + track["width"] / 2
    x1 = track["x"] + track["width"] * (0.8 if x0 < middle else 0.2)
    before = slider.query_selector(".widget-readout").text_content()
    page.mouse.move(x0, y)
    page.mouse.down()
    page.mouse.move(x1, y, steps=8)
    page.mouse.up()
    after = slider.query_selector(".widget-readout").text_content()
    return f"moving slider {label!r} from {before.strip()} to {after.strip()}"


def _change_dropdown(page: Any, area: Any, i: int) -> str:
    select = area.query_selector_all(".widget-dropdown select")[i]
    options = select.evaluate("(s) => Array.from(s.options).map((o) => o.value)")
    current = select.evaluate("(s) => s.value")
    choice = next(option for option in options if option != current)
    select.select_option(choice)
    return f"choosing {choice!r} in dropdown #{i}"
