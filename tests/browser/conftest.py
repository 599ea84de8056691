"""Fixtures of the browser suite: one JupyterLab server and one headless Chromium for the whole session.

Run it with ``pytest tests/browser`` (it is part of ``pytest tests`` and ``make test``; ``-m "not browser"`` leaves it
out of a quick unit run). Without Chromium the suite is skipped with one line saying how to install it, except in CI
(``CI=true``), where a missing browser is a failure: CI must never pass without having looked.
"""

from __future__ import annotations

import importlib.metadata
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import data_world
from hub_driver import HUB_REPORT, PROXY_INSTALL_HINT, missing_proxy
from jupyterlab_driver import (
    INSTALL_HINT,
    PROJECT_ROOT,
    LabServer,
    chromium_version,
    lab_server,
    launch_chromium,
    missing_browser,
    port_is_free,
    process_group_alive,
    tree_cpu_seconds,
)

SCREENSHOT_DIR = PROJECT_ROOT / "build" / "screenshots"
_skip_reason: list[str] = []
_hub_skip_reason: list[str] = []
_cpu_seconds: list[float] = []


def in_ci() -> bool:
    """True when the environment says this is CI (``CI=true``, as GitHub Actions and most CI services set)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _require(reason: str | None, suite: str, hint: str, skipped: list[str]) -> None:
    """Nothing when ``reason`` is None; else fail in CI (it must never pass without having looked) or skip locally,
    recording the reason for the one summary line."""
    if reason is None:
        return
    if in_ci():
        pytest.fail(f"CI=true and {reason}: {suite} must run in CI; {hint}", pytrace=False)
    skipped[:] = [reason]
    pytest.skip(f"{reason}; {hint}")


@pytest.fixture(scope="session")
def browser_available() -> None:
    """Skip (locally) or fail (in CI) when Chromium or Playwright is missing."""
    _require(missing_browser(), "the browser suite", INSTALL_HINT, _skip_reason)


@pytest.fixture(scope="session")
def hub_available(browser_available: None) -> None:
    """Skip (locally) or fail (in CI) when configurable-http-proxy, JupyterHub or nbgitpuller is missing."""
    _require(missing_proxy(), "the hub test", PROXY_INSTALL_HINT, _hub_skip_reason)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The one line a developer without Chromium sees about the skipped browser suite; else the CPU it used."""
    for line in HUB_REPORT:
        terminalreporter.write_line(line)
    if _hub_skip_reason and not _skip_reason:
        terminalreporter.write_line(f"hub test skipped: {_hub_skip_reason[0]}; {PROXY_INSTALL_HINT}", yellow=True)
    if _skip_reason:
        terminalreporter.write_line(f"browser suite skipped: {_skip_reason[0]}; {INSTALL_HINT}", yellow=True)
    elif _cpu_seconds:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        terminalreporter.write_line(
            f"browser suite: {_cpu_seconds[0]:.0f} CPU seconds (pytest, JupyterLab, kernels, Chromium); "
            f"load average at the end {load} on {os.cpu_count()} CPUs; {_versions()}"
        )


def _versions() -> str:
    names = ("jupyterlab", "ipywidgets", "playwright")
    return f"{chromium_version()}; " + ", ".join(f"{n} {importlib.metadata.version(n)}" for n in names)


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Name the browser and JupyterLab the suite drives (shown when the run is aimed at tests/browser)."""
    if missing_browser() is not None:
        return []
    return [f"browser: {_versions()}"]


@pytest.fixture(scope="session")
def lab(browser_available: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """JupyterLab serving the project root (so notebooks open at ``/lab/tree/notebooks/<name>.ipynb``)."""
    work_dir = tmp_path_factory.mktemp("jupyterlab")
    # The digits, whatever lies in data/, unless the caller named a data set (the nbval runs pin the same).
    with lab_server(PROJECT_ROOT, work_dir, env=data_world()) as server:
        yield server
        _cpu_seconds.append(tree_cpu_seconds())  # before the kill: server, kernels (also the stopped ones), Chromium
    # The context manager has killed the server's process group; make sure nothing outlived it.
    assert not process_group_alive(server.process.pid), "JupyterLab or one of its kernels outlived the test session"
    assert port_is_free(server.port), f"port {server.port} is still taken after JupyterLab was stopped"


@pytest.fixture(scope="session")
def chromium(browser_available: None) -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def browser_context(chromium: Any) -> Iterator[Any]:
    """One browser profile for the session, so JupyterLab's scripts load from the cache after the first page."""
    # A laptop's width; tall, so that an element screenshot of a tall output is not cut by JupyterLab's panels.
    context = chromium.new_context(viewport={"width": 1400, "height": 2400}, device_scale_factor=1)
    context.set_default_timeout(60_000)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(browser_context: Any, lab: LabServer) -> Iterator[Any]:
    """A fresh JupyterLab tab; afterwards its kernels are stopped and its open tabs forgotten."""
    tab = browser_context.new_page()
    try:
        yield tab
    finally:
        tab.close()
        lab.reset_workspaces()
        # Stopping a kernel takes seconds; the next test need not wait for it (kernels that are left over die with
        # the server's process group at the end of the session).
        threading.Thread(target=lab.shutdown_kernels, daemon=True).start()


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    return SCREENSHOT_DIR
