"""The results records: what each notebook measured, kept per data set and profile."""

import json

import pytest
import torch

from course_utils import results


def test_results_are_recorded_as_json(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path))
    path = results.record("vae", {"fid": torch.tensor(3.5), "n": 2, "bad": float("nan"), "data": "digits"})
    saved = json.loads(path.read_text())
    assert saved == {"kind": "vae", "profile": "fast", "fid": 3.5, "n": 2, "bad": None, "data": "digits"}
    assert results.load_all() == {"vae": saved}
    with pytest.raises(TypeError, match="number, string or list"):
        results.record("vae", {"model": object()})


def test_a_record_counts_only_for_its_data_set_and_profile(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv("COURSE_PROFILE", "fast")
    results.record("vae", {"dataset": "digits 8x8", "fid": 3.5})
    assert results.recorded("vae", "digits 8x8")["fid"] == 3.5
    assert results.recorded("vae", "mnist 28x28") == {}  # other data
    assert results.recorded("gan", "digits 8x8") == {}  # nothing recorded
    monkeypatch.setenv("COURSE_PROFILE", "full")
    assert results.recorded("vae", "digits 8x8") == {}  # another profile
