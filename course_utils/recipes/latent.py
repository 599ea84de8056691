"""The latent-diffusion recipe (the capstone, a tiny Stable Diffusion): a VAE squeezes each digit into a small grid
of latents, a class-conditional denoiser learns in that grid with classifier-free guidance, the decoder paints.

Two settings objects, :class:`LatentVAEConfig` (the first stage) and :class:`LatentDiffusionConfig` (the second),
and the course's choice of both in one place, :func:`latent_vae_preset` and :func:`latent_diffusion_preset`,
which the capstone notebook and the evaluation notebook's scoreboard both call. The denoiser learns the latents of
*one* VAE, so the pair travels together: the denoiser's settings record its VAE's fingerprint
(:func:`vae_fingerprint`, a hash of the VAE's weights), and a denoiser file made for another VAE is never loaded: it
is set aside, with a message naming both files, and a denoiser for this VAE is trained.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from course_utils import config
from course_utils.data import ImageData, is_small, make_loader
from course_utils.generators import rng_state, set_rng
from course_utils.guidance import GUIDANCE, ConditionalDiffusionModel
from course_utils.history import History
from course_utils.loop import SAMPLING, TrainingConfig, evaluating, fit
from course_utils.models.latent import LatentVAE
from course_utils.recipes.autoencoder import vae_step
from course_utils.recipes.diffusion import train_denoiser
from course_utils.recipes.guided import GuidedDiffusionConfig, check_labels, make_guided_diffusion

# =========================================================================== settings

SCALE_PICTURES = 5000
"""How many training pictures set the latent scale (:meth:`~course_utils.models.LatentVAE.fit_scale`)."""


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
class LatentDiffusionConfig(GuidedDiffusionConfig):
    """The second stage's settings: :class:`~course_utils.recipes.guided.GuidedDiffusionConfig`'s (a
    class-conditional U-Net, here on the latent grid, its noise schedule, training and sampler), plus the guidance
    scale ``guidance`` it samples with. Each guess of the clean latents is kept in ``[-clip, clip]``: about 3 for
    latents of unit variance. The U-Net on a 7x7 grid is too small to gain from bfloat16, which stays off.

    ``vae`` is the fingerprint of the VAE whose latents the denoiser learns (:func:`vae_fingerprint`);
    :func:`train_latent_diffusion` fills it in, and a checkpoint made for another VAE does not match."""

    channels: tuple[int, ...] = (32,)
    sample_steps: int = field(default=10, metadata=SAMPLING)
    bf16: bool | str = field(default=False, metadata=SAMPLING)
    clip: float | None = field(default=3.0, metadata=SAMPLING)
    guidance: float = field(default=GUIDANCE, metadata=SAMPLING)
    vae: str = ""


def latent_vae_preset(data: ImageData) -> LatentVAEConfig:
    """The capstone's VAE: 28x28 -> 2 x 7 x 7 latents with 16 channels, trained on up to 192,000 pictures, or
    8x8 -> 2 x 4 x 4 with 32 channels, trained on 240,000; 1,000 in the fast profile; at most 140 s, so that with the
    denoiser's 90 s both stages train in under 4 minutes on a slow machine too.

    Chosen by measurement with 60,000 MNIST-sized pictures, in the same 140 s: fewer channels (so more pictures) and
    2 latents per place rather than 4 drew better digits through the whole pipeline, even where a bigger grid alone
    scored better. The small digits get more pictures because each costs so little. README's tables give the
    measured figures and their run."""
    channels, downsamples, images = (32, 1, 240_000) if is_small(data.image_shape) else (16, 2, 192_000)
    return LatentVAEConfig(
        latent_channels=2,
        channels=channels,
        downsamples=downsamples,
        images=config.by_profile(full=images, fast=1_000),
        max_seconds=config.by_profile(full=140, fast=None),
    )


def latent_diffusion_preset(data: ImageData) -> LatentDiffusionConfig:
    """The capstone's denoiser: a one-level U-Net on the latent grid, trained on 300,000 latents (1,024 in the fast
    profile), at most 90 s; sampled with 10 DDIM steps at guidance scale 1.5 for 28x28 pictures, 2 for 8x8 ones.

    Chosen by measurement: fewer latents drew far worse digits, and at 28x28 a larger ``w`` bought little agreement
    with the digit asked for at a fast loss of variety. README's tables give the measured figures and their run."""
    return LatentDiffusionConfig(
        channels=config.by_profile(full=(32,), fast=(16,)),
        timesteps=config.by_profile(full=1000, fast=100),
        images=config.by_profile(full=300_000, fast=1_024),
        max_seconds=config.by_profile(full=90, fast=None),
        guidance=2.0 if is_small(data.image_shape) else 1.5,
    )


# =========================================================================== the first stage: the VAE


def make_latent_vae(image_shape: tuple[int, int, int], settings: LatentVAEConfig) -> LatentVAE:
    """The :class:`~course_utils.models.LatentVAE` that ``settings`` describe, for pictures of ``image_shape``."""
    return LatentVAE(image_shape, settings.latent_channels, settings.channels, settings.downsamples)


def train_latent_vae(
    data: ImageData, settings: LatentVAEConfig, *, checkpoint: str | Path | None = None, desc: str | None = None
) -> tuple[LatentVAE, History]:
    """Train the first stage on ``data`` with notebook 02's :func:`~course_utils.recipes.autoencoder.vae_step`
    inside :func:`fit` (reconstruction + ``beta`` x KL, summed over every latent of the grid); return
    ``(vae, history)``.

    At the end the latent scale is set from the first ``SCALE_PICTURES`` training pictures
    (:meth:`LatentVAE.fit_scale`, seeded), so that :meth:`~LatentVAE.to_latent` gives latents of unit variance.
    With ``checkpoint`` the run and its settings are saved, and the next call resumes it, or simply loads it when
    it is finished.
    """
    config.seed_everything(settings.seed)  # the codes are drawn by PyTorch's global generator, which fit saves
    device = config.device()
    model = make_latent_vae(data.image_shape, settings).to(device)
    model.checkpoint = None if checkpoint is None else Path(checkpoint)  # named when a denoiser does not fit it
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
        return vae_step(model, optimizer, batch[0].to(device), beta=settings.beta)

    loader = data.loader(settings.batch_size, seed=settings.seed)
    modules = {"model": model, "optimizer": optimizer}
    history = fit(step, loader, settings=settings, desc=desc or "latent VAE", checkpoint=checkpoint, modules=modules)
    # The same scale every time, and every other draw untouched: torch.manual_seed reseeds the CPU's generator and
    # the GPU's (CUDA or MPS), so all of them are put back afterwards.
    saved = rng_state({})
    try:
        with evaluating(model):
            torch.manual_seed(settings.seed)
            # 5,000 pictures give a million latent values, plenty for one standard deviation; it runs on every call,
            # loads included, and all 60,000 MNIST pictures took 18 s.
            model.fit_scale(data.images[:SCALE_PICTURES].to(device))
    finally:
        set_rng({}, saved)
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
    return make_guided_diffusion(latent_shape, settings)


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
    Stable Diffusion does, with the seeded generator the checkpoint keeps, and hides a share
    ``settings.label_dropout`` of the labels (:func:`~course_utils.recipes.diffusion.train_denoiser`). With
    ``checkpoint`` the run and its settings are saved, and the next call resumes it, or simply loads it when it is
    finished.
    """
    if not isinstance(vae, LatentVAE):
        raise TypeError(f"train_latent_diffusion needs the LatentVAE of the first stage, got {type(vae).__name__}")
    check_labels(data.labels, settings.num_classes)
    settings = replace(settings, vae=vae_fingerprint(vae))  # compared on load: a denoiser of another VAE never loads
    if checkpoint is not None and Path(checkpoint).exists():
        _say_if_made_for_another_vae(Path(checkpoint), vae, settings.vae)
    rng = config.seed_everything(settings.seed)
    model = make_latent_diffusion(vae.latent_shape, settings).to(config.device())
    clouds: list[torch.Tensor] = []  # (mu, logvar) of every picture, encoded at the first step that needs them

    def clean_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        # Encoding waits for the first step: loading a finished checkpoint then encodes nothing (60,000 pictures
        # take many seconds and hundreds of MB). The loader shuffles picture numbers, so the batches are the same.
        if not clouds:
            clouds.extend(encode_latents(vae, data.images))
        index, labels = batch
        batch_mu, batch_logvar = clouds[0][index], clouds[1][index]
        eps = torch.randn(batch_mu.shape, generator=rng)  # one draw from each cloud (on the CPU: seeded anywhere)
        return batch_mu + (0.5 * batch_logvar).exp() * eps, labels

    loader = make_loader(torch.arange(len(data)), data.labels, batch_size=settings.batch_size, seed=settings.seed)
    desc = desc or "latent denoiser"
    return train_denoiser(
        model, settings, loader, clean_batch, rng, settings.label_dropout, checkpoint=checkpoint, desc=desc
    )


def vae_fingerprint(vae: LatentVAE) -> str:
    """A short hash of the VAE's weights (16 hex digits): the identity of the latent space a denoiser learns.

    The latent scale is left out: it is measured again from the pictures on every call (:func:`train_latent_vae`).
    The weights are read on the CPU, so a VAE gives the same fingerprint on every device.
    """
    digest = hashlib.sha256(type(vae).__name__.encode())
    for name, tensor in sorted(vae.state_dict().items()):
        if name != "latent_scale":
            tensor = tensor.detach().cpu().contiguous()
            digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def _say_if_made_for_another_vae(checkpoint: Path, vae: LatentVAE, fingerprint: str) -> None:
    """Name both files when the denoiser saved at ``checkpoint`` learned another VAE's latents (fit then sets it
    aside, as for any other setting that does not match)."""
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True).get("extra", {}).get("settings") or {}
    if saved.get("vae") != fingerprint:
        source = getattr(vae, "checkpoint", None)
        named = source.name if source is not None else "the VAE given (not saved to a file)"
        print(
            f"{checkpoint.name} learned the latents of another VAE (fingerprint {saved.get('vae') or 'not saved'}), "
            f"not those of {named} (fingerprint {fingerprint}): with this VAE it would draw noise."
        )


@torch.no_grad()
def sample_latent(
    vae: LatentVAE,
    denoiser: ConditionalDiffusionModel,
    labels: torch.Tensor | list[int] | int,
    w: float = GUIDANCE,
    seed: int = 0,
    steps: int | None = None,
    batch_size: int = 500,
    return_latents: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Pictures painted by the whole pipeline: the denoiser sculpts latents of class ``labels[i]`` from seeded noise
    (guidance scale ``w``; ``denoiser.null_label`` asks for any digit), and the VAE's decoder paints them.

    ``labels`` may be an int ``n``: ``n`` pictures of the classes in turn (0, 1, ..., 9, 0, ...). Returns a CPU
    tensor of pictures in [0, 1], and with ``return_latents`` the (scaled) latents too. ``steps`` DDIM steps
    (default: the denoiser's ``sample_steps``); the networks see ``batch_size`` pictures at a time. The same seed
    gives the same pictures whatever ``batch_size`` is (up to float rounding).
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
    rng = torch.Generator().manual_seed(seed)
    with evaluating(denoiser), evaluating(vae):
        latents = denoiser.sample_classes(labels, w=w, generator=rng, steps=steps, batch_size=batch_size)
        images = torch.cat([vae.from_latent(z).cpu() for z in latents.split(batch_size)])
    return (images, latents.cpu()) if return_latents else images
