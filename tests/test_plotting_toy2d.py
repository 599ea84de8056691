"""The pictures of the 2-D toys draw what they say."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_utils import plotting_toy2d, toy2d

RING = toy2d.ring_mixture(8, radius=2.0, std=0.1)


def test_points_with_the_mode_circles():
    fig = plotting_toy2d.plot_points(torch.zeros(10, 2), RING, title="t")
    ax = fig.axes[0]
    assert len(ax.patches) == 8 and ax.get_title() == "t"
    plt.close(fig)
    fig = plotting_toy2d.plot_point_sets({"a": torch.zeros(3, 2), "b": torch.ones(3, 2)}, RING)
    assert [a.get_title() for a in fig.axes] == ["a", "b"]
    plt.close(fig)


def test_snapshot_strip_counts_modes_in_its_titles():
    on_mode_0 = RING.centres[0].repeat(100, 1)
    snapshots = [(10 * i, on_mode_0 if i % 2 else torch.zeros(100, 2)) for i in range(1, 11)]
    fig = plotting_toy2d.plot_snapshot_strip(snapshots, RING, n=5)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 5 and titles[0] == "step 10: 1/8 modes" and titles[-1] == "step 100: 0/8 modes"
    plt.close(fig)
    with pytest.raises(ValueError, match="no snapshots"):
        plotting_toy2d.plot_snapshot_strip([], RING)
    fig = plotting_toy2d.plot_mode_counts({"GAN": snapshots}, RING)
    np.testing.assert_array_equal(fig.axes[0].get_lines()[0].get_ydata(), [1, 0] * 5)
    plt.close(fig)


def test_landscape_is_the_discriminator_on_a_grid():
    fig = plotting_toy2d.plot_discriminator_landscape(lambda x: x[:, :1], RING, fakes=torch.zeros(5, 2), n=11)
    image = fig.axes[0].images[0].get_array()
    assert image.shape == (11, 11)
    np.testing.assert_allclose(image[0], np.linspace(-3, 3, 11), atol=1e-6)  # score = x grows to the right
    plt.close(fig)


def test_score_field_draws_learned_and_exact_at_one_scale():
    fig = plotting_toy2d.plot_score_field(lambda x: -x, exact=lambda x: -2 * x, n=5, lim=2.0)
    exact, learned = fig.axes[0].collections[:2]
    longest_exact = np.hypot(exact.U, exact.V).max()
    np.testing.assert_allclose(np.hypot(learned.U, learned.V).max(), longest_exact / 2, rtol=1e-5)
    plt.close(fig)


def test_paths_draw_one_line_per_path_from_start_to_end():
    start, end = torch.zeros(5, 2), torch.ones(5, 2)
    path = torch.stack([start, (start + end) / 2, end])  # 3 positions of 5 points
    fig = plotting_toy2d.plot_paths({"a": path, "b": path}, RING, n=4)
    ax = fig.axes[0]
    assert [a.get_title() for a in fig.axes] == ["a", "b"] and len(ax.lines) == 4
    np.testing.assert_allclose(ax.lines[0].get_xydata(), path[:, 0].numpy())
    plt.close(fig)
