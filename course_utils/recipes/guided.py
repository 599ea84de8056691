"""The guided-diffusion recipe (notebook 06, "Ask for a digit"): a U-Net told the class, sampled with guidance.

The same model and training as :mod:`course_utils.recipes.diffusion`, plus a class label: the U-Net adds a
label embedding to its time embedding, and each training label is hidden (replaced by the "no label" token)
with probability ``label_dropout``, so one network learns both the conditional and the unconditional noise.
Sampling mixes the two with a guidance scale ``w`` (:func:`course_utils.guidance.guided_eps`).

:class:`GuidedDiffusionConfig` holds the settings and :func:`guided_preset` the course's choice, which
notebook 06 trains and the evaluation notebook's scoreboard loads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from course_utils import config, diffusion, guidance
from course_utils.data import ImageData, to_signed, to_unit
from course_utils.history import History
from course_utils.loop import SAMPLING, evaluating
from course_utils.models.unet import UNet
from course_utils.recipes.diffusion import DiffusionConfig, train_denoiser

GUIDANCE = guidance.GUIDANCE
"""The course's guidance scale ``w`` for the widget and the pictures: digits nobody can mistake, at the price of
variety (a higher FID than a smaller ``w``). Guided only for ``t <= 0.4 T`` (``interval=(0, 0.4)``) a larger ``w``
keeps more variety. Notebook 06's sweep measures both on the student's own model; README's tables give the figures of
the course's measured runs. The evaluation notebook's scoreboard samples the way notebook 06's sweep chose instead."""


@dataclass(frozen=True, kw_only=True)
class GuidedDiffusionConfig(DiffusionConfig):
    """A class-conditional diffusion model's settings: :class:`DiffusionConfig`'s, plus ``num_classes`` (the
    labels run over ``0 .. num_classes - 1``; one more embedding is the "no label" token), ``label_dropout``,
    the share of training labels hidden so that the same network also learns to draw any digit, and ``clip``,
    the range ``[-clip, clip]`` each guess of the clean data is kept in while sampling (1 for pixels; a sampling
    setting, free to change after training)."""

    num_classes: int = 10
    label_dropout: float = 0.1
    clip: float | None = field(default=1.0, metadata=SAMPLING)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {self.num_classes!r}")
        if self.clip is not None and self.clip <= 0:
            raise ValueError(f"clip must be positive (1 for pixels in [-1, 1]) or None, got {self.clip}")
        if not 0.0 <= self.label_dropout < 1.0:
            raise ValueError(
                f"label_dropout must be in [0, 1) (about 0.1: hide one label in ten), got {self.label_dropout}"
            )


def guided_preset(data: ImageData) -> GuidedDiffusionConfig:
    """Notebook 06's model: notebook 05's U-Net and schedule told the digit, at most 280,000 pictures within
    330 s of training (fast profile: a tiny one, briefly)."""
    return GuidedDiffusionConfig(
        channels=config.by_profile(full=(16, 32, 64), fast=(8, 16, 16)),
        timesteps=config.by_profile(full=1000, fast=100),
        images=config.by_profile(full=280_000, fast=512),
        max_seconds=config.by_profile(full=330, fast=None),
    )


def make_guided_diffusion(
    image_shape: tuple[int, int, int], settings: GuidedDiffusionConfig
) -> guidance.ConditionalDiffusionModel:
    """A :class:`~course_utils.guidance.ConditionalDiffusionModel` around a class-conditional U-Net, as set
    (``image_shape`` is a picture's, or a latent grid's for the capstone's denoiser)."""
    bf16 = diffusion.bf16_is_fast(config.device()) if settings.bf16 == "auto" else bool(settings.bf16)
    net = UNet(image_shape, channels=settings.channels, num_classes=settings.num_classes)
    return guidance.ConditionalDiffusionModel(
        net, settings.timesteps, settings.schedule, settings.sample_steps, bf16, settings.sample_eta, settings.clip
    )


def train_guided_diffusion(
    data: ImageData, settings: GuidedDiffusionConfig, *, checkpoint: str | Path | None = None, desc: str | None = None
) -> tuple[guidance.ConditionalDiffusionModel, History]:
    """Train a class-conditional diffusion model on ``data`` (pictures and labels) with
    :func:`~course_utils.recipes.diffusion.train_denoiser`: each step shows the network each picture's class,
    except for a share ``settings.label_dropout`` of them, which get the "no label" token.

    Returns ``(ema_model, history)``, the moving average of the weights. With ``checkpoint`` (e.g.
    ``checkpoints.checkpoint_path('guided_diffusion', data)``) the run and its settings are saved, and the
    next call resumes it exactly (the generator that draws noise and hides labels is saved too), or simply
    loads it when it is finished.
    """
    check_labels(data.labels, settings.num_classes)
    rng = config.seed_everything(settings.seed)
    model = make_guided_diffusion(data.image_shape, settings).to(config.device())

    def clean_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return to_signed(batch[0]), batch[1]

    loader = data.loader(settings.batch_size, seed=settings.seed)
    desc = desc or "guided diffusion"
    return train_denoiser(
        model, settings, loader, clean_batch, rng, settings.label_dropout, checkpoint=checkpoint, desc=desc
    )


def check_labels(labels: torch.Tensor, num_classes: int) -> None:
    """Raise a clear error when the data's classes do not fit a model of ``num_classes`` classes."""
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(
            f"the data has labels {int(labels.min())} .. {int(labels.max())} but settings.num_classes is "
            f"{num_classes}: labels must lie in 0 .. {num_classes - 1}"
        )


def sample_guided(
    model: guidance.ConditionalDiffusionModel,
    labels: int | Sequence[int] | torch.Tensor,
    w: float = GUIDANCE,
    n: int | None = None,
    seed: int = 0,
    steps: int | None = None,
    eta: float | None = None,
    batch_size: int = 250,
    interval: tuple[float, float] = guidance.EVERY_STEP,
) -> torch.Tensor:
    """Pictures of the classes ``labels``, guided with scale ``w``: a CPU tensor ``n x C x H x W`` in [0, 1].

    ``labels`` is one class (then ``n`` pictures of it, 16 by default) or one class per picture, repeated in
    turn up to ``n`` pictures when ``n`` is given (``sample_guided(model, range(10), n=1000)``: 100 of each
    digit). The class ``model.null_label`` means "any digit". ``w = 0`` samples the unconditional model,
    ``w = 1`` the conditional one, larger ``w`` insists on the class. The same seed gives the same starting
    noise whatever ``w`` is, so pictures at two scales can be compared one by one. Works ``batch_size``
    pictures at a time (a guided step runs the network on twice as many) to keep memory small; the pictures do not
    depend on it.
    ``interval``: the part of the schedule, as fractions ``t / T``, where ``w`` applies; elsewhere the model is
    conditional (``w = 1``), see :func:`~course_utils.guidance.scale_at`. ``(0, 0.5)`` guides only the less noisy half.
    """
    if not isinstance(model, guidance.ConditionalDiffusionModel):
        raise TypeError(
            f"sample_guided needs a ConditionalDiffusionModel (from train_guided_diffusion), got {type(model).__name__}"
        )
    if n is not None and n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if isinstance(labels, int):
        labels = torch.full((16 if n is None else n,), labels, dtype=torch.int64)
    else:
        labels = torch.as_tensor(list(labels) if isinstance(labels, range) else labels, dtype=torch.int64).reshape(-1)
        if len(labels) == 0:
            raise ValueError("labels is empty: give a class, or one class per picture")
        if n is not None:
            labels = labels.repeat(-(-n // len(labels)))[:n]
    if labels.min() < 0 or labels.max() > model.null_label:
        raise ValueError(
            f"labels must lie in 0 .. {model.null_label} ({model.null_label} means 'any digit'), "
            f"got {int(labels.min())} .. {int(labels.max())}"
        )
    rng = torch.Generator().manual_seed(seed)
    with evaluating(model):
        images = model.sample_classes(labels, w, rng, steps, eta, interval, batch_size)
    return to_unit(images).cpu()
