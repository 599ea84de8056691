"""Interactive widgets for the notebooks (ipywidgets).

Each widget is thin: the picture it shows is computed by a plain function (a *render* function)
that the tests call directly, without a browser. :func:`picture_widget` connects controls
(sliders, dropdowns) to such a function and redraws whenever a control moves.
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

# ---------------------------------------------------------------------------- core


def picture_to_png(picture: Any, scale: int = 8) -> bytes:
    """PNG bytes of a picture: an image array H x W in [0, 1] (ink dark), or a matplotlib Figure.

    Arrays are enlarged ``scale`` times with sharp pixels, so an 8x8 digit is still readable.
    A figure is closed after rendering.
    """
    buffer = io.BytesIO()
    if isinstance(picture, Figure):
        picture.savefig(buffer, format="png", bbox_inches="tight", dpi=90)
        plt.close(picture)
        return buffer.getvalue()
    if isinstance(picture, torch.Tensor):
        picture = picture.detach().cpu().numpy()
    array = np.asarray(picture, dtype=np.float32).squeeze()
    if array.ndim != 2:
        raise ValueError(f"a picture must be an H x W array or a Figure, got shape {array.shape}")
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    enlarged = np.kron(np.clip(array, 0.0, 1.0), np.ones((scale, scale), dtype=np.float32))
    plt.imsave(buffer, enlarged, cmap="gray_r", vmin=0.0, vmax=1.0, format="png")
    return buffer.getvalue()


def picture_widget(
    render: Callable[..., Any], *, scale: int = 8, title: str | None = None, **controls: widgets.Widget
) -> widgets.VBox:
    """A box of controls above a picture that ``render(**values)`` redraws whenever a control moves.

    ``controls`` maps ``render``'s keyword arguments to ipywidgets controls, for example
    ``picture_widget(decode, z0=FloatSlider(...), z1=FloatSlider(...))``. An error in ``render``
    is shown in red under the picture instead of disappearing into a log.
    """
    if not controls:
        raise ValueError("picture_widget needs at least one control, e.g. step=IntSlider(0, 0, 10)")
    for name, control in controls.items():
        if not hasattr(control, "value"):
            raise TypeError(f"control {name!r} is a {type(control).__name__}, which has no value to pass to render")
    image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
    message = widgets.HTML()

    def redraw(_change: Any = None) -> None:
        try:
            image.value = picture_to_png(render(**{name: c.value for name, c in controls.items()}), scale=scale)
            message.value = ""
        except Exception as error:  # shown to the student, who can fix the render function
            message.value = f"<span style='color:#b00'>{html.escape(type(error).__name__)}: {html.escape(str(error))}</span>"

    for control in controls.values():
        control.observe(redraw, names="value")
    redraw()
    children: list[widgets.Widget] = [widgets.HTML(f"<b>{html.escape(title)}</b>")] if title else []
    return widgets.VBox([*children, *controls.values(), image, message])
