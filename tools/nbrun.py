"""Run a notebook in a fresh kernel, cell by cell, and measure it: the engine shared by the instructor tools.

``run_notebook`` starts a new kernel (with the environment you give it, e.g. ``COURSE_PROFILE=fast``), executes the
cells in order, keeps going past errors when asked, and returns a ``RunResult`` with the wall time, the kernel's CPU
time, its peak resident memory and every error. The executed notebook (with outputs) comes back too, for the HTML
build. A background thread samples the kernel's memory twice a second; on Linux the kernel's own high-water mark
(``VmHWM``) is read at the end as well, so short peaks between samples are not missed.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

try:  # psutil is a dev dependency; without it we fall back to /proc on Linux
    import psutil
except ImportError:  # pragma: no cover - exercised only on machines without psutil
    psutil = None

PROJECT_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
NOTEBOOK_PATTERN = re.compile(r"^\d\d[a-z]?_.+\.ipynb$")
"""A course notebook's name: two digits, perhaps a letter for one placed between two others (``05b_``), ``_``."""


def notebook_number(path: Path | str) -> str:
    """A notebook's number, the part of its name before the first ``_``: ``'05'``, or ``'05b'`` for
    ``05b_flow_matching.ipynb``."""
    return Path(path).name.split("_", 1)[0]


def list_notebooks(folder: Path = NOTEBOOK_DIR, selection: str | None = None) -> list[Path]:
    """The course notebooks (``NN_name.ipynb``, or ``NNb_name.ipynb`` between two) in ``folder``, in course order.

    ``selection`` keeps those whose number is it (``"05"`` is notebook 05 only, ``"05b"`` the one after it) or whose
    name contains it (``"diffusion"``); several may be given separated by commas (``"00,05"``). A selection that
    matches nothing is an error that lists the notebooks there are.
    """
    folder = Path(folder)
    notebooks = sorted(p for p in folder.glob("*.ipynb") if NOTEBOOK_PATTERN.match(p.name))
    if not selection:
        return notebooks
    wanted = [s.strip() for s in str(selection).split(",") if s.strip()]
    numbers = {notebook_number(p) for p in notebooks}
    chosen = [p for p in notebooks if any(w == notebook_number(p) if w in numbers else w in p.stem for w in wanted)]
    if not chosen:
        names = ", ".join(p.name for p in notebooks) or "none"
        raise ValueError(f"no notebook in {folder} matches {selection!r}; there are: {names}")
    return chosen


def kernel_env(overrides: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a fresh kernel: ours, the project root first on ``PYTHONPATH``, then ``overrides``.

    Putting the project root on ``PYTHONPATH`` lets a notebook ``import course_utils`` from any folder even when the
    package is not installed.
    """
    env = dict(os.environ)
    parts = [str(PROJECT_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
    # A kernel that inherits MPLBACKEND=Agg (as pytest sets it) would produce no figures in the outputs.
    env.pop("MPLBACKEND", None)
    env.update({k: str(v) for k, v in (overrides or {}).items()})
    return env


@dataclass
class CellError:
    """One error a cell raised: where, the exception's name and message."""

    cell_index: int
    ename: str
    evalue: str
    source_head: str = ""

    def describe(self) -> str:
        """A one-line description such as ``cell 12: NotImplementedError: ...``."""
        return f"cell {self.cell_index}: {self.ename}: {self.evalue}"[:300]


@dataclass
class RunResult:
    """What one notebook run measured."""

    name: str
    ok: bool
    wall_s: float
    cpu_s: float | None
    peak_rss_mb: float | None
    kernel_start_s: float
    errors: list[CellError] = field(default_factory=list)
    cells_run: int = 0
    cells_skipped: int = 0
    notebook: nbformat.NotebookNode | None = field(default=None, repr=False)

    def summary(self) -> dict:
        """The measurements as a JSON-friendly dict (without the executed notebook)."""
        return {
            "notebook": self.name,
            "ok": self.ok,
            "wall_s": round(self.wall_s, 2),
            "cpu_s": None if self.cpu_s is None else round(self.cpu_s, 2),
            "peak_rss_mb": None if self.peak_rss_mb is None else round(self.peak_rss_mb, 1),
            "kernel_start_s": round(self.kernel_start_s, 2),
            "cells_run": self.cells_run,
            "cells_skipped": self.cells_skipped,
            "errors": [e.describe() for e in self.errors],
            "slowest_cells": slowest_cells(self.notebook) if self.notebook is not None else [],
        }


def slowest_cells(notebook: nbformat.NotebookNode, n: int = 3) -> list[dict]:
    """The ``n`` code cells that ran longest, as ``{"cell": id or index, "seconds": s}``, slowest first.

    Read from the timing nbclient writes into each executed cell's metadata (``execution``: when the kernel started
    the cell and when it replied), so a report says where a notebook's minutes go, not only how many there were.
    """
    timed = []
    for index, cell in enumerate(notebook.cells):
        stamps = cell.get("metadata", {}).get("execution", {})
        start, end = stamps.get("iopub.execute_input"), stamps.get("shell.execute_reply")
        if cell.cell_type != "code" or not (start and end):
            continue
        seconds = (_timestamp(end) - _timestamp(start)).total_seconds()
        timed.append({"cell": cell.get("id") or str(index), "seconds": round(seconds, 1)})
    return sorted(timed, key=lambda row: -row["seconds"])[:n]


def _timestamp(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


class PeakMemoryMonitor(threading.Thread):
    """Samples the resident memory of a process and its children in a background thread; ``peak_bytes`` is the max.

    A sample costs about 0.1 ms every ``interval`` seconds (child processes are listed every ``children_every``
    seconds, a few ms), well under 1% of one core, so it does not slow down the kernel it watches.
    """

    def __init__(self, pid: int, interval: float = 0.5, children_every: float = 10.0) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak_bytes = 0
        self._stop_event = threading.Event()
        # Listing child processes scans all of /proc (milliseconds), so it is refreshed only every `children_every` s.
        self._children_every = children_every
        self._children: list = []
        self._children_at = -float("inf")
        self._process = None

    def sample(self) -> int:
        """Current resident memory (bytes) of the process and its children; 0 if it cannot be read."""
        if psutil is None:
            return _proc_status_kb(self.pid, "VmRSS") * 1024
        try:
            if self._process is None:
                self._process = psutil.Process(self.pid)
            total = self._process.memory_info().rss
            if time.monotonic() - self._children_at > self._children_every:
                self._children = self._process.children(recursive=True)
                self._children_at = time.monotonic()
        except psutil.Error:
            return 0
        for child in self._children:
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total

    def run(self) -> None:  # noqa: D102 - threading.Thread API
        while not self._stop_event.is_set():
            self.peak_bytes = max(self.peak_bytes, self.sample())
            self._stop_event.wait(self.interval)

    def stop(self) -> int:
        """Stop sampling (after one last sample) and return the peak in bytes."""
        self.peak_bytes = max(self.peak_bytes, self.sample())
        self._stop_event.set()
        self.join(timeout=5)
        return self.peak_bytes


def _proc_status_kb(pid: int, key: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (Linux), e.g. ``VmHWM`` (peak resident memory); 0 elsewhere."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (and its reaped children), or None if it cannot be read."""
    if psutil is None:
        return None
    try:
        t = psutil.Process(pid).cpu_times()
        return t.user + t.system + getattr(t, "children_user", 0.0) + getattr(t, "children_system", 0.0)
    except psutil.Error:
        return None


def _kernel_pid(client) -> int | None:
    provisioner = getattr(client.km, "provisioner", None)
    pid = getattr(provisioner, "pid", None)
    if pid is None:
        process = getattr(provisioner, "process", None) or getattr(client.km, "kernel", None)
        pid = getattr(process, "pid", None)
    return pid


def _cell_errors(cell: nbformat.NotebookNode, index: int) -> list[CellError]:
    head = cell.source.strip().splitlines()[0][:80] if cell.source.strip() else ""
    return [
        CellError(index, out.get("ename", "?"), out.get("evalue", ""), head)
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]


def run_notebook(
    notebook: Path | nbformat.NotebookNode,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: int = 1800,
    stop_on_error: bool = True,
    skip_tags: tuple[str, ...] = (),
    monitor: bool = True,
    interval: float = 0.5,
    name: str | None = None,
) -> RunResult:
    """Execute a notebook in a fresh kernel, cell by cell, and measure it.

    ``notebook`` is a path or an already-read notebook (which is executed in place). ``cwd`` is the kernel's working
    folder (default: the notebook's folder, else ``notebooks/``). ``env`` overrides environment variables for the
    kernel (see ``kernel_env``). Cells tagged with one of ``skip_tags`` are not run. With ``stop_on_error`` the run
    ends at the first error; otherwise it continues past errors and collects them all. Errors in cells tagged
    ``raises-exception`` are expected and not counted. A timeout or a dead kernel always ends the run as failed.
    """
    from nbclient import NotebookClient  # imported here: listing notebooks should not pay for it
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    if isinstance(notebook, (str, Path)):
        path = Path(notebook)
        nb = nbformat.read(path, as_version=4)
        name = name or path.name
        cwd = cwd or path.parent
    else:
        nb = notebook
        name = name or "notebook"
    cwd = Path(cwd or NOTEBOOK_DIR)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=True,  # we read errors from the outputs, so a failing cell never hides the others
        resources={"metadata": {"path": str(cwd)}},
        store_widget_state=True,
    )
    errors: list[CellError] = []
    cells_run = cells_skipped = 0
    start = time.perf_counter()
    client.reset_execution_trackers()
    with client.setup_kernel(env=kernel_env(env)):
        info_id = client.kc.kernel_info()
        client.wait_for_reply(info_id)
        kernel_start_s = time.perf_counter() - start
        pid = _kernel_pid(client)
        watcher = PeakMemoryMonitor(pid, interval) if (monitor and pid) else None
        if watcher:
            watcher.start()
        cpu0 = _cpu_seconds(pid) if pid else None
        t0 = time.perf_counter()
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            if set(cell.metadata.get("tags", [])) & set(skip_tags):
                cells_skipped += 1
                continue
            try:
                client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
            except (CellTimeoutError, DeadKernelError, TimeoutError) as exc:
                errors.append(CellError(index, type(exc).__name__, str(exc).strip()[:300]))
                break
            cells_run += 1
            if "raises-exception" not in cell.metadata.get("tags", []):
                errors.extend(_cell_errors(cell, index))
            if errors and stop_on_error:
                break
        wall_s = time.perf_counter() - t0
        cpu1 = _cpu_seconds(pid) if pid else None
        peak = watcher.stop() if watcher else 0
        if pid:
            peak = max(peak, _proc_status_kb(pid, "VmHWM") * 1024)
        client.set_widgets_metadata()
    return RunResult(
        name=name,
        ok=not errors,
        wall_s=wall_s,
        cpu_s=None if cpu0 is None or cpu1 is None else cpu1 - cpu0,
        peak_rss_mb=peak / 2**20 if peak else None,
        kernel_start_s=kernel_start_s,
        errors=errors,
        cells_run=cells_run,
        cells_skipped=cells_skipped,
        notebook=nb,
    )


def cuda_available() -> bool:
    """Whether PyTorch sees a CUDA GPU here (cells tagged ``gpu`` are skipped when it does not)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())
