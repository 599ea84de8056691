"""The GAN recipe (notebooks 03 and 04): the generator and the discriminator take turns.

:class:`GANConfig` holds a GAN's settings and :func:`gan_preset` the course's choice, which notebook 04
trains and notebook 08 loads; change one field with ``dataclasses.replace``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from course_utils import config, losses
from course_utils.data import ImageData, to_signed, to_unit
from course_utils.history import History
from course_utils.loop import SAMPLING, TrainingConfig, evaluating, fit
from course_utils.models.gan import GAN, make_gan


@dataclass(frozen=True, kw_only=True)
class GANConfig(TrainingConfig):
    """A GAN's settings. ``kind``: ``'dcgan'`` (convolutional, ``channels`` wide) or ``'mlp'``.

    The optimizer settings are explained in :func:`make_gan_optimizers`; ``real_label=0.9`` turns on
    one-sided label smoothing. The defaults were measured on a laptop-class CPU with 28x28 MNIST: small
    batches (more rounds of the game per second of CPU) and a generator learning faster than the small
    discriminator (1e-3 vs 2e-4) gave recognisable digits in far fewer rounds than the DCGAN paper's
    2e-4 for both. ``n_snapshot``: how many fixed-noise pictures to keep after each epoch.
    """

    kind: str = "dcgan"
    latent_dim: int = 100
    channels: int = 32
    batch_size: int = 16  # (the default of every recipe is 128)
    lr_g: float = 1e-3
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    real_label: float = 1.0
    n_snapshot: int = field(default=16, metadata=SAMPLING)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.n_snapshot <= 256:
            raise ValueError(f"n_snapshot must be between 1 and 256, got {self.n_snapshot}")


def gan_preset(data: ImageData) -> GANConfig:
    """Notebook 04's DCGAN: 32 channels, batches of 16, trained on 120,000 pictures (512 in the fast profile)."""
    return GANConfig(images=config.by_profile(full=120_000, fast=512))


def gan_step(
    model: GAN,
    optimizer_g: torch.optim.Optimizer,
    optimizer_d: torch.optim.Optimizer,
    real: torch.Tensor,
    real_label: float = 1.0,
) -> dict[str, float]:
    """One round of the game on a batch of real pictures in [-1, 1].

    1. The discriminator learns: real pictures -> "real", the generator's fakes -> "fake".
    2. The generator learns: make the freshly updated discriminator say "real" on its fakes.

    Returns the two losses and the discriminator's mean verdicts ``D(x)`` (on real pictures) and
    ``D(G(z))`` (on fakes, before the discriminator's update): at balance both hover around 0.5.
    """
    n = real.shape[0]

    # --- 1. discriminator step -------------------------------------------------------
    z = model.noise(n)
    fake = model.generator(z)
    real_logits = model.discriminator(real)
    # detach(): this loss must only change the discriminator; without it the backward pass would also
    # run through the generator (wasted work, and gradients left behind in the generator's parameters).
    fake_logits = model.discriminator(fake.detach())
    d_loss = losses.discriminator_loss(real_logits, fake_logits, real_label=real_label)
    optimizer_d.zero_grad()
    d_loss.backward()
    optimizer_d.step()

    # --- 2. generator step -----------------------------------------------------------
    # The same fakes, judged again by the updated discriminator, this time keeping the path back to the generator.
    g_loss = losses.generator_loss(model.discriminator(fake))
    optimizer_g.zero_grad()
    g_loss.backward()  # also leaves gradients in the discriminator; its zero_grad() above clears them next step
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
    """``n`` pictures painted by the generator from seeded noise: a CPU tensor ``n x C x H x W`` in [0, 1].

    The same seed gives the same noise, hence the same pictures from the same model. Batch
    normalisation layers run in evaluation mode (their averages from training, not the batch's).
    """
    if not isinstance(model, GAN):
        raise TypeError(f"sample_gan needs a course_utils.models.GAN (from train_gan or make_gan), got {type(model)}")
    with evaluating(model):
        return to_unit(model.generator(model.noise(n, generator=torch.Generator().manual_seed(seed)))).cpu()


class Snapshots:
    """The fixed-noise pictures of each epoch, ``(epoch, pictures)`` pairs appended to the list ``kept``, saved in the
    GAN's checkpoint like its weights: they resume with the run, and go aside with it when it no longer fits."""

    def __init__(self, kept: list[tuple[int, torch.Tensor]]) -> None:
        self.kept, self.start = kept, len(kept)  # what the list held before this run is not part of it

    def state_dict(self) -> dict[str, Any]:
        """This run's snapshots: their epochs and pictures (a list, so the count may change between epochs)."""
        run = self.kept[self.start :]
        return {"epochs": [epoch for epoch, _ in run], "pictures": [pictures for _, pictures in run]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back the snapshots of a saved run (in place of any of this run's)."""
        self.kept[self.start :] = list(zip(state["epochs"], state["pictures"], strict=True))


def train_gan(
    data: ImageData,
    settings: GANConfig,
    *,
    checkpoint: str | Path | None = None,
    snapshots: list[tuple[int, torch.Tensor]] | None = None,
    on_epoch_end: Callable[[int, History], None] | None = None,
    desc: str | None = None,
) -> tuple[GAN, History]:
    """Train a GAN on ``data`` with :func:`gan_step` inside :func:`fit`; return ``(model, history)``.

    The history logs ``d_loss``, ``g_loss``, ``D(x)`` and ``D(G(z))`` per step and per epoch. If
    ``snapshots`` is a list, ``(epoch, pictures)`` is appended after every epoch: ``settings.n_snapshot``
    pictures in [0, 1] painted from the *same* fixed noise, to watch one set of dice rolls turn into
    digits. With ``checkpoint`` (e.g. ``checkpoints.checkpoint_path('gan', data)``) the run, its settings
    and its snapshots (:class:`Snapshots`, in the same file) are saved, and the next call resumes it, or simply
    loads it when it is finished. ``n_snapshot`` may change between calls: only the new snapshots have the new count.
    ``on_epoch_end(epoch, history)`` runs after each epoch's snapshot (e.g. a live plot).
    """
    rng = config.seed_everything(settings.seed)
    device = config.device()
    model = make_gan(settings.kind, data.image_shape, settings.latent_dim, settings.channels).to(device)
    optimizer_g, optimizer_d = make_gan_optimizers(model, settings.lr_g, settings.lr_d, settings.betas)
    # One fixed set of noise vectors, drawn from its own generator so it never shifts the training noise.
    fixed_noise = torch.randn(settings.n_snapshot, settings.latent_dim, generator=rng).to(device)

    kept: list[tuple[int, torch.Tensor]] = snapshots if snapshots is not None else []

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
        images, _labels = batch  # a GAN ignores the labels: it learns P(x), not P(y | x)
        return gan_step(model, optimizer_g, optimizer_d, to_signed(images).to(device), settings.real_label)

    def end_of_epoch(epoch: int, history: History) -> None:
        with evaluating(model):
            kept.append((epoch + 1, to_unit(model.generator(fixed_noise)).cpu()))
        if on_epoch_end is not None:
            on_epoch_end(epoch, history)

    loader = data.loader(settings.batch_size, seed=settings.seed)
    modules = {"model": model, "optimizer_g": optimizer_g, "optimizer_d": optimizer_d, "snapshots": Snapshots(kept)}
    desc = desc or f"{settings.kind} GAN"
    history = fit(
        step, loader, settings=settings, desc=desc, checkpoint=checkpoint, modules=modules, on_epoch_end=end_of_epoch
    )
    return model.eval(), history
