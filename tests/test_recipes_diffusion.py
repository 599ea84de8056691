"""Tests for the diffusion recipe: EMA, the step, training, the sampler."""

from dataclasses import replace

import pytest
import torch
from helpers import blobs  # two classes of tiny squares, shared with the guided recipe's tests

from course_utils import checkpoints, diffusion
from course_utils.recipes.diffusion import (
    EMA,
    DiffusionConfig,
    diffusion_step,
    make_diffusion,
    sample_diffusion,
    train_diffusion,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_ema_follows_the_weights_with_the_right_decay():
    model = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)  # first update: decay min(0.9, 1/10) = 0.1, so 90% of the way
    assert torch.allclose(ema.model.weight, torch.full((1, 2), 0.9))
    for _ in range(200):
        ema.update(model)
    assert torch.allclose(ema.model.weight, torch.ones(1, 2), atol=1e-6)
    assert not ema.model.weight.requires_grad
    with pytest.raises(ValueError, match="decay"):
        EMA(model, decay=1.0)


def test_diffusion_step_lowers_the_loss():
    torch.manual_seed(0)
    data = blobs()
    model = make_diffusion((1, 8, 8), DiffusionConfig(channels=(8, 16), timesteps=50, sample_steps=5, bf16=False))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    ema = EMA(model)
    g = torch.Generator().manual_seed(0)
    losses = [diffusion_step(model, optimizer, data.images, ema, generator=g)["loss"] for _ in range(40)]
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:5]) / 5
    assert ema.updates == 40


def test_train_sample_and_resume(tmp_path):
    data = blobs()
    path = checkpoints.checkpoint_path("diffusion", data)
    settings = DiffusionConfig(channels=(8, 16), timesteps=50, sample_steps=5, batch_size=32, bf16=False, epochs=2)
    model, history = train_diffusion(data, settings, checkpoint=path)
    assert isinstance(model, diffusion.DiffusionModel) and not model.training
    assert len(history.steps["loss"]) == 4 and len(history.epochs["loss"]) == 2 and path.exists()
    samples = sample_diffusion(model, 7, seed=1)
    assert samples.shape == (7, 1, 8, 8) and samples.min() >= 0 and samples.max() <= 1
    assert torch.equal(samples, sample_diffusion(model, 7, seed=1))
    assert not torch.equal(samples, sample_diffusion(model, 7, seed=2))
    # eta = 0 (deterministic DDIM) walks another path than the default eta = 1, and is repeatable too.
    deterministic = sample_diffusion(model, 7, seed=1, eta=0.0)
    assert model.sample_eta == 1.0 and not torch.equal(deterministic, samples)
    assert torch.equal(deterministic, sample_diffusion(model, 7, seed=1, eta=0.0))
    # Made a few at a time (less memory): with eta = 0 the pictures are the same as made all at once (only the
    # starting noise is drawn, in the same order); with eta > 0 each chunk's fresh noise comes in another order, so
    # the pictures differ, yet the same seed and batch size still repeat them.
    torch.testing.assert_close(sample_diffusion(model, 7, seed=1, eta=0.0, batch_size=3), deterministic)
    chunked = sample_diffusion(model, 7, seed=1, batch_size=3)
    assert chunked.shape == (7, 1, 8, 8) and torch.equal(chunked, sample_diffusion(model, 7, seed=1, batch_size=3))
    # A second call loads the finished run instead of training again: same weights, same pictures.
    again, history2 = train_diffusion(data, settings, checkpoint=path)
    assert torch.equal(sample_diffusion(again, 7, seed=1), samples) and history2.steps == history.steps
    # Asking for more epochs resumes after the saved ones.
    _, history3 = train_diffusion(data, replace(settings, epochs=3), checkpoint=path)
    assert len(history3.epochs["loss"]) == 3 and history3.steps["loss"][:4] == history.steps["loss"]


def test_sample_diffusion_explains_wrong_inputs():
    with pytest.raises(TypeError, match="DiffusionModel"):
        sample_diffusion(torch.nn.Linear(2, 2), 4)
    model = make_diffusion((1, 8, 8), DiffusionConfig(channels=(8, 16), timesteps=20, sample_steps=4, bf16=False))
    with pytest.raises(ValueError, match="positive"):
        sample_diffusion(model, 0)
