"""The root conftest's skips: online cells run only when asked for, and deciding that asks the network nothing."""

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

from course_utils import text

ROOT = Path(__file__).resolve().parents[1]


def _root_conftest():
    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Cell:
    """Stands in for an nbval item: a notebook cell with tags, collecting the markers added to it."""

    def __init__(self, *tags):
        self.cell = {"metadata": {"tags": list(tags)}}
        self.markers = []

    def add_marker(self, marker):
        self.markers.append(marker)


def test_online_cells_are_skipped_without_asking_the_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("collecting the tests asked the network")

    monkeypatch.setattr(text, "_hub_answers", no_network)
    monkeypatch.setattr(text, "pretrained_status", no_network)
    monkeypatch.delenv("COURSE_ONLINE", raising=False)
    online, plain = _Cell("online"), _Cell()
    _root_conftest().pytest_collection_modifyitems(SimpleNamespace(), [online, plain])
    assert [m.name for m in online.markers] == ["skip"] and "COURSE_ONLINE=1" in online.markers[0].kwargs["reason"]
    assert plain.markers == []


@pytest.mark.parametrize("value", ["1", "yes"])
def test_online_cells_run_when_asked_for(monkeypatch, value):
    monkeypatch.setenv("COURSE_ONLINE", value)
    online = _Cell("online")
    _root_conftest().pytest_collection_modifyitems(SimpleNamespace(), [online])
    assert online.markers == []
