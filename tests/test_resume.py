"""A run stopped in the middle of an epoch and resumed ends exactly where an uninterrupted run ends.

For every model family: N epochs in one go, and the same N epochs stopped by ``max_steps`` mid-epoch
then resumed from the checkpoint, give bitwise-equal weights (``torch.equal``) and identical losses, on
the CPU with one thread (the same operations in the same order give the same bits). This holds because
the checkpoint keeps the optimizers, the EMA with its update count, the shuffling and noise generators
and PyTorch's global generator, and the batch the epoch had reached.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from course_utils import critic, text
from course_utils.data import load_dataset
from course_utils.models import LatentVAE
from course_utils.recipes import autoencoder, diffusion, flow, gan, guided, latent
from course_utils.recipes import text as text_recipe

pytestmark = pytest.mark.usefixtures("one_thread")


def _digits():
    return load_dataset("digits", limit=96, verbose=False)  # 3 batches of 32 per epoch


def _text():
    body = "abcd efg\nhij klm\n" * 40
    return text.TextData("tiny", "a test pattern", body, body[:120], text.Vocab.from_text(body))


def _train_latent_diffusion(data, settings, **kwargs):
    torch.manual_seed(0)  # the same first stage for every call: a small untrained VAE, its latents scaled
    vae = LatentVAE(data.image_shape, latent_channels=2, channels=4, downsamples=1)
    vae.fit_scale(data.images)
    return latent.train_latent_diffusion(data, vae, settings, **kwargs)


# family: (data, recipe, settings for 3 epochs of 3 batches)
FAMILIES = {
    "autoencoder": (_digits, autoencoder.train_autoencoder, autoencoder.AutoencoderConfig(latent_dim=3, width=8)),
    "denoising_autoencoder": (
        _digits,
        autoencoder.train_autoencoder,
        autoencoder.AutoencoderConfig(kind="conv", latent_dim=3, width=4, noise_std=0.2, mask_size=2),
    ),
    "vae": (_digits, autoencoder.train_vae, autoencoder.VAEConfig(latent_dim=3, width=8)),
    "cvae": (_digits, autoencoder.train_vae, autoencoder.VAEConfig(kind="cvae", latent_dim=3, width=8)),
    "gan": (_digits, gan.train_gan, gan.GANConfig(latent_dim=8, channels=4, n_snapshot=4)),
    "diffusion": (
        _digits,
        diffusion.train_diffusion,
        diffusion.DiffusionConfig(channels=(8, 16), timesteps=50, sample_steps=5, warmup_steps=4, bf16=False),
    ),
    "guided diffusion": (
        _digits,
        guided.train_guided_diffusion,
        guided.GuidedDiffusionConfig(channels=(8, 16), timesteps=50, sample_steps=5, warmup_steps=4, bf16=False),
    ),
    "flow": (_digits, flow.train_flow, flow.FlowConfig(channels=(8, 16), sample_steps=3, warmup_steps=4, bf16=False)),
    "guided flow": (
        _digits,
        flow.train_flow,
        flow.FlowConfig(channels=(8, 16), num_classes=10, sample_steps=3, warmup_steps=4, bf16=False),
    ),
    "latent_vae": (
        _digits,
        latent.train_latent_vae,
        latent.LatentVAEConfig(latent_channels=2, channels=4, downsamples=1),
    ),
    "latent_diffusion": (
        _digits,
        _train_latent_diffusion,
        latent.LatentDiffusionConfig(channels=(8,), timesteps=50, sample_steps=5, warmup_steps=4),
    ),
    "text": (_text, text_recipe.train_charmodel, text_recipe.CharModelConfig(seq_len=8, embed_dim=4, hidden_size=8)),
    "critic": (_digits, critic.train_critic, critic.CriticConfig()),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_a_resumed_run_equals_an_uninterrupted_one(family, tmp_path, capsys):
    make_data, recipe, settings = FAMILIES[family]
    data = make_data()
    batch_size = 32 if family != "text" else -(-len(text.make_windows(data.train_ids, 8)) // 3)  # 3 batches an epoch
    settings = dataclasses.replace(settings, batch_size=batch_size, epochs=3, seed=1)

    straight, straight_history = recipe(data, settings)

    path = tmp_path / f"{family}.pt"
    recipe(data, dataclasses.replace(settings, max_steps=4), checkpoint=path)  # stops after batch 1 of epoch 2
    assert "resumes mid-epoch" in capsys.readouterr().out
    resumed, resumed_history = recipe(data, settings, checkpoint=path)
    assert "epoch 2 of 3 goes on at batch 2" in capsys.readouterr().out

    assert resumed_history.steps == straight_history.steps and resumed_history.epochs == straight_history.epochs
    assert len(next(iter(straight_history.steps.values()))) == 9
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"{family}: {name} differs after the resume"
