"""Two-dimensional toys: data a student can see whole, small networks that learn it in seconds, and mode counting.

A picture of 784 pixels cannot be drawn as a point, but a point in the plane can. On 2-D data every idea of
the course (a generator that drops modes, a discriminator's landscape, a score field) becomes a picture, and
the networks that learn it train in seconds on a CPU.

* data: :func:`ring_of_gaussians` (the classic test of mode collapse: 8 Gaussians on a circle, Metz et al.
  2017, *Unrolled GANs*) and :func:`gaussian_mixture` (any mixture of round Gaussians, with its exact density
  and score, see :func:`mixture_log_prob` and :func:`mixture_score`);
* networks: :class:`MLP2d` (a small MLP) and :class:`TimeMLP2d` (the same with the timestep as an extra input,
  the noise predictor of a 2-D diffusion model);
* :func:`mode_coverage`: how many of the data's modes a set of samples really visits.

Pure PyTorch: training loops live in :mod:`course_utils.toy2d_train`, pictures in :mod:`course_utils.plotting_toy2d`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

# --------------------------------------------------------------------------- data


class Mixture(NamedTuple):
    """A mixture of round Gaussians in the plane: ``sum_k weights[k] * N(centres[k], std^2 I)``."""

    centres: torch.Tensor  # K x 2
    weights: torch.Tensor  # K, summing to 1
    std: float


def ring_mixture(modes: int = 8, radius: float = 2.0, std: float = 0.05) -> Mixture:
    """``modes`` equally likely Gaussians of spread ``std`` spaced evenly on a circle of ``radius``."""
    if modes < 1 or radius <= 0 or std <= 0:
        raise ValueError(f"need modes >= 1, radius > 0 and std > 0; got {modes}, {radius}, {std}")
    angles = torch.arange(modes, dtype=torch.float32) * (2 * math.pi / modes)
    centres = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    return Mixture(centres, torch.full((modes,), 1.0 / modes), std)


def lopsided_mixture(std: float = 0.25) -> Mixture:
    """Three Gaussians of unequal weight (0.5, 0.3, 0.2) at the corners of a triangle: the diffusion toy."""
    centres = torch.tensor([[-1.2, -0.6], [1.2, -0.6], [0.0, 1.2]])
    return Mixture(centres, torch.tensor([0.5, 0.3, 0.2]), std)


def sample_mixture(mixture: Mixture, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` points (``n x 2``) drawn from ``mixture``: pick a component by its weight, then add its noise."""
    if n < 1:
        raise ValueError(f"n must be a positive number of points, got {n}")
    component = torch.multinomial(mixture.weights, n, replacement=True, generator=generator)
    return mixture.centres[component] + mixture.std * torch.randn(n, 2, generator=generator)


def ring_of_gaussians(
    n: int, modes: int = 8, radius: float = 2.0, std: float = 0.05, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``n`` points from :func:`ring_mixture`: the ring of 8 Gaussians a collapsing GAN cannot cover."""
    return sample_mixture(ring_mixture(modes, radius, std), n, generator)


def gaussian_mixture(n: int, std: float = 0.25, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` points from :func:`lopsided_mixture`."""
    return sample_mixture(lopsided_mixture(std), n, generator)


def _noised(mixture: Mixture, alpha_bar: float) -> tuple[torch.Tensor, float]:
    """The mixture after ``x_t = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps``: centres shrink, variances grow."""
    if not 0 < alpha_bar <= 1:
        raise ValueError(f"alpha_bar must lie in (0, 1], got {alpha_bar}")
    return mixture.centres * math.sqrt(alpha_bar), alpha_bar * mixture.std**2 + (1 - alpha_bar)


def _log_components(x: torch.Tensor, centres: torch.Tensor, weights: torch.Tensor, var: float) -> torch.Tensor:
    """``log w_k + log N(x; c_k, var I)`` for every point and component: ``N x K``."""
    squared = (x.unsqueeze(1) - centres.unsqueeze(0)).pow(2).sum(dim=2)
    return weights.log() - squared / (2 * var) - math.log(2 * math.pi * var)


def mixture_log_prob(x: torch.Tensor, mixture: Mixture, alpha_bar: float = 1.0) -> torch.Tensor:
    """``log p_t(x)`` of each point (``N``) for the mixture noised to ``alpha_bar`` (1: the data itself).

    Noising a Gaussian mixture keeps it a Gaussian mixture, so the density at every ``t`` is exact.
    """
    centres, var = _noised(mixture, alpha_bar)
    return _log_components(x, centres, mixture.weights, var).logsumexp(dim=1)


def mixture_score(x: torch.Tensor, mixture: Mixture, alpha_bar: float = 1.0) -> torch.Tensor:
    """The exact score ``grad_x log p_t(x)`` (``N x 2``) of the noised mixture: the arrows a model should learn.

    For a mixture it is the responsibilities' average of each component's score ``(c_k - x) / var``.
    """
    centres, var = _noised(mixture, alpha_bar)
    responsibilities = _log_components(x, centres, mixture.weights, var).softmax(dim=1)  # N x K
    return (responsibilities.unsqueeze(2) * (centres.unsqueeze(0) - x.unsqueeze(1))).sum(dim=1) / var


# --------------------------------------------------------------------------- mode coverage


class Coverage(NamedTuple):
    """How a set of samples spreads over the modes of a mixture."""

    shares: torch.Tensor  # K: the share of all samples that fall near each mode
    covered: torch.Tensor  # K booleans: mode holds at least ``min_share`` of the samples
    n_covered: int
    high_quality: float  # the share of samples near some mode (the rest lie between modes)


def mode_coverage(samples: torch.Tensor, mixture: Mixture, n_std: float = 3.0, min_share: float = 0.05) -> Coverage:
    """Count the modes the ``samples`` (``N x 2``) visit: a mode is covered when at least ``min_share`` of all
    samples lie within ``n_std`` standard deviations of its centre. (The 3-standard-deviation "high-quality
    sample" rule is usually credited to VEEGAN, Srivastava et al. 2017, and PacGAN; the 5% share is the course's.)
    """
    if samples.ndim != 2 or samples.shape[1] != 2:
        raise ValueError(f"samples must be an N x 2 tensor of points, got shape {tuple(samples.shape)}")
    if not 0 < min_share <= 1 or n_std <= 0:
        raise ValueError(f"need 0 < min_share <= 1 and n_std > 0, got {min_share} and {n_std}")
    samples = samples.detach().float().cpu()
    distances = torch.cdist(samples, mixture.centres)  # N x K
    nearest = distances.min(dim=1)
    near = nearest.values <= n_std * mixture.std
    counts = torch.bincount(nearest.indices[near], minlength=len(mixture.centres)).float()
    shares = counts / len(samples)
    covered = shares >= min_share
    return Coverage(shares, covered, int(covered.sum()), float(near.float().mean()))


# --------------------------------------------------------------------------- networks


class MLP2d(nn.Module):
    """A small MLP for points: ``in_dim -> hidden -> ... -> out_dim`` with ``layers`` hidden layers.

    ``activation`` is ``'relu'``, ``'leaky_relu'`` (0.2) or ``'silu'``. The generator, the discriminator and
    the score network of the 2-D toys are all this network with different ends.
    """

    def __init__(
        self, in_dim: int = 2, out_dim: int = 2, hidden: int = 64, layers: int = 2, activation: str = "relu"
    ) -> None:
        super().__init__()
        if in_dim < 1 or out_dim < 1 or hidden < 1 or layers < 1:
            raise ValueError(
                f"sizes must be positive, got in={in_dim}, out={out_dim}, hidden={hidden}, layers={layers}"
            )
        act = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "silu": nn.SiLU}
        if activation not in act:
            raise ValueError(f"activation must be one of {sorted(act)}, got {activation!r}")
        widths = [in_dim] + [hidden] * layers
        blocks: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            blocks += [nn.Linear(a, b), act[activation]()]
        self.net = nn.Sequential(*blocks, nn.Linear(hidden, out_dim))
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"expected inputs with {self.in_dim} numbers per row, got shape {tuple(x.shape)}")
        return self.net(x)


class TimeMLP2d(nn.Module):
    """A noise predictor for 2-D diffusion: ``(x_t, t) -> eps_hat``, an :class:`MLP2d` fed the point and a few
    sines and cosines of the timestep (a small version of the U-Net's time embedding).
    """

    def __init__(self, timesteps: int, hidden: int = 128, layers: int = 3, frequencies: int = 4) -> None:
        super().__init__()
        if timesteps < 2 or frequencies < 1:
            raise ValueError(f"need timesteps >= 2 and frequencies >= 1, got {timesteps} and {frequencies}")
        self.timesteps = timesteps
        self.register_buffer("frequencies", 2.0 ** torch.arange(frequencies, dtype=torch.float32) * math.pi)
        self.net = MLP2d(2 + 2 * frequencies, 2, hidden, layers, activation="silu")

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        phase = (t.float() / self.timesteps).unsqueeze(1) * self.frequencies  # N x F, t scaled to [0, 1)
        return self.net(torch.cat([x_t, phase.sin(), phase.cos()], dim=1))
