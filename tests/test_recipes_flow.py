"""Tests for the flow-matching recipe: notebook 05's budget and U-Net, train_denoiser with the velocity loss."""

import inspect
from dataclasses import replace

import pytest
import torch
from helpers import blobs  # two classes of tiny squares, shared with the diffusion recipes' tests

from course_utils import checkpoints, flow
from course_utils.data import to_signed
from course_utils.recipes import diffusion as diffusion_recipe
from course_utils.recipes import flow as flow_recipe

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = flow_recipe.FlowConfig(channels=(8, 16), sample_steps=3, batch_size=32, bf16=False, warmup_steps=4)


@pytest.mark.parametrize("profile", ["full", "fast"])
def test_the_flow_model_gets_notebook_05s_unet_pictures_and_time_budget(profile, monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", profile)
    data = blobs()
    ours, theirs = flow_recipe.flow_preset(data), diffusion_recipe.diffusion_preset(data)
    for name in ("channels", "images", "max_seconds", "batch_size", "lr", "warmup_steps", "ema_decay", "seed"):
        assert getattr(ours, name) == getattr(theirs, name), name
    guided = flow_recipe.guided_flow_preset(data)
    assert guided.num_classes == 10 and guided.label_dropout == 0.1 and guided.channels == theirs.channels


def test_train_denoiser_minimises_the_velocity_loss_it_is_given():
    # The output layer of the U-Net starts at zero: the first loss is E||eps - x0||^2 = 1 + mean(x0^2) for the flow
    # loss, where diffusion's loss would start at E||eps||^2 = 1.
    data = blobs()
    model, history = flow_recipe.train_flow(data, replace(TINY, epochs=6))
    losses = history.steps["loss"]
    assert losses[0] == pytest.approx(1 + to_signed(data.images).pow(2).mean().item(), abs=0.08)
    assert sum(losses[-3:]) / 3 < 0.8 * losses[0]
    assert isinstance(model, flow.FlowModel) and not model.training


def test_training_draws_times_as_the_settings_say(monkeypatch):
    asked = []
    draw = flow.draw_times

    def recording(n, generator=None, distribution="uniform", mean=0.0):
        asked.append((distribution, mean))
        return draw(n, generator, distribution, mean)

    monkeypatch.setattr(flow, "draw_times", recording)
    flow_recipe.train_flow(blobs(), replace(TINY, epochs=1))
    assert asked and set(asked) == {("logit-normal", -0.5)}  # the recipe's default, as Stable Diffusion 3 trains
    asked.clear()
    flow_recipe.train_flow(blobs(), replace(TINY, epochs=1, times="uniform"))
    assert asked and {distribution for distribution, _ in asked} == {"uniform"}
    with pytest.raises(ValueError, match="times must be one of"):
        replace(TINY, times="beta")


def test_the_recipe_has_no_training_loop_of_its_own():
    source = inspect.getsource(flow_recipe)
    assert (
        "train_denoiser(" in source and "fit(" not in source and "optim." not in source and ".backward(" not in source
    )


def test_velocity_loss_hides_the_labels_it_is_told_to_hide():
    seen = []

    class Recorder(torch.nn.Module):
        null_label = 10

        def forward(self, x, t, labels=None):
            seen.append(labels)
            return torch.zeros_like(x)

    x0, labels = torch.zeros(64, 1, 2, 2), torch.arange(64) % 10
    flow_recipe.velocity_loss(Recorder(), x0, labels, 1.0, torch.Generator().manual_seed(0))
    flow_recipe.velocity_loss(Recorder(), x0, labels, 0.0, torch.Generator().manual_seed(0))
    flow_recipe.velocity_loss(Recorder(), x0, None, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(seen[0], torch.full((64,), 10)) and torch.equal(seen[1], labels) and seen[2] is None


def test_train_load_and_sample(tmp_path):
    data = blobs()
    path = checkpoints.checkpoint_path("flow", data)
    settings = replace(TINY, epochs=2)
    assert flow_recipe.load_flow(data, settings) is None
    model, _ = flow_recipe.train_flow(data, settings, checkpoint=path)
    loaded, history = flow_recipe.load_flow(data, settings)
    assert len(history.epochs["loss"]) == 2
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert flow_recipe.load_flow(data, replace(settings, channels=(8, 8))) is None  # other weights: none

    samples = flow_recipe.sample_flow(model, 7, seed=1)
    assert samples.shape == (7, 1, 8, 8) and samples.min() >= 0 and samples.max() <= 1
    assert torch.equal(samples, flow_recipe.sample_flow(model, 7, seed=1))
    assert not torch.equal(samples, flow_recipe.sample_flow(model, 7, seed=2))
    euler = flow_recipe.sample_flow(model, 7, seed=1, steps=3, solver="euler")
    assert not torch.equal(samples, euler)  # the model's solver is Heun
    torch.testing.assert_close(euler, flow_recipe.sample_flow(model, 7, seed=1, solver="euler", batch_size=2))
    with pytest.raises(TypeError, match="FlowModel"):
        flow_recipe.sample_flow(torch.nn.Linear(2, 2), 3)
    with pytest.raises(ValueError, match="positive"):
        flow_recipe.sample_flow(model, 0)
    with pytest.raises(ValueError, match="solver"):
        replace(TINY, solver="rk45")


def test_guided_flow_samples_each_class_and_do_not_depend_on_the_batch_size():
    data = blobs()
    model, _ = flow_recipe.train_flow(data, replace(TINY, num_classes=2, epochs=1))
    a = flow_recipe.sample_flow(model, 5, seed=3, labels=[0, 1], w=2.0)
    b = flow_recipe.sample_flow(model, 5, seed=3, labels=[0, 1], w=2.0, batch_size=2)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    assert not torch.allclose(a, flow_recipe.sample_flow(model, 5, seed=3, labels=[0, 1], w=0.0))
