import io

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from course_utils.widgets import picture_to_png, picture_widget


def png_size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


def test_arrays_become_enlarged_pngs_and_figures_are_closed():
    assert png_size(picture_to_png(np.zeros((8, 8)), scale=4)) == (32, 32)
    fig = plt.figure(figsize=(2, 2))
    assert picture_to_png(fig)[:4] == b"\x89PNG"
    assert not plt.fignum_exists(fig.number)
    with pytest.raises(ValueError, match="H x W"):
        picture_to_png(np.zeros((2, 3, 4)))


def test_picture_widget_redraws_when_a_control_moves():
    calls = []

    def render(level):
        calls.append(level)
        return np.full((4, 4), level)

    slider = widgets.FloatSlider(value=0.0, min=0.0, max=1.0)
    box = picture_widget(render, scale=2, level=slider)
    image = next(child for child in box.children if isinstance(child, widgets.Image))
    before = image.value
    slider.value = 1.0
    assert calls == [0.0, 1.0] and image.value != before


def test_render_errors_are_shown_not_swallowed():
    def render(step):
        if step > 0:
            raise RuntimeError("decoder exploded")
        return np.zeros((4, 4))

    slider = widgets.IntSlider(value=0, min=0, max=3)
    box = picture_widget(render, title="t", step=slider)
    slider.value = 2
    message = box.children[-1]
    assert "RuntimeError: decoder exploded" in message.value


def test_picture_widget_validates_its_controls():
    with pytest.raises(ValueError, match="at least one control"):
        picture_widget(lambda: np.zeros((2, 2)))
    with pytest.raises(TypeError, match="no value"):
        picture_widget(lambda x: np.zeros((2, 2)), x=widgets.Box())
