"""The GAN pictures: training curves, the fixed-noise strip and animation, the live plot, class histograms."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_utils import plotting
from course_utils.history import History


def _history(steps: int = 30) -> History:
    history = History()
    for i in range(steps):
        history.log_step({"d_loss": 1.0 + i / steps, "g_loss": 2.0 - i / steps, "D(x)": 0.7, "D(G(z))": 0.3})
        if i % 10 == 9:
            history.end_epoch()
    return history


def _snapshots(epochs: int = 3, n: int = 16):
    return [(e + 1, torch.full((n, 1, 8, 8), e / epochs)) for e in range(epochs)]


def test_gan_history_has_two_panels_with_the_balance_line():
    fig = plotting.plot_gan_history(_history())
    loss_ax, verdict_ax = fig.axes
    assert {t.get_text() for t in loss_ax.get_legend().get_texts()} == {"d_loss", "g_loss"}
    assert {t.get_text() for t in verdict_ax.get_legend().get_texts()} == {"D(x)", "D(G(z))"}
    assert any(np.allclose(line.get_ydata(), 0.5) for line in verdict_ax.get_lines())
    plt.close(fig)
    with pytest.raises(KeyError, match="logged keys"):
        plotting.plot_gan_history({"loss": [1.0]})


def test_snapshot_strip_has_one_row_per_kept_epoch():
    snaps = _snapshots(5)
    fig = plotting.plot_snapshots(snaps, n=4, every=2)  # epochs 1, 3, 5
    assert [ax.get_ylabel() for ax in fig.axes] == ["epoch 1", "epoch 3", "epoch 5"]
    row = fig.axes[1].images[0].get_array()
    assert row.shape == (8 + 2, 4 * 9 + 1)  # four 8x8 pictures with 1-pixel padding
    np.testing.assert_allclose(row[1:9, 1:9], 0.4)  # epoch 3 was filled with 2 / 5
    plt.close(fig)
    fig = plotting.plot_snapshots(snaps[:4], every=3)  # epochs 1, 4: the last one is always shown
    assert [ax.get_ylabel() for ax in fig.axes] == ["epoch 1", "epoch 4"]
    plt.close(fig)
    with pytest.raises(ValueError, match="no snapshots"):
        plotting.plot_snapshots([])


def test_snapshot_animation_has_one_frame_per_epoch():
    anim = plotting.snapshot_animation(_snapshots(3, n=4), nrow=2)
    html = anim.to_jshtml()
    assert html.count("frames[") >= 3
    assert "<script" in html


def test_a_long_run_is_animated_with_at_most_max_frames_first_and_last_included():
    anim = plotting.snapshot_animation(_snapshots(84, n=4), nrow=2, max_frames=6)
    titles = []
    for frame in range(anim._save_count):
        anim._func(frame)
        titles.append(anim._fig.axes[0].get_title())
    assert len(titles) == 6 and titles[0] == "epoch 1" and titles[-1] == "epoch 84"
    with pytest.raises(ValueError, match="max_frames"):
        plotting.snapshot_animation(_snapshots(3, n=4), max_frames=1)


def test_live_plot_draws_once_per_epoch_and_reuses_one_display(monkeypatch):
    import IPython.display

    shown, updated = [], []

    class Handle:
        def update(self, fig):
            updated.append(fig)

    def fake_display(fig, display_id=False):
        shown.append(fig)
        return Handle()

    monkeypatch.setattr(IPython.display, "display", fake_display)
    snaps = _snapshots(2)
    live = plotting.LivePlot(lambda history: plotting.plot_gan_progress(history, snaps))
    history = _history()
    for epoch in range(3):
        live(epoch, history)
    assert len(shown) == 1 and len(updated) == 2 and live.updates == 3
    assert len(shown[0].axes) == 3  # losses, verdicts, latest pictures
    assert not plt.fignum_exists(shown[0].number)  # closed, so it is not drawn twice


def test_live_plot_lets_go_of_its_figures_under_jupyters_inline_backend(monkeypatch):
    import gc
    import weakref

    import IPython.display
    import matplotlib
    from matplotlib_inline import backend_inline

    class Handle:
        def update(self, fig):
            pass

    monkeypatch.setattr(IPython.display, "display", lambda fig, display_id=False: Handle())
    drawn = []

    def draw(history):
        fig = plotting.plot_gan_progress(history, _snapshots(2))
        drawn.append(weakref.ref(fig))
        return fig

    backend, interactive = matplotlib.get_backend(), matplotlib.is_interactive()
    plt.switch_backend("module://matplotlib_inline.backend_inline")
    matplotlib.interactive(True)  # as in a notebook, where the inline backend queues figures until the cell ends
    try:
        live = plotting.LivePlot(draw)
        for epoch in range(3):
            live(epoch, _history())
        queued = list(backend_inline.show._to_draw)
        gc.collect()
        alive = [ref() for ref in drawn if ref() is not None]
    finally:
        matplotlib.interactive(interactive)
        plt.switch_backend(backend)
    assert len(drawn) == 3
    assert not any(any(fig is q for q in queued) for fig in alive), "LivePlot's figures wait in the inline queue"
    assert not alive, f"{len(alive)} of LivePlot's 3 figures are still held after closing"


def test_class_histograms_bars_and_validation():
    fig = plotting.plot_class_histograms({"real": [0.1] * 10, "GAN": [0.5, 0.5] + [0.0] * 8}, title="t")
    ax = fig.axes[0]
    heights = sorted(round(p.get_height(), 3) for p in ax.patches)
    assert heights.count(0.1) == 10 and heights.count(0.5) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="same number of classes"):
        plotting.plot_class_histograms({"a": [0.5, 0.5], "b": [1.0]})
