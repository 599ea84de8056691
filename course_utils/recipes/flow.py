"""The flow-matching recipe (notebook 05b): notebook 05's U-Net learns a velocity instead of the noise.

The same network, the same training loop (:func:`~course_utils.recipes.diffusion.train_denoiser`: Adam with a
warm-up, a weight average, checkpoints that resume exactly) and the same time budget as notebook 05's diffusion
model; only the loss differs (:func:`velocity_loss`). The maths lives in :mod:`course_utils.flow`.

:class:`FlowConfig` holds the settings, :func:`flow_preset` the course's choice (notebook 05b trains it, notebook 08
loads it) and :func:`guided_flow_preset` the class-conditional model of notebook 05b's guidance section.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from course_utils import checkpoints, config, diffusion, flow, guidance
from course_utils.data import ImageData, to_signed, to_unit
from course_utils.history import History
from course_utils.loop import SAMPLING, TrainingConfig, evaluating
from course_utils.models.unet import UNet
from course_utils.recipes.diffusion import diffusion_preset, load_weight_average, train_denoiser


@dataclass(frozen=True, kw_only=True)
class FlowConfig(TrainingConfig):
    """A flow-matching model's settings: the U-Net's ``channels``, Adam's ``lr`` after ``warmup_steps``, the weight
    average's ``ema_decay``, the distribution the training ``times`` come from (:func:`course_utils.flow.draw_times`;
    ``'logit-normal'`` around ``sigmoid(times_mean)``, as Stable Diffusion 3 trains), and how it samples:
    ``sample_steps`` steps of the ODE ``solver`` (``'euler'`` or ``'heun'``). With ``num_classes`` the U-Net is told
    the class, hidden with probability ``label_dropout`` (for guidance, as in notebook 06). ``bf16='auto'`` as in
    :class:`~course_utils.recipes.diffusion.DiffusionConfig`.

    The sampler's settings and the precision (``SAMPLING``) are not compared when a checkpoint is loaded: a model
    sampled with 10 Heun steps samples with 50 Euler steps untrained again."""

    channels: tuple[int, ...] = (16, 32, 32)
    lr: float = 2e-3
    warmup_steps: int = 100
    ema_decay: float = 0.995
    times: str = "logit-normal"
    times_mean: float = -0.5
    num_classes: int | None = None
    label_dropout: float = 0.1
    sample_steps: int = field(default=flow.SAMPLE_STEPS, metadata=SAMPLING)
    solver: str = field(default="heun", metadata=SAMPLING)
    bf16: bool | str = field(default="auto", metadata=SAMPLING)

    def __post_init__(self) -> None:
        super().__post_init__()
        flow.network_calls(self.sample_steps, self.solver)  # a clear error for an unknown solver
        if self.times not in flow.TIME_DISTRIBUTIONS:
            raise ValueError(f"times must be one of {flow.TIME_DISTRIBUTIONS}, got {self.times!r}")
        if not 0.0 <= self.label_dropout < 1.0:
            raise ValueError(f"label_dropout must be in [0, 1) (about 0.1), got {self.label_dropout}")


def flow_preset(data: ImageData) -> FlowConfig:
    """Notebook 05b's model: notebook 05's U-Net, pictures and time budget (:func:`diffusion_preset`), at most
    280,000 pictures within 390 s of training in the full profile (fast profile: a tiny one, briefly)."""
    same = diffusion_preset(data)
    return FlowConfig(channels=same.channels, images=same.images, max_seconds=same.max_seconds)


def guided_flow_preset(data: ImageData) -> FlowConfig:
    """Notebook 05b's guidance section: the same U-Net told the digit, with notebook 06's label dropout (0.1), trained
    briefly (at most 30 s in the full profile) to show that guidance carries over, not to win the scoreboard."""
    same = flow_preset(data)
    return FlowConfig(
        channels=same.channels,
        num_classes=10,
        images=same.images,
        max_seconds=config.by_profile(full=30, fast=None),
    )


def velocity_loss(
    model: nn.Module,
    x0: torch.Tensor,
    labels: torch.Tensor | None = None,
    label_dropout: float = 0.0,
    generator: torch.Generator | None = None,
    times: str = "logit-normal",
    times_mean: float = 0.0,
) -> torch.Tensor:
    """The loss :func:`train_denoiser` minimises for a flow model: :func:`course_utils.flow.flow_loss` at times drawn
    from ``times`` around ``sigmoid(times_mean)`` (:class:`FlowConfig`); with ``labels``, each hidden (the "no label"
    token) with probability ``label_dropout`` first, as notebook 06 does."""
    if labels is None:
        return flow.flow_loss(model, x0, generator, times=times, times_mean=times_mean)
    shown = guidance.drop_labels(labels, label_dropout, model.null_label, generator).to(x0.device)
    return flow.flow_loss(model, x0, generator, shown, times=times, times_mean=times_mean)


def make_flow(image_shape: tuple[int, int, int], settings: FlowConfig) -> flow.FlowModel:
    """A :class:`~course_utils.flow.FlowModel` around a :class:`~course_utils.models.UNet`, as set."""
    bf16 = diffusion.bf16_is_fast(config.device()) if settings.bf16 == "auto" else bool(settings.bf16)
    net = UNet(image_shape, channels=settings.channels, num_classes=settings.num_classes)
    return flow.FlowModel(net, settings.sample_steps, settings.solver, bf16)


def train_flow(
    data: ImageData, settings: FlowConfig, *, checkpoint: str | Path | None = None, desc: str | None = None
) -> tuple[flow.FlowModel, History]:
    """Train a flow-matching model on ``data`` with :func:`train_denoiser` and :func:`velocity_loss`.

    Returns ``(ema_model, history)``, the moving average of the weights. With ``checkpoint`` (e.g.
    ``checkpoints.checkpoint_path('flow', data)``) the run and its settings are saved, and the next call resumes it
    exactly, or simply loads it when it is finished. With ``settings.num_classes`` the labels are shown too.
    """
    rng = config.seed_everything(settings.seed)
    model = make_flow(data.image_shape, settings).to(config.device())
    conditional = settings.num_classes is not None

    def clean_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        return to_signed(batch[0]), (batch[1] if conditional else None)

    loader = data.loader(settings.batch_size, seed=settings.seed)
    dropout = settings.label_dropout if conditional else 0.0
    desc = desc or ("guided flow" if conditional else "flow matching")
    loss = functools.partial(velocity_loss, times=settings.times, times_mean=settings.times_mean)
    return train_denoiser(
        model, settings, loader, clean_batch, rng, dropout, checkpoint=checkpoint, desc=desc, loss=loss
    )


def load_flow(
    data: ImageData, settings: FlowConfig | None = None, checkpoint: str | Path | None = None
) -> tuple[flow.FlowModel, History] | None:
    """The weight average of a flow model saved by :func:`train_flow` and its history, or None when there is none
    (by default notebook 05b's: ``checkpoint_path('flow', data)`` with :func:`flow_preset`). Nothing is trained; a file
    saved with other settings counts as none."""
    settings = settings or flow_preset(data)
    path = Path(checkpoint) if checkpoint is not None else checkpoints.checkpoint_path("flow", data)
    return load_weight_average(path, lambda: make_flow(data.image_shape, settings), settings)


def sample_flow(
    model: flow.FlowModel,
    n: int,
    seed: int = 0,
    steps: int | None = None,
    solver: str | None = None,
    batch_size: int = 250,
    labels: int | Sequence[int] | torch.Tensor | None = None,
    w: float = guidance.GUIDANCE,
) -> torch.Tensor:
    """``n`` pictures integrated from seeded noise: a CPU tensor ``n x C x H x W`` in [0, 1].

    ``steps`` and ``solver`` default to the model's ``sample_steps`` and ``solver``. The noise is drawn for all ``n``
    at once, so the pictures do not depend on ``batch_size`` (how many the network sees at a time). With ``labels``
    (one class, or one per picture, repeated in turn) a class-conditional model is guided with scale ``w``.
    """
    if not isinstance(model, flow.FlowModel):
        raise TypeError(f"sample_flow needs a FlowModel (from train_flow), got {type(model).__name__}")
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    rng = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    x1 = torch.randn((n, *model.image_shape), generator=rng).to(device)
    steps, solver = steps or model.sample_steps, solver or model.solver
    with evaluating(model):
        if labels is None:
            images, _ = flow.flow_sample(model, x1, steps, solver, batch_size=batch_size)
        else:  # guided: one chunk of pictures, and its labels, at a time
            classes = torch.as_tensor([labels] if isinstance(labels, int) else list(labels), dtype=torch.int64)
            classes = classes.reshape(-1).repeat(-(-n // len(classes)))[:n]
            chunks = [
                flow.flow_sample(flow.guided_velocity(model, c, w), x, steps, solver)[0]
                for x, c in zip(x1.split(batch_size), classes.split(batch_size), strict=True)
            ]
            images = torch.cat(chunks)
    return to_unit(images).cpu()
