"""Pictures instead of walls of numbers.

Every function draws into a new figure (or the ``ax`` it is given) and returns the
``matplotlib.figure.Figure``; none calls ``plt.show()``. In a notebook, end the cell with
``plt.show()`` so that the figure appears exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

# ---------------------------------------------------------------------------- core


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
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        return fig
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

    ``history`` is a :class:`course_utils.loop.History` or a dict of lists.
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
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


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
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


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
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- autoencoders and VAEs


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
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


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
    """
    codes = interpolate_codes(start, end, steps)
    k, _, d = codes.shape
    pictures = decode(codes.reshape(k * steps, d))
    grid = image_grid(pictures, nrow=steps)
    fig, ax = plt.subplots(figsize=(0.8 * steps, 0.8 * k + (0.4 if title else 0.1)))
    ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1)
    ax.set_xticks([0.5 * grid.shape[1] / steps, grid.shape[1] * (1 - 0.5 / steps)], ["start", "end"])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


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
    pictures = decode(latent_grid(latent_dim, n, dims, span))
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(image_grid(pictures, nrow=n, padding=0), cmap="gray_r", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"z[{dims[0]}]  (prior quantiles {(1 - span) / 2:.1%} to {(1 + span) / 2:.1%})")
    ax.set_ylabel(f"z[{dims[1]}]")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- GANs


def plot_gan_history(history: Any, per: str = "step", axes: Sequence[Axes] | None = None) -> Figure:
    """Two panels: the two players' losses, and the discriminator's verdicts ``D(x)`` and ``D(G(z))``.

    ``history`` is the :class:`course_utils.loop.History` of :func:`course_utils.recipes.gan.train_gan`. The
    dashed line at 0.5 is the balance point: a discriminator that cannot tell real from fake says 0.5 to both.
    """
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    else:
        if len(axes) != 2:
            raise ValueError(f"plot_gan_history draws two panels; pass two axes, got {len(axes)}")
        fig = axes[0].figure
    plot_history(history, keys=["d_loss", "g_loss"], ax=axes[0], per=per, title="losses")
    plot_history(history, keys=["D(x)", "D(G(z))"], ax=axes[1], per=per, title="the discriminator's verdicts")
    axes[1].axhline(0.5, color="grey", linestyle="--", linewidth=1)
    axes[1].set_ylim(0, 1)
    fig.tight_layout()
    return fig


def _check_snapshots(snapshots: Sequence[tuple[int, Any]]) -> None:
    if not snapshots:
        raise ValueError("no snapshots yet: pass snapshots=[] to train_gan and train for at least one epoch")


def plot_snapshots(snapshots: Sequence[tuple[int, Any]], n: int = 8, every: int = 1) -> Figure:
    """The same fixed noise painted after each epoch: one row per epoch, ``n`` pictures per row.

    ``snapshots`` is the list filled by ``train_gan(..., snapshots=...)``: ``(epoch, pictures in [0, 1])``
    pairs. ``every`` keeps one epoch in ``every`` (the last epoch is always shown).
    """
    _check_snapshots(snapshots)
    if n <= 0 or every <= 0:
        raise ValueError(f"n and every must be positive, got n={n}, every={every}")
    chosen = list(snapshots[::every])
    if chosen[-1] is not snapshots[-1]:
        chosen.append(snapshots[-1])
    fig, axes = plt.subplots(len(chosen), 1, figsize=(0.9 * n, 0.95 * len(chosen) + 0.3), squeeze=False)
    for ax, (epoch, pictures) in zip(axes[:, 0], chosen, strict=True):
        ax.imshow(image_grid(pictures[:n], nrow=n), cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(f"epoch {epoch}", rotation=0, ha="right", va="center")
    fig.suptitle("the same noise, painted after each epoch")
    fig.tight_layout()
    return fig


def snapshot_animation(snapshots: Sequence[tuple[int, Any]], nrow: int = 8, interval_ms: int = 400):
    """An animation of the fixed-noise pictures over training (a ``matplotlib.animation.FuncAnimation``).

    In a notebook: ``HTML(snapshot_animation(snapshots).to_jshtml())``.
    """
    from matplotlib import animation

    _check_snapshots(snapshots)
    grids = [image_grid(pictures, nrow=nrow) for _, pictures in snapshots]
    fig, ax = plt.subplots(figsize=(4, 4 * grids[0].shape[0] / grids[0].shape[1] + 0.4))
    shown = ax.imshow(grids[0], cmap="gray_r", vmin=0, vmax=1)
    ax.axis("off")
    title = ax.set_title(f"epoch {snapshots[0][0]}")

    def draw(i: int) -> list:
        shown.set_data(grids[i])
        title.set_text(f"epoch {snapshots[i][0]}")
        return [shown, title]

    anim = animation.FuncAnimation(fig, draw, frames=len(grids), interval=interval_ms, blit=False)
    plt.close(fig)  # the animation keeps the figure; only its HTML should appear
    return anim


def plot_gan_progress(history: Any, snapshots: Sequence[tuple[int, Any]] | None = None, n: int = 16) -> Figure:
    """One dashboard for a GAN in training: losses, the discriminator's verdicts, the latest fixed-noise pictures."""
    panels = 3 if snapshots else 2
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.6))
    plot_gan_history(history, per="step", axes=axes[:2])
    if snapshots:
        epoch, pictures = snapshots[-1]
        pictures = pictures[:n]
        axes[2].imshow(image_grid(pictures, nrow=max(1, int(len(pictures) ** 0.5))), cmap="gray_r", vmin=0, vmax=1)
        axes[2].axis("off")
        axes[2].set_title(f"fixed noise after epoch {epoch}")
    fig.tight_layout()
    return fig


class LivePlot:
    """A training hook that redraws one figure in place in the notebook after every epoch.

    ``draw(history)`` returns a Figure; pass the LivePlot as ``on_epoch_end`` to ``fit`` or
    ``train_gan``. The figure is shown through an ``IPython.display`` handle that is updated, not
    appended, so the notebook shows one picture that changes while training runs.
    """

    def __init__(self, draw: Callable[[Any], Figure]) -> None:
        self.draw = draw
        self.handle: Any = None
        self.updates = 0

    def __call__(self, epoch: int, history: Any) -> None:
        from IPython.display import display

        fig = self.draw(history)
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        plt.close(fig)  # shown already; closing keeps it from appearing a second time at the end of the cell
        self.updates += 1


def plot_class_histograms(
    histograms: dict[str, Sequence[float]], class_names: Sequence[str] | None = None, title: str | None = None
) -> Figure:
    """Side-by-side bars of predicted-class frequencies, e.g. ``{"real": [...], "GAN": [...]}``.

    A healthy generator draws every class about as often as the real data; a collapsed one piles
    its pictures onto a few classes.
    """
    if not histograms:
        raise ValueError("give at least one histogram, e.g. {'GAN': critic.judge(...)['class_histogram']}")
    sizes = {len(h) for h in histograms.values()}
    if len(sizes) != 1:
        raise ValueError(f"all histograms need the same number of classes, got sizes {sorted(sizes)}")
    k = sizes.pop()
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    width = 0.8 / len(histograms)
    for i, (label, values) in enumerate(histograms.items()):
        ax.bar(np.arange(k) + (i - (len(histograms) - 1) / 2) * width, np.asarray(values, float), width, label=label)
    ax.axhline(1 / k, color="grey", linestyle="--", linewidth=1, label="perfectly even")
    ax.set_xticks(np.arange(k), names)
    ax.set_ylabel("share of pictures")
    ax.set_xlabel("class, as the course's classifier reads it")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- diffusion


def plot_forward_process(
    images: torch.Tensor, schedule: Any, timesteps: Sequence[int] | None = None, seed: int = 0
) -> Figure:
    """The statue turning into marble: each row one image (pixels in [0, 1]), each column ``x_t`` at a larger ``t``.

    ``schedule`` is a :class:`course_utils.diffusion.NoiseSchedule`; ``timesteps`` default to eight
    steps spread from 0 to ``T-1``. One noise draw per image (seeded) is reused for every column.
    """
    from course_utils import diffusion
    from course_utils.data import to_signed, to_unit

    if timesteps is None:
        timesteps = np.linspace(0, schedule.timesteps - 1, 8).round().astype(int).tolist()
    array = torch.as_tensor(_as_image_array(images))[:, None]  # checked, N x 1 x H x W in [0, 1]
    noise = torch.randn(array.shape, generator=torch.Generator().manual_seed(seed))
    n = array.shape[0]
    fig, axes = plt.subplots(n, len(timesteps), figsize=(1.1 * len(timesteps), 1.1 * n + 0.3), squeeze=False)
    for col, t in enumerate(timesteps):
        x_t = diffusion.q_sample(to_signed(array), torch.full((n,), int(t)), noise, schedule)
        for row in range(n):
            axes[row, col].imshow(to_unit(x_t[row, 0]).numpy(), cmap="gray_r", vmin=0, vmax=1)
            axes[row, col].axis("off")
        axes[0, col].set_title(f"t={t}\nᾱ={schedule.alpha_bar[int(t)]:.2f}", fontsize=8)
    fig.tight_layout()
    return fig


def plot_schedules(schedules: dict[str, Any], ax: Axes | None = None) -> Figure:
    """``alpha_bar_t`` (how much of the image is left) and ``1 - alpha_bar_t`` (how much noise) against ``t / T``.

    ``schedules`` maps a name to a :class:`course_utils.diffusion.NoiseSchedule`.
    """
    if not schedules:
        raise ValueError("give at least one schedule, e.g. {'cosine': make_schedule(1000, 'cosine')}")
    fig, ax = _new_axes(ax, (6, 3.2))
    for name, schedule in schedules.items():
        fraction = np.arange(1, schedule.timesteps + 1) / schedule.timesteps
        alpha_bar = schedule.alpha_bar.numpy()
        (line,) = ax.plot(fraction, alpha_bar, label=f"{name}: ᾱ_t (signal)")
        ax.plot(fraction, 1 - alpha_bar, "--", color=line.get_color(), label=f"{name}: 1 - ᾱ_t (noise)")
    ax.set_xlabel("t / T")
    ax.set_ylabel("variance share")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def plot_trajectory(trajectory: Sequence[Any], n: int = 6, labels: Sequence[Any] | None = None) -> Figure:
    """Noise becoming digits: each row one image, each column one moment of the reverse process.

    ``trajectory`` is a list of batches ``x_t`` in [-1, 1] (as the samplers return it); ``labels``
    names the columns (e.g. the timesteps). Values outside [-1, 1] (early, noisy steps) are clipped.
    """
    if len(trajectory) == 0:
        raise ValueError("the trajectory is empty: sample with return_trajectory=True")
    if labels is not None and len(labels) != len(trajectory):
        raise ValueError(f"got {len(labels)} labels for {len(trajectory)} moments")
    n = min(n, len(trajectory[0]))
    cols = len(trajectory)
    fig, axes = plt.subplots(n, cols, figsize=(0.95 * cols, 0.95 * n + 0.3), squeeze=False)
    for col, batch in enumerate(trajectory):
        array = (torch.as_tensor(batch[:n]).float().clamp(-1, 1) + 1) / 2
        for row in range(n):
            axes[row, col].imshow(array[row, 0].numpy(), cmap="gray_r", vmin=0, vmax=1)
            axes[row, col].axis("off")
        if labels is not None:
            axes[0, col].set_title(str(labels[col]), fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- evaluation


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
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


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
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
