"""The latent-diffusion recipe (the capstone, a tiny Stable Diffusion): a VAE squeezes each digit into a small grid
of latents, a class-conditional denoiser learns in that grid with classifier-free guidance, the decoder paints.

Two settings objects, :class:`LatentVAEConfig` (the first stage) and :class:`LatentDiffusionConfig` (the second),
and the course's choice of both in one place, :func:`latent_vae_preset` and :func:`latent_diffusion_preset`,
which the capstone notebook and the evaluation notebook's scoreboard both call. The denoiser learns the latents of
*one* VAE: retrain a denoiser whenever its VAE changes (a new checkpoint path for each pair does it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from course_utils import checkpoints, config, diffusion, losses
from course_utils.data import ImageData, is_small, make_loader
from course_utils.guidance import ConditionalDiffusionModel, conditional_diffusion_loss
from course_utils.history import History
from course_utils.loop import TrainingConfig, evaluating, fit
from course_utils.models.latent import LatentVAE
from course_utils.models.unet import UNet
from course_utils.recipes.diffusion import EMA, _warmup, diffusion_preset, make_diffusion

# =========================================================================== settings


@dataclass(frozen=True, kw_only=True)
class LatentVAEConfig(TrainingConfig):
    """The first stage's settings: a :class:`~course_utils.models.LatentVAE` with ``latent_channels`` latents per
    grid cell, ``channels`` convolution channels at full size, ``downsamples`` halvings (28x28 -> 7x7 with 2),
    the KL weight ``beta`` and Adam's ``lr``."""

    latent_channels: int = 4
    channels: int = 32
    downsamples: int = 2
    beta: float = 1.0
    lr: float = 2e-3


@dataclass(frozen=True, kw_only=True)
class LatentDiffusionConfig(TrainingConfig):
    """The second stage's settings: a class-conditional U-Net of ``channels`` on the latent grid, the noise
    schedule, Adam's ``lr`` after ``warmup_steps``, the weight average's ``ema_decay``, how often the label is
    hidden in training (``p_uncond``), and how it samples: ``sample_steps`` DDIM steps with DDIM's ``sample_eta``,
    guidance scale ``guidance`` and each guess of the clean latents kept in ``[-clip, clip]`` (about 3 for latents
    of unit variance)."""

    channels: tuple[int, ...] = (32,)
    num_classes: int = 10
    timesteps: int = 1000
    schedule: str = "cosine"
    lr: float = 2e-3
    warmup_steps: int = 100
    ema_decay: float = 0.995
    p_uncond: float = 0.1
    sample_steps: int = 10
    sample_eta: float = 1.0
    guidance: float = 3.0
    clip: float = 3.0


def latent_vae_preset(data: ImageData) -> LatentVAEConfig:
    """The capstone's VAE: 28x28 -> 4 x 7 x 7 latents (8x8 -> 2 x 4 x 4), trained on 48,000 pictures
    (1,000 in the fast profile), at most 150 s."""
    images = config.by_profile(full=48_000, fast=1_000)
    max_seconds = config.by_profile(full=150, fast=None)
    if is_small(data.image_shape):
        return LatentVAEConfig(latent_channels=2, channels=32, downsamples=1, images=images, max_seconds=max_seconds)
    return LatentVAEConfig(latent_channels=4, channels=32, downsamples=2, images=images, max_seconds=max_seconds)


def latent_diffusion_preset(data: ImageData) -> LatentDiffusionConfig:
    """The capstone's denoiser: a one-level U-Net on the latent grid, trained on 128,000 latents (1,024 in the fast
    profile), at most 90 s; sampled with 10 DDIM steps at guidance scale 3."""
    return LatentDiffusionConfig(
        channels=config.by_profile(full=(32,), fast=(16,)),
        timesteps=config.by_profile(full=1000, fast=100),
        images=config.by_profile(full=128_000, fast=1_024),
        max_seconds=config.by_profile(full=90, fast=None),
    )


# =========================================================================== the first stage: the VAE


def make_latent_vae(image_shape: tuple[int, int, int], settings: LatentVAEConfig) -> LatentVAE:
    """The :class:`~course_utils.models.LatentVAE` that ``settings`` describe, for pictures of ``image_shape``."""
    return LatentVAE(image_shape, settings.latent_channels, settings.channels, settings.downsamples)


def latent_vae_step(
    model: LatentVAE, optimizer: torch.optim.Optimizer, images: torch.Tensor, beta: float = 1.0
) -> dict[str, float]:
    """One optimisation step of the latent VAE: reconstruction + ``beta`` x KL, summed over every latent of the grid
    (notebook 02's objective; only the code is a grid instead of a vector)."""
    x_hat, mu, logvar = model(images)
    parts = losses.vae_loss(x_hat, images, mu, logvar, beta=beta)
    optimizer.zero_grad()
    parts.loss.backward()
    optimizer.step()
    return {"loss": parts.loss.item(), "reconstruction": parts.reconstruction.item(), "kl": parts.kl.item()}


def train_latent_vae(
    data: ImageData, settings: LatentVAEConfig, *, checkpoint: str | Path | None = None, desc: str | None = None
) -> tuple[LatentVAE, History]:
    """Train the first stage on ``data`` with :func:`latent_vae_step` inside :func:`fit`; return ``(vae, history)``.

    At the end the latent scale is set from the training pictures (:meth:`LatentVAE.fit_scale`, seeded), so that
    :meth:`~LatentVAE.to_latent` gives latents of unit variance. With ``checkpoint`` the run and its settings are
    saved, and the next call resumes it, or simply loads it when it is finished.
    """
    config.seed_everything(settings.seed)  # the codes are drawn by PyTorch's global generator, which fit saves
    device = config.device()
    model = make_latent_vae(data.image_shape, settings).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
        return latent_vae_step(model, optimizer, batch[0].to(device), beta=settings.beta)

    loader = data.loader(settings.batch_size, seed=settings.seed)
    modules = {"model": model, "optimizer": optimizer}
    history = fit(step, loader, settings=settings, desc=desc or "latent VAE", checkpoint=checkpoint, modules=modules)
    with evaluating(model), torch.random.fork_rng(devices=[]):  # the same scale every time, other draws untouched
        torch.manual_seed(settings.seed)
        model.fit_scale(data.images.to(device))
    return model.eval(), history


@torch.no_grad()
def encode_latents(vae: LatentVAE, images: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """Each picture's cloud in the latent grid, ``(mu, logvar)`` (CPU tensors ``N x latent_shape``), *scaled*:
    a draw ``mu + exp(0.5 * logvar) * eps`` is what :meth:`LatentVAE.to_latent` gives (unit variance)."""
    device = next(vae.parameters()).device
    mus, logvars = [], []
    with evaluating(vae):
        for chunk in images.split(batch_size):
            mu, logvar = vae.encode(chunk.to(device))
            mus.append((mu * vae.latent_scale).cpu())
            logvars.append((logvar + 2 * vae.latent_scale.log()).cpu())  # the spread grows by the same factor
    return torch.cat(mus), torch.cat(logvars)


# =========================================================================== the second stage: the denoiser


def make_latent_diffusion(
    latent_shape: tuple[int, int, int], settings: LatentDiffusionConfig
) -> ConditionalDiffusionModel:
    """A :class:`~course_utils.guidance.ConditionalDiffusionModel` around a class-conditional U-Net of the latents."""
    net = UNet(latent_shape, channels=settings.channels, num_classes=settings.num_classes)
    return ConditionalDiffusionModel(
        net, settings.timesteps, settings.schedule, settings.sample_steps, False, settings.sample_eta, settings.clip
    )


def latent_diffusion_step(
    model: ConditionalDiffusionModel,
    optimizer: torch.optim.Optimizer,
    latents: torch.Tensor,
    labels: torch.Tensor,
    ema: EMA | None = None,
    p_uncond: float = 0.1,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """One optimisation step of the denoiser on a batch of (scaled) latents and their classes: noise each latent
    grid to a random step, hide each label with probability ``p_uncond``, and learn to guess the noise
    (:func:`course_utils.guidance.conditional_diffusion_loss`). Then move the weight average ``ema`` along."""
    loss = conditional_diffusion_loss(
        model, latents, labels, model.schedule, model.null_label, p_uncond=p_uncond, generator=generator
    )
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if ema is not None:
        ema.update(model)
    return {"loss": loss.item()}


def train_latent_diffusion(
    data: ImageData,
    vae: LatentVAE,
    settings: LatentDiffusionConfig,
    *,
    checkpoint: str | Path | None = None,
    desc: str | None = None,
) -> tuple[ConditionalDiffusionModel, History]:
    """Train the denoiser in ``vae``'s latent space on ``data``'s pictures and labels; return ``(ema_model, history)``.

    The pictures are encoded once (:func:`encode_latents`); each step draws fresh latents from their clouds, as
    Stable Diffusion does, with the seeded ``noise`` generator the checkpoint keeps. With ``checkpoint`` the run and
    its settings are saved, and the next call resumes it, or simply loads it when it is finished.
    """
    if not isinstance(vae, LatentVAE):
        raise TypeError(f"train_latent_diffusion needs the LatentVAE of the first stage, got {type(vae).__name__}")
    noise = config.seed_everything(settings.seed)
    device = config.device()
    mu, logvar = encode_latents(vae, data.images)
    model = make_latent_diffusion(vae.latent_shape, settings).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    ema = EMA(model, settings.ema_decay)

    def step(batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> dict[str, float]:
        batch_mu, batch_logvar, labels = batch
        eps = torch.randn(batch_mu.shape, generator=noise)  # one draw from each cloud (on the CPU: seeded anywhere)
        latents = (batch_mu + (0.5 * batch_logvar).exp() * eps).to(device)
        _warmup(optimizer, settings.lr, settings.warmup_steps)
        return latent_diffusion_step(model, optimizer, latents, labels.to(device), ema, settings.p_uncond, noise)

    loader = make_loader(mu, logvar, data.labels, batch_size=settings.batch_size, seed=settings.seed)
    modules = {"model": model, "ema": ema, "optimizer": optimizer, "noise": noise}
    desc = desc or "latent denoiser"
    history = fit(step, loader, settings=settings, desc=desc, checkpoint=checkpoint, modules=modules)
    return ema.model.eval(), history


@torch.no_grad()
def sample_latent(
    vae: LatentVAE,
    denoiser: ConditionalDiffusionModel,
    labels: torch.Tensor | list[int] | int,
    w: float = 3.0,
    seed: int = 0,
    steps: int | None = None,
    batch_size: int = 500,
    return_latents: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Pictures painted by the whole pipeline: the denoiser sculpts latents of class ``labels[i]`` from seeded noise
    (guidance scale ``w``; ``denoiser.null_label`` asks for any digit), and the VAE's decoder paints them.

    ``labels`` may be an int ``n``: ``n`` pictures of the classes in turn (0, 1, ..., 9, 0, ...). Returns a CPU
    tensor of pictures in [0, 1], and with ``return_latents`` the (scaled) latents too. ``steps`` DDIM steps
    (default: the denoiser's ``sample_steps``); ``batch_size`` pictures at a time; the same seed gives the same
    pictures.
    """
    if not isinstance(denoiser, ConditionalDiffusionModel):
        raise TypeError(f"the denoiser must be a ConditionalDiffusionModel, got {type(denoiser).__name__}")
    if isinstance(labels, int):
        if labels <= 0:
            raise ValueError(f"the number of pictures must be positive, got {labels}")
        labels = torch.arange(labels) % denoiser.null_label
    labels = torch.as_tensor(labels, dtype=torch.int64)
    if labels.ndim != 1 or len(labels) == 0:
        raise ValueError(f"labels must be a non-empty 1-D list of classes, got shape {tuple(labels.shape)}")
    if tuple(denoiser.image_shape) != tuple(vae.latent_shape):
        raise ValueError(
            f"the denoiser makes latents of shape {tuple(denoiser.image_shape)}, but this VAE decodes "
            f"{tuple(vae.latent_shape)}: they were not trained together"
        )
    generator = torch.Generator().manual_seed(seed)
    latents, pictures = [], []
    with evaluating(denoiser), evaluating(vae):
        for chunk in labels.split(batch_size):
            z = denoiser.sample_classes(chunk, w=w, generator=generator, steps=steps)
            latents.append(z.cpu())
            pictures.append(vae.from_latent(z).cpu())
    images = torch.cat(pictures)
    return (images, torch.cat(latents)) if return_latents else images


def load_pixel_diffusion(data: ImageData) -> tuple[diffusion.DiffusionModel, float] | None:
    """Notebook 05's pixel-space diffusion model for ``data`` and its training time in seconds, to compare with;
    None when it has not been trained in this profile (or was saved with other settings). Nothing is trained."""
    settings = diffusion_preset(data)
    path = checkpoints.checkpoint_path("diffusion", data)
    if not path.exists():
        return None
    ema = EMA(make_diffusion(data.image_shape, settings), settings.ema_decay)
    try:
        extra = checkpoints.load_checkpoint(path, {"ema": ema}, settings=settings.model_settings())
    except checkpoints.CheckpointMismatchError:
        return None
    return ema.model.to(config.device()).eval(), float(History.from_dict(extra["history"]).seconds)
