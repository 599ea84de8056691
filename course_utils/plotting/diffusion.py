"""Pictures for diffusion (notebooks 05, 06): the forward process, noise schedules, the denoising trajectory,
the guidance sweep."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from course_utils.plotting.core import _as_image_array, _new_axes


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
        array = (torch.as_tensor(batch[:n]).detach().cpu().float().clamp(-1, 1) + 1) / 2
        for row in range(n):
            axes[row, col].imshow(array[row, 0].numpy(), cmap="gray_r", vmin=0, vmax=1)
            axes[row, col].axis("off")
        if labels is not None:
            axes[0, col].set_title(str(labels[col]), fontsize=8)
    fig.tight_layout()
    return fig


def plot_guidance_sweep(
    scales: Sequence[float],
    agreement: Sequence[float],
    fid: Sequence[float],
    reference_fid: float | None = None,
    reference_label: str = "unconditional model",
) -> Figure:
    """The fidelity/diversity trade-off of guidance in one picture, with two y-axes over the guidance scale ``w``.

    Left axis (blue): ``agreement``, the share of samples the critic recognises as the class asked for
    (0 to 1, drawn in percent). Right axis (red): their ``fid`` against real pictures (lower is better).
    ``reference_fid`` draws a dashed red line: the FID of another model (e.g. an unconditional one).
    """
    if not len(scales) == len(agreement) == len(fid) or len(scales) == 0:
        raise ValueError(
            f"need one agreement and one FID per scale, got {len(scales)} scales, "
            f"{len(agreement)} agreements, {len(fid)} FIDs"
        )
    if any(not 0.0 <= a <= 1.0 for a in agreement):
        raise ValueError(f"agreement is a share between 0 and 1, got {list(agreement)}")
    fig, left = plt.subplots(figsize=(6.5, 3.6))
    blue, red = "tab:blue", "tab:red"
    left.plot(scales, [100 * a for a in agreement], "o-", color=blue, label="critic agrees with the class asked for")
    left.set_xlabel("guidance scale w")
    left.set_ylabel("agreement (%)", color=blue)
    left.set_ylim(0, 105)
    left.tick_params(axis="y", colors=blue)
    left.grid(alpha=0.3)
    right = left.twinx()
    right.plot(scales, fid, "s-", color=red, label="FID (lower is better)")
    if reference_fid is not None:
        right.axhline(reference_fid, color=red, linestyle="--", linewidth=1, label=f"FID of the {reference_label}")
    right.set_ylabel("FID in the critic's features", color=red)
    right.set_ylim(0, 1.1 * max([*fid, reference_fid or 0.0]))
    right.tick_params(axis="y", colors=red)
    lines = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    labels = left.get_legend_handles_labels()[1] + right.get_legend_handles_labels()[1]
    right.legend(lines, labels, fontsize=8, loc="center right")
    left.set_title("guidance: more of the digit asked for, less variety")
    fig.tight_layout()
    return fig


def plot_guidance_frontier(
    rows: Sequence[dict[str, Any]], reference_fid: float | None = None, reference_label: str = "unconditional model"
) -> Figure:
    """The trade-off of guidance as a frontier: one point per way of sampling, FID across, agreement up.

    Each row is a dict with ``w``, ``agreement`` (a share, 0 to 1) and ``fid``, and optionally ``interval``: the
    ``(low, high)`` fractions ``t / T`` of the schedule where ``w`` applied (absent or ``(0, 1)``: every step).
    Guidance at every step is one line over ``w``; each limited interval gets its own line and marker. Every point
    is labelled with its ``w``. Up and to the left is better: more of the digits asked for, closer to real ones.
    ``reference_fid`` draws a dotted vertical line: another model's FID. Rows with ``w < 1`` (towards the
    unconditional model, near chance agreement) are left out: :func:`plot_guidance_sweep` shows them, and here they
    would squash the region where the choice is made.
    """
    if len(rows) == 0:
        raise ValueError("rows is empty: give one dict with 'w', 'agreement' and 'fid' per way of sampling")
    for row in rows:
        if not {"w", "agreement", "fid"} <= set(row):
            raise ValueError(f"each row needs 'w', 'agreement' and 'fid', got keys {sorted(row)}")
        if not 0.0 <= row["agreement"] <= 1.0:
            raise ValueError(f"agreement is a share between 0 and 1, got {row['agreement']}")
    guided = [row for row in rows if row["w"] >= 1]
    if not guided:
        raise ValueError(
            "no row has w >= 1: the frontier compares guided ways of sampling (plot_guidance_sweep shows w < 1)"
        )
    from course_utils.guidance import EVERY_STEP, describe_interval

    groups: dict[tuple[float, float], list[dict[str, Any]]] = {}
    for row in guided:
        groups.setdefault(tuple(row.get("interval", EVERY_STEP)), []).append(row)
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    for interval, group in groups.items():
        group = sorted(group, key=lambda row: row["w"])
        style, label = ("o-" if interval == EVERY_STEP else "s--"), f"guided {describe_interval(interval)}"
        fids, shares = [row["fid"] for row in group], [100 * row["agreement"] for row in group]
        (line,) = ax.plot(fids, shares, style, label=label)
        for row, x, y in zip(group, fids, shares, strict=True):
            label_at = {"textcoords": "offset points", "xytext": (6, -3), "fontsize": 7, "color": line.get_color()}
            ax.annotate(f"w={row['w']:g}", (x, y), **label_at)
    if reference_fid is not None:
        ax.axvline(reference_fid, color="tab:red", linestyle=":", linewidth=1, label=f"FID of the {reference_label}")
    ax.margins(x=0.1)  # room for the labels of the outermost points
    ax.set_xlabel("FID in the critic's features (lower: closer to real digits)")
    ax.set_ylabel("critic agrees with the digit asked for (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("fidelity against diversity: up and to the left is better")
    fig.tight_layout()
    return fig
