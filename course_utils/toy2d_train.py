"""Training loops for the 2-D toys, written out in full: a plain GAN, a WGAN-GP, a small diffusion and a flow model.

Each loop is short enough to read in one go: draw a batch from the toy's mixture, take the discriminator's
step(s), take the generator's step, and every ``snapshot_every`` steps keep the generator's answer for the
same fixed noise, so a strip of snapshots shows how the samples move during training. A run takes seconds
on a CPU; sizes come from the caller (the notebooks pick them with ``config.by_profile``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from course_utils import config, diffusion, flow, losses
from course_utils.toy2d import Mixture, MLP2d, TimeMLP2d, sample_mixture

GAN_LOSSES = ("gan", "wgan-gp")

# The two recipes notebook 04 compares, with the same networks. The plain GAN's generator learns ten times
# faster than its discriminator: it chases whichever spot the discriminator currently likes, all its noise
# lands there (collapse), the discriminator learns that spot is fake, and the generator hops to the next.
# WGAN-GP as Gulrajani et al.'s toy script (gan_toy.py) runs it: 5 discriminator steps per generator step, Adam
# with betas (0.5, 0.9) and a small penalty weight, lambda = 0.1 (their Algorithm 1, for images, uses betas (0, 0.9)
# and lambda = 10), with our learning rate. CONTROL_GAN is the plain GAN's loss with every other WGAN-GP setting:
# notebook 04 trains it to separate what the loss does from what the other settings do.
COLLAPSING_GAN = {"loss": "gan", "lr_g": 1e-2, "lr_d": 1e-3, "d_steps": 1, "batch_size": 256}
WGAN_GP = {
    "loss": "wgan-gp", "lr_g": 3e-3, "lr_d": 3e-3, "d_steps": 5, "batch_size": 256, "betas": (0.5, 0.9),
    "penalty_weight": 0.1,
}  # fmt: skip
CONTROL_GAN = {key: value for key, value in WGAN_GP.items() if key != "penalty_weight"} | {"loss": "gan"}


@dataclass
class ToyGANRun:
    """What :func:`train_toy_gan` returns: both networks, the snapshots and the loss curves."""

    generator: nn.Module
    discriminator: nn.Module
    latent_dim: int
    snapshots: list[tuple[int, torch.Tensor]] = field(default_factory=list)  # (step, n x 2 samples)
    history: dict[str, list[float]] = field(default_factory=lambda: {"d_loss": [], "g_loss": []})

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` new points (``n x 2``, on the CPU) from noise drawn with ``seed``."""
        z = torch.randn(n, self.latent_dim, generator=torch.Generator().manual_seed(seed))
        return self.generator(z).cpu()


def train_toy_gan(
    mixture: Mixture,
    steps: int,
    *,
    loss: str = "gan",
    latent_dim: int = 2,
    hidden: int = 64,
    layers: int = 2,
    batch_size: int = 256,
    lr_g: float = 1e-3,
    lr_d: float = 1e-3,
    betas: tuple[float, float] = (0.5, 0.999),
    d_steps: int = 1,
    penalty_weight: float = 0.1,
    snapshot_every: int = 100,
    n_snapshot: int = 1000,
    seed: int = 0,
) -> ToyGANRun:
    """Train a generator ``latent_dim -> 2`` against a discriminator ``2 -> 1`` on points from ``mixture``.

    ``loss='gan'``: the stable non-saturating game of notebook 04 (:func:`losses.discriminator_loss`,
    :func:`losses.generator_loss`). ``loss='wgan-gp'``: the discriminator gives scores, not probabilities
    (:func:`losses.wasserstein_discriminator_loss` + ``penalty_weight`` x :func:`losses.gradient_penalty`),
    usually with ``d_steps=5`` discriminator steps per generator step (Gulrajani et al. 2017, Algorithm 1).
    """
    if loss not in GAN_LOSSES:
        raise ValueError(f"loss must be one of {GAN_LOSSES}, got {loss!r}")
    if steps < 1 or d_steps < 1 or snapshot_every < 1:
        raise ValueError(
            f"steps, d_steps and snapshot_every must be positive, got {steps}, {d_steps}, {snapshot_every}"
        )
    torch.manual_seed(seed)  # the networks' first weights
    rng = torch.Generator().manual_seed(seed)  # the data and the noise
    run = ToyGANRun(
        MLP2d(latent_dim, 2, hidden, layers), MLP2d(2, 1, hidden, layers, activation="leaky_relu"), latent_dim
    )
    optimizer_g = torch.optim.Adam(run.generator.parameters(), lr=lr_g, betas=betas)
    optimizer_d = torch.optim.Adam(run.discriminator.parameters(), lr=lr_d, betas=betas)
    fixed_noise = torch.randn(n_snapshot, latent_dim, generator=rng)  # the same noise for every snapshot

    for step in range(1, steps + 1):
        # 1. The discriminator's step(s): fakes are detached, only the discriminator learns.
        for _ in range(d_steps):
            real = sample_mixture(mixture, batch_size, rng)
            fake = run.generator(torch.randn(batch_size, latent_dim, generator=rng)).detach()
            real_out, fake_out = run.discriminator(real), run.discriminator(fake)
            if loss == "gan":
                d_loss = losses.discriminator_loss(real_out, fake_out)
            else:
                epsilon = torch.rand(batch_size, 1, generator=rng)
                penalty = losses.gradient_penalty(run.discriminator, real, fake, epsilon)
                d_loss = losses.wasserstein_discriminator_loss(real_out, fake_out) + penalty_weight * penalty
            optimizer_d.zero_grad()
            d_loss.backward()
            optimizer_d.step()
        # 2. The generator's step: through the updated discriminator, only the generator learns.
        fake_out = run.discriminator(run.generator(torch.randn(batch_size, latent_dim, generator=rng)))
        g_loss = losses.generator_loss(fake_out) if loss == "gan" else losses.wasserstein_generator_loss(fake_out)
        optimizer_g.zero_grad()
        g_loss.backward()
        optimizer_g.step()

        run.history["d_loss"].append(d_loss.item())
        run.history["g_loss"].append(g_loss.item())
        if step % snapshot_every == 0 or step == steps:
            with torch.no_grad():
                run.snapshots.append((step, run.generator(fixed_noise).cpu()))
    return run


@dataclass
class ToyDiffusionRun:
    """What :func:`train_toy_diffusion` returns: the noise predictor, its schedule and the loss curve."""

    model: TimeMLP2d
    schedule: diffusion.NoiseSchedule
    history: dict[str, list[float]] = field(default_factory=lambda: {"loss": []})

    @torch.no_grad()
    def score(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """The learned score ``grad log p_t(x)`` at timestep ``t`` for points ``x`` (``N x 2``)."""
        steps = torch.full((x.shape[0],), t, dtype=torch.int64)
        return diffusion.score_from_eps(self.model(x, steps), steps, self.schedule)

    @torch.no_grad()
    def sample_ddpm(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` points with DDPM's ancestral sampler (no clipping: the toy's points need not lie in [-1, 1])."""
        rng = torch.Generator().manual_seed(seed)
        points, _ = diffusion.ddpm_sample(self.model, (n, 2), self.schedule, generator=rng, clip=None)
        return points


def train_toy_diffusion(
    mixture: Mixture,
    steps: int,
    *,
    timesteps: int = 100,
    schedule: str = "linear",
    hidden: int = 128,
    layers: int = 3,
    batch_size: int = 512,
    lr: float = 2e-3,
    seed: int = 0,
) -> ToyDiffusionRun:
    """Train a :class:`TimeMLP2d` to predict the noise in noised points of ``mixture`` (DDPM's simple loss)."""
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    torch.manual_seed(seed)
    rng = torch.Generator().manual_seed(seed)
    run = ToyDiffusionRun(TimeMLP2d(timesteps, hidden, layers), diffusion.make_schedule(timesteps, schedule))
    optimizer = torch.optim.Adam(run.model.parameters(), lr=lr)
    # A learning rate that falls to a tenth: the score near t = 0 needs fine steps at the end.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1 - 0.9 * i / steps)
    for _ in range(steps):
        x0 = sample_mixture(mixture, batch_size, rng)
        loss = diffusion.diffusion_loss(run.model, x0, run.schedule, rng)  # || eps - eps_hat(x_t, t) ||^2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        run.history["loss"].append(loss.item())
    return run


@dataclass
class ToyFlowRun:
    """What :func:`train_toy_flow` returns: the velocity network and the loss curve."""

    model: TimeMLP2d
    history: dict[str, list[float]] = field(default_factory=lambda: {"loss": []})

    @torch.no_grad()
    def velocity(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """The learned velocity at points ``x`` (``N x 2``) and continuous times ``t`` in [0, 1]."""
        t = torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0])
        return self.model(x, t * self.model.timesteps)  # the MLP's time features expect t on its 0 .. T scale

    def sample(
        self, n: int, steps: int, solver: str = "euler", seed: int = 0, return_trajectory: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``n`` points integrated from seeded noise in ``steps`` steps (see :func:`course_utils.flow.flow_sample`)."""
        x1 = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
        return flow.flow_sample(self.velocity, x1, steps, solver, return_trajectory)


def train_toy_flow(
    mixture: Mixture, steps: int, *, hidden: int = 128, layers: int = 3, batch_size: int = 512, lr: float = 2e-3,
    seed: int = 0,
) -> ToyFlowRun:  # fmt: skip
    """Train a :class:`TimeMLP2d` to predict the velocity ``eps - x_0`` along straight paths from points of ``mixture``
    to noise (:func:`course_utils.flow.flow_loss`), with the same network and schedule of learning rates as
    :func:`train_toy_diffusion`."""
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    torch.manual_seed(seed)
    rng = torch.Generator().manual_seed(seed)
    run = ToyFlowRun(TimeMLP2d(1000, hidden, layers))
    optimizer = torch.optim.Adam(run.model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1 - 0.9 * i / steps)
    threads = torch.get_num_threads()
    config.use_threads("sequential")  # thousands of tiny matrix products: a second thread only adds waiting
    try:
        for _ in range(steps):
            x0 = sample_mixture(mixture, batch_size, rng)
            loss = flow.flow_loss(lambda x, t: run.model(x, t * 1000), x0, rng)  # || (eps - x0) - v(x_t, t) ||^2
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            run.history["loss"].append(loss.item())
    finally:
        torch.set_num_threads(threads)
    return run
