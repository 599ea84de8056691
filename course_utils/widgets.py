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

from course_utils import config

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
    # align_self keeps the picture at its own size: stretched to the box width it pushes the sliders off screen.
    image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", align_self="flex-start"))
    message = widgets.HTML()

    def redraw(_change: Any = None) -> None:
        try:
            image.value = picture_to_png(render(**{name: c.value for name, c in controls.items()}), scale=scale)
            message.value = ""
        except Exception as error:  # shown to the student, who can fix the render function
            message.value = (
                f"<span style='color:#b00'>{html.escape(type(error).__name__)}: {html.escape(str(error))}</span>"
            )

    for control in controls.values():
        control.observe(redraw, names="value")
    redraw()
    children: list[widgets.Widget] = [widgets.HTML(f"<b>{html.escape(title)}</b>")] if title else []
    return widgets.VBox([*children, *controls.values(), image, message])


# ---------------------------------------------------------------------------- autoencoders and VAEs


@torch.no_grad()
def decode_code(decode: Callable[[torch.Tensor], torch.Tensor], base: torch.Tensor, **values: float) -> np.ndarray:
    """The picture (H x W in [0, 1]) that ``decode`` makes of code ``base`` with some entries replaced.

    ``values`` name latent dimensions as ``z0=..., z3=...``: the render function of :func:`latent_explorer`.
    """
    code = torch.as_tensor(base, dtype=torch.float32).detach().clone().reshape(1, -1)
    for name, value in values.items():
        if not (name.startswith("z") and name[1:].isdigit() and int(name[1:]) < code.shape[1]):
            raise ValueError(f"{name!r} is not a latent dimension; use z0 ... z{code.shape[1] - 1}")
        code[0, int(name[1:])] = float(value)
    return decode(code.to(config.device_of(decode)))[0, 0].cpu().numpy()


def latent_explorer(
    decode: Callable[[torch.Tensor], torch.Tensor],
    latent_dim: int,
    dims: int | list[int] = 6,
    start: torch.Tensor | None = None,
    span: float = 3.0,
    scale: int | None = None,
) -> widgets.VBox:
    """Sliders on latent dimensions; the decoded picture redraws as they move.

    ``dims``: how many dimensions get a slider (the first ones), or a list of them; the other
    dimensions keep their value from ``start`` (a code, e.g. one picture's ``mu``; default zeros,
    the centre of the prior). Each slider runs from ``-span`` to ``span`` prior standard deviations.
    """
    base = torch.zeros(latent_dim) if start is None else torch.as_tensor(start, dtype=torch.float32).detach().cpu()
    base = base.reshape(-1)
    if base.numel() != latent_dim:
        raise ValueError(f"start must be a code of {latent_dim} numbers, got {base.numel()}")
    chosen = list(range(min(dims, latent_dim))) if isinstance(dims, int) else list(dims)
    if not chosen or any(not 0 <= d < latent_dim for d in chosen):
        raise ValueError(f"dims must pick dimensions among 0 ... {latent_dim - 1}, got {dims}")
    sliders = {
        f"z{d}": widgets.FloatSlider(
            value=round(float(base[d]), 2), min=-span, max=span, step=0.1, description=f"z[{d}]", continuous_update=True
        )
        for d in chosen
    }
    height = decode_code(decode, base).shape[0]
    return picture_widget(
        lambda **values: decode_code(decode, base, **values),
        scale=scale or max(2, 160 // height),
        title="Latent explorer: move a slider, watch the decoded picture change",
        **sliders,
    )


# ---------------------------------------------------------------------------- diffusion


def denoising_picture(model: Any, image: torch.Tensor, noise: torch.Tensor, t: int) -> np.ndarray:
    """Three pictures side by side for one timestep ``t``: ``x_t``, the model's guess of ``x_0``, the real ``x_0``.

    ``model`` is a :class:`course_utils.diffusion.DiffusionModel`; ``image`` one picture ``1 x H x W``
    in [0, 1]; ``noise`` a fixed noise of the same shape (so only ``t`` changes between redraws).
    Returns an array ``H x (3W + 2)`` in [0, 1] (ink = 1), with a blank column between pictures.
    The model may live on any device: the pictures go there and come back to the CPU.
    """
    from course_utils import diffusion
    from course_utils.data import to_signed, to_unit

    if image.ndim != 3 or noise.shape != image.shape:
        raise ValueError(f"image and noise must both be 1 x H x W, got {tuple(image.shape)} and {tuple(noise.shape)}")
    device = config.device_of(model)
    image, noise = image.detach().cpu(), noise.detach().cpu()
    t_batch = torch.tensor([int(t)], device=device)
    x0 = to_signed(image)[None].to(device)
    with torch.no_grad():
        x_t = diffusion.q_sample(x0, t_batch, noise[None].to(device), model.schedule)
        guess = diffusion.predict_x0(x_t, t_batch, model(x_t, t_batch), model.schedule).clamp(-1, 1)
    x_t, guess = x_t.cpu(), guess.cpu()
    gap = torch.zeros(image.shape[1], 1)
    return torch.cat([to_unit(x_t[0, 0]), gap, to_unit(guess[0, 0]), gap, image[0]], dim=1).numpy()


def timestep_explorer(model: Any, image: torch.Tensor, seed: int = 0) -> widgets.VBox:
    """A slider over the timestep ``t``: the noisy picture ``x_t``, what the model thinks is under the
    noise (its ``x_0`` guess), and the real picture. Built on :func:`picture_widget`."""
    noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(seed))
    last = model.schedule.timesteps - 1
    slider = widgets.IntSlider(value=last // 2, min=0, max=last, step=max(1, last // 50), description="t")
    return picture_widget(
        lambda t: denoising_picture(model, image, noise, t),
        scale=6,
        title="left: x_t (noisy)  middle: the model's guess of x_0  right: the real x_0",
        t=slider,
    )


@torch.no_grad()
def guided_samples_picture(model: Any, digit: int, w: float, seed: int = 0, n: int = 8) -> np.ndarray:
    """``n`` fresh pictures of class ``digit`` from a class-conditional diffusion model, guided with scale ``w``,
    side by side in one array (H x (n * (W + 1) + 1), in [0, 1], ink = 1): the render function of :func:`draw_me_a`.

    ``model`` is a :class:`course_utils.guidance.ConditionalDiffusionModel`, on any device. The same ``seed``
    starts from the same noise, so only ``w`` or ``digit`` changes between two redraws.
    """
    from course_utils.data import to_unit
    from course_utils.plotting.core import image_grid

    if not 0 <= int(digit) <= model.null_label:
        raise ValueError(f"digit must be a class in 0 .. {model.null_label - 1} (or {model.null_label}: any digit)")
    labels = torch.full((n,), int(digit), dtype=torch.int64)
    pictures = model.sample_classes(labels, float(w), torch.Generator().manual_seed(int(seed)))
    return image_grid(to_unit(pictures).cpu(), nrow=n)


def draw_me_a(model: Any, n: int = 8, w: float | None = None, w_max: float = 6.0) -> widgets.VBox:
    """ "Draw me a ...": pick a digit and a guidance scale ``w``, see ``n`` fresh samples of that digit.

    A dropdown for the digit, a slider for ``w`` (0: any digit, 1: plain conditional, more: insist) and one
    for the seed (a new batch of noise). Built on :func:`picture_widget` with :func:`guided_samples_picture`.
    The slider starts at ``w`` (default: the course's :data:`course_utils.guidance.GUIDANCE`).
    """
    from course_utils.guidance import GUIDANCE

    w = GUIDANCE if w is None else w
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    classes = [(str(c), c) for c in range(model.null_label)] + [("any digit (no label)", model.null_label)]
    controls = {
        "digit": widgets.Dropdown(options=classes, value=min(7, model.null_label - 1), description="draw me a"),
        "w": widgets.FloatSlider(value=w, min=0.0, max=w_max, step=0.5, description="guidance w"),
        "seed": widgets.IntSlider(value=0, min=0, max=99, description="new noise"),
    }
    width = n * (model.image_shape[-1] + 1) + 1
    return picture_widget(
        lambda digit, w, seed: guided_samples_picture(model, digit, w, seed, n),
        scale=max(1, 480 // width),
        title="Draw me a ...: pick a digit and a guidance scale",
        **controls,
    )
