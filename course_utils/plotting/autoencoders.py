"""Pictures for autoencoders and VAEs (notebooks 01 and 02): reconstructions, interpolations, the latent manifold."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from course_utils import config
from course_utils.plotting.core import _as_image_array, _finish, image_grid


def show_reconstructions(
    originals: Any,
    *rebuilt: Any,
    labels: Sequence[str] | None = None,
    n: int = 10,
    title: str | None = None,
) -> Figure:
    """Pictures and what a model made of them, one row each, column by column.

    ``show_reconstructions(x, model.reconstruct(x))`` shows originals above rebuilt pictures;
    more rows can follow (``show_reconstructions(noisy, cleaned, x, labels=[...])``). Only the
    first ``n`` pictures of each row are shown; every row must hold at least that many.
    """
    rows = [_as_image_array(images) for images in (originals, *rebuilt)]
    labels = list(labels) if labels is not None else ["original", "rebuilt"] + [f"row {i}" for i in range(3, 9)]
    if len(labels) < len(rows):
        raise ValueError(f"got {len(labels)} labels for {len(rows)} rows of pictures")
    n = min([n] + [len(row) for row in rows])
    if any(row.shape[1:] != rows[0].shape[1:] for row in rows):
        raise ValueError(f"every row needs pictures of one size, got {[row.shape[1:] for row in rows]}")
    fig, axes = plt.subplots(len(rows), 1, figsize=(0.9 * n + 1.2, 1.0 * len(rows) + (0.4 if title else 0.1)))
    for ax, row, label in zip(np.atleast_1d(axes), rows, labels, strict=False):
        ax.imshow(image_grid(row[:n], nrow=n), cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    return _finish(fig, title)


def interpolate_codes(start: torch.Tensor, end: torch.Tensor, steps: int = 10) -> torch.Tensor:
    """Codes on the straight line from ``start`` to ``end`` (each ``k x d``): a ``k x steps x d`` tensor."""
    start, end = torch.atleast_2d(start), torch.atleast_2d(end)
    if start.shape != end.shape:
        raise ValueError(f"start and end codes must match in shape, got {tuple(start.shape)} and {tuple(end.shape)}")
    if steps < 2:
        raise ValueError(f"steps must be at least 2 (the two ends), got {steps}")
    weights = torch.linspace(0.0, 1.0, steps, device=start.device).view(1, steps, 1)
    return start.unsqueeze(1) + weights * (end - start).unsqueeze(1)


@torch.no_grad()
def plot_interpolation(
    decode: Callable[[torch.Tensor], torch.Tensor],
    start: torch.Tensor,
    end: torch.Tensor,
    steps: int = 10,
    title: str | None = None,
) -> Figure:
    """Walk in a straight line from code ``start`` to code ``end`` and show the decoded pictures.

    ``decode`` is a model's ``decode`` method; ``start``/``end`` are codes (``d`` or ``k x d``: one
    strip per row). A smooth latent space gives a smooth morph from one digit into the other.
    The codes go to the decoder's device (see :func:`course_utils.config.device_of`), wherever they come from.
    """
    device = config.device_of(decode, default=None)
    start, end = torch.as_tensor(start), torch.as_tensor(end)
    if device is not None:
        start, end = start.to(device), end.to(device)
    codes = interpolate_codes(start, end, steps)
    k, _, d = codes.shape
    pictures = decode(codes.reshape(k * steps, d))
    grid = image_grid(pictures, nrow=steps)
    fig, ax = plt.subplots(figsize=(0.8 * steps, 0.8 * k + (0.4 if title else 0.1)))
    ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1)
    ax.set_xticks([0.5 * grid.shape[1] / steps, grid.shape[1] * (1 - 0.5 / steps)], ["start", "end"])
    ax.set_yticks([])
    return _finish(fig, title, ax)


def latent_grid(latent_dim: int, n: int = 15, dims: tuple[int, int] = (0, 1), span: float = 0.95) -> torch.Tensor:
    """``n*n`` codes on a grid over latent dimensions ``dims`` (the others 0), row by row.

    The grid is evenly spaced in *probability*, not in distance: the values are the quantiles
    of N(0, 1) from ``(1 - span) / 2`` to ``(1 + span) / 2``, so each square covers an equal
    share of the prior (the trick of Kingma & Welling's manifold figures).
    """
    if latent_dim < 2 or len(dims) != 2 or dims[0] == dims[1] or not all(0 <= d < latent_dim for d in dims):
        raise ValueError(f"dims must name two different dimensions among the {latent_dim} latent ones, got {dims}")
    if not 0 < span < 1:
        raise ValueError(f"span must lie strictly between 0 and 1, got {span}")
    probabilities = torch.linspace((1 - span) / 2, (1 + span) / 2, n)
    values = torch.distributions.Normal(0.0, 1.0).icdf(probabilities)
    codes = torch.zeros(n, n, latent_dim)
    codes[:, :, dims[0]] = values.view(1, n)  # left to right
    codes[:, :, dims[1]] = values.flip(0).view(n, 1)  # bottom to top, like a plot's y axis
    return codes.reshape(n * n, latent_dim)


@torch.no_grad()
def plot_latent_manifold(
    decode: Callable[[torch.Tensor], torch.Tensor],
    latent_dim: int,
    n: int = 15,
    dims: tuple[int, int] = (0, 1),
    span: float = 0.95,
    title: str | None = None,
) -> Figure:
    """Decode a grid of codes (see :func:`latent_grid`) and show it as one picture: the "manifold".

    With a 2-d VAE this is the whole learned map of digits; with more dimensions it is a slice
    through two of them, the others held at 0 (the centre of the prior).
    """
    pictures = decode(latent_grid(latent_dim, n, dims, span).to(config.device_of(decode)))
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(image_grid(pictures, nrow=n, padding=0), cmap="gray_r", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"z[{dims[0]}]  (prior quantiles {(1 - span) / 2:.1%} to {(1 + span) / 2:.1%})")
    ax.set_ylabel(f"z[{dims[1]}]")
    return _finish(fig, title, ax)
