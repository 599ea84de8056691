import pytest
import torch
from torch import nn

from course_utils import checkpoints
from course_utils.data import load_dataset


def test_round_trip_restores_weights_optimizer_and_extra(tmp_path):
    model = nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    path = checkpoints.save_checkpoint(tmp_path / "m.pt", {"model": model, "optimizer": optimizer}, epoch=3, note="x")
    fresh = nn.Linear(3, 2)
    fresh_opt = torch.optim.Adam(fresh.parameters())
    extra = checkpoints.load_checkpoint(path, {"model": fresh, "optimizer": fresh_opt})
    assert extra == {"epoch": 3, "note": "x"}
    assert torch.equal(fresh.weight, model.weight)
    assert fresh_opt.state_dict()["state"][0]["step"] == 1


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    checkpoints.save_checkpoint(path, {"model": nn.Linear(2, 2)})
    before = path.read_bytes()

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        checkpoints.save_checkpoint(path, {"model": nn.Linear(2, 2)})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_shape_mismatch_names_the_parameter(tmp_path):
    path = checkpoints.save_checkpoint(tmp_path / "m.pt", {"model": nn.Linear(3, 2)})
    with pytest.raises(
        checkpoints.CheckpointMismatchError, match=r"'weight' has shape \(2, 3\) in the file but \(4, 3\)"
    ):
        checkpoints.load_checkpoint(path, {"model": nn.Linear(3, 4)})


def test_architecture_and_class_mismatch_are_refused(tmp_path):
    path = checkpoints.save_checkpoint(tmp_path / "m.pt", {"model": nn.Sequential(nn.Linear(3, 2))})
    with pytest.raises(checkpoints.CheckpointMismatchError, match="different architecture"):
        checkpoints.load_checkpoint(path, {"model": nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))})
    with pytest.raises(checkpoints.CheckpointMismatchError, match="saved from a Sequential, not a Linear"):
        checkpoints.load_checkpoint(path, {"model": nn.Linear(3, 2)})
    with pytest.raises(checkpoints.CheckpointMismatchError, match="no module named 'ema'"):
        checkpoints.load_checkpoint(path, {"ema": nn.Sequential(nn.Linear(3, 2))})


def test_loading_uses_weights_only(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "modules": {}, "extra": {"f": print}}, path)  # a pickled function
    with pytest.raises(checkpoints.CheckpointMismatchError, match="not a readable checkpoint"):
        checkpoints.load_checkpoint(path, {})


def test_checkpoint_path_names_kind_data_size_and_profile():
    digits = load_dataset("digits", verbose=False)
    path = checkpoints.checkpoint_path("vae", digits)
    assert path.name == "vae-digits-8x8-fast.pt"
    with pytest.raises(ValueError):
        checkpoints.checkpoint_path("../evil", digits)
