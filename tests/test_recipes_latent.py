"""The latent-diffusion recipe: latents of unit variance, a denoiser that learns, guided and seeded sampling."""

import dataclasses

import pytest
import torch

from course_utils.data import load_dataset
from course_utils.guidance import ConditionalDiffusionModel
from course_utils.models import LatentVAE
from course_utils.recipes import latent

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train", limit=256, verbose=False)


@pytest.fixture(scope="module")
def vae(digits):
    settings = latent.LatentVAEConfig(latent_channels=2, channels=8, downsamples=1, images=12_800, beta=0.05, lr=5e-3)
    model, history = latent.train_latent_vae(digits, settings)
    return model, history


def test_presets_fit_both_picture_sizes():
    for data, grid, w in ((load_dataset("digits", verbose=False), (2, 4, 4), 2.0), (_mnist_like(), (2, 7, 7), 1.5)):
        vae_settings = latent.latent_vae_preset(data)
        model = latent.make_latent_vae(data.image_shape, vae_settings)
        assert model.latent_shape == grid
        denoiser_settings = latent.latent_diffusion_preset(data)
        assert denoiser_settings.guidance == w  # measured best: 28x28 latents lose variety fast above 1.5
        denoiser = latent.make_latent_diffusion(model.latent_shape, denoiser_settings)
        assert isinstance(denoiser, ConditionalDiffusionModel) and denoiser.image_shape == grid
        assert denoiser.null_label == 10 and denoiser.clip == 3.0


def _mnist_like():
    class Fake:  # only the shape matters to the presets
        image_shape = (1, 28, 28)

    return Fake()


def test_the_vae_learns_and_its_latents_get_unit_variance(digits, vae):
    model, history = vae
    assert history.epochs["reconstruction"][-1] < 0.9 * history.epochs["reconstruction"][0]
    raw = model.to_latent(digits.images, scaled=False)
    assert float(model.latent_scale) == pytest.approx(1 / raw.std().item(), rel=0.05)
    assert model.to_latent(digits.images).std().item() == pytest.approx(1.0, abs=0.05)
    again, _ = latent.train_latent_vae(
        digits, latent.LatentVAEConfig(latent_channels=2, channels=8, downsamples=1, images=12_800, beta=0.05, lr=5e-3)
    )
    assert float(again.latent_scale) == float(model.latent_scale)  # seeded: the same scale every time


def test_encoded_clouds_are_the_scaled_clouds_of_the_vae(digits, vae):
    model, _ = vae
    mu, logvar = latent.encode_latents(model, digits.images[:50], batch_size=16)
    raw_mu, raw_logvar = model.encode(digits.images[:50])
    torch.testing.assert_close(mu, raw_mu.detach() * model.latent_scale)
    torch.testing.assert_close((0.5 * logvar).exp(), (0.5 * raw_logvar.detach()).exp() * model.latent_scale)


def test_the_denoiser_learns_and_samples_are_guided_batched_and_seeded(digits, vae):
    model, _ = vae
    settings = latent.LatentDiffusionConfig(channels=(16,), timesteps=100, warmup_steps=10, images=5_120)
    denoiser, history = latent.train_latent_diffusion(digits, model, settings)
    assert history.epochs["loss"][-1] < 0.8 * history.epochs["loss"][0]
    pictures, latents = latent.sample_latent(model, denoiser, 12, w=2.0, seed=3, batch_size=5, return_latents=True)
    assert pictures.shape == (12, 1, 8, 8) and latents.shape == (12, 2, 4, 4)
    assert pictures.min() >= 0 and pictures.max() <= 1 and latents.abs().max() < 10
    torch.testing.assert_close(pictures, latent.sample_latent(model, denoiser, 12, w=2.0, seed=3, batch_size=5))
    assert not torch.equal(pictures, latent.sample_latent(model, denoiser, 12, w=2.0, seed=4))
    asked = latent.sample_latent(model, denoiser, torch.tensor([7, 7, 1]), w=0.0, seed=0)
    assert asked.shape == (3, 1, 8, 8)
    with pytest.raises(ValueError, match="positive"):
        latent.sample_latent(model, denoiser, 0)
    other = LatentVAE((1, 8, 8), latent_channels=3, channels=4, downsamples=1)
    with pytest.raises(ValueError, match="not trained together"):
        latent.sample_latent(other, denoiser, 4)
    with pytest.raises(TypeError, match="LatentVAE"):
        latent.train_latent_diffusion(digits, object(), settings)


def test_a_changed_setting_sets_the_old_denoiser_aside(digits, vae, tmp_path, capsys):
    model, _ = vae
    settings = latent.LatentDiffusionConfig(channels=(8,), timesteps=50, max_steps=2)
    path = tmp_path / "denoiser.pt"
    latent.train_latent_diffusion(digits, model, settings, checkpoint=path)
    latent.train_latent_diffusion(digits, model, dataclasses.replace(settings, label_dropout=0.2), checkpoint=path)
    assert "label_dropout" in capsys.readouterr().out and any(tmp_path.glob("denoiser.trained-*.stale.pt"))


def test_a_finished_denoiser_loads_without_encoding_the_pictures(digits, vae, tmp_path, monkeypatch):
    model, _ = vae
    encoded = []
    encode = latent.encode_latents
    monkeypatch.setattr(latent, "encode_latents", lambda *args, **kw: encoded.append(True) or encode(*args, **kw))
    settings = latent.LatentDiffusionConfig(channels=(8,), timesteps=50, max_steps=3)
    path = tmp_path / "denoiser.pt"
    trained, _ = latent.train_latent_diffusion(digits, model, settings, checkpoint=path)
    assert encoded == [True]  # once, at the first step, however many steps follow
    loaded, _ = latent.train_latent_diffusion(digits, model, settings, checkpoint=path)
    assert encoded == [True]
    for a, b in zip(trained.state_dict().values(), loaded.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_the_latent_scale_comes_from_the_first_scale_pictures(digits, monkeypatch):
    seen = []
    fit_scale = LatentVAE.fit_scale

    def counting_fit_scale(model, images):
        seen.append(len(images))
        return fit_scale(model, images)

    monkeypatch.setattr(LatentVAE, "fit_scale", counting_fit_scale)
    monkeypatch.setattr(latent, "SCALE_PICTURES", 100)
    settings = latent.LatentVAEConfig(latent_channels=2, channels=4, downsamples=1, max_steps=1)
    latent.train_latent_vae(digits, settings)
    assert seen == [100]


def test_a_denoiser_never_loads_against_another_vae(digits, tmp_path, capsys):
    vae_settings = latent.LatentVAEConfig(latent_channels=2, channels=4, downsamples=1, max_steps=2)
    first, _ = latent.train_latent_vae(digits, vae_settings, checkpoint=tmp_path / "vae.pt")
    settings = latent.LatentDiffusionConfig(channels=(8,), timesteps=50, max_steps=2)
    path = tmp_path / "denoiser.pt"
    latent.train_latent_diffusion(digits, first, settings, checkpoint=path)
    # The same VAE, loaded again from its file: the pair loads together, nothing trains.
    again, _ = latent.train_latent_vae(digits, vae_settings, checkpoint=tmp_path / "vae.pt")
    assert latent.vae_fingerprint(again) == latent.vae_fingerprint(first)
    capsys.readouterr()
    latent.train_latent_diffusion(digits, again, settings, checkpoint=path)
    assert "nothing to do" in capsys.readouterr().out
    # The VAE trains on (its budget raised): another latent space, so the old denoiser is set aside, both files named.
    other, _ = latent.train_latent_vae(
        digits, dataclasses.replace(vae_settings, max_steps=None, epochs=2), checkpoint=tmp_path / "vae.pt"
    )
    assert latent.vae_fingerprint(other) != latent.vae_fingerprint(first)
    latent.train_latent_diffusion(digits, other, settings, checkpoint=path)
    out = capsys.readouterr().out
    assert "denoiser.pt learned the latents of another VAE" in out and "vae.pt" in out.split("another VAE")[1]
    assert "does not fit" in out and len(list(tmp_path.glob("denoiser.trained-*.stale.pt"))) == 1
