"""Every notebook runs with its models on an accelerator: a simulated one, so that CI needs no GPU.

Each notebook is executed (fast profile) with a first cell that switches on
``tests/simulated_device.py`` and makes widgets raise the errors they would otherwise show in red.
``config.device()`` becomes a device whose tensors refuse to mix with CPU tensors and refuse to become
NumPy arrays, as on CUDA, and refuse float64, as on Apple's MPS. A cell that
feeds a CPU tensor to a model on the device, plots a device tensor, or computes in float64 on the device
fails here as it would on a GPU or a Mac. See tests/simulated_device.py for how the simulation works.

When ``NOTEBOOK_TEST_CHECKPOINTS`` names the checkpoints of a finished nbval run (``make test`` runs nbval first),
a copy of them is used: the notebooks' models are then loaded onto the device (``map_location``) instead of trained
again, and every other cell runs on the device as usual. Training each recipe on the device is tested by
tests/test_device.py; without the variable the notebooks train here too.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from helpers import data_world
from nbformat.v4 import new_code_cell

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.nbrun import NOTEBOOK_DIR, list_notebooks, run_notebook  # noqa: E402

NOTEBOOKS = list_notebooks(NOTEBOOK_DIR)
# 'gpu' cells need a real CUDA GPU; 'online' cells run a downloaded transformers pipeline, not the course's models.
SKIP_TAGS = ("gpu", "online")

SETUP = f"""\
import sys
sys.path.insert(0, {str(TESTS)!r})
from simulated_device import SimulatedDevice
_simulated_device = SimulatedDevice().start()

# A widget shows an error in its render function in red instead of raising it: here it must raise.
import course_utils.widgets as _widgets
_picture_widget = _widgets.picture_widget


def _strict_picture_widget(*args, **kwargs):
    box = _picture_widget(*args, **kwargs)
    if box.children[-1].value:
        raise RuntimeError("a widget could not draw its first picture: " + box.children[-1].value)
    return box


_widgets.picture_widget = _strict_picture_widget
"""
REPORT = "print('device ops:', _simulated_device.device_ops)"


def device_notebook(path: Path) -> nbformat.NotebookNode:
    """A copy of the notebook at ``path`` that runs on the simulated device and reports how much it used it."""
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, new_code_cell(SETUP))
    nb.cells.append(new_code_cell(REPORT))
    return nb


def device_ops(result) -> int:
    """The number of operations on the device that the notebook's last cell printed."""
    text = "".join(o.get("text", "") for o in result.notebook.cells[-1].get("outputs", []))
    return int(text.split("device ops:")[1]) if "device ops:" in text else -1


@pytest.fixture(scope="module")
def run_env(tmp_path_factory) -> dict[str, str]:
    # One checkpoint folder for all notebooks, as for a student: 00 saves the critic that later notebooks load.
    checkpoints = tmp_path_factory.mktemp("checkpoints")
    trained = os.environ.get("NOTEBOOK_TEST_CHECKPOINTS")
    if trained and Path(trained).is_dir():  # a copy: a run here never changes the other tests' files
        shutil.copytree(trained, checkpoints, dirs_exist_ok=True)
    return {
        **data_world(),  # the digits, whatever lies in data/, unless the caller named a data set
        "COURSE_PROFILE": "fast",
        "COURSE_CHECKPOINT_DIR": str(checkpoints),
        "COURSE_RESULTS_DIR": str(tmp_path_factory.mktemp("results")),
    }


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_with_its_models_on_a_device(path, run_env):
    result = run_notebook(
        device_notebook(path), cwd=NOTEBOOK_DIR, env=run_env, timeout=900, skip_tags=SKIP_TAGS, name=path.name
    )
    assert result.ok, "\n".join(f"{e.describe()}  [{e.source_head}]" for e in result.errors)
    if not path.name.startswith("00"):  # notebook 00 trains its critic on the CPU on purpose
        assert device_ops(result) > 0, "the notebook never used the device: is the simulation switched on?"


def test_the_set_up_cell_makes_device_mistakes_fail_a_notebook(tmp_path):
    cells = [
        "import torch\nfrom course_utils import config, widgets\nmodel = torch.nn.Linear(4, 2).to(config.device())",
        "model(torch.zeros(1, 4))  # a CPU tensor into a model on the device",
        "import ipywidgets\nwidgets.picture_widget(lambda v: model(torch.zeros(1, 4)), v=ipywidgets.IntSlider())",
        "print(model(torch.zeros(1, 4).to(config.device())).detach().cpu().numpy().shape)",
        REPORT,
    ]
    nb = nbformat.v4.new_notebook(cells=[new_code_cell(SETUP)] + [new_code_cell(c) for c in cells])
    result = run_notebook(nb, cwd=tmp_path, env={"COURSE_PROFILE": "fast"}, stop_on_error=False, name="mistakes")
    assert [(e.cell_index, e.ename) for e in result.errors] == [(2, "RuntimeError"), (3, "RuntimeError")]
    assert "same device" in result.errors[0].evalue and "could not draw" in result.errors[1].evalue
    assert result.notebook.cells[4].outputs[0]["text"] == "(1, 2)\n"
    assert device_ops(result) > 0
