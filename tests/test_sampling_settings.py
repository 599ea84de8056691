"""Sampling settings never retrain: a finished model loads with other sampler steps, eta, guidance, clip, precision or
snapshot count, trains 0 steps, and samples the new way. Settings that shape the weights still never load."""

import dataclasses

import pytest
import torch

from course_utils import diffusion
from course_utils.data import load_dataset
from course_utils.recipes import diffusion as diffusion_recipe
from course_utils.recipes import flow as flow_recipe
from course_utils.recipes import gan, guided, latent

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train", limit=64, verbose=False)


UNET = {"channels": (8,), "timesteps": 20, "warmup_steps": 2, "batch_size": 32}
SAMPLER = {"sample_steps": 4, "sample_eta": 1.0, "bf16": False}
OTHER_SAMPLER = {"sample_steps": 5, "sample_eta": 0.0, "bf16": True}


def _train_twice(recipe, data, settings, changed, path, capsys):
    """Train to the end, then call again with ``changed`` settings: return both runs' models and histories, and
    what the second call printed."""
    first, first_history = recipe(data, settings, checkpoint=path)
    capsys.readouterr()
    second, second_history = recipe(data, dataclasses.replace(settings, **changed), checkpoint=path)
    out = capsys.readouterr().out
    assert "nothing to do" in out and "does not fit" not in out, out
    assert second_history.steps == first_history.steps  # 0 steps of training
    assert not list(path.parent.glob("*.stale.pt"))
    return first, second


def test_diffusion_samples_with_other_steps_eta_and_precision_untrained_again(digits, tmp_path, capsys):
    settings = diffusion_recipe.DiffusionConfig(**UNET, **SAMPLER)
    path = tmp_path / "diffusion.pt"
    first, second = _train_twice(diffusion_recipe.train_diffusion, digits, settings, OTHER_SAMPLER, path, capsys)
    assert (second.sample_steps, second.sample_eta, second.bf16) == (5, 0.0, True)
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # A setting that shapes the weights still sets the file aside.
    diffusion_recipe.train_diffusion(digits, dataclasses.replace(settings, timesteps=30), checkpoint=path)
    assert "timesteps=20 in the file, 30 now" in capsys.readouterr().out


def test_guided_diffusion_samples_with_another_clip_and_sampler_untrained_again(digits, tmp_path, capsys):
    settings = guided.GuidedDiffusionConfig(**UNET, **SAMPLER)
    path = tmp_path / "guided.pt"
    _, second = _train_twice(
        guided.train_guided_diffusion, digits, settings, {**OTHER_SAMPLER, "clip": 2.0}, path, capsys
    )
    assert (second.sample_steps, second.sample_eta, second.clip) == (5, 0.0, 2.0)


def test_latent_diffusion_samples_with_another_guidance_and_sampler_untrained_again(digits, tmp_path, capsys):
    vae_settings = latent.LatentVAEConfig(latent_channels=2, channels=4, downsamples=1, max_steps=1)
    vae, _ = latent.train_latent_vae(digits, vae_settings)

    def recipe(data, settings, checkpoint):
        return latent.train_latent_diffusion(data, vae, settings, checkpoint=checkpoint)

    settings = latent.LatentDiffusionConfig(**UNET, **SAMPLER)
    changed = {**OTHER_SAMPLER, "clip": 2.5, "guidance": 1.25}
    _, second = _train_twice(recipe, digits, settings, changed, tmp_path / "latent.pt", capsys)
    assert (second.sample_steps, second.clip) == (5, 2.5)


def test_a_gan_keeps_another_number_of_snapshots_untrained_again(digits, tmp_path, capsys):
    settings = gan.GANConfig(kind="mlp", latent_dim=4, batch_size=32, n_snapshot=4, epochs=2)
    path = tmp_path / "gan.pt"
    _train_twice(gan.train_gan, digits, settings, {"n_snapshot": 8}, path, capsys)
    snapshots: list = []
    gan.train_gan(digits, dataclasses.replace(settings, n_snapshot=8), checkpoint=path, snapshots=snapshots)
    assert [(epoch, len(pictures)) for epoch, pictures in snapshots] == [(1, 4), (2, 4)]  # the run's own snapshots


def test_a_flow_model_samples_with_other_steps_solver_and_precision_untrained_again(digits, tmp_path, capsys):
    settings = flow_recipe.FlowConfig(channels=(8,), warmup_steps=2, batch_size=32, sample_steps=4, bf16=False)
    path = tmp_path / "flow.pt"
    changed = {"sample_steps": 7, "solver": "euler", "bf16": True}
    first, second = _train_twice(flow_recipe.train_flow, digits, settings, changed, path, capsys)
    assert (second.sample_steps, second.solver, second.bf16) == (7, "euler", True)
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_every_sampling_setting_is_left_out_of_the_comparison():
    sampling = {"sample_steps", "sample_eta", "bf16", "clip", "guidance", "n_snapshot", "solver"}
    for settings in (
        flow_recipe.FlowConfig(),
        diffusion_recipe.DiffusionConfig(),
        guided.GuidedDiffusionConfig(),
        latent.LatentDiffusionConfig(),
        gan.GANConfig(),
    ):
        compared = set(settings.model_settings())
        assert not compared & sampling and compared, type(settings).__name__


def test_one_default_for_eta_and_for_the_guidance_scale():
    import inspect

    from course_utils import guidance

    def default(function, name):
        return inspect.signature(function).parameters[name].default

    assert diffusion_recipe.DiffusionConfig().sample_eta == diffusion.SAMPLE_ETA
    etas = [default(f, "eta") for f in (diffusion.ddim_sample, guidance.guided_ddim_sample)]
    etas += [default(c.__init__, "sample_eta") for c in (diffusion.DiffusionModel, guidance.ConditionalDiffusionModel)]
    assert etas == [diffusion.SAMPLE_ETA] * 4
    assert latent.LatentDiffusionConfig().guidance == guided.GUIDANCE == guidance.GUIDANCE
    scales = [
        default(guidance.guided_ddim_sample, "w"),
        default(guidance.ConditionalDiffusionModel.sample_classes, "w"),
    ]
    scales += [default(guided.sample_guided, "w"), default(latent.sample_latent, "w")]
    assert scales == [guidance.GUIDANCE] * 4


def test_the_same_seed_gives_the_same_pictures_whatever_the_batch_size():
    settings = guided.GuidedDiffusionConfig(**UNET, **SAMPLER)  # eta = 1: fresh noise at every step
    torch.manual_seed(0)
    plain = diffusion_recipe.make_diffusion((1, 8, 8), settings)
    assert plain.sample_eta == 1.0
    a, b = (diffusion_recipe.sample_diffusion(plain, 7, seed=3, batch_size=size) for size in (250, 3))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    told = guided.make_guided_diffusion((1, 8, 8), settings)
    a, b = (guided.sample_guided(told, range(10), n=7, seed=3, batch_size=size) for size in (250, 3))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    vae = latent.make_latent_vae((1, 8, 8), latent.LatentVAEConfig(latent_channels=2, channels=4, downsamples=1))
    denoiser = latent.make_latent_diffusion(vae.latent_shape, latent.LatentDiffusionConfig(**UNET, **SAMPLER))
    a, b = (latent.sample_latent(vae, denoiser, 7, seed=3, batch_size=size) for size in (500, 3))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
