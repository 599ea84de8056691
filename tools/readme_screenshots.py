"""Take README's picture of notebook 05's timestep slider from a full-profile model, in JupyterLab.

The browser tests run the fast profile, whose diffusion model still guesses noise. This tool opens notebook 05 in
headless Chromium (the browser tests' harness, ``tests/browser/jupyterlab_driver.py``) in the full profile, with a
checkpoint folder that already holds the finished full-profile models, so nothing is trained: the notebook loads
them and runs its other cells. The timestep explorer's picture, at its starting ``t = T / 2``, is copied to
``docs/images/jupyterlab-timestep-explorer.png``.

Usage (the checkpoints of a full-profile benchmark run on the data named by ``COURSE_DATA_DIR``)::

    COURSE_DATA_DIR=/tmp/mnist60k python tools/readme_screenshots.py \\
        --checkpoints build/benchmark/mnist60k/run-full-.../checkpoints
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT / "tests" / "browser"))

from jupyterlab_driver import inspect_notebook, lab_server, launch_chromium, missing_browser  # noqa: E402

NOTEBOOK = "notebooks/05_diffusion.ipynb"
TARGET = PROJECT_ROOT / "docs" / "images" / "jupyterlab-timestep-explorer.png"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", type=Path, required=True, help="a folder with full-profile checkpoints")
    parser.add_argument("--out", type=Path, default=TARGET)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for running the notebook")
    args = parser.parse_args(argv)
    checkpoints = args.checkpoints.resolve()
    if not any(checkpoints.glob("diffusion-*-full.pt")):
        raise SystemExit(f"no full-profile diffusion model (diffusion-*-full.pt) in {checkpoints}")
    problem = missing_browser()
    if problem:
        raise SystemExit(problem)

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        # A copy, so that the notebook's own writes (its results, a critic) never touch the given folder.
        shutil.copytree(checkpoints, work / "checkpoints")
        env = {"COURSE_PROFILE": "full", "COURSE_CHECKPOINT_DIR": str(work / "checkpoints")}
        with lab_server(PROJECT_ROOT, work / "lab", env=env) as server, sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_context(viewport={"width": 1400, "height": 2400}).new_page()
            report = inspect_notebook(page, server, NOTEBOOK, work / "shots", run_timeout_s=args.timeout)
            browser.close()
        if report.problems:
            print("\n".join(report.problems), file=sys.stderr)
            return 1
        shots = sorted(p for p in report.screenshots if p.name.endswith("-widget-before.png"))
        if not shots:
            raise SystemExit("notebook 05 showed no widget to photograph")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shots[0], args.out)
    print(f"wrote {args.out} ({report.seconds})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
