"""The course notebooks in a real browser: what a student sees in JupyterLab after "Run All", in the fast profile.

Every notebook in ``notebooks/`` with a cell tagged ``widget`` is opened at the path the Binder badge uses
(``/lab/tree/notebooks/<name>.ipynb``), run from JupyterLab's own run-all command and inspected: no error output,
widgets render as live controls, moving a slider changes its picture, figures are images and progress bars are bars.
Screenshots land in ``build/screenshots/<notebook>/``.
"""

from __future__ import annotations

import re
import shutil
import urllib.parse
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyterlab_driver import (
    ENVIRONMENT_CHECK,
    PROJECT_ROOT,
    LabServer,
    cell_output_area,
    inspect_diagrams,
    inspect_notebook,
    mermaid_blocks,
    notebook_cells,
    open_notebook,
    run_cell,
)

pytestmark = pytest.mark.browser

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
# The widgets the course promises (COURSE_DESIGN): the VAE latent explorer, the diffusion timestep slider and
# guided diffusion's "draw me a ..." (a digit and a guidance scale).
REQUIRED_WIDGET_NOTEBOOKS = ("02_variational_autoencoder.ipynb", "05_diffusion.ipynb", "06_guided_diffusion.ipynb")
NOTEBOOK_00 = "00_generative_vs_discriminative.ipynb"
# The diagrams the course promises: the critic and the artist (00), and the picture of each model (01 to 05, flow
# matching, guided).
REQUIRED_DIAGRAM_NOTEBOOKS = (
    NOTEBOOK_00,
    "01_autoencoder.ipynb",
    "02_variational_autoencoder.ipynb",
    "03_gan_generator_discriminator.ipynb",
    "04_gan_training_loop.ipynb",
    "05_diffusion.ipynb",
    "05b_flow_matching.ipynb",
    "06_guided_diffusion.ipynb",
)
RUN_TIMEOUT_S = 240


def widget_notebooks() -> list[Path]:
    """Every notebook in ``notebooks/`` with at least one cell tagged ``widget``, in course order."""
    found = []
    for path in sorted(NOTEBOOK_DIR.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        if any("widget" in cell.get("metadata", {}).get("tags", []) for cell in notebook.cells):
            found.append(path)
    return found


def diagram_notebooks() -> list[Path]:
    """The notebooks that must draw a diagram, and every other notebook whose markdown holds a ```mermaid block."""
    return sorted(
        path for path in NOTEBOOK_DIR.glob("*.ipynb") if path.name in REQUIRED_DIAGRAM_NOTEBOOKS or mermaid_blocks(path)
    )


def binder_lab_path(notebook: str) -> str:
    """The JupyterLab path the README's Binder badge opens for ``notebook`` (``lab/tree/notebooks/<notebook>``).

    When the README has a mybinder.org link with a ``urlpath``, that path is used, so the test opens exactly what
    the badge opens; it must then lead to a notebook that exists.
    """
    readme = PROJECT_ROOT / "README.md"
    default = f"lab/tree/notebooks/{notebook}"
    if not readme.exists():
        return default
    for url in re.findall(r"https://mybinder\.org/v2/[^\s)\"'>]+", readme.read_text()):
        query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
        for urlpath in query.get("urlpath", []):
            path = urllib.parse.unquote(urlpath).lstrip("/")
            if path.endswith(notebook):
                return path
    return default


def test_the_promised_widgets_are_found(browser_available: None) -> None:
    names = [path.name for path in widget_notebooks()]
    missing = [name for name in REQUIRED_WIDGET_NOTEBOOKS if name not in names]
    assert not missing, f"no cell tagged 'widget' in {missing} (notebooks with widget cells: {names})"


# Never an empty parameter set: pytest would skip it silently, and CI must not pass without having looked.
@pytest.mark.parametrize(
    "notebook", widget_notebooks() or [None], ids=lambda path: path.stem if path else "no-widget-notebook"
)
def test_widget_notebook_in_jupyterlab(notebook: Path | None, page: Any, lab: LabServer, screenshot_dir: Path) -> None:
    assert notebook is not None, f"no notebook in {NOTEBOOK_DIR} has a cell tagged 'widget'"
    report = inspect_notebook(page, lab, f"notebooks/{notebook.name}", screenshot_dir, run_timeout_s=RUN_TIMEOUT_S)
    print(report.summary())
    assert report.problems == [], report.summary()
    assert report.counts.get("controls_moved", 0) >= 1, "no widget control was moved"
    assert report.counts["figures"] >= 1, "the notebook shows no matplotlib figure"
    # Every progress bar shown was checked to be a drawn bar (not its text). How many there are depends on the
    # checkpoints: a model loaded from one trains no more and shows none, so no minimum is asked for here; the
    # harness's healthy notebook proves that a tqdm.auto bar is found and checked.


def test_the_promised_diagrams_are_found() -> None:
    missing = [name for name in REQUIRED_DIAGRAM_NOTEBOOKS if not (NOTEBOOK_DIR / name).is_file()]
    assert not missing, f"notebooks that must draw a diagram are missing: {missing}"
    without = [name for name in REQUIRED_DIAGRAM_NOTEBOOKS if not mermaid_blocks(NOTEBOOK_DIR / name)]
    assert not without, f"no ```mermaid block in the markdown of {without}"


@pytest.mark.parametrize("notebook", diagram_notebooks(), ids=lambda path: path.stem)
def test_diagrams_render_as_svg(notebook: Path, page: Any, lab: LabServer, screenshot_dir: Path) -> None:
    """Open the notebook (no cell runs: markdown renders on opening) and look at every mermaid diagram."""
    report = inspect_diagrams(page, lab, f"notebooks/{notebook.name}", screenshot_dir)
    print(report.summary())
    assert report.problems == [], report.summary()
    if notebook.name in REQUIRED_DIAGRAM_NOTEBOOKS:
        assert report.counts["diagrams"] >= 1, f"{notebook.name} should draw at least one diagram: {report.summary()}"
    assert report.counts["diagrams"] == report.counts["mermaid_blocks"], report.summary()


def test_notebook_00_shows_its_environment_check(page: Any, lab: LabServer, screenshot_dir: Path) -> None:
    """Open notebook 00 where the Binder badge opens it and run its first cells, as a student's first step does."""
    path = binder_lab_path(NOTEBOOK_00)
    assert path.startswith("lab/tree/"), f"the Binder badge should open JupyterLab's tree path, not {path}"
    relative = path.removeprefix("lab/tree/")
    assert (lab.root / relative).is_file(), f"the Binder badge opens {path}, which does not exist"
    open_notebook(page, lab, relative)

    def is_check(text: str) -> bool:
        return all(pattern.search(text) for pattern in ENVIRONMENT_CHECK)

    code_cells = [cell["index"] for cell in notebook_cells(page) if cell["type"] == "code"]
    found = None
    for index in code_cells[:3]:  # the set-up check comes first: a student sees it after running one or two cells
        run_cell(page, index, timeout_s=RUN_TIMEOUT_S)
        cell = notebook_cells(page)[index]
        errors = [f"{out['ename']}: {out['evalue']}" for out in cell["outputs"] if out["type"] == "error"]
        assert not errors, f"cell {index} of notebook 00 shows an error: {errors}"
        if is_check("".join(out["text"] or "" for out in cell["outputs"])):
            found = index
            break
    assert found is not None, f"none of the first cells {code_cells[:3]} of notebook 00 shows the set-up check"
    area = cell_output_area(page, found)
    shown = area.inner_text()
    assert is_check(shown), f"the set-up check of cell {found} is not visible on the page: {shown!r}"
    folder = screenshot_dir / Path(relative).stem
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    area.screenshot(path=str(folder / f"cell{found:02d}-environment-check.png"))
    print(f"notebook 00, cell {found}: {shown.strip()}")
