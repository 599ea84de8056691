import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_utils import plotting
from course_utils.history import History


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_image_grid_tiles_images_in_rows():
    images = torch.zeros(5, 1, 4, 4)
    images[1] = 1.0
    grid = plotting.image_grid(images, nrow=3, padding=1)
    assert grid.shape == (2 * 5 + 1, 3 * 5 + 1)
    assert grid[1:5, 6:10].min() == 1.0 and grid[1:5, 1:5].max() == 0.0
    assert grid[6:10, 11:15].max() == 0.0  # the empty sixth cell stays paper-white
    assert grid[0, :].min() == grid[0, :].max() == 0.25  # thin grey lines between the tiles


def test_show_images_draws_one_figure_and_handles_signed_pixels():
    fig = plotting.show_images(torch.rand(6, 1, 8, 8) * 2 - 1, nrow=3, title="signed", signed=True)
    assert fig.axes[0].get_title() == "signed"
    shown = fig.axes[0].images[0].get_array()
    assert shown.shape == plotting.image_grid(torch.rand(6, 1, 8, 8), nrow=3).shape


def test_show_images_with_labels_makes_one_axis_per_image():
    fig = plotting.show_images(torch.rand(4, 1, 8, 8), nrow=2, labels=["a", "b", "c", "d"])
    assert [ax.get_title() for ax in fig.axes] == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="3 labels for 4 images"):
        plotting.show_images(torch.rand(4, 1, 8, 8), labels=["a", "b", "c"])


@pytest.mark.parametrize(
    "images, message",
    [
        (torch.rand(2, 3, 8, 8), "grey images"),
        (torch.rand(8), "shape"),
        (torch.zeros(0, 1, 8, 8), "empty"),
        (torch.full((2, 1, 4, 4), float("nan")), "NaN"),
        (torch.full((2, 1, 4, 4), -1.0), "signed=True"),
        (torch.full((2, 1, 4, 4), 255.0), r"\[0, 1\]"),
    ],
)
def test_bad_images_are_rejected_with_a_reason(images, message):
    with pytest.raises(ValueError, match=message):
        plotting.show_images(images)


def test_plot_history_per_step_and_per_epoch():
    history = History()
    for i in range(40):
        history.log_step({"loss": 1.0 / (i + 1), "acc": i / 40})
        if i % 10 == 9:
            history.end_epoch()
    fig = plotting.plot_history(history, keys=["loss"])
    assert fig.axes[0].get_xlabel() == "training step" and len(fig.axes[0].lines) == 2  # raw + smoothed
    fig = plotting.plot_history(history, per="epoch")
    assert len(fig.axes[0].lines) == 2 and fig.axes[0].get_xlabel() == "epoch"
    fig = plotting.plot_history({"d_loss": [1, 2, 3]})
    assert len(fig.axes[0].lines) == 1
    with pytest.raises(KeyError, match="logged keys"):
        plotting.plot_history(history, keys=["nope"])
    with pytest.raises(ValueError):
        plotting.plot_history(history, per="hour")


def test_latent_scatter_projects_codes_with_more_than_two_dimensions():
    z = torch.randn(50, 5)
    labels = torch.arange(50) % 3
    fig = plotting.plot_latent_scatter(z, labels, title="codes")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "principal component 1" and len(ax.collections) == 3
    fig = plotting.plot_latent_scatter(np.random.randn(10, 2), np.zeros(10))
    assert fig.axes[0].get_xlabel() == "z[0]"
    with pytest.raises(ValueError, match="labels"):
        plotting.plot_latent_scatter(z, labels[:10])


def test_plot_probabilities_draws_an_image_and_bars_per_sample():
    probs = torch.softmax(torch.randn(3, 10), dim=1)
    fig = plotting.plot_probabilities(torch.rand(3, 1, 8, 8), probs, title="critic")
    assert len(fig.axes) == 6
    bars = fig.axes[3].patches  # the bottom row holds the bar charts
    assert len(bars) == 10
    with pytest.raises(ValueError, match="one row per image"):
        plotting.plot_probabilities(torch.rand(3, 1, 8, 8), probs[:2])


def test_show_source_returns_highlighted_code():
    code = plotting.show_source(plotting.image_grid)
    assert "def image_grid" in code.data
