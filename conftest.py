"""pytest configuration shared by the unit tests and nbval.

nbval runs every notebook cell; cells tagged ``gpu`` need a CUDA GPU and are skipped without one, and cells
tagged ``online`` need the optional `transformers` package and the model hub (notebook 09): they run only when
``COURSE_ONLINE=1`` asks for them, so that a test run is the same online and offline (and collecting the tests asks
the network nothing). Such cells define nothing that later cells use, so skipping them never breaks a notebook.
"""

from __future__ import annotations

import os

import pytest

ONLINE_SWITCH = "COURSE_ONLINE"


def _cell_tags(item: pytest.Item) -> list[str]:
    cell = getattr(item, "cell", None)
    if cell is None:
        return []
    return list(cell.get("metadata", {}).get("tags", []))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip notebook cells tagged ``gpu`` on a machine without CUDA, and those tagged ``online`` unless asked for."""
    gpu_tagged = [item for item in items if "gpu" in _cell_tags(item)]
    if gpu_tagged:
        import torch

        if not torch.cuda.is_available():
            for item in gpu_tagged:
                item.add_marker(pytest.mark.skip(reason="cell tagged 'gpu' and no CUDA GPU is available"))
    if os.environ.get(ONLINE_SWITCH, "").strip() not in ("", "0"):
        return  # asked for: the online cells run (each guards itself: without the hub it says why and does nothing)
    for item in items:
        if "online" in _cell_tags(item):
            reason = f"cell tagged 'online' (it downloads a model); {ONLINE_SWITCH}=1 runs it"
            item.add_marker(pytest.mark.skip(reason=reason))
