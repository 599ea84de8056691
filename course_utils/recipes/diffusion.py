"""The diffusion recipe (notebook 05): a U-Net learns to guess the noise, and a moving average of its weights samples.

:class:`DiffusionConfig` holds a diffusion model's settings and :func:`diffusion_preset` the course's
choice, which notebook 05 trains and notebook 08 loads; change one field with ``dataclasses.replace``.
The maths (schedules, the forward process, the samplers) lives in :mod:`course_utils.diffusion`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from course_utils import checkpoints, config, diffusion, guidance
from course_utils.data import ImageData, to_signed, to_unit
from course_utils.history import History
from course_utils.loop import SAMPLING, TrainingConfig, evaluating, fit
from course_utils.models.unet import UNet


@dataclass(frozen=True, kw_only=True)
class DiffusionConfig(TrainingConfig):
    """A diffusion model's settings: the U-Net's ``channels``, the noise schedule (``timesteps`` T and its
    shape), Adam's ``lr`` after ``warmup_steps``, the weight average's ``ema_decay``, and how it samples
    (``sample_steps`` DDIM steps with DDIM's ``sample_eta``). ``bf16='auto'`` turns bfloat16 autocast on
    where the device computes it natively (:func:`course_utils.diffusion.bf16_is_fast`).

    The sampler's settings and the precision (``SAMPLING``) are not compared when a checkpoint is loaded: a model
    trained with 20 DDIM steps samples with 50 (``dataclasses.replace(settings, sample_steps=50)``) untrained again."""

    channels: tuple[int, ...] = (16, 32, 32)
    timesteps: int = 1000
    schedule: str = "cosine"
    lr: float = 2e-3
    warmup_steps: int = 100
    ema_decay: float = 0.995
    sample_steps: int = field(default=20, metadata=SAMPLING)
    sample_eta: float = field(default=diffusion.SAMPLE_ETA, metadata=SAMPLING)
    bf16: bool | str = field(default="auto", metadata=SAMPLING)


def diffusion_preset(data: ImageData) -> DiffusionConfig:
    """Notebook 05's model: at most 280,000 pictures within 390 s of training (fast profile: a tiny one, briefly)."""
    return DiffusionConfig(
        channels=config.by_profile(full=(16, 32, 64), fast=(8, 16, 16)),
        timesteps=config.by_profile(full=1000, fast=100),
        images=config.by_profile(full=280_000, fast=512),
        max_seconds=config.by_profile(full=390, fast=None),
    )


class EMA:
    """An exponential moving average of a model's weights: ``ema = decay * ema + (1 - decay) * weights``.

    The weights of a diffusion model jitter from step to step; their running average samples
    cleaner images. ``ema.model`` is a frozen copy that follows the trained model. Early on the
    decay is smaller (``(1 + n) / (10 + n)`` after ``n`` updates), so the copy does not stay
    stuck near the random starting weights. A checkpoint keeps both the copy and ``n``.
    """

    def __init__(self, model: nn.Module, decay: float = 0.995) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average one step towards ``model``'s current weights."""
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for average, weight in zip(self.model.parameters(), model.parameters(), strict=True):
            average.lerp_(weight.detach(), 1.0 - decay)
        for average, buffer in zip(self.model.buffers(), model.buffers(), strict=True):
            average.copy_(buffer)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        """The averaged weights and the number of updates so far (which sets the warm-up of the decay)."""
        return {"model": self.model.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Carry on from a saved :meth:`state_dict`."""
        self.model.load_state_dict(state["model"])
        self.updates, self.decay = int(state["updates"]), float(state["decay"])


DenoiserLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor | None, float, torch.Generator | None], torch.Tensor]
"""``loss(model, x0, labels, label_dropout, generator) -> loss``: what :func:`train_denoiser` minimises on a batch."""


def noise_prediction_loss(
    model: diffusion.DiffusionModel,
    x0: torch.Tensor,
    labels: torch.Tensor | None = None,
    label_dropout: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Diffusion's loss, ``|| eps - eps_hat(x_t, t) ||^2`` (:func:`course_utils.diffusion.diffusion_loss`), on the
    model's own schedule; with ``labels``, told each item's class except for a share ``label_dropout`` of them
    (:func:`course_utils.guidance.conditional_diffusion_loss`)."""
    if labels is None:
        return diffusion.diffusion_loss(model, x0, model.schedule, generator=generator)
    return guidance.conditional_diffusion_loss(
        model, x0, labels, model.schedule, model.null_label, label_dropout, generator
    )


def denoiser_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x0: torch.Tensor,
    ema: EMA | None = None,
    generator: torch.Generator | None = None,
    labels: torch.Tensor | None = None,
    label_dropout: float = 0.0,
    loss: DenoiserLoss = noise_prediction_loss,
) -> dict[str, float]:
    """One optimisation step of a denoising network on clean data ``x0`` in its own space (pictures in [-1, 1],
    or scaled latents): compute ``loss`` on the batch (by default :func:`noise_prediction_loss`: noise each item to a
    random step, ask for the noise) and nudge the weights to shrink it. Then move the weight average ``ema`` one step.

    ``labels`` (None for an unconditional model) and ``label_dropout`` go to the loss; ``generator`` draws its
    times, noise and hidden labels. The flow-matching recipe passes :func:`course_utils.recipes.flow.velocity_loss`.
    """
    value = loss(model, x0, labels, label_dropout, generator)
    optimizer.zero_grad()
    value.backward()
    optimizer.step()
    if ema is not None:
        ema.update(model)
    return {"loss": value.item()}


def diffusion_step(
    model: diffusion.DiffusionModel,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    ema: EMA | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """One optimisation step of notebook 05's diffusion model on a batch of pictures in [0, 1]: scale them to
    [-1, 1] and take a :func:`denoiser_step` (see :func:`course_utils.diffusion.diffusion_loss`)."""
    return denoiser_step(model, optimizer, to_signed(images), ema, generator)


def make_diffusion(image_shape: tuple[int, int, int], settings: DiffusionConfig) -> diffusion.DiffusionModel:
    """A :class:`~course_utils.diffusion.DiffusionModel` around a :class:`~course_utils.models.UNet`, as set."""
    bf16 = diffusion.bf16_is_fast(config.device()) if settings.bf16 == "auto" else bool(settings.bf16)
    net = UNet(image_shape, channels=settings.channels)
    return diffusion.DiffusionModel(
        net, settings.timesteps, settings.schedule, settings.sample_steps, bf16, settings.sample_eta
    )


def _warmup(optimizer: torch.optim.Optimizer, base_lr: float, warmup_steps: int) -> None:
    """Ramp the learning rate up linearly over the first ``warmup_steps`` steps (read from Adam's own counter,
    which the checkpoint keeps, so a resumed run carries on where it was)."""
    state = next(iter(optimizer.state.values()), None)
    done = int(state["step"]) if state else 0
    for group in optimizer.param_groups:
        group["lr"] = base_lr * min(1.0, (done + 1) / max(1, warmup_steps))


def train_diffusion(
    data: ImageData, settings: DiffusionConfig, *, checkpoint: str | Path | None = None, desc: str | None = None
) -> tuple[diffusion.DiffusionModel, History]:
    """Train a diffusion model on ``data`` with :func:`diffusion_step` inside :func:`fit`.

    Returns ``(ema_model, history)``: the moving average of the weights (:class:`EMA`), which samples
    better than the last weights. With ``checkpoint`` (e.g. ``checkpoints.checkpoint_path('diffusion', data)``)
    the run and its settings are saved, and the next call resumes it, or simply loads it when it is finished.
    """
    rng = config.seed_everything(settings.seed)
    model = make_diffusion(data.image_shape, settings).to(config.device())

    def clean_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, None]:
        return to_signed(batch[0]), None  # the labels are not used: diffusion learns P(x)

    loader = data.loader(settings.batch_size, seed=settings.seed)
    return train_denoiser(model, settings, loader, clean_batch, rng, checkpoint=checkpoint, desc=desc or "diffusion")


def train_denoiser(
    model: nn.Module,
    settings: DiffusionConfig,
    loader: Iterable,
    clean_batch: Callable[[Any], tuple[torch.Tensor, torch.Tensor | None]],
    rng: torch.Generator,
    label_dropout: float = 0.0,
    *,
    checkpoint: str | Path | None = None,
    desc: str = "denoiser",
    loss: DenoiserLoss = noise_prediction_loss,
) -> tuple[nn.Module, History]:
    """The training loop every diffusion and flow recipe shares: Adam with a warm-up, :func:`denoiser_step` on each
    batch, a weight average (:class:`EMA`), all inside :func:`fit`. Returns ``(ema_model, history)``.

    ``loss`` is what each step minimises: :func:`noise_prediction_loss` for diffusion, the flow-matching loss for a
    velocity network (:mod:`course_utils.recipes.flow`). ``settings`` needs ``lr``, ``warmup_steps`` and
    ``ema_decay`` besides the run's length (a :class:`DiffusionConfig` or a ``FlowConfig``).

    ``clean_batch(batch)`` turns a batch of the ``loader`` into ``(x0, labels)``: the clean data in the model's
    space and the classes (None for an unconditional model). ``rng`` is the seeded generator that draws the
    timesteps, the noise and the hidden labels (a share ``label_dropout`` of them); the checkpoint keeps it, so a
    resumed run is exact.
    """
    device = config.device_of(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    ema = EMA(model, settings.ema_decay)

    def step(batch: Any) -> dict[str, float]:
        x0, labels = clean_batch(batch)
        _warmup(optimizer, settings.lr, settings.warmup_steps)
        labels = None if labels is None else labels.to(device)
        return denoiser_step(model, optimizer, x0.to(device), ema, rng, labels, label_dropout, loss)

    # "noise": the generator of the noise, under the name older checkpoints saved it with (they resume exactly).
    modules = {"model": model, "ema": ema, "optimizer": optimizer, "noise": rng}
    history = fit(step, loader, settings=settings, desc=desc, checkpoint=checkpoint, modules=modules)
    return ema.model.eval(), history


def load_diffusion(
    data: ImageData, settings: DiffusionConfig | None = None, checkpoint: str | Path | None = None
) -> tuple[diffusion.DiffusionModel, History] | None:
    """The weight average of a diffusion model saved by :func:`train_diffusion` and its training history, or None
    when there is none.

    By default notebook 05's model: ``checkpoint_path('diffusion', data)`` with :func:`diffusion_preset`'s
    settings. Nothing is trained: a run stopped early is loaded as it is, and a file saved with other
    settings counts as none (None).
    """
    settings = settings or diffusion_preset(data)
    path = Path(checkpoint) if checkpoint is not None else checkpoints.checkpoint_path("diffusion", data)
    return load_weight_average(path, lambda: make_diffusion(data.image_shape, settings), settings)


def load_weight_average(
    path: Path, make_model: Callable[[], nn.Module], settings: DiffusionConfig
) -> tuple[Any, History] | None:
    """The weight average (:class:`EMA`) that :func:`train_denoiser` saved at ``path``, on the course's device, and
    its history; None when there is no file or it was saved with other ``settings``. ``make_model`` builds the bare
    network (only called when there is a file)."""
    if not path.exists():
        return None
    ema = EMA(make_model(), settings.ema_decay)
    try:
        extra = checkpoints.load_checkpoint(path, {"ema": ema}, settings=settings.model_settings())
    except checkpoints.CheckpointMismatchError:
        return None
    return ema.model.to(config.device()).eval(), History.from_dict(extra["history"])


def sample_diffusion(
    model: diffusion.DiffusionModel,
    n: int,
    seed: int = 0,
    steps: int | None = None,
    batch_size: int = 250,
    eta: float | None = None,
) -> torch.Tensor:
    """``n`` pictures sculpted from seeded noise with DDIM: a CPU tensor ``n x C x H x W`` in [0, 1].

    ``steps`` network calls per picture and DDIM's ``eta`` (defaults: the model's ``sample_steps`` and
    ``sample_eta``). The network sees ``batch_size`` pictures at a time, to keep memory small; the noise is drawn
    for all ``n`` at once, so the same seed gives the same pictures whatever ``batch_size`` is (up to float
    rounding).
    """
    if not isinstance(model, diffusion.DiffusionModel):
        raise TypeError(f"sample_diffusion needs a DiffusionModel (from train_diffusion), got {type(model).__name__}")
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    rng = torch.Generator().manual_seed(seed)
    with evaluating(model):
        images, _ = model.sample(n, rng, steps, eta=eta, batch_size=batch_size)
    return to_unit(images).cpu()
