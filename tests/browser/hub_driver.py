"""Run a real JupyterHub on 127.0.0.1 for a test: the class set-up of README's "Serve the course to a class on
JupyterHub", with a test-only login and spawner.

* :func:`class_hub` (a context manager) starts JupyterHub from this Python environment with configurable-http-proxy
  from ``build/hub-proxy`` (``tools/install_hub.sh``), a shared test password for the allowed students
  (``SharedPasswordAuthenticator``, which replaced ``DummyAuthenticator.password`` in JupyterHub 5.3) and
  ``SimpleLocalProcessSpawner``: each student's server is this environment's ``jupyterhub-singleuser`` with
  JupyterLab, run as the hub's own user with a home under the test's folder, and ``COURSE_PROFILE=fast``. The hub's
  database, cookie secret and the homes live in the test's folder. On leaving the block, however it is left, the
  hub, the proxy, every student's server and their kernels are killed.
* :func:`log_in` signs a student in on the hub's login page, as a student would after clicking a link.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyterlab_driver import LAB_SETTINGS, PROJECT_ROOT, free_port, process_group_alive, stop_process_group

PROXY_PATH = Path(
    os.environ.get(
        "COURSE_HUB_PROXY", PROJECT_ROOT / "build" / "hub-proxy" / "node_modules" / ".bin" / "configurable-http-proxy"
    )
)
HUB_REPORT: list[str] = []  # the hub test's seconds and CPU seconds, for the test session's summary
PROXY_INSTALL_HINT = "run `bash tools/install_hub.sh` (configurable-http-proxy from npm, into build/hub-proxy)"


def missing_proxy() -> str | None:
    """Why the hub test cannot run here (configurable-http-proxy or JupyterHub missing), or None when it can."""
    if not PROXY_PATH.exists():
        return f"configurable-http-proxy not found at {PROXY_PATH}"
    try:
        import jupyterhub  # noqa: F401
        import nbgitpuller  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (pyproject's grading extra)"
    return None


@dataclass
class Hub:
    """A running JupyterHub (see :func:`class_hub`)."""

    url: str
    password: str
    process: subprocess.Popen
    log_path: Path
    homes: Path
    ports: tuple[int, ...]

    def home(self, user: str) -> Path:
        """The student's home folder (their server's root)."""
        return self.homes / user

    def log_tail(self, n: int = 60) -> str:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])


def _config(work_dir: Path, ports: tuple[int, int, int], users: list[str], password: str) -> str:
    """The hub's jupyterhub_config.py for the test."""
    port, hub_port, proxy_api_port = ports
    settings = work_dir / "lab-settings"
    for name, values in LAB_SETTINGS.items():  # autosave off: the notebook files change only when the test says so
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))
    python_path = [str(PROJECT_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    environment = {
        "COURSE_PROFILE": "fast",
        # This checkout's course_utils first (a worktree beside an editable install elsewhere).
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(python_path)),
        "COURSE_RESULTS_DIR": str(work_dir / "results"),
        "PYTHONUNBUFFERED": "1",
    }
    if os.environ.get("COURSE_CHECKPOINT_DIR"):
        environment["COURSE_CHECKPOINT_DIR"] = os.environ["COURSE_CHECKPOINT_DIR"]
    args = [
        "--LabApp.expose_app_in_browser=True",  # the test runs cells through window.jupyterapp.commands
        f"--LabApp.user_settings_dir={settings}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if os.geteuid() == 0:  # containers and CI machines run as root; Jupyter refuses that unless told
        args.insert(0, "--allow-root")
    config = {
        "JupyterHub.ip": "127.0.0.1",
        "JupyterHub.port": port,
        "JupyterHub.hub_ip": "127.0.0.1",
        "JupyterHub.hub_port": hub_port,
        "ConfigurableHTTPProxy.api_url": f"http://127.0.0.1:{proxy_api_port}",
        "ConfigurableHTTPProxy.command": [str(PROXY_PATH)],
        "ConfigurableHTTPProxy.pid_file": str(work_dir / "proxy.pid"),
        "JupyterHub.db_url": f"sqlite:///{work_dir / 'jupyterhub.sqlite'}",
        "JupyterHub.cookie_secret": secrets.token_hex(32),
        "JupyterHub.pid_file": str(work_dir / "jupyterhub.pid"),
        "JupyterHub.authenticator_class": "shared-password",
        "SharedPasswordAuthenticator.user_password": password,
        "Authenticator.allowed_users": users,
        "JupyterHub.spawner_class": "simple",
        "SimpleLocalProcessSpawner.home_dir_template": str(work_dir / "home" / "{username}"),
        "Spawner.cmd": [sys.executable, "-m", "jupyterhub.singleuser"],
        "Spawner.args": args,
        "Spawner.default_url": "/lab",
        "Spawner.environment": environment,
        "Spawner.start_timeout": 120,
        "Spawner.http_timeout": 120,
    }
    lines = ["# Written by tests/browser/hub_driver.py for one test run.", "c = get_config()  # noqa"]
    for key, value in config.items():
        value = set(value) if key == "Authenticator.allowed_users" else value
        lines.append(f"c.{key} = {value!r}")
    return "\n".join(lines) + "\n"


@contextmanager
def class_hub(work_dir: Path, users: list[str], startup_timeout: float = 90.0) -> Iterator[Hub]:
    """Run JupyterHub for ``users`` for the duration of the ``with`` block (see the module's docstring)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    ports = (free_port(), free_port(), free_port())
    password = secrets.token_hex(12)
    config = work_dir / "jupyterhub_config.py"
    config.write_text(_config(work_dir, ports, users, password))
    log_path = work_dir / "jupyterhub.log"
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # kernels must pick the inline backend
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config)],
            cwd=work_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    hub = Hub(f"http://127.0.0.1:{ports[0]}", password, process, log_path, work_dir / "home", ports)
    groups: set[int] = {process.pid}
    try:
        _wait_until_answering(hub, startup_timeout)
        yield hub
    finally:
        # The spawner starts each student's server in a session of its own (so signals to the hub do not reach it):
        # note every group under the hub before stopping it, then make sure each one is gone.
        groups |= _descendant_groups(process.pid)
        stop_process_group(process)
        for pgid in groups:
            if process_group_alive(pgid):
                _kill_group(pgid)
        left = [pgid for pgid in groups if process_group_alive(pgid)]
        assert not left, f"process groups {left} (hub, proxy, students' servers, kernels) outlived the hub test"


def _descendant_groups(pid: int) -> set[int]:
    """The process groups of every process under ``pid`` (the proxy, the students' servers and their kernels)."""
    import psutil  # a dev dependency, like Playwright

    groups = set()
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return groups
    for child in children:
        try:
            groups.add(os.getpgid(child.pid))
        except ProcessLookupError:
            pass
    return groups


def _kill_group(pgid: int, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL, the process group ``pgid`` (one not led by a Popen of ours)."""
    import signal

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout / 2
        while time.monotonic() < deadline and process_group_alive(pgid):
            time.sleep(0.1)
        if not process_group_alive(pgid):
            return


def _wait_until_answering(hub: Hub, timeout: float) -> None:
    """Wait until the hub answers through its proxy (``/hub/api`` needs no login); raise with its log if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if hub.process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{hub.url}/hub/api", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            time.sleep(0.25)
    raise RuntimeError(
        f"JupyterHub did not answer at {hub.url} within {timeout:.0f} s; its log ends with:\n{hub.log_tail()}"
    )


def log_in(page: Any, hub: Hub, user: str, timeout_s: float = 60.0) -> None:
    """Sign ``user`` in on the hub's login page the browser is showing (where a link sends a student first)."""
    page.wait_for_url("**/hub/login**", timeout=timeout_s * 1000)
    page.fill("#username_input", user)
    page.fill("#password_input", hub.password)
    page.click("#login_submit")
