"""pytest configuration shared by the unit tests and nbval.

nbval runs every notebook cell; cells tagged ``gpu`` need a CUDA GPU and are skipped without one, and cells
tagged ``online`` need the optional `transformers` package and the model hub (notebook 09) and are skipped otherwise.
Such cells define nothing that later cells use, so skipping them never breaks a notebook.
"""

from __future__ import annotations

import pytest


def _cell_tags(item: pytest.Item) -> list[str]:
    cell = getattr(item, "cell", None)
    if cell is None:
        return []
    return list(cell.get("metadata", {}).get("tags", []))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip notebook cells whose tags ask for hardware or network this machine lacks."""
    gpu_tagged = [item for item in items if "gpu" in _cell_tags(item)]
    if gpu_tagged:
        import torch

        if not torch.cuda.is_available():
            for item in gpu_tagged:
                item.add_marker(pytest.mark.skip(reason="cell tagged 'gpu' and no CUDA GPU is available"))
    online_tagged = [item for item in items if "online" in _cell_tags(item)]
    if online_tagged:
        from course_utils.text import pretrained_status

        ok, reason = pretrained_status()  # transformers installed and the model hub reachable (asked once)
        if not ok:
            for item in online_tagged:
                item.add_marker(pytest.mark.skip(reason=f"cell tagged 'online': {reason}"))
