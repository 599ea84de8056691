"""Pictures for GANs (notebooks 03 and 04): the two players' curves, fixed-noise snapshots, class histograms."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from course_utils.plotting.core import _finish, image_grid, plot_history


def plot_gan_history(history: Any, per: str = "step", axes: Sequence[Axes] | None = None) -> Figure:
    """Two panels: the two players' losses, and the discriminator's verdicts ``D(x)`` and ``D(G(z))``.

    ``history`` is the :class:`course_utils.history.History` of :func:`course_utils.recipes.gan.train_gan`. The
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


def snapshot_animation(
    snapshots: Sequence[tuple[int, Any]], nrow: int = 8, interval_ms: int = 400, max_frames: int = 24
):
    """An animation of the fixed-noise pictures over training (a ``matplotlib.animation.FuncAnimation``).

    At most ``max_frames`` evenly spaced snapshots, the first and the last always among them (a long run on a small
    data set keeps one per epoch, which would make a slow, heavy animation). In a notebook:
    ``HTML(snapshot_animation(snapshots).to_jshtml())``.
    """
    from matplotlib import animation

    _check_snapshots(snapshots)
    if max_frames < 2:
        raise ValueError(f"max_frames must be at least 2 (the first and the last snapshot), got {max_frames}")
    if len(snapshots) > max_frames:
        chosen = np.linspace(0, len(snapshots) - 1, max_frames).round().astype(int)
        snapshots = [snapshots[i] for i in sorted(set(chosen.tolist()))]
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

        # Drawn with interactive mode off: in Jupyter, matplotlib-inline otherwise queues every pyplot figure
        # until the cell ends, closed or not, and 84 epochs of dashboards held 700 MB (notebook 04).
        with plt.ioff():
            fig = self.draw(history)
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        plt.close(fig)  # shown already: closed, it is neither drawn a second time nor kept
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
    return _finish(fig, title, ax)
