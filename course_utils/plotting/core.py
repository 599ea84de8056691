"""The pictures every notebook draws: image grids, training curves, probabilities, scatter plots of codes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def _as_image_array(images: Any, signed: bool = False) -> np.ndarray:
    """Images (tensor or array) as a float array N x H x W in [0, 1], checked."""
    if isinstance(images, torch.Tensor):
        images = images.detach().to("cpu", torch.float32).numpy()
    array = np.asarray(images, dtype=np.float32)
    if array.ndim == 2:
        array = array[None]
    if array.ndim == 4:
        if array.shape[1] != 1:
            raise ValueError(f"expected grey images N x 1 x H x W, got shape {array.shape}")
        array = array[:, 0]
    if array.ndim != 3:
        raise ValueError(f"expected images of shape N x 1 x H x W, N x H x W or H x W, got {array.shape}")
    if array.shape[0] == 0:
        raise ValueError("no images to show (the batch is empty)")
    if not np.isfinite(array).all():
        raise ValueError("the images contain NaN or infinity: the model that made them has diverged")
    if signed:
        array = (array + 1.0) / 2.0
    low, high = float(array.min()), float(array.max())
    if low < -0.5 or high > 1.5:
        hint = " (pixels in [-1, 1]? pass signed=True)" if low < 0 and not signed else ""
        raise ValueError(f"pixel values should lie in [0, 1], found [{low:.2f}, {high:.2f}]{hint}")
    return np.clip(array, 0.0, 1.0)


def image_grid(images: Any, nrow: int = 8, padding: int = 1, signed: bool = False) -> np.ndarray:
    """Tile images into one array of shape (rows*(H+pad)+pad, nrow*(W+pad)+pad), values in [0, 1]."""
    if nrow <= 0:
        raise ValueError(f"nrow must be positive, got {nrow}")
    array = _as_image_array(images, signed)
    n, height, width = array.shape
    ncol = min(nrow, n)
    rows = -(-n // ncol)
    # Light grey lines between the tiles (0 is white paper, 1 is black ink); empty tiles stay white.
    grid = np.full((rows * (height + padding) + padding, ncol * (width + padding) + padding), 0.25, dtype=np.float32)
    for i in range(rows * ncol):
        r, c = divmod(i, ncol)
        top, left = padding + r * (height + padding), padding + c * (width + padding)
        grid[top : top + height, left : left + width] = array[i] if i < n else 0.0
    return grid


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def _finish(fig: Figure, title: str | None, ax: Axes | None = None) -> Figure:
    """Title the axes (without ``ax``: the whole figure), tidy the layout, and hand the figure back."""
    if title:
        if ax is None:
            fig.suptitle(title)
        else:
            ax.set_title(title)
    fig.tight_layout()
    return fig


def show_images(
    images: Any,
    nrow: int = 8,
    title: str | None = None,
    ax: Axes | None = None,
    labels: Sequence[Any] | None = None,
    signed: bool = False,
) -> Figure:
    """Show a batch of grey images as a grid (ink dark on white paper).

    ``images`` is N x 1 x H x W (or N x H x W) with pixels in [0, 1], or in [-1, 1] with
    ``signed=True``. With ``labels`` each image gets a small caption.
    """
    array = _as_image_array(images, signed)
    if labels is not None:
        if len(labels) != len(array):
            raise ValueError(f"got {len(labels)} labels for {len(array)} images")
        if ax is not None:
            raise ValueError("labels draw one small axis per image; they cannot share the given ax")
        ncol = min(nrow, len(array))
        rows = -(-len(array) // ncol)
        fig, axes = plt.subplots(rows, ncol, figsize=(1.2 * ncol, 1.35 * rows), squeeze=False)
        for i, axis in enumerate(axes.flat):
            axis.axis("off")
            if i < len(array):
                axis.imshow(array[i], cmap="gray_r", vmin=0, vmax=1)
                axis.set_title(str(labels[i]), fontsize=9)
        return _finish(fig, title)
    grid = image_grid(array, nrow=nrow)
    scale = 0.9 * min(nrow, len(array))
    fig, ax = _new_axes(ax, (max(2.5, scale), max(1.5, scale * grid.shape[0] / grid.shape[1])))
    ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1)
    ax.axis("off")
    if title:
        ax.set_title(title)
    return fig


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def plot_history(
    history: Any,
    keys: Sequence[str] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    per: str = "step",
) -> Figure:
    """Plot logged values against training steps (raw, faint, plus a moving average) or epochs.

    ``history`` is a :class:`course_utils.history.History` or a dict of lists.
    """
    if per not in ("step", "epoch"):
        raise ValueError(f"per must be 'step' or 'epoch', got {per!r}")
    if hasattr(history, "steps"):
        series = history.steps if per == "step" else history.epochs
    elif isinstance(history, dict):
        series = history
    else:
        raise TypeError(f"history must be a History or a dict of lists, got {type(history).__name__}")
    keys = list(keys) if keys is not None else sorted(series)
    unknown = [k for k in keys if k not in series]
    if unknown or not keys:
        raise KeyError(f"nothing logged under {unknown or keys}; logged keys: {sorted(series)}")
    fig, ax = _new_axes(ax, (6, 3.5))
    for i, key in enumerate(keys):
        values = np.asarray(series[key], dtype=float)
        color = f"C{i}"
        x = np.arange(1, len(values) + 1)
        if per == "step" and len(values) > 20:
            window = max(2, len(values) // 30)
            ax.plot(x, values, color=color, alpha=0.25, linewidth=0.8)
            ax.plot(x[window - 1 :], _smooth(values, window), color=color, label=key)
        else:
            ax.plot(x, values, color=color, marker="o" if len(values) < 30 else None, label=key)
    ax.set_xlabel("training step" if per == "step" else "epoch")
    ax.grid(alpha=0.3)
    ax.legend()
    return _finish(fig, title, ax)


def plot_probabilities(
    images: Any, probs: Any, class_names: Sequence[str] | None = None, title: str | None = None
) -> Figure:
    """Each image above a bar chart of the probabilities a model gives to each class."""
    array = _as_image_array(images)
    p = probs.detach().cpu().numpy() if isinstance(probs, torch.Tensor) else np.asarray(probs)
    if p.ndim != 2 or len(p) != len(array):
        raise ValueError(f"probs must be N x C with one row per image; got {p.shape} for {len(array)} images")
    n, n_classes = p.shape
    names = list(class_names) if class_names is not None else [str(c) for c in range(n_classes)]
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.2), squeeze=False, gridspec_kw={"height_ratios": [1, 1]})
    for i in range(n):
        axes[0, i].imshow(array[i], cmap="gray_r", vmin=0, vmax=1)
        axes[0, i].axis("off")
        colors = ["C3" if c == p[i].argmax() else "C0" for c in range(n_classes)]
        axes[1, i].bar(range(n_classes), p[i], color=colors)
        axes[1, i].set_ylim(0, 1)
        axes[1, i].set_xticks(range(n_classes), names if n_classes <= 10 else None, fontsize=6)
        axes[1, i].tick_params(axis="y", labelsize=6)
    axes[1, 0].set_ylabel("P(class | image)", fontsize=8)
    return _finish(fig, title)


def show_source(obj: Any) -> Any:
    """The source code of a function or class, syntax-highlighted for a notebook (like ``obj??``)."""
    import inspect

    from IPython.display import Code

    return Code(inspect.getsource(obj), language="python")


def plot_latent_scatter(
    z: Any, labels: Any, ax: Axes | None = None, title: str | None = None, class_names: Sequence[str] | None = None
) -> Figure:
    """Scatter 2-D codes coloured by class. Codes with more dimensions are projected on their
    two principal components first (the axis labels say so)."""
    codes = z.detach().cpu().numpy() if isinstance(z, torch.Tensor) else np.asarray(z)
    classes = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if codes.ndim != 2 or codes.shape[1] < 2:
        raise ValueError(f"codes must be N x D with D >= 2, got shape {codes.shape}")
    if len(classes) != len(codes):
        raise ValueError(f"got {len(classes)} labels for {len(codes)} codes")
    axis_names = ("z[0]", "z[1]")
    if codes.shape[1] > 2:
        centred = codes - codes.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        codes = centred @ vt[:2].T
        axis_names = ("principal component 1", "principal component 2")
    fig, ax = _new_axes(ax, (5, 4.5))
    for c in np.unique(classes):
        chosen = classes == c
        name = class_names[int(c)] if class_names is not None else str(c)
        ax.scatter(codes[chosen, 0], codes[chosen, 1], s=6, alpha=0.7, color=plt.cm.tab10(int(c) % 10), label=name)
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.legend(markerscale=2.5, fontsize=8, loc="best", ncol=2)
    return _finish(fig, title, ax)
