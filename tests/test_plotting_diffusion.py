"""Tests for the diffusion pictures (plotting) and the timestep explorer (widgets)."""

import ipywidgets
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from course_utils import diffusion, plotting, widgets
from course_utils.models.unet import UNet


def _model():
    torch.manual_seed(0)
    return diffusion.DiffusionModel(UNet((1, 8, 8), channels=(8, 16), time_dim=16), timesteps=50, sample_steps=5)


def test_forward_process_strip_gets_noisier_left_to_right():
    schedule = diffusion.make_schedule(100)
    images = torch.zeros(2, 1, 8, 8)
    images[:, :, 2:6, 2:6] = 1.0
    fig = plotting.plot_forward_process(images, schedule, timesteps=[0, 50, 99])
    assert isinstance(fig, Figure) and len(fig.axes) == 6
    first, last = (np.asarray(fig.axes[i].images[0].get_array()) for i in (0, 4))
    assert np.abs(first - images[0, 0].numpy()).mean() < 0.05  # t = 0: the picture itself
    assert np.abs(last - images[0, 0].numpy()).mean() > 0.2  # t = T-1: noise
    with pytest.raises(ValueError, match="signed"):
        plotting.plot_forward_process(images * 4 - 2, schedule)


def test_schedule_and_trajectory_plots():
    fig = plotting.plot_schedules(
        {"linear": diffusion.make_schedule(100, "linear"), "cosine": diffusion.make_schedule(100)}
    )
    assert len(fig.axes[0].lines) == 4
    with pytest.raises(ValueError, match="at least one"):
        plotting.plot_schedules({})
    _, trajectory = _model().sample(3, torch.Generator().manual_seed(0), return_trajectory=True)
    fig = plotting.plot_trajectory(trajectory, n=2, labels=list(range(len(trajectory))))
    assert len(fig.axes) == 2 * len(trajectory)
    with pytest.raises(ValueError, match="labels"):
        plotting.plot_trajectory(trajectory, labels=[1])


def test_timestep_explorer_redraws_when_the_slider_moves():
    model = _model()
    image = torch.zeros(1, 8, 8)
    image[0, 2:6, 3:5] = 1.0
    noise = torch.randn(1, 8, 8, generator=torch.Generator().manual_seed(0))
    early = widgets.denoising_picture(model, image, noise, 0)
    late = widgets.denoising_picture(model, image, noise, 49)
    assert early.shape == (8, 26) and early.min() >= 0 and early.max() <= 1
    assert np.allclose(early[:, -8:], image[0].numpy())  # the real picture on the right never changes
    assert np.abs(early[:, :8] - image[0].numpy()).mean() < np.abs(late[:, :8] - image[0].numpy()).mean()
    box = widgets.timestep_explorer(model, image)
    slider = next(c for c in box.children if isinstance(c, ipywidgets.IntSlider))
    picture = next(c for c in box.children if isinstance(c, ipywidgets.Image))
    before = picture.value
    slider.value = 0
    assert picture.value != before


def test_guidance_sweep_draws_agreement_and_fid_on_two_axes():
    fig = plotting.plot_guidance_sweep([0, 1, 2], [0.1, 0.7, 0.98], [70.0, 30.0, 27.0], reference_fid=20.0)
    left, right = fig.axes
    assert list(left.lines[0].get_ydata()) == [10.0, 70.0, 98.0]  # agreement drawn in percent
    assert list(right.lines[0].get_ydata()) == [70.0, 30.0, 27.0] and len(right.lines) == 2  # + the reference
    assert "w" in left.get_xlabel()
    with pytest.raises(ValueError, match="one agreement and one FID per scale"):
        plotting.plot_guidance_sweep([0, 1], [0.1], [1.0, 2.0])
    with pytest.raises(ValueError, match="between 0 and 1"):
        plotting.plot_guidance_sweep([0], [98.0], [1.0])


def test_guidance_frontier_draws_one_line_per_interval_with_fid_across_and_agreement_up():
    rows = [
        {"w": 2.0, "agreement": 0.98, "fid": 27.0},
        {"w": 0.0, "agreement": 0.1, "fid": 70.0, "interval": (0.0, 1.0)},
        {"w": 1.0, "agreement": 0.7, "fid": 30.0},
        {"w": 3.0, "agreement": 0.95, "fid": 14.0, "interval": (0.0, 0.4)},
        {"w": 5.0, "agreement": 0.97, "fid": 15.0, "interval": (0.0, 0.4)},
    ]
    fig = plotting.plot_guidance_frontier(rows, reference_fid=14.5)
    ax = fig.axes[0]
    every_step, limited, reference = ax.lines
    assert list(every_step.get_xdata()) == [30.0, 27.0] and list(every_step.get_ydata()) == [70.0, 98.0]  # sorted by w
    assert list(limited.get_xdata()) == [14.0, 15.0] and list(reference.get_xdata()) == [14.5, 14.5]
    assert [text.get_text() for text in ax.texts] == ["w=1", "w=2", "w=3", "w=5"]  # w = 0 left out
    assert "t <= 0.4 T" in ax.get_legend().get_texts()[1].get_text()
    with pytest.raises(ValueError, match="empty"):
        plotting.plot_guidance_frontier([])
    with pytest.raises(ValueError, match="no row has w >= 1"):
        plotting.plot_guidance_frontier([{"w": 0.0, "fid": 3.0, "agreement": 0.1}])
    with pytest.raises(ValueError, match="needs 'w', 'agreement' and 'fid'"):
        plotting.plot_guidance_frontier([{"w": 1.0, "fid": 3.0}])
    with pytest.raises(ValueError, match="between 0 and 1"):
        plotting.plot_guidance_frontier([{"w": 1.0, "fid": 3.0, "agreement": 95.0}])


def _conditional_model():
    from course_utils import guidance

    torch.manual_seed(0)
    net = UNet((1, 8, 8), channels=(8, 16), time_dim=16, num_classes=10)
    torch.nn.init.normal_(net.out[-1].weight, std=0.3)  # untrained, it would predict zero noise for every label
    return guidance.ConditionalDiffusionModel(net, timesteps=50, sample_steps=4)


def test_draw_me_a_redraws_when_the_digit_or_the_scale_changes():
    model = _conditional_model()
    picture = widgets.guided_samples_picture(model, 3, 2.0, seed=0, n=4)
    assert picture.shape == (10, 4 * 9 + 1) and picture.min() >= 0 and picture.max() <= 1
    np.testing.assert_array_equal(picture, widgets.guided_samples_picture(model, 3, 2.0, seed=0, n=4))
    assert not np.array_equal(picture, widgets.guided_samples_picture(model, 3, 2.0, seed=1, n=4))
    with pytest.raises(ValueError, match="digit"):
        widgets.guided_samples_picture(model, 11, 2.0)
    box = widgets.draw_me_a(model, n=4)
    digit = next(c for c in box.children if isinstance(c, ipywidgets.Dropdown))
    scale = next(c for c in box.children if isinstance(c, ipywidgets.FloatSlider))
    image = next(c for c in box.children if isinstance(c, ipywidgets.Image))
    assert len(digit.options) == 11 and scale.value == 2.0  # ten digits and "any digit"
    shown = image.value
    digit.value = 1
    assert image.value != shown and box.children[-1].value == ""
    shown = image.value
    scale.value = 5.0
    assert image.value != shown and box.children[-1].value == ""
