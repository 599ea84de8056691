"""Training loops: explicit steps, one small loop around them.

Each model's *step* (one optimisation step on one batch) is written out in full, so that a student
can read exactly what happens: see the sections below. :func:`fit` is the only loop: it runs a
step over the batches for some epochs and adds what every training run needs but nobody wants to
read every time: a progress bar, a history of the losses, a guard against NaN/inf, and a
checkpoint after every epoch from which an interrupted run resumes.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from course_utils import config, diffusion, losses
from course_utils.checkpoints import CheckpointMismatchError, load_checkpoint, save_checkpoint
from course_utils.data import ImageData, to_signed, to_unit
from course_utils.models.autoencoder import VAE, Autoencoder, ConvAutoencoder, ConvVAE
from course_utils.models.gan import GAN, make_gan
from course_utils.models.text import CharGRU
from course_utils.models.unet import UNet
from course_utils.text import TextData, Vocab, generate, text_loader


class NonFiniteLossError(RuntimeError):
    """A training step returned NaN or infinity; the message says where and what to try."""


@dataclass
class History:
    """What a training run logged: every step's values, and their mean over each epoch."""

    steps: dict[str, list[float]] = field(default_factory=dict)
    epochs: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    _epoch_start: dict[str, int] = field(default_factory=dict, repr=False)

    def log_step(self, values: dict[str, float]) -> None:
        """Append one step's values (numbers or one-element tensors)."""
        for key, value in values.items():
            self.steps.setdefault(key, []).append(float(value))

    def end_epoch(self) -> None:
        """Close the epoch: store the mean of each key over the steps logged since the last epoch."""
        for key, values in self.steps.items():
            start = self._epoch_start.get(key, 0)
            if len(values) > start:
                self.epochs.setdefault(key, []).append(sum(values[start:]) / (len(values) - start))
            self._epoch_start[key] = len(values)

    def last(self, key: str) -> float:
        """The most recent value of ``key`` (raises ``KeyError`` listing the keys when absent)."""
        if key not in self.steps or not self.steps[key]:
            raise KeyError(f"no values logged for {key!r}; logged keys: {sorted(self.steps)}")
        return self.steps[key][-1]

    @property
    def n_epochs(self) -> int:
        """How many epochs are complete."""
        return max((len(v) for v in self.epochs.values()), default=0)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers, for checkpoints and JSON."""
        return {"steps": self.steps, "epochs": self.epochs, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> History:
        """Rebuild a history saved with :meth:`to_dict`."""
        history = cls({k: list(v) for k, v in saved["steps"].items()}, {k: list(v) for k, v in saved["epochs"].items()})
        history.seconds = float(saved.get("seconds", 0.0))
        history._epoch_start = {k: len(v) for k, v in history.steps.items()}
        return history


def fit(
    step_fn: Callable[[Any], dict[str, float]],
    loader: Iterable,
    epochs: int,
    *,
    desc: str = "training",
    checkpoint: str | Path | None = None,
    modules: dict[str, Any] | None = None,
    on_epoch_end: Callable[[int, History], None] | None = None,
    max_steps: int | None = None,
    max_seconds: float | None = None,
) -> History:
    """Run ``step_fn`` on every batch of ``loader`` for ``epochs`` epochs and return the history.

    ``step_fn(batch)`` does one optimisation step and returns the numbers to log, e.g.
    ``{"loss": 0.31}``. With ``checkpoint`` (a path) and ``modules`` (models and optimizers by
    name), the state is saved after every epoch, and a later call with the same path resumes
    where the last one stopped (a finished run is simply loaded). ``max_steps`` and
    ``max_seconds`` end the run early (the current epoch is closed). Interrupting the kernel
    stops training cleanly and keeps the weights learned so far.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if checkpoint is not None and not modules:
        raise ValueError("checkpointing needs modules={'model': model, 'optimizer': optimizer, ...} to save")
    history = History()
    start_epoch = 0
    if checkpoint is not None and Path(checkpoint).exists():
        try:
            extra = load_checkpoint(checkpoint, modules)
        except CheckpointMismatchError as error:
            # Saved by another version of the model (the course changed, or sizes were edited): keep the old
            # file for reference and train afresh rather than stop the notebook.
            stale = Path(checkpoint).with_suffix(".stale.pt")
            Path(checkpoint).replace(stale)
            print(f"{error}\nThat checkpoint does not fit this model: moved it to {stale.name}, training from scratch.")
            return fit(
                step_fn,
                loader,
                epochs,
                desc=desc,
                checkpoint=checkpoint,
                modules=modules,
                on_epoch_end=on_epoch_end,
                max_steps=max_steps,
                max_seconds=max_seconds,
            )
        history = History.from_dict(extra["history"])
        start_epoch = int(extra["epoch"])
        if start_epoch >= epochs:
            print(f"Loaded {checkpoint}: already trained for {start_epoch} epochs, nothing to do.")
            return history
        print(f"Resuming from {checkpoint} after epoch {start_epoch} of {epochs}.")

    n_batches = _length(loader)
    total = None if n_batches is None else (epochs - start_epoch) * n_batches
    if max_steps is not None:
        total = max_steps if total is None else min(total, max_steps)
    steps_done = 0
    began = time.perf_counter()
    previous_seconds = history.seconds
    bar = tqdm(total=total, desc=desc, unit="step")
    try:
        for epoch in range(start_epoch, epochs):
            for module in (modules or {}).values():
                if hasattr(module, "train") and callable(module.train) and hasattr(module, "parameters"):
                    module.train()
            for batch in loader:
                values = step_fn(batch)
                _guard_finite(values, epoch, steps_done)
                history.log_step(values)
                steps_done += 1
                bar.update(1)
                if steps_done % 10 == 1:
                    bar.set_postfix({k: f"{float(v):.4g}" for k, v in values.items()}, refresh=False)
                if _out_of_budget(steps_done, max_steps, began, max_seconds):
                    break
            history.end_epoch()
            history.seconds = previous_seconds + time.perf_counter() - began
            if checkpoint is not None:
                save_checkpoint(checkpoint, modules, epoch=epoch + 1, history=history.to_dict())
            if on_epoch_end is not None:
                on_epoch_end(epoch, history)
            if _out_of_budget(steps_done, max_steps, began, max_seconds):
                break
    except KeyboardInterrupt:
        history.end_epoch()
        history.seconds = previous_seconds + time.perf_counter() - began
        print(f"Interrupted after {steps_done} steps: the model keeps what it has learned so far.")
    finally:
        bar.close()
    return history


def _length(loader: Iterable) -> int | None:
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:
        return None


def _out_of_budget(steps: int, max_steps: int | None, began: float, max_seconds: float | None) -> bool:
    if max_steps is not None and steps >= max_steps:
        return True
    return max_seconds is not None and time.perf_counter() - began >= max_seconds


def _guard_finite(values: dict[str, float], epoch: int, step: int) -> None:
    if not isinstance(values, dict):
        raise TypeError(f"the step function must return a dict of numbers to log, got {type(values).__name__}")
    for key, value in values.items():
        number = float(value)
        if not math.isfinite(number):
            raise NonFiniteLossError(
                f"{key} became {number} at epoch {epoch + 1}, step {step + 1}: training stopped before the weights "
                "were ruined. Usual fixes: a smaller learning rate, a numerically stable loss (logits + "
                "BCEWithLogits instead of log(sigmoid)), or clamping a log-variance."
            )


# =========================================================================== Autoencoders and VAEs


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
    model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, beta: float = 1.0
) -> dict[str, float]:
    """One optimisation step of a VAE on a batch of pictures in [0, 1].

    Encode each picture into its cloud ``(mu, logvar)``, draw one code from it (reparameterization),
    decode it, and minimise reconstruction + ``beta`` x KL: with ``beta=1`` the negative ELBO.
    """
    x_hat, mu, logvar = model(images)
    parts = losses.vae_loss(x_hat, images, mu, logvar, beta=beta)
    optimizer.zero_grad()
    parts.loss.backward()
    optimizer.step()
    return {"loss": parts.loss.item(), "reconstruction": parts.reconstruction.item(), "kl": parts.kl.item()}


def make_autoencoder(kind: str, image_shape: tuple[int, int, int], latent_dim: int, width: int) -> nn.Module:
    """An :class:`~course_utils.models.Autoencoder` (``kind='mlp'``, ``width`` hidden units) or a
    :class:`~course_utils.models.ConvAutoencoder` (``kind='conv'``, ``width`` channels)."""
    if kind == "mlp":
        return Autoencoder(image_shape, latent_dim, hidden_dim=width)
    if kind == "conv":
        return ConvAutoencoder(image_shape, latent_dim, channels=width)
    raise ValueError(f"kind must be 'mlp' or 'conv', got {kind!r}")


def make_vae(kind: str, image_shape: tuple[int, int, int], latent_dim: int, width: int) -> VAE:
    """A :class:`~course_utils.models.VAE` (``kind='mlp'``, ``width`` hidden units) or a
    :class:`~course_utils.models.ConvVAE` (``kind='conv'``, ``width`` channels)."""
    if kind == "mlp":
        return VAE(image_shape, latent_dim, hidden_dim=width)
    if kind == "conv":
        return ConvVAE(image_shape, latent_dim, channels=width)
    raise ValueError(f"kind must be 'mlp' or 'conv', got {kind!r}")


def train_autoencoder(
    data: ImageData,
    *,
    epochs: int,
    seed: int = 0,
    kind: str = "mlp",
    latent_dim: int = 32,
    width: int = 128,
    noise_std: float = 0.0,
    mask_size: int = 0,
    batch_size: int = 128,
    lr: float = 1e-3,
    checkpoint: str | Path | None = None,
    on_epoch_end: Callable[[int, History], None] | None = None,
    max_steps: int | None = None,
    max_seconds: float | None = None,
    desc: str | None = None,
) -> tuple[nn.Module, History]:
    """Train an autoencoder on ``data`` with :func:`autoencoder_step` inside :func:`fit`; return ``(model, history)``.

    ``kind``/``width``: see :func:`make_autoencoder`. With ``noise_std`` or ``mask_size`` it becomes a
    denoising autoencoder: each batch is damaged afresh by :func:`corrupt` and the model must rebuild
    the clean pictures. With ``checkpoint`` (e.g. ``checkpoints.checkpoint_path('autoencoder', data)``)
    the run is saved after every epoch and resumed, or simply loaded, by the next call.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    noise_generator = config.seed_everything(seed)
    device = config.device()
    model = make_autoencoder(kind, data.image_shape, latent_dim, width).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    denoising = noise_std > 0 or mask_size > 0

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
        images = batch[0].to(device)  # the labels are not used: the picture is its own target
        inputs = corrupt(images, noise_std, mask_size, generator=noise_generator) if denoising else None
        return autoencoder_step(model, optimizer, images, inputs)

    history = fit(
        step,
        data.loader(batch_size, shuffle=True, seed=seed),
        epochs,
        desc=desc or ("denoising autoencoder" if denoising else "autoencoder"),
        checkpoint=checkpoint,
        modules={"model": model, "optimizer": optimizer},
        on_epoch_end=on_epoch_end,
        max_steps=max_steps,
        max_seconds=max_seconds,
    )
    model.eval()
    return model, history


def train_vae(
    data: ImageData,
    *,
    epochs: int,
    seed: int = 0,
    kind: str = "mlp",
    latent_dim: int = 20,
    width: int = 400,
    beta: float = 1.0,
    batch_size: int = 128,
    lr: float = 1e-3,
    checkpoint: str | Path | None = None,
    on_epoch_end: Callable[[int, History], None] | None = None,
    max_steps: int | None = None,
    max_seconds: float | None = None,
    desc: str | None = None,
) -> tuple[VAE, History]:
    """Train a VAE on ``data`` with :func:`vae_step` inside :func:`fit`; return ``(model, history)``.

    ``kind``/``width``: see :func:`make_vae`; the defaults are the classic 784-400-20 MLP. The history
    logs ``loss`` (reconstruction + ``beta`` x KL), ``reconstruction`` and ``kl`` in nats per image.
    With ``checkpoint`` (e.g. ``checkpoints.checkpoint_path('vae', data)``) the run is saved after every
    epoch and resumed, or simply loaded, by the next call.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    config.seed_everything(seed)
    device = config.device()
    model = make_vae(kind, data.image_shape, latent_dim, width).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
        return vae_step(model, optimizer, batch[0].to(device), beta=beta)

    history = fit(
        step,
        data.loader(batch_size, shuffle=True, seed=seed),
        epochs,
        desc=desc or (f"VAE (beta={beta:g})" if beta != 1 else "VAE"),
        checkpoint=checkpoint,
        modules={"model": model, "optimizer": optimizer},
        on_epoch_end=on_epoch_end,
        max_steps=max_steps,
        max_seconds=max_seconds,
    )
    model.eval()
    return model, history


@torch.no_grad()
def encode_images(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """The code of each picture (N x latent_dim, on the CPU): ``encode(x)`` for an autoencoder, ``mu`` for a VAE."""
    model.eval()
    device = next(model.parameters()).device
    codes = []
    for chunk in images.split(batch_size):
        code = model.encode(chunk.to(device))
        codes.append((code[0] if isinstance(code, tuple) else code).cpu())
    return torch.cat(codes)


@torch.no_grad()
def evaluate_vae(
    model: VAE, data: ImageData, beta: float = 1.0, seed: int = 0, batch_size: int = 500
) -> dict[str, float]:
    """The VAE loss on ``data`` (e.g. the test split), in nats per image: ``loss``, ``reconstruction``, ``kl``.

    Each picture's code is drawn from its cloud with a seeded generator, as in training, so with
    ``beta=1`` ``loss`` is a one-sample estimate of the negative ELBO, comparable with the training loss.
    """
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    totals = {"loss": 0.0, "reconstruction": 0.0, "kl": 0.0}
    for chunk in data.images.split(batch_size):
        images = chunk.to(device)
        mu, logvar = model.encode(images)
        eps = torch.randn(mu.shape, generator=generator).to(device)
        x_hat = model.decode(mu + torch.exp(0.5 * logvar) * eps)
        parts = losses.vae_loss(x_hat, images, mu, logvar, beta=beta)
        for key, value in zip(totals, parts, strict=True):
            totals[key] += value.item() * len(chunk)
    return {key: value / len(data) for key, value in totals.items()}


@torch.no_grad()
def sample_vae(model: VAE, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` brand-new pictures: codes drawn from the prior N(0, I), decoded. A CPU tensor in [0, 1]."""
    model.eval()
    device = next(model.parameters()).device
    z = torch.randn(n, model.latent_dim, generator=torch.Generator().manual_seed(seed))
    return model.decode(z.to(device)).cpu()


@torch.no_grad()
def sample_autoencoder(model: nn.Module, n: int, seed: int = 0, like: torch.Tensor | None = None) -> torch.Tensor:
    """Use a plain autoencoder as a generator: decode ``n`` random codes. A CPU tensor in [0, 1].

    The codes come from N(0, I), as a VAE's would, or, with ``like`` (real pictures), from a Gaussian
    with the mean and spread of *their* codes, a fairer try. Either way the autoencoder was never
    taught what lies between its codes, which is why most of these pictures are not digits.
    """
    model.eval()
    device = next(model.parameters()).device
    z = torch.randn(n, model.latent_dim, generator=torch.Generator().manual_seed(seed))
    if like is not None:
        codes = encode_images(model, like)
        z = codes.mean(dim=0) + codes.std(dim=0) * z
    return model.decode(z.to(device)).cpu()


# =========================================================================== GANs


def gan_step(
    model: GAN,
    optimizer_g: torch.optim.Optimizer,
    optimizer_d: torch.optim.Optimizer,
    real: torch.Tensor,
    real_label: float = 1.0,
) -> dict[str, float]:
    """One round of the artist-and-critic game on a batch of real pictures in [-1, 1].

    1. The critic (discriminator) learns: real pictures -> "real", the artist's fakes -> "fake".
    2. The artist (generator) learns: make the freshly updated critic say "real" on its fakes.

    Returns the two losses and the critic's mean verdicts ``D(x)`` (on real pictures) and
    ``D(G(z))`` (on fakes, before the critic's update): at balance both hover around 0.5.
    """
    n = real.shape[0]

    # --- 1. critic step ------------------------------------------------------------
    z = model.noise(n)
    fake = model.generator(z)
    real_logits = model.discriminator(real)
    # detach(): this loss must only change the critic; without it the backward pass would also
    # run through the artist (wasted work, and gradients left behind in the artist's parameters).
    fake_logits = model.discriminator(fake.detach())
    d_loss = losses.discriminator_loss(real_logits, fake_logits, real_label=real_label)
    optimizer_d.zero_grad()
    d_loss.backward()
    optimizer_d.step()

    # --- 2. artist step -------------------------------------------------------------
    # The same fakes, judged again by the updated critic, this time keeping the path back to the artist.
    g_loss = losses.generator_loss(model.discriminator(fake))
    optimizer_g.zero_grad()
    g_loss.backward()  # also leaves gradients in the critic; its zero_grad() above clears them next step
    optimizer_g.step()

    return {
        "d_loss": d_loss.item(),
        "g_loss": g_loss.item(),
        "D(x)": torch.sigmoid(real_logits).mean().item(),
        "D(G(z))": torch.sigmoid(fake_logits).mean().item(),
    }


def make_gan_optimizers(
    model: GAN, lr_g: float = 2e-4, lr_d: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999)
) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """One Adam optimizer per player, with the DCGAN paper's settings (lr 2e-4, beta1 = 0.5).

    A lower ``beta1`` than Adam's default 0.9 makes the momentum forget faster: the other player keeps
    moving, so old gradients go stale quickly.
    """
    return (
        torch.optim.Adam(model.generator.parameters(), lr=lr_g, betas=betas),
        torch.optim.Adam(model.discriminator.parameters(), lr=lr_d, betas=betas),
    )


def sample_gan(model: GAN, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` pictures painted by the artist from seeded noise: a CPU tensor ``n x C x H x W`` in [0, 1].

    The same seed gives the same noise, hence the same pictures from the same model. Batch
    normalisation layers run in evaluation mode (their averages from training, not the batch's).
    """
    if not isinstance(model, GAN):
        raise TypeError(f"sample_gan needs a course_utils.models.GAN (from train_gan or make_gan), got {type(model)}")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            z = model.noise(n, generator=torch.Generator().manual_seed(seed))
            pictures = model.generator(z)
    finally:
        model.train(was_training)
    return to_unit(pictures).cpu()


def snapshot_path(checkpoint: str | Path) -> Path:
    """Where :func:`train_gan` keeps the fixed-noise pictures of each epoch, beside its checkpoint."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + "-snapshots.pt")


def train_gan(
    data: ImageData,
    *,
    epochs: int,
    seed: int = 0,
    kind: str = "dcgan",
    latent_dim: int = 100,
    channels: int = 32,
    batch_size: int = 16,
    lr_g: float = 1e-3,
    lr_d: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    real_label: float = 1.0,
    checkpoint: str | Path | None = None,
    snapshots: list[tuple[int, torch.Tensor]] | None = None,
    n_snapshot: int = 16,
    on_epoch_end: Callable[[int, History], None] | None = None,
    max_steps: int | None = None,
    max_seconds: float | None = None,
    desc: str | None = None,
) -> tuple[GAN, History]:
    """Train a GAN on ``data`` with :func:`gan_step` inside :func:`fit`; return ``(model, history)``.

    ``kind`` is ``'dcgan'`` (convolutional, ``channels`` wide) or ``'mlp'``; the optimizer settings
    are explained in :func:`make_gan_optimizers`; ``real_label=0.9`` turns on one-sided label smoothing.
    The defaults were measured on a laptop-class CPU with 28x28 MNIST: small batches (more rounds of the
    game per second of CPU) and an artist learning faster than the small critic (1e-3 vs 2e-4) gave
    recognisable digits in about 2,000 rounds, where the DCGAN paper's 2e-4 for both needed far more.
    The history logs ``d_loss``, ``g_loss``, ``D(x)`` and ``D(G(z))`` per step and per epoch.

    If ``snapshots`` is a list, ``(epoch, pictures)`` is appended after every epoch: ``n_snapshot``
    pictures in [0, 1] painted from the *same* fixed noise, to watch one set of dice rolls turn into
    digits. With ``checkpoint`` (a path, e.g. ``checkpoints.checkpoint_path('gan', data)``) the run
    is saved after every epoch and resumed (or simply loaded) by the next call, snapshots included.
    ``on_epoch_end(epoch, history)`` runs after each epoch's snapshot (e.g. a live plot).
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if not 0 < n_snapshot <= 256:
        raise ValueError(f"n_snapshot must be between 1 and 256, got {n_snapshot}")
    seed_generator = config.seed_everything(seed)
    device = config.device()
    model = make_gan(kind, data.image_shape, latent_dim, channels).to(device)
    optimizer_g, optimizer_d = make_gan_optimizers(model, lr_g, lr_d, betas)
    # One fixed set of noise vectors, drawn from its own generator so it never shifts the training noise.
    fixed_noise = torch.randn(n_snapshot, latent_dim, generator=seed_generator).to(device)

    kept: list[tuple[int, torch.Tensor]] = snapshots if snapshots is not None else []
    if checkpoint is not None and snapshot_path(checkpoint).exists() and Path(checkpoint).exists():
        saved = torch.load(snapshot_path(checkpoint), map_location="cpu", weights_only=True)
        kept.extend(zip(saved["epochs"].tolist(), saved["pictures"], strict=True))

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
        images, _labels = batch  # a GAN ignores the labels: it learns P(x), not P(y | x)
        return gan_step(model, optimizer_g, optimizer_d, to_signed(images).to(device), real_label=real_label)

    def end_of_epoch(epoch: int, history: History) -> None:
        model.eval()
        with torch.no_grad():
            kept.append((epoch + 1, to_unit(model.generator(fixed_noise)).cpu()))
        model.train()
        if checkpoint is not None:
            saved = {"epochs": torch.tensor([e for e, _ in kept]), "pictures": torch.stack([p for _, p in kept])}
            torch.save(saved, snapshot_path(checkpoint))
        if on_epoch_end is not None:
            on_epoch_end(epoch, history)

    modules = {"model": model, "optimizer_g": optimizer_g, "optimizer_d": optimizer_d}
    history = fit(
        step,
        data.loader(batch_size, shuffle=True, seed=seed),
        epochs,
        desc=desc or f"{kind} GAN",
        checkpoint=checkpoint,
        modules=modules,
        on_epoch_end=end_of_epoch,
        max_steps=max_steps,
        max_seconds=max_seconds,
    )
    model.eval()
    return model, history


# =========================================================================== Character model (text, notebook 07)


def charmodel_checkpoint_path(data: TextData, hidden_size: int = 256) -> Path:
    """Where notebook 07 keeps its character model, e.g. ``checkpoints/charmodel-roman-plays-h256-full.pt``."""
    return config.checkpoint_dir() / f"charmodel-{data.name}-h{hidden_size}-{config.profile()}.pt"


def charmodel_step(
    model: CharGRU, optimizer: torch.optim.Optimizer, windows: torch.Tensor, clip: float = 1.0
) -> dict[str, float]:
    """One optimisation step on a batch of ``B x (T + 1)`` character windows.

    Every position predicts the character that follows it, so the targets are the inputs shifted
    by one. The loss is the mean of -ln P(next character | all before it): the chain rule's
    factors, one per position. ``bits_per_char`` is the same number in bits (divided by ln 2).
    """
    inputs, targets = windows[:, :-1], windows[:, 1:]
    logits, _state = model(inputs)  # B x T x vocab: scores for the character after each position
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), clip)  # a recurrent net's gradients can explode: cap their size
    optimizer.step()
    return {"loss": loss.item(), "bits_per_char": loss.item() / math.log(2)}


def train_charmodel(
    data: TextData,
    *,
    epochs: int,
    seed: int = 0,
    seq_len: int = 128,
    batch_size: int = 64,
    embed_dim: int = 32,
    hidden_size: int = 256,
    dropout: float = 0.1,
    lr: float = 3e-3,
    checkpoint: str | Path | None = None,
    max_steps: int | None = None,
    max_seconds: float | None = None,
) -> tuple[CharGRU, History]:
    """Train a :class:`CharGRU` on ``data.train_ids`` with :func:`charmodel_step` inside :func:`fit`.

    One epoch reads the training text once, in windows of ``seq_len`` characters. With
    ``checkpoint`` (e.g. :func:`charmodel_checkpoint_path`) the run is saved after every epoch and
    resumed, or simply loaded, by the next call. Returns the model (in eval mode) and its history
    (``loss`` in nats and ``bits_per_char``, per step and per epoch).
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    config.seed_everything(seed)
    device = config.device()
    model = CharGRU(len(data.vocab), embed_dim, hidden_size, dropout=dropout).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def step(batch: tuple[torch.Tensor]) -> dict[str, float]:
        (windows,) = batch
        return charmodel_step(model, optimizer, windows.to(device))

    history = fit(
        step,
        text_loader(data.train_ids, seq_len, batch_size, shuffle=True, seed=seed),
        epochs,
        desc="char model",
        checkpoint=checkpoint,
        modules={"model": model, "optimizer": optimizer},
        max_steps=max_steps,
        max_seconds=max_seconds,
    )
    model.eval()
    return model, history


def sample_charmodel(
    model: CharGRU, vocab: Vocab, n: int, seed: int = 0, length: int = 300, prompt: str = "", temperature: float = 0.8
) -> list[str]:
    """``n`` new passages of ``length`` characters after ``prompt`` (see :func:`course_utils.text.generate`)."""
    return generate(
        model, vocab, prompt, max_new_tokens=length, num_return_sequences=n, temperature=temperature, seed=seed
    )


# =========================================================================== Diffusion (notebook 05)


class EMA:
    """An exponential moving average of a model's weights: ``ema = decay * ema + (1 - decay) * weights``.

    The weights of a diffusion model jitter from step to step; their running average samples
    cleaner images. ``ema.model`` is a frozen copy that follows the trained model. Early on the
    decay is smaller (``(1 + n) / (10 + n)`` after ``n`` updates), so the copy does not stay
    stuck near the random starting weights.
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


def diffusion_step(
    model: diffusion.DiffusionModel,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    ema: EMA | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """One optimisation step of a diffusion model on a batch of pictures in [0, 1].

    Scale the pictures to [-1, 1], noise each one to a random step ``t``, ask the network for the
    noise, and nudge the weights to shrink the squared error (see :func:`course_utils.diffusion.diffusion_loss`).
    Then move the weight average ``ema`` one step along.
    """
    loss = diffusion.diffusion_loss(model, to_signed(images), model.schedule, generator=generator)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if ema is not None:
        ema.update(model)
    return {"loss": loss.item()}


def make_diffusion(
    image_shape: tuple[int, int, int],
    channels: tuple[int, ...] = (16, 32, 32),
    timesteps: int = 1000,
    schedule: str = "cosine",
    sample_steps: int = 20,
    bf16: bool | str = "auto",
    sample_eta: float = 1.0,
) -> diffusion.DiffusionModel:
    """A :class:`~course_utils.diffusion.DiffusionModel` around a :class:`~course_utils.models.UNet`.

    ``bf16='auto'`` turns bfloat16 autocast on where the device computes it natively
    (:func:`course_utils.diffusion.bf16_is_fast`), off elsewhere. ``sample_eta``: DDIM's eta when sampling
    (1: fresh noise at each step, cleaner pictures from a small model; 0: deterministic).
    """
    if bf16 == "auto":
        bf16 = diffusion.bf16_is_fast(config.device())
    net = UNet(image_shape, channels=channels)
    return diffusion.DiffusionModel(net, timesteps, schedule, sample_steps, bool(bf16), sample_eta)


def _warmup(optimizer: torch.optim.Optimizer, base_lr: float, warmup_steps: int) -> None:
    """Ramp the learning rate up linearly over the first ``warmup_steps`` steps (read from Adam's own counter,
    which the checkpoint keeps, so a resumed run carries on where it was)."""
    state = next(iter(optimizer.state.values()), None)
    done = int(state["step"]) if state else 0
    for group in optimizer.param_groups:
        group["lr"] = base_lr * min(1.0, (done + 1) / max(1, warmup_steps))


def train_diffusion(
    data: ImageData,
    *,
    epochs: int,
    seed: int = 0,
    channels: tuple[int, ...] = (16, 32, 32),
    timesteps: int = 1000,
    schedule: str = "cosine",
    batch_size: int = 128,
    lr: float = 2e-3,
    warmup_steps: int = 100,
    ema_decay: float = 0.995,
    sample_steps: int = 20,
    sample_eta: float = 1.0,
    bf16: bool | str = "auto",
    checkpoint: str | Path | None = None,
    on_epoch_end: Callable[[int, History], None] | None = None,
    max_steps: int | None = None,
    max_seconds: float | None = None,
    desc: str | None = None,
) -> tuple[diffusion.DiffusionModel, History]:
    """Train a diffusion model on ``data`` with :func:`diffusion_step` inside :func:`fit`.

    Returns ``(ema_model, history)``: the moving average of the weights (:class:`EMA`), which samples
    better than the last weights. Sizes: see :func:`make_diffusion`; Adam with ``lr`` after a linear
    warm-up of ``warmup_steps``. With ``checkpoint`` (e.g. ``checkpoints.checkpoint_path('diffusion', data)``)
    the run is saved after every epoch and resumed, or simply loaded, by the next call.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    noise_generator = config.seed_everything(seed)
    device = config.device()
    model = make_diffusion(data.image_shape, channels, timesteps, schedule, sample_steps, bf16, sample_eta).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    ema = EMA(model, ema_decay)

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
        images = batch[0].to(device)  # the labels are not used: diffusion learns P(x)
        _warmup(optimizer, lr, warmup_steps)
        return diffusion_step(model, optimizer, images, ema, generator=noise_generator)

    history = fit(
        step,
        data.loader(batch_size, shuffle=True, seed=seed),
        epochs,
        desc=desc or "diffusion",
        checkpoint=checkpoint,
        modules={"model": model, "ema": ema.model, "optimizer": optimizer},
        on_epoch_end=on_epoch_end,
        max_steps=max_steps,
        max_seconds=max_seconds,
    )
    return ema.model.eval(), history


def sample_diffusion(
    model: diffusion.DiffusionModel,
    n: int,
    seed: int = 0,
    steps: int | None = None,
    batch_size: int = 500,
    eta: float | None = None,
) -> torch.Tensor:
    """``n`` pictures sculpted from seeded noise with DDIM: a CPU tensor ``n x C x H x W`` in [0, 1].

    ``steps`` network calls per picture and DDIM's ``eta`` (defaults: the model's ``sample_steps`` and
    ``sample_eta``); the same seed gives
    the same pictures. Works ``batch_size`` pictures at a time to keep memory small.
    """
    if not isinstance(model, diffusion.DiffusionModel):
        raise TypeError(f"sample_diffusion needs a DiffusionModel (from train_diffusion), got {type(model).__name__}")
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        chunks = [
            model.sample(min(batch_size, n - done), generator, steps, eta=eta)[0] for done in range(0, n, batch_size)
        ]
    finally:
        model.train(was_training)
    return to_unit(torch.cat(chunks)).cpu()
