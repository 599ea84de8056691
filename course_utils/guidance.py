"""Classifier-free guidance: ask a diffusion model for a class ("draw me a 7"), and insist on it.

One network learns two things at once. Told a class label, it predicts the noise of an image of that
class; told the "no label" token, it predicts the noise of any image. Training teaches both by hiding
the label now and then (:func:`drop_labels`, about 10% of the time). When sampling, the two predictions
are mixed with a guidance scale ``w`` (:func:`guided_eps`)::

    eps = eps_uncond + w * (eps_cond - eps_uncond)

``w = 0`` is the unconditional model, ``w = 1`` the plain conditional one, and ``w > 1`` walks past it,
away from "any digit" and towards "clearly this digit": samples match the class more often and vary
less. Stable Diffusion, Imagen and DALL-E 2 all sample this way.

Pure PyTorch, like :mod:`course_utils.diffusion`. A conditional model is any callable
``model(x_t, t, labels) -> predicted noise`` whose ``labels`` run over ``0 .. K``, ``K`` meaning "no label"
(e.g. :class:`course_utils.models.UNet` built with ``num_classes=K``).

Reference: Ho & Salimans 2022, *Classifier-Free Diffusion Guidance* (their ``w`` is ours minus one).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.diffusion import SAMPLE_ETA, DiffusionModel, NoiseSchedule, ddim_sample, in_batches, q_sample

ConditionalNoisePredictor = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``model(x_t, t, labels) -> eps_hat``: predicts the noise in ``x_t`` of images of class ``labels``."""


def guided_eps(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, w: float) -> torch.Tensor:
    """Classifier-free guidance: ``eps_uncond + w * (eps_cond - eps_uncond)``.

    Start from the prediction for "any image" and move ``w`` times the step towards "an image of this
    class": ``w = 0`` gives ``eps_uncond``, ``w = 1`` gives ``eps_cond``, larger ``w`` insists on the class.
    """
    if eps_uncond.shape != eps_cond.shape:
        raise ValueError(
            f"eps_uncond and eps_cond must have the same shape, got {tuple(eps_uncond.shape)} "
            f"and {tuple(eps_cond.shape)}"
        )
    return eps_uncond + w * (eps_cond - eps_uncond)


GUIDANCE = 2.0
"""The course's guidance scale ``w``, the default of every guided sampler: digits nobody can mistake."""

EVERY_STEP = (0.0, 1.0)
"""The interval (fractions ``t / T`` of the schedule) that guides at every step: plain classifier-free guidance."""


def scale_at(step: int, timesteps: int, w: float, interval: tuple[float, float] = EVERY_STEP) -> float:
    """The guidance scale used at ``step`` of a schedule of ``timesteps`` steps: ``w`` where ``step / timesteps``
    lies in ``interval`` (both ends included), 1 elsewhere (the plain conditional prediction, no guidance).

    The default ``(0, 1)`` guides at every step. ``(0, 0.5)`` guides only in the less noisy half of the schedule:
    guidance at the noisiest steps pushes every sample towards the same typical layout and costs variety, while
    later it makes the digit clear (Kynkaanniemi et al. 2024, *Applying Guidance in a Limited Interval*).
    """
    low, high = check_interval(interval)
    return w if low <= step / timesteps <= high else 1.0


def check_interval(interval: tuple[float, float]) -> tuple[float, float]:
    """``interval`` as two floats, after checking that ``0 <= low < high <= 1``; a clear error otherwise."""
    if len(interval) != 2 or not 0.0 <= interval[0] < interval[1] <= 1.0:
        raise ValueError(
            f"interval must be (low, high) with 0 <= low < high <= 1, fractions t / T of the schedule where guidance "
            f"applies, e.g. (0, 0.5) for its less noisy half; got {tuple(interval)}"
        )
    return float(interval[0]), float(interval[1])


def describe_interval(interval: tuple[float, float]) -> str:
    """Where an interval guides, in words for titles and printouts: ``'at every step'``, ``'only for t <= 0.4 T'``
    or ``'only for 0.1 T <= t <= 0.6 T'``."""
    low, high = check_interval(interval)
    if (low, high) == EVERY_STEP:
        return "at every step"
    return f"only for t <= {high:g} T" if low == 0 else f"only for {low:g} T <= t <= {high:g} T"


def drop_labels(
    labels: torch.Tensor, p: float, null_label: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A copy of ``labels`` where each one is replaced by ``null_label`` ("no label") with probability ``p``.

    Training on these teaches one network both the conditional and the unconditional prediction.
    The coin flips are drawn on the CPU with ``generator``, so a seed hides the same labels on every device.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p}")
    labels = torch.as_tensor(labels)
    if labels.dtype not in (torch.int64, torch.int32) or labels.ndim != 1:
        raise ValueError(f"labels must be a 1-D integer tensor, got {labels.dtype} {tuple(labels.shape)}")
    hide = (torch.rand(labels.shape, generator=generator) < p).to(labels.device)
    return torch.where(hide, torch.full_like(labels, null_label), labels)


def conditional_diffusion_loss(
    model: ConditionalNoisePredictor,
    x0: torch.Tensor,
    labels: torch.Tensor,
    schedule: NoiseSchedule,
    null_label: int,
    label_dropout: float = 0.1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """DDPM's simple loss (see :func:`course_utils.diffusion.diffusion_loss`), told the class of each image.

    Each label is hidden (replaced by ``null_label``) with probability ``label_dropout`` first.
    """
    if labels.shape != (x0.shape[0],):
        raise ValueError(f"labels must hold one class per image, shape ({x0.shape[0]},); got {tuple(labels.shape)}")
    t = torch.randint(0, schedule.timesteps, (x0.shape[0],), generator=generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
    shown = drop_labels(labels, label_dropout, null_label, generator).to(x0.device)
    return F.mse_loss(model(q_sample(x0, t, noise, schedule), t, shown), noise)


def guided_prediction(
    model: ConditionalNoisePredictor, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, w: float, null_label: int
) -> torch.Tensor:
    """The guided noise prediction for ``x`` at steps ``t``, asking for classes ``labels`` with scale ``w``.

    Both predictions come from one network call on a doubled batch ``[x, x]`` with labels
    ``[labels, no label]``; at ``w = 0`` or ``w = 1`` only the one prediction needed is computed.
    """
    if w == 0:
        return model(x, t, torch.full_like(labels, null_label))
    if w == 1:
        return model(x, t, labels)
    both = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, torch.full_like(labels, null_label)]))
    eps_cond, eps_uncond = both.chunk(2)
    return guided_eps(eps_uncond, eps_cond, w)


@torch.no_grad()
def guided_ddim_sample(
    model: ConditionalNoisePredictor,
    labels: torch.Tensor,
    shape: tuple[int, ...],
    schedule: NoiseSchedule,
    null_label: int,
    w: float = GUIDANCE,
    steps: int = 20,
    eta: float = SAMPLE_ETA,
    generator: torch.Generator | None = None,
    clip: float | None = 1.0,
    device: torch.device | str = "cpu",
    interval: tuple[float, float] = EVERY_STEP,
    batch_size: int | None = None,
) -> torch.Tensor:
    """DDIM sampling with classifier-free guidance: :func:`course_utils.diffusion.ddim_sample`'s loop, run on the
    guided prediction (:func:`guided_prediction`).

    Image ``i`` is drawn as class ``labels[i]`` (``null_label`` for "any class") with guidance scale ``w`` at the
    steps ``t`` whose ``t / T`` lies in ``interval`` (every step by default), conditional (``w = 1``) at the others:
    see :func:`scale_at`. Noise is drawn on the CPU with ``generator``: the same seed gives the same images, whatever
    ``batch_size`` (how many images the network sees at a time, twice as many rows when guided) is.
    ``clip`` keeps each guess of the clean image in ``[-clip, clip]``: 1 for pixels in ``[-1, 1]``, about 3 to 4 for
    latents scaled to unit variance. Do not turn it off with a cosine schedule: at its last step ``alpha_bar`` is
    about ``1e-9``, so the first guess of the clean image multiplies the network's error by ``1 / sqrt(alpha_bar)``.
    """
    if w < 0:
        raise ValueError(f"the guidance scale w must be >= 0 (0: unconditional, 1: conditional), got {w}")
    labels = torch.as_tensor(labels, dtype=torch.int64).to(device)
    if labels.shape != (shape[0],):
        raise ValueError(f"labels must hold one class per image, shape ({shape[0]},); got {tuple(labels.shape)}")

    def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        scale = scale_at(int(t[0]), schedule.timesteps, w, interval)  # every image of the batch is at the same step

        def predict(x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return guided_prediction(model, x, t, labels, scale, null_label)

        return in_batches(predict, batch_size, x, t, labels)

    images, _ = ddim_sample(guided, shape, schedule, steps, eta, generator, clip, device=device)
    return images


class ConditionalDiffusionModel(DiffusionModel):
    """A class-conditional noise predictor with its schedule and sampler settings, sampled with guidance.

    ``net`` is called as ``net(x_t, t, labels)`` and must know its "no label" token as ``net.null_label``
    (a :class:`course_utils.models.UNet` with ``num_classes``). ``model(x_t, t)`` without labels is the
    unconditional prediction. ``clip``: the range ``[-clip, clip]`` of the clean data (1 for pixels; about 3
    to 4 for a denoiser of latents scaled to unit variance), see :func:`guided_ddim_sample`. ``sample_steps``,
    ``sample_eta`` and ``clip`` only set how it samples, and may change after training.
    """

    def __init__(
        self,
        net: nn.Module,
        timesteps: int = 1000,
        schedule: str = "cosine",
        sample_steps: int = 20,
        bf16: bool = False,
        sample_eta: float = SAMPLE_ETA,
        clip: float | None = 1.0,
    ) -> None:
        if getattr(net, "null_label", None) is None:
            raise ValueError("net must be class-conditional: e.g. UNet(..., num_classes=10), which has a null_label")
        super().__init__(net, timesteps, schedule, sample_steps, bf16, sample_eta, clip)

    @property
    def null_label(self) -> int:
        """The index of the "no label" token (the number of classes)."""
        return int(self.net.null_label)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        with torch.autocast(x_t.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.net(x_t, t, labels).float()

    @torch.no_grad()
    def sample_classes(
        self,
        labels: torch.Tensor | list[int],
        w: float = GUIDANCE,
        generator: torch.Generator | None = None,
        steps: int | None = None,
        eta: float | None = None,
        interval: tuple[float, float] = EVERY_STEP,
        batch_size: int | None = None,
    ) -> torch.Tensor:
        """One image in ``[-1, 1]`` per entry of ``labels`` (a class, or :attr:`null_label` for any), guided by ``w``
        at the steps in ``interval`` (see :func:`scale_at`).

        A denoiser of latents gives latents, not pixels: decode them.
        """
        labels = torch.as_tensor(labels, dtype=torch.int64)
        device = next(self.parameters()).device
        return guided_ddim_sample(
            self,
            labels,
            (labels.shape[0], *self.image_shape),
            self.schedule,
            self.null_label,
            w=w,
            steps=steps or self.sample_steps,
            eta=self.sample_eta if eta is None else eta,
            generator=generator,
            clip=self.clip,
            device=device,
            interval=interval,
            batch_size=batch_size,
        )
