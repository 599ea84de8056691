"""Pictures for evaluation (notebook 08): Gaussian clouds of features, samples beside their nearest neighbours."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from course_utils.plotting.core import _as_image_array, _finish, _new_axes


def _ellipse_points(mean: np.ndarray, cov: np.ndarray, n_std: float = 2.0, n: int = 100) -> np.ndarray:
    """Points on the ``n_std``-standard-deviation ellipse of a 2-D Gaussian (its covariance's eigenvectors)."""
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    angles = np.linspace(0, 2 * np.pi, n)
    circle = np.stack([np.cos(angles), np.sin(angles)])  # 2 x n
    return (mean[:, None] + eigenvectors @ (n_std * np.sqrt(np.maximum(eigenvalues, 0))[:, None] * circle)).T


def plot_gaussian_clouds(
    clouds: dict[str, Any], ax: Axes | None = None, title: str | None = None, max_points: int = 600
) -> Figure:
    """Scatter 2-D feature clouds (name -> N x 2) with each cloud's fitted Gaussian: its mean and 2-sigma ellipse.

    This is what FID sees: not the points, only each cloud's mean and covariance.
    """
    fig, ax = _new_axes(ax, (5, 4.5))
    for i, (name, points) in enumerate(clouds.items()):
        p = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
        if p.ndim != 2 or p.shape[1] != 2:
            raise ValueError(f"cloud {name!r} must be N x 2 (project features to 2-D first), got shape {p.shape}")
        mean, cov = p.mean(axis=0), np.cov(p, rowvar=False)
        color = f"C{i}"
        ax.scatter(p[:max_points, 0], p[:max_points, 1], s=4, alpha=0.3, color=color)
        ellipse = _ellipse_points(mean, cov)
        ax.plot(ellipse[:, 0], ellipse[:, 1], color=color, linewidth=2, label=f"{name}: mean and 2-sigma ellipse")
        ax.plot(*mean, marker="X", markersize=12, color=color, markeredgecolor="black")
    ax.legend(fontsize=8, loc="best")
    ax.set_xlabel("feature direction 1")
    ax.set_ylabel("feature direction 2")
    return _finish(fig, title, ax)


def show_nearest_neighbours(
    samples: Any, neighbours: Any, distances: Sequence[float] | None = None, title: str | None = None
) -> Figure:
    """Two rows: generated samples on top, the closest training image of each below (with its distance)."""
    top, bottom = _as_image_array(samples), _as_image_array(neighbours)
    if len(top) != len(bottom):
        raise ValueError(f"got {len(top)} samples but {len(bottom)} neighbours; pass one neighbour per sample")
    n = len(top)
    fig, axes = plt.subplots(2, n, figsize=(1.1 * n, 2.6), squeeze=False)
    for i in range(n):
        for row, images in enumerate((top, bottom)):
            axes[row, i].imshow(images[i], cmap="gray_r", vmin=0, vmax=1)
            axes[row, i].set_xticks([])
            axes[row, i].set_yticks([])
        if distances is not None:
            axes[1, i].set_xlabel(f"{float(distances[i]):.1f}", fontsize=8)
    axes[0, 0].set_ylabel("sample", fontsize=8)
    axes[1, 0].set_ylabel("nearest\ntraining", fontsize=8)
    return _finish(fig, title)


def plot_model_comparison(
    figures: dict[str, dict[str, float | None]],
    metrics: Sequence[tuple[str, str]],
    title: str | None = None,
) -> Figure:
    """One bar chart per metric, one bar per model: e.g. training time, sampling time and FID side by side.

    ``figures`` maps a model's name to its numbers (``{"latent diffusion": {"fid": 31.0, ...}, ...}``); ``metrics``
    lists ``(key, axis label)`` pairs in the order to draw them. A model without a number for a metric gets no bar
    there and a "missing" note, so a comparison with a model not trained yet still draws.
    """
    if not figures or not metrics:
        raise ValueError("give at least one model's figures and one (key, label) metric to compare")
    names = list(figures)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.2), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (key, label) in zip(axes[0], metrics, strict=True):
        for i, name in enumerate(names):
            value = figures[name].get(key)
            if value is None:
                ax.text(
                    i,
                    0.05,
                    "missing",
                    transform=ax.get_xaxis_transform(),
                    rotation=90,
                    ha="center",
                    va="bottom",
                    fontsize=9,
                    color="grey",
                )
                continue
            ax.bar(i, value, color=colours[i % len(colours)])
            ax.text(i, value, f"{value:.3g}", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
        ax.set_title(label, fontsize=10)
        ax.margins(y=0.15)
    return _finish(fig, title)
