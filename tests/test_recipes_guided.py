"""Tests for the guided-diffusion recipe (notebook 06): settings, the step, training, sampling with guidance."""

from dataclasses import replace

import pytest
import torch
from helpers import blobs  # two classes of tiny squares, shared with the diffusion recipe's tests

from course_utils import checkpoints, guidance
from course_utils.data import ImageData, to_signed
from course_utils.recipes import diffusion as diffusion_recipe
from course_utils.recipes.guided import (
    GUIDANCE,
    GuidedDiffusionConfig,
    guided_preset,
    make_guided_diffusion,
    sample_guided,
    train_guided_diffusion,
)

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = GuidedDiffusionConfig(
    channels=(8, 16), timesteps=50, sample_steps=5, warmup_steps=4, batch_size=32, bf16=False, num_classes=2
)


def test_settings_are_checked_and_the_preset_is_notebook_05s_model_told_the_digit():
    preset = guided_preset(blobs())
    unconditional = diffusion_recipe.diffusion_preset(blobs())
    assert preset.num_classes == 10 and preset.label_dropout == 0.1
    assert (preset.channels, preset.timesteps, preset.lr) == (
        unconditional.channels,
        unconditional.timesteps,
        unconditional.lr,
    )
    assert "label_dropout" in preset.model_settings() and "images" not in preset.model_settings()
    with pytest.raises(ValueError, match="label_dropout"):
        GuidedDiffusionConfig(label_dropout=1.0)
    with pytest.raises(ValueError, match="num_classes"):
        GuidedDiffusionConfig(num_classes=0)
    with pytest.raises(ValueError, match="num_classes is 2"):
        train_guided_diffusion(ImageData(torch.zeros(4, 1, 8, 8), torch.tensor([0, 1, 2, 3]), "digits", "x"), TINY)


def test_the_model_is_a_conditional_unet_with_a_no_label_token():
    model = make_guided_diffusion((1, 8, 8), TINY)
    assert isinstance(model, guidance.ConditionalDiffusionModel) and model.null_label == 2
    assert model.net.label_embedding.num_embeddings == 3 and model.clip == 1.0


def test_a_labelled_denoiser_step_lowers_the_loss_and_hides_labels_with_the_generator():
    torch.manual_seed(0)
    data = blobs()
    model = make_guided_diffusion((1, 8, 8), TINY)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    ema = diffusion_recipe.EMA(model)
    g = torch.Generator().manual_seed(0)
    x0 = to_signed(data.images)
    step = diffusion_recipe.denoiser_step
    losses = [step(model, optimizer, x0, ema, g, data.labels, label_dropout=0.1)["loss"] for _ in range(40)]
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:5]) / 5 and ema.updates == 40
    # The labels really reach the network: the same step with other labels gives another loss.
    state = torch.Generator().manual_seed(5).get_state()
    model_copy = make_guided_diffusion((1, 8, 8), TINY)
    model_copy.load_state_dict(model.state_dict())
    opt = torch.optim.SGD(model_copy.parameters(), lr=0.0)
    same = step(model_copy, opt, x0, None, torch.Generator().set_state(state), data.labels)
    flipped = 1 - data.labels
    other = step(model_copy, opt, x0, None, torch.Generator().set_state(state), flipped)
    assert same["loss"] != other["loss"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data = blobs(128)
    path = tmp_path_factory.mktemp("guided") / "guided.pt"
    settings = replace(TINY, epochs=40, lr=3e-3, timesteps=100, sample_steps=10)
    torch.set_num_threads(1)
    model, history = train_guided_diffusion(data, settings, checkpoint=path)
    return data, settings, path, model, history


def test_train_sample_and_load_again(trained):
    data, settings, path, model, history = trained
    assert isinstance(model, guidance.ConditionalDiffusionModel) and not model.training and path.exists()
    assert len(history.epochs["loss"]) == 40
    samples = sample_guided(model, 1, w=2.0, n=5, seed=1)
    assert samples.shape == (5, 1, 8, 8) and samples.min() >= 0 and samples.max() <= 1 and samples.device.type == "cpu"
    assert torch.equal(samples, sample_guided(model, 1, w=2.0, n=5, seed=1))
    assert not torch.equal(samples, sample_guided(model, 1, w=2.0, n=5, seed=2))
    assert not torch.equal(samples, sample_guided(model, 1, w=0.0, n=5, seed=1))
    assert torch.equal(sample_guided(model, [1] * 5, w=2.0, seed=1), samples)
    assert sample_guided(model, [1] * 5, w=2.0, seed=1, batch_size=2).shape == (5, 1, 8, 8)  # a few at a time
    limited = sample_guided(model, 1, w=2.0, n=5, seed=1, interval=(0.0, 0.5))  # guided in the less noisy half only
    assert not torch.equal(limited, samples) and not torch.equal(limited, sample_guided(model, 1, w=1.0, n=5, seed=1))
    again, history2 = train_guided_diffusion(data, settings, checkpoint=path)  # finished: loaded, not trained
    assert torch.equal(sample_guided(again, 1, w=2.0, n=5, seed=1), samples) and history2.steps == history.steps


def test_guided_samples_follow_the_label(trained):
    """Class 0 has its square top left, class 1 bottom right: asked for a class, the model draws it there."""
    _, _, _, model, _ = trained
    for w in (1.0, GUIDANCE):
        pictures = sample_guided(model, range(2), w=w, n=40, seed=0)
        top_left = pictures[:, 0, 1:4, 1:4].mean(dim=(1, 2))
        bottom_right = pictures[:, 0, 4:7, 4:7].mean(dim=(1, 2))
        drawn = (bottom_right > top_left).long()
        assert (drawn == torch.arange(40) % 2).float().mean() >= 0.9, f"w={w}: the squares ignore the labels"


def test_sample_guided_takes_one_class_or_one_per_picture_and_explains_mistakes(trained):
    model = trained[3]
    assert sample_guided(model, 0, n=3).shape[0] == 3 and sample_guided(model, 0).shape[0] == 16
    assert sample_guided(model, range(2), n=5).shape[0] == 5
    assert sample_guided(model, torch.tensor([0, 1, 2])).shape[0] == 3  # 2 = the "no label" token: any class
    with pytest.raises(ValueError, match="0 .. 2"):
        sample_guided(model, 3, n=2)
    with pytest.raises(ValueError, match="positive"):
        sample_guided(model, 0, n=0)
    with pytest.raises(ValueError, match="empty"):
        sample_guided(model, [])
    with pytest.raises(ValueError, match="interval must be"):
        sample_guided(model, 0, interval=(0.5, 0.2))
    with pytest.raises(TypeError, match="ConditionalDiffusionModel"):
        sample_guided(make_unconditional(), 0)


def make_unconditional():
    settings = diffusion_recipe.DiffusionConfig(channels=(8, 16), timesteps=20, sample_steps=4, bf16=False)
    return diffusion_recipe.make_diffusion((1, 8, 8), settings)


def test_load_diffusion_finds_notebook_05s_model_or_says_none(tmp_path):
    data = blobs()
    settings = diffusion_recipe.DiffusionConfig(channels=(8, 16), timesteps=20, sample_steps=4, bf16=False, epochs=1)
    path = checkpoints.checkpoint_path("diffusion", data)
    assert diffusion_recipe.load_diffusion(data, settings) is None
    model, history = diffusion_recipe.train_diffusion(data, settings, checkpoint=path)
    loaded, loaded_history = diffusion_recipe.load_diffusion(data, settings)
    assert loaded_history.seconds == history.seconds and len(loaded_history.epochs) == 1
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert diffusion_recipe.load_diffusion(data, replace(settings, channels=(8, 8))) is None  # other settings
