"""Recipes for autoencoders (notebook 01) and variational autoencoders (notebook 02).

The settings of each model are one frozen object (:class:`AutoencoderConfig`, :class:`VAEConfig`); the
course's choice lives in :func:`autoencoder_preset`, :func:`denoising_autoencoder_preset`, :func:`vae_preset` and
:func:`cvae_preset` (the conditional VAE: ``kind='cvae'``), which the notebooks and notebook 08's
scoreboard both call. Change one field with ``dataclasses.replace``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from course_utils import config, losses
from course_utils.data import ImageData, is_small
from course_utils.history import History
from course_utils.loop import TrainingConfig, evaluating, fit
from course_utils.models.autoencoder import VAE, Autoencoder, ConditionalVAE, ConvAutoencoder, ConvVAE

# =========================================================================== settings


@dataclass(frozen=True, kw_only=True)
class AutoencoderConfig(TrainingConfig):
    """An autoencoder's settings. ``kind``: ``'mlp'`` (``width`` hidden units) or ``'conv'`` (``width`` channels).

    ``noise_std`` or ``mask_size`` above 0 make it a denoising autoencoder (see :func:`corrupt`).
    """

    kind: str = "mlp"
    latent_dim: int = 32
    width: int = 128
    noise_std: float = 0.0
    mask_size: int = 0
    lr: float = 1e-3


@dataclass(frozen=True, kw_only=True)
class VAEConfig(TrainingConfig):
    """A VAE's settings; the defaults are the classic 784-400-20 MLP. ``beta`` weighs the KL term.

    ``kind``: ``'mlp'``, ``'conv'``, or ``'cvae'``: the MLP told each picture's class (a
    :class:`~course_utils.models.ConditionalVAE`: label in, label out).
    """

    kind: str = "mlp"
    latent_dim: int = 20
    width: int = 400
    beta: float = 1.0
    lr: float = 1e-3


def autoencoder_preset(data: ImageData) -> AutoencoderConfig:
    """Notebook 01's autoencoder: a code of 32 numbers (8 for the tiny 8x8 digits), trained on 160,000 pictures
    (20 passes over 8,000 MNIST digits, fewer over the 60,000 downloaded ones; 4,000 in the fast profile)."""
    images = config.by_profile(full=160_000, fast=4_000)
    return AutoencoderConfig(latent_dim=8 if is_small(data.image_shape) else 32, images=images)


def denoising_autoencoder_preset(data: ImageData) -> AutoencoderConfig:
    """Notebook 01's denoising autoencoder: convolutional, taught to undo noise and a blanked-out square."""
    plain = autoencoder_preset(data)
    return AutoencoderConfig(
        kind="conv",
        latent_dim=plain.latent_dim,
        width=16,
        noise_std=0.3,
        mask_size=3 if is_small(data.image_shape) else 10,
        images=plain.images,
    )


def vae_preset(data: ImageData) -> VAEConfig:
    """Notebook 02's VAE: 784-400-20 at 28x28, 64-128-8 for the 8x8 digits, trained on 240,000 pictures."""
    images = config.by_profile(full=240_000, fast=4_000)
    if is_small(data.image_shape):
        return VAEConfig(latent_dim=8, width=128, images=images)
    return VAEConfig(latent_dim=20, width=400, images=images)


def cvae_preset(data: ImageData) -> VAEConfig:
    """Notebook 02's conditional VAE: :func:`vae_preset`'s network told the class, with a smaller code (8 numbers,
    4 for the 8x8 digits: the less the code can hold, the more the decoder must follow the label), trained on
    640,000 pictures at 28x28 and 160,000 for the 8x8 digits; 4,000 in the fast profile.

    At 28x28 it needs the longer run to learn to follow the label: with a quarter of it, the critic read far fewer
    samples as the digit asked for. README's tables give the measured figures and their run."""
    plain = vae_preset(data)
    latent_dim, images = (4, 160_000) if is_small(data.image_shape) else (8, 640_000)
    return VAEConfig(
        kind="cvae", latent_dim=latent_dim, width=plain.width, images=config.by_profile(full=images, fast=4_000)
    )


# =========================================================================== steps


def corrupt(
    images: torch.Tensor, noise_std: float = 0.0, mask_size: int = 0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A damaged copy of ``images`` (in [0, 1]): Gaussian noise of ``noise_std`` added, and/or one
    random ``mask_size`` x ``mask_size`` square per picture blanked out (set to 0, the background).

    A denoising autoencoder learns to undo exactly this damage: damaged picture in, clean picture out.
    """
    if noise_std < 0 or mask_size < 0:
        raise ValueError(f"noise_std and mask_size must be >= 0, got {noise_std} and {mask_size}")
    n, _, height, width = images.shape
    if mask_size > min(height, width):
        raise ValueError(f"mask_size {mask_size} is larger than the {height}x{width} pictures")
    damaged = images.clone()
    if noise_std > 0:
        noise = torch.randn(images.shape, generator=generator).to(images.device)
        damaged = (damaged + noise_std * noise).clamp(0.0, 1.0)
    if mask_size > 0:
        top = torch.randint(0, height - mask_size + 1, (n, 1, 1, 1), generator=generator)
        left = torch.randint(0, width - mask_size + 1, (n, 1, 1, 1), generator=generator)
        rows = torch.arange(height).view(1, 1, height, 1)
        cols = torch.arange(width).view(1, 1, 1, width)
        # True inside each picture's square: rows top..top+size-1 and columns left..left+size-1
        square = (rows >= top) & (rows < top + mask_size) & (cols >= left) & (cols < left + mask_size)
        damaged = damaged.masked_fill(square.to(damaged.device), 0.0)
    return damaged


def autoencoder_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    inputs: torch.Tensor | None = None,
    kind: str = "bce",
) -> dict[str, float]:
    """One optimisation step of an autoencoder on a batch of pictures in [0, 1].

    Squish and stretch ``inputs`` (the pictures themselves, or a damaged copy for a denoising
    autoencoder), compare the result with the clean ``images``, and nudge the weights.
    The loss is the reconstruction loss per picture (summed over its pixels), averaged over the batch.
    """
    x_hat = model(images if inputs is None else inputs)
    loss = losses.reconstruction_loss(x_hat, images, kind).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return {"loss": loss.item()}


def vae_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    beta: float = 1.0,
    labels: torch.Tensor | None = None,
) -> dict[str, float]:
    """One optimisation step of a VAE on a batch of pictures in [0, 1].

    Encode each picture into its cloud ``(mu, logvar)``, draw one code from it (reparameterization),
    decode it, and minimise reconstruction + ``beta`` x KL: with ``beta=1`` the negative ELBO.
    A conditional VAE is also shown each picture's class, ``labels``, by its encoder and its decoder.
    """
    x_hat, mu, logvar = model(images) if labels is None else model(images, labels)
    parts = losses.vae_loss(x_hat, images, mu, logvar, beta=beta)
    optimizer.zero_grad()
    parts.loss.backward()
    optimizer.step()
    return {"loss": parts.loss.item(), "reconstruction": parts.reconstruction.item(), "kl": parts.kl.item()}


# =========================================================================== building and training


def make_autoencoder(image_shape: tuple[int, int, int], settings: AutoencoderConfig | VAEConfig) -> nn.Module:
    """The model ``settings`` describe: an :class:`~course_utils.models.Autoencoder` or, for a :class:`VAEConfig`,
    a :class:`~course_utils.models.VAE`; their convolutional versions with ``kind='conv'``, and for a VAE with
    ``kind='cvae'`` a :class:`~course_utils.models.ConditionalVAE`. ``width`` is the hidden layer's size of an MLP,
    or the number of channels of a convolutional model."""
    mlp, conv = (VAE, ConvVAE) if isinstance(settings, VAEConfig) else (Autoencoder, ConvAutoencoder)
    if settings.kind == "cvae" and isinstance(settings, VAEConfig):
        return ConditionalVAE(image_shape, settings.latent_dim, hidden_dim=settings.width)
    if settings.kind == "mlp":
        return mlp(image_shape, settings.latent_dim, hidden_dim=settings.width)
    if settings.kind == "conv":
        return conv(image_shape, settings.latent_dim, channels=settings.width)
    kinds = "'mlp', 'conv' or 'cvae'" if isinstance(settings, VAEConfig) else "'mlp' or 'conv'"
    raise ValueError(f"kind must be {kinds}, got {settings.kind!r}")


def train_autoencoder(
    data: ImageData, settings: AutoencoderConfig, *, checkpoint: str | Path | None = None, desc: str | None = None
) -> tuple[nn.Module, History]:
    """Train an autoencoder on ``data`` with :func:`autoencoder_step` inside :func:`fit`; return ``(model, history)``.

    With ``settings.noise_std`` or ``settings.mask_size`` it becomes a denoising autoencoder: each batch
    is damaged afresh by :func:`corrupt` and the model must rebuild the clean pictures. With
    ``checkpoint`` (e.g. ``checkpoints.checkpoint_path('autoencoder', data)``) the run and its settings are
    saved, and the next call resumes it, or simply loads it when it is finished.
    """
    rng = config.seed_everything(settings.seed)
    device = config.device()
    model = make_autoencoder(data.image_shape, settings).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    denoising = settings.noise_std > 0 or settings.mask_size > 0

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
        images = batch[0].to(device)  # the labels are not used: the picture is its own target
        inputs = corrupt(images, settings.noise_std, settings.mask_size, rng) if denoising else None
        return autoencoder_step(model, optimizer, images, inputs)

    loader = data.loader(settings.batch_size, seed=settings.seed)
    # "noise": the generator of the noise, under the name older checkpoints saved it with (they resume exactly).
    modules = {"model": model, "optimizer": optimizer, "noise": rng}
    desc = desc or ("denoising autoencoder" if denoising else "autoencoder")
    history = fit(step, loader, settings=settings, desc=desc, checkpoint=checkpoint, modules=modules)
    return model.eval(), history


def train_vae(
    data: ImageData, settings: VAEConfig, *, checkpoint: str | Path | None = None, desc: str | None = None
) -> tuple[VAE, History]:
    """Train a VAE on ``data`` with :func:`vae_step` inside :func:`fit`; return ``(model, history)``.

    The history logs ``loss`` (reconstruction + ``beta`` x KL), ``reconstruction`` and ``kl`` in nats per
    image. With ``settings.kind='cvae'`` each batch's labels are shown to the model too. With ``checkpoint``
    (e.g. ``checkpoints.checkpoint_path('vae', data)``) the run and its settings are saved, and the next call
    resumes it, or simply loads it when it is finished.
    """
    config.seed_everything(settings.seed)  # the codes are drawn by PyTorch's global generator, which fit saves
    device = config.device()
    model = make_autoencoder(data.image_shape, settings).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)

    conditional = isinstance(model, ConditionalVAE)

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
        labels = batch[1] if conditional else None  # the model makes its one-hot rows and moves them itself
        return vae_step(model, optimizer, batch[0].to(device), beta=settings.beta, labels=labels)

    loader = data.loader(settings.batch_size, seed=settings.seed)
    modules = {"model": model, "optimizer": optimizer}
    name = "conditional VAE" if conditional else "VAE"
    desc = desc or (f"{name} (beta={settings.beta:g})" if settings.beta != 1 else name)
    history = fit(step, loader, settings=settings, desc=desc, checkpoint=checkpoint, modules=modules)
    return model.eval(), history


# =========================================================================== using a trained model


def encode_images(
    model: nn.Module, images: torch.Tensor, batch_size: int = 500, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """The code of each picture (N x latent_dim, on the CPU): ``encode(x)`` for an autoencoder, ``mu`` for a VAE.

    A conditional VAE needs each picture's class too: ``labels``."""
    device = next(model.parameters()).device
    conditional = _needs_labels(model, labels)
    codes = []
    with evaluating(model):
        for i, chunk in enumerate(images.split(batch_size)):
            given = (labels[i * batch_size : i * batch_size + len(chunk)],) if conditional else ()
            code = model.encode(chunk.to(device), *given)
            codes.append((code[0] if isinstance(code, tuple) else code).cpu())
    return torch.cat(codes)


def evaluate_vae(
    model: VAE, data: ImageData, beta: float = 1.0, seed: int = 0, batch_size: int = 500
) -> dict[str, float]:
    """The VAE loss on ``data`` (e.g. the test split), in nats per image: ``loss``, ``reconstruction``, ``kl``.

    Each picture's code is drawn from its cloud with a seeded generator, as in training, so with
    ``beta=1`` ``loss`` is a one-sample estimate of the negative ELBO, comparable with the training loss.
    A conditional VAE is told each picture's class (``data.labels``).
    """
    device = next(model.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    conditional = isinstance(model, ConditionalVAE)
    totals = {"loss": 0.0, "reconstruction": 0.0, "kl": 0.0}
    with evaluating(model):
        for chunk, chunk_labels in zip(data.images.split(batch_size), data.labels.split(batch_size), strict=True):
            images = chunk.to(device)
            given = (chunk_labels,) if conditional else ()
            mu, logvar = model.encode(images, *given)
            eps = torch.randn(mu.shape, generator=rng).to(device)
            x_hat = model.decode(mu + torch.exp(0.5 * logvar) * eps, *given)
            parts = losses.vae_loss(x_hat, images, mu, logvar, beta=beta)
            for key, value in zip(totals, parts, strict=True):
                totals[key] += value.item() * len(chunk)
    return {key: value / len(data) for key, value in totals.items()}


def sample_vae(model: VAE, n: int, seed: int = 0, labels: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` brand-new pictures: codes drawn from the prior N(0, I), decoded. A CPU tensor in [0, 1].

    A conditional VAE draws picture ``i`` as the digit ``labels[i]``; by default the classes in turn
    (0, 1, ..., 9, 0, 1, ...), so every class gets its share.
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    device = next(model.parameters()).device
    z = torch.randn(n, model.latent_dim, generator=torch.Generator().manual_seed(seed))
    given: tuple[torch.Tensor, ...] = ()
    if isinstance(model, ConditionalVAE):
        labels = torch.arange(n) % model.num_classes if labels is None else torch.as_tensor(labels)
        if labels.shape != (n,):
            raise ValueError(f"one label per picture: n={n} but labels has shape {tuple(labels.shape)}")
        given = (labels,)  # one-hot rows are made on the CPU and moved by the model
    elif labels is not None:
        raise ValueError("this VAE is not conditional: it cannot be told labels (train one with cvae_preset)")
    with evaluating(model):
        return model.decode(z.to(device), *given).cpu()


def _needs_labels(model: nn.Module, labels: torch.Tensor | None) -> bool:
    """Whether ``model`` is conditional; raises when labels are missing for one, or given to another."""
    conditional = isinstance(model, ConditionalVAE)
    if conditional and labels is None:
        raise ValueError("a conditional VAE encodes a picture together with its class: pass labels=")
    if not conditional and labels is not None:
        raise ValueError(f"a {type(model).__name__} is not told classes: drop labels=")
    return conditional


def sample_autoencoder(model: nn.Module, n: int, seed: int = 0, like: torch.Tensor | None = None) -> torch.Tensor:
    """Use a plain autoencoder as a generator: decode ``n`` random codes. A CPU tensor in [0, 1].

    The codes come from N(0, I), as a VAE's would, or, with ``like`` (real pictures), from a Gaussian
    with the mean and spread of *their* codes, a fairer try. Either way the autoencoder was never
    taught what lies between its codes, which is why most of these pictures are not digits.
    """
    device = next(model.parameters()).device
    z = torch.randn(n, model.latent_dim, generator=torch.Generator().manual_seed(seed))
    if like is not None:
        codes = encode_images(model, like)
        z = codes.mean(dim=0) + codes.std(dim=0) * z
    with evaluating(model):
        return model.decode(z.to(device)).cpu()
