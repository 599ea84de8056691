"""Tests for the pretrained-weights switch: packing, checksums, installing, and what the shipped files hold."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from course_utils import checkpoints, pretrained
from course_utils.data import ImageData
from course_utils.recipes import autoencoder as ae_recipe

pytestmark = pytest.mark.usefixtures("one_thread")


def _digits(n: int = 64) -> ImageData:
    g = torch.Generator().manual_seed(0)
    return ImageData(torch.rand(n, 1, 8, 8, generator=g), torch.arange(n) % 10, "digits", "random 8x8 pictures")


SETTINGS = ae_recipe.VAEConfig(latent_dim=2, width=16, epochs=2, batch_size=16)


def _finished_vae(folder, monkeypatch):
    """A finished VAE run saved where the notebooks keep it (full profile), and its weights."""
    monkeypatch.setenv("COURSE_PROFILE", "full")
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(folder))
    path = checkpoints.checkpoint_path("vae", _digits())
    model, _ = ae_recipe.train_vae(_digits(), SETTINGS, checkpoint=path)
    return path, model


def test_the_switch_reads_on_and_off_and_refuses_anything_else(monkeypatch):
    for value, expected in [("1", True), ("yes", True), ("On", True), ("0", False), ("", False), ("no", False)]:
        monkeypatch.setenv("COURSE_PRETRAINED", value)
        assert pretrained.enabled() is expected
    monkeypatch.delenv("COURSE_PRETRAINED")
    assert pretrained.enabled() is False
    monkeypatch.setenv("COURSE_PRETRAINED", "maybe")
    with pytest.raises(ValueError, match="neither on"):
        pretrained.enabled()


def test_a_name_says_model_data_size_and_profile():
    assert pretrained.describe_name("latent_vae-mnist-test-split-28x28-full.pt") == {
        "model": "latent_vae",
        "dataset": "mnist-test-split",
        "size": "28x28",
        "profile": "full",
    }
    assert pretrained.describe_name("charmodel-roman-plays-h256-full.pt")["dataset"] == "roman-plays"
    assert pretrained.describe_name("gan-digits-8x8-full-snapshots.pt")["part"] == "snapshots"
    with pytest.raises(ValueError, match="not a course checkpoint name"):
        pretrained.describe_name("my_model.pt")


def test_pack_empties_the_optimizer_and_a_packed_model_loads_without_training(tmp_path, monkeypatch, capsys):
    path, model = _finished_vae(tmp_path / "trained", monkeypatch)
    weights = tmp_path / "weights"
    entry = pretrained.pack(path, weights)
    pretrained.write_manifest({path.name: entry}, weights)
    assert entry["sha256"] == pretrained.sha256_of(weights / path.name) and entry["dataset"] == "digits"
    assert entry["bytes"] < path.stat().st_size  # Adam's moments are gone
    payload = torch.load(weights / path.name, weights_only=True)
    assert payload["modules"]["optimizer"]["state"]["state"] == {}

    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path / "student"))
    target = tmp_path / "student" / path.name
    assert pretrained.install(target, weights) is True
    assert "Pretrained: loading the course's finished vae (trained on digits, full profile)" in capsys.readouterr().out
    loaded, history = ae_recipe.train_vae(_digits(), SETTINGS, checkpoint=target)
    assert "nothing to do" in capsys.readouterr().out and len(history.epochs["loss"]) == 2
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # Other settings never load it silently: the file is set aside, loudly, and the model trains.
    # Training on from shipped weights says that the optimizer starts afresh (the file keeps no optimizer state).
    ae_recipe.train_vae(_digits(), dataclasses.replace(SETTINGS, epochs=3), checkpoint=target)
    assert "the optimizers start afresh" in capsys.readouterr().out
    ae_recipe.train_vae(_digits(), dataclasses.replace(SETTINGS, width=8), checkpoint=target)
    assert "width=16 in the file, 8 now" in capsys.readouterr().out


def test_a_damaged_file_is_refused_and_never_copied(tmp_path, monkeypatch):
    path, _ = _finished_vae(tmp_path / "trained", monkeypatch)
    weights = tmp_path / "weights"
    pretrained.write_manifest({path.name: pretrained.pack(path, weights)}, weights)
    data = bytearray((weights / path.name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (weights / path.name).write_bytes(bytes(data))
    target = tmp_path / "student" / path.name
    with pytest.raises(pretrained.PretrainedWeightsError, match="damaged or was changed"):
        pretrained.install(target, weights)
    assert not target.exists()
    (weights / path.name).unlink()
    with pytest.raises(pretrained.PretrainedWeightsError, match="missing"):
        pretrained.install(target, weights)


def test_a_companion_file_comes_with_its_checkpoint(tmp_path, monkeypatch):
    path, _ = _finished_vae(tmp_path / "trained", monkeypatch)
    companion = path.with_name(path.stem + "-snapshots.pt")
    torch.save([(1, torch.ones(2, 1, 8, 8))], companion)
    weights = tmp_path / "weights"
    pretrained.write_manifest({p.name: pretrained.pack(p, weights) for p in (path, companion)}, weights)
    target = tmp_path / "student" / path.name
    assert pretrained.install(target, weights) and torch.equal(
        torch.load(target.with_name(companion.name), weights_only=True)[0][1], torch.ones(2, 1, 8, 8)
    )


def test_other_data_gets_no_weights_and_a_students_own_model_is_kept(tmp_path, monkeypatch, capsys):
    path, _ = _finished_vae(tmp_path / "trained", monkeypatch)
    weights = tmp_path / "weights"
    pretrained.write_manifest({path.name: pretrained.pack(path, weights)}, weights)
    other = tmp_path / "student" / "vae-mnist-28x28-full.pt"
    assert pretrained.install(other, weights) is False and not other.exists()
    assert "ships no vae-mnist-28x28-full.pt" in capsys.readouterr().out
    assert pretrained.install(path, weights) is False  # already there: the student's own run stays


def test_checkpoint_path_installs_the_shipped_model_only_when_the_switch_is_on(tmp_path, monkeypatch):
    path, _ = _finished_vae(tmp_path / "trained", monkeypatch)
    weights = tmp_path / "weights"
    pretrained.write_manifest({path.name: pretrained.pack(path, weights)}, weights)
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", weights)
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path / "student"))
    monkeypatch.delenv("COURSE_PRETRAINED", raising=False)
    assert not checkpoints.checkpoint_path("vae", _digits()).exists()
    monkeypatch.setenv("COURSE_PRETRAINED", "1")
    assert checkpoints.checkpoint_path("vae", _digits()).exists()


def test_every_shipped_file_matches_its_checksum_and_the_budget():
    entries = pretrained.manifest()
    assert entries, "no pretrained weights are shipped: run `make pretrained`"
    total = 0
    for name, entry in entries.items():
        path = pretrained.WEIGHTS_DIR / name
        assert path.exists(), f"{name} is in the manifest but not shipped"
        assert pretrained.sha256_of(path) == entry["sha256"], f"{name} does not match its recorded SHA-256"
        assert entry["profile"] == "full" and entry == {**entry, **pretrained.describe_name(name)}
        total += path.stat().st_size
    assert total < 20 * 1024 * 1024, f"the pretrained weights weigh {total / 1e6:.1f} MB, over the 20 MB budget"
    listed = {p.name for p in pretrained.WEIGHTS_DIR.glob("*.pt")}
    assert listed == set(entries), f"files without a checksum: {sorted(listed - set(entries))}"


def test_the_shipped_pipelines_load_whole_with_nothing_trained(tmp_path, monkeypatch, capsys):
    from course_utils.data import load_dataset
    from course_utils.recipes import gan, latent

    monkeypatch.setenv("COURSE_PROFILE", "full")
    monkeypatch.setenv("COURSE_PRETRAINED", "1")
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path))
    digits = load_dataset("digits", "train", verbose=False)
    # The latent pair: the shipped denoiser records the fingerprint of the shipped VAE, recomputed here from its file.
    vae, _ = latent.train_latent_vae(
        digits, latent.latent_vae_preset(digits), checkpoint=checkpoints.checkpoint_path("latent_vae", digits)
    )
    path = checkpoints.checkpoint_path("latent_diffusion", digits)
    saved = torch.load(path, weights_only=True)["extra"]["settings"]
    assert saved["vae"] == latent.vae_fingerprint(vae)
    latent.train_latent_diffusion(digits, vae, latent.latent_diffusion_preset(digits), checkpoint=path)
    # The GAN: its snapshots travel inside its checkpoint.
    snapshots: list = []
    gan.train_gan(
        digits, gan.gan_preset(digits), checkpoint=checkpoints.checkpoint_path("gan", digits), snapshots=snapshots
    )
    out = capsys.readouterr().out
    assert out.count("nothing to do") == 3 and "does not fit" not in out, out
    assert len(snapshots) == torch.load(tmp_path / "gan-digits-8x8-full.pt", weights_only=True)["extra"]["epoch"]
    assert not list(tmp_path.glob("*.stale.pt"))
