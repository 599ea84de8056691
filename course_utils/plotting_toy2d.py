"""Pictures of the 2-D toys: point clouds, snapshots over training, a discriminator's landscape, score fields.

Every function returns the matplotlib Figure it drew on; notebook cells end with ``plt.show()``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from course_utils.toy2d import Mixture, mode_coverage


def _grid(lim: float, n: int) -> torch.Tensor:
    """An ``n x n`` grid of points covering ``[-lim, lim]^2``, as an ``n*n x 2`` tensor (rows: y, then x)."""
    axis = torch.linspace(-lim, lim, n)
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], dim=1)


def _frame(ax: Axes, lim: float, title: str = "") -> None:
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def plot_points(
    points: torch.Tensor,
    mixture: Mixture | None = None,
    ax: Axes | None = None,
    title: str = "",
    lim: float = 3.0,
    color: str = "C0",
) -> Figure:
    """A cloud of 2-D points; with ``mixture``, its centres (red) and the circles of 3 standard deviations
    inside which a point counts for a mode (:func:`course_utils.toy2d.mode_coverage`)."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(3, 3))
    fig = ax.figure
    points = torch.as_tensor(points).detach().cpu()
    ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.35, color=color, linewidths=0)
    if mixture is not None:
        for centre in mixture.centres:
            ax.add_patch(plt.Circle(tuple(centre.tolist()), 3 * mixture.std, fill=False, color="red", lw=0.6))
    _frame(ax, lim, title)
    return fig


def plot_point_sets(sets: Mapping[str, torch.Tensor], mixture: Mixture | None = None, lim: float = 3.0) -> Figure:
    """Several point clouds side by side, one panel each, titled by their names."""
    fig, axes = plt.subplots(1, len(sets), figsize=(3 * len(sets), 3.2), squeeze=False)
    for ax, (name, points) in zip(axes[0], sets.items(), strict=True):
        plot_points(points, mixture, ax=ax, title=name, lim=lim)
    fig.tight_layout()
    return fig


def plot_snapshot_strip(
    snapshots: Sequence[tuple[int, torch.Tensor]], mixture: Mixture, n: int = 8, lim: float = 3.0, title: str = ""
) -> Figure:
    """``n`` snapshots of a generator's samples, evenly spread over training, each titled with its step and the
    number of modes it covers: where the samples go, and whether they stay."""
    if not snapshots:
        raise ValueError("no snapshots to draw: train with snapshot_every smaller than the number of steps")
    picks = np.unique(np.linspace(0, len(snapshots) - 1, min(n, len(snapshots))).round().astype(int))
    fig, axes = plt.subplots(1, len(picks), figsize=(1.9 * len(picks), 2.3), squeeze=False)
    for ax, i in zip(axes[0], picks, strict=True):
        step, points = snapshots[i]
        covered = mode_coverage(points, mixture).n_covered
        plot_points(points, mixture, ax=ax, lim=lim, title=f"step {step}: {covered}/{len(mixture.centres)} modes")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_mode_counts(runs: Mapping[str, Sequence[tuple[int, torch.Tensor]]], mixture: Mixture) -> Figure:
    """Modes covered at every snapshot, one line per run (e.g. ``{"GAN": run.snapshots, "WGAN-GP": ...}``)."""
    fig, ax = plt.subplots(figsize=(7, 2.8))
    for name, snapshots in runs.items():
        steps = [step for step, _ in snapshots]
        counts = [mode_coverage(points, mixture).n_covered for _, points in snapshots]
        ax.plot(steps, counts, marker="o", markersize=3, label=name)
    ax.set_ylim(-0.3, len(mixture.centres) + 0.3)
    ax.set_xlabel("generator step")
    ax.set_ylabel("modes covered")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


@torch.no_grad()
def plot_discriminator_landscape(
    discriminator: Callable[[torch.Tensor], torch.Tensor],
    mixture: Mixture,
    fakes: torch.Tensor | None = None,
    ax: Axes | None = None,
    lim: float = 3.0,
    n: int = 120,
    title: str = "the discriminator's score",
) -> Figure:
    """A heat map of the discriminator's output over the plane (bright: "looks real"), with the data's modes
    and, optionally, the generator's ``fakes`` on top."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.2, 3.6))
    fig = ax.figure
    scores = discriminator(_grid(lim, n)).view(n, n).cpu().numpy()
    image = ax.imshow(scores, origin="lower", extent=(-lim, lim, -lim, lim), cmap="viridis")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if fakes is not None:
        fakes = fakes.detach().cpu()
        ax.scatter(fakes[:, 0], fakes[:, 1], s=2, color="white", alpha=0.5, linewidths=0, label="generator")
    ax.scatter(mixture.centres[:, 0], mixture.centres[:, 1], marker="x", color="red", s=30, label="data modes")
    ax.legend(loc="lower right", fontsize=7)
    _frame(ax, lim, title)
    return fig


@torch.no_grad()
def plot_score_field(
    score: Callable[[torch.Tensor], torch.Tensor],
    exact: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ax: Axes | None = None,
    lim: float = 2.5,
    n: int = 15,
    title: str = "",
) -> Figure:
    """The arrows of a score field ``score(points) -> N x 2`` on an ``n x n`` grid (blue), and the ``exact``
    score for comparison (grey, underneath). Both are drawn at the same scale, so lengths compare."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(3.2, 3.2))
    fig = ax.figure
    points = _grid(lim, n)
    fields = {"learned": score(points).cpu()}
    if exact is not None:
        fields = {"exact": exact(points).cpu(), **fields}
    longest = max(float(f.norm(dim=1).max()) for f in fields.values())
    cell = 2 * lim / (n - 1)
    for (name, field), color in zip(fields.items(), ["0.6", "C0"] if exact is not None else ["C0"], strict=True):
        arrows = field / longest * cell * 0.9  # the longest arrow is almost one grid cell long
        ax.quiver(
            points[:, 0], points[:, 1], arrows[:, 0], arrows[:, 1], angles="xy", scale_units="xy", scale=1,
            color=color, width=0.006 if name == "exact" else 0.004, label=name,
        )  # fmt: skip
    ax.legend(loc="lower right", fontsize=7)
    _frame(ax, lim + cell, title)
    return fig


def plot_paths(
    paths: Mapping[str, torch.Tensor], mixture: Mixture | None = None, lim: float = 3.0, n: int = 40
) -> Figure:
    """Paths of points through the plane, one panel per entry of ``paths``: each a ``K x N x 2`` tensor (``K``
    positions of ``N`` points, e.g. a sampler's trajectory). The first ``n`` paths are drawn as lines, their starts
    grey and their ends blue; with ``mixture``, its centres and 3-standard-deviation circles (:func:`plot_points`)."""
    fig, axes = plt.subplots(1, len(paths), figsize=(3.2 * len(paths), 3.3), squeeze=False)
    for ax, (name, path) in zip(axes[0], paths.items(), strict=True):
        path = path[:, :n].cpu()
        plot_points(path[-1], mixture, ax=ax, title=name, lim=lim)
        ax.scatter(path[0, :, 0], path[0, :, 1], s=6, color="0.5", zorder=2)
        for i in range(path.shape[1]):
            ax.plot(path[:, i, 0], path[:, i, 1], color="C1", linewidth=0.7, alpha=0.7)
    fig.tight_layout()
    return fig
