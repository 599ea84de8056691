"""The browser suite's own checks, proven on notebooks it writes itself: a healthy one passes, a broken one fails."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import demo_notebooks
import pytest
from jupyterlab_driver import (
    PROJECT_ROOT,
    LabServer,
    inspect_diagrams,
    inspect_notebook,
    lab_server,
    port_is_free,
    process_group_alive,
)

pytestmark = pytest.mark.browser

# Inside the served project root (build/ is ignored by git), so the session's server can open them.
DEMO_DIR = PROJECT_ROOT / "build" / "browser-tests" / "notebooks"


def test_server_is_stopped_and_its_port_freed_when_a_test_fails(browser_available: None, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    server = None
    with pytest.raises(RuntimeError, match="a failing test"):
        with lab_server(root, tmp_path / "work") as server:
            assert server.api("GET", "api/status")["started"]
            assert not port_is_free(server.port)
            raise RuntimeError("a failing test")
    assert server is not None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not port_is_free(server.port):
        time.sleep(0.1)
    assert port_is_free(server.port), f"port {server.port} still taken after the server was stopped"
    assert not process_group_alive(server.process.pid), "the server's process group outlived the with-block"
    assert server.process.returncode is not None


def test_healthy_notebook_passes_every_check(page: Any, lab: LabServer, screenshot_dir: Path) -> None:
    path = demo_notebooks.write(demo_notebooks.healthy_notebook(), DEMO_DIR / "healthy_demo.ipynb")
    report = inspect_notebook(page, lab, path.relative_to(PROJECT_ROOT).as_posix(), screenshot_dir)
    print(report.summary())
    assert report.problems == [], report.summary()
    assert report.counts["progress_bars"] == 1, "the tqdm.auto bar should render as one drawn progress bar"
    assert report.counts["figures"] == 1, "the plot should appear as one image"
    assert report.counts["controls_moved"] == 1, "the picture widget's slider should have been moved"
    shots = {p.name: p for p in report.screenshots}
    assert {"cell01-progress.png", "cell02-figure.png", "cell03-widget-before.png", "cell03-widget-after.png"} <= set(
        shots
    )
    assert shots["cell03-widget-before.png"].read_bytes() != shots["cell03-widget-after.png"].read_bytes()


def test_broken_notebook_is_caught(page: Any, lab: LabServer, screenshot_dir: Path) -> None:
    path = demo_notebooks.write(demo_notebooks.broken_notebook(), DEMO_DIR / "broken_demo.ipynb")
    report = inspect_notebook(page, lab, path.relative_to(PROJECT_ROOT).as_posix(), screenshot_dir)
    print(report.summary())
    expected = {
        "render raises: error shown in the widget": r"^cell 1: the widget shows an error after moving slider 'broken "
        r"step'.*ValueError: the decoder is not trained yet",
        "callback raises: picture unchanged": r"^cell 2: moving slider 'dead slider' .* did not change the picture",
        "callback raises: traceback reported": r"RuntimeError.*cannot draw step",
        "closed widget": r"^cell 3: (a widget shows .(Error displaying widget|model not found)"
        r"|1 widget output\(s\) but only 0 rendered as live controls)",
        "text fallback": r"^cell 4: a widget is shown as its text .HBox\(children=",
        "no figure": r"^cell 5 ends with plt.show\(\) but shows no figure image",
        "cell error": r"^cell 6 shows an error: ZeroDivisionError",
    }
    missed = [name for name, pattern in expected.items() if not any(re.search(pattern, p) for p in report.problems)]
    assert not missed, f"the checks missed {missed}; they reported:\n{report.summary()}"


def test_diagram_check_counts_a_drawn_diagram_and_catches_a_broken_one(
    page: Any, lab: LabServer, screenshot_dir: Path
) -> None:
    path = demo_notebooks.write(demo_notebooks.diagram_notebook(), DEMO_DIR / "diagram_demo.ipynb")
    report = inspect_diagrams(page, lab, path.relative_to(PROJECT_ROOT).as_posix(), screenshot_dir)
    print(report.summary())
    assert report.counts == {"mermaid_blocks": 2, "diagrams": 1}, report.summary()
    caught = re.match(r"^cell 2: diagram 0 shows a mermaid error: \S", report.problems[0]) if report.problems else None
    assert len(report.problems) == 1 and caught, report.summary()
    assert [shot.name for shot in report.screenshots] == ["diagram_demo-cell01-diagram0.png"]
