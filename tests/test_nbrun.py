"""The course's notebooks in order: two digits and a name, or two digits and a letter for one placed between two."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.nbrun import NOTEBOOK_DIR, list_notebooks, notebook_number  # noqa: E402


def test_notebook_05b_sits_between_05_and_06_and_each_number_selects_one_notebook():
    names = [p.name for p in list_notebooks(NOTEBOOK_DIR)]
    assert names.index("05_diffusion.ipynb") + 1 == names.index("05b_flow_matching.ipynb")
    assert names.index("05b_flow_matching.ipynb") + 1 == names.index("06_guided_diffusion.ipynb")
    assert [notebook_number(name) for name in names[5:8]] == ["05", "05b", "06"]
    assert [p.name for p in list_notebooks(NOTEBOOK_DIR, "05")] == ["05_diffusion.ipynb"]
    assert [p.name for p in list_notebooks(NOTEBOOK_DIR, "05b")] == ["05b_flow_matching.ipynb"]
    assert [p.name for p in list_notebooks(NOTEBOOK_DIR, "05,05b,flow")] == names[5:7]
    assert len(list_notebooks(NOTEBOOK_DIR, "diffusion")) == 3  # a word still selects every name that holds it
    with pytest.raises(ValueError, match="05b_flow_matching"):
        list_notebooks(NOTEBOOK_DIR, "nothing-like-this")
