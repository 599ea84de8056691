"""Tests for the evaluation section of course_utils.plotting."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_utils import plotting


def test_ellipse_points_lie_at_two_standard_deviations():
    cov = np.array([[4.0, 1.0], [1.0, 2.0]])
    mean = np.array([1.0, -1.0])
    points = plotting.evaluation._ellipse_points(mean, cov, n_std=2.0)
    # Every point has Mahalanobis distance 2 from the mean.
    centred = points - mean
    mahalanobis = np.sqrt(np.einsum("ni,ij,nj->n", centred, np.linalg.inv(cov), centred))
    np.testing.assert_allclose(mahalanobis, 2.0, rtol=1e-9)


def test_plot_gaussian_clouds_draws_one_ellipse_per_cloud():
    gen = torch.Generator().manual_seed(0)
    fig = plotting.plot_gaussian_clouds(
        {"real": torch.randn(100, 2, generator=gen), "fake": np.ones((5, 2)) + 1e-3 * np.arange(10).reshape(5, 2) ** 2}
    )
    ax = fig.axes[0]
    assert len(ax.get_legend().get_texts()) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="N x 2"):
        plotting.plot_gaussian_clouds({"bad": torch.randn(10, 3)})


def test_show_nearest_neighbours_two_rows_and_distance_labels():
    fig = plotting.show_nearest_neighbours(torch.rand(3, 1, 8, 8), torch.rand(3, 1, 8, 8), distances=[0.0, 1.25, 3.0])
    assert len(fig.axes) == 6
    assert [ax.get_xlabel() for ax in fig.axes[3:]] == ["0.0", "1.2", "3.0"]
    plt.close(fig)
    with pytest.raises(ValueError, match="one neighbour per sample"):
        plotting.show_nearest_neighbours(torch.rand(3, 1, 8, 8), torch.rand(2, 1, 8, 8))


def test_model_comparison_draws_one_panel_per_metric_and_marks_missing_numbers():
    figures = {"latent": {"fid": 30.0, "train_seconds": 200.0}, "pixel": {"fid": 20.0, "train_seconds": None}}
    fig = plotting.plot_model_comparison(figures, [("train_seconds", "training (s)"), ("fid", "FID")], title="t")
    try:
        assert [ax.get_title() for ax in fig.axes] == ["training (s)", "FID"]
        assert len(fig.axes[0].patches) == 1 and len(fig.axes[1].patches) == 2
        assert "missing" in [t.get_text() for t in fig.axes[0].texts]
        assert [round(p.get_height()) for p in fig.axes[1].patches] == [30, 20]
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="at least one"):
        plotting.plot_model_comparison({}, [("fid", "FID")])
