"""Likelihood of pictures in bits per dimension, and the bound of a diffusion model that gives one.

**Bits per dimension.** A picture of ``D`` pixels, each one of ``L`` grey levels (``L = 256`` for 8-bit MNIST, 17 for
the 8x8 digits), is a discrete object, and ``-log2 P(x) / D`` is the number of bits per pixel a code built on the
model would need for it: ``log2(L)`` (8 bits at ``L = 256``) for a model that knows nothing, less for a better one.
Most of the course's models have a *density* ``p`` over pictures scaled to [0, 1] instead. The standard
convention (Theis, van den Oord & Bethge 2016, *A note on the evaluation of generative models*, section 3.1)
compares them all on the discrete pictures through *uniform dequantisation*: cut [0, 1] into ``L`` bins of width
``1 / L``, move each pixel to a uniformly random point ``y`` of its bin (:func:`dequantise`), and use
``log P(x) >= E[log p(y)] - D log L`` (Jensen's inequality). So

``bpd = -(log p(y) - D ln L) / (D ln 2)``    (:func:`bits_per_dim`),

an upper bound on the model's true code length, never below 0 for a normalised density. Models that already
give the probability of the discrete picture (the diffusion bound below) skip the ``D ln L``.

The same paper is *the* reference for the lesson of notebook 08: a model can have an excellent likelihood and
poor samples, or the reverse, so likelihood and sample quality must be measured separately.

**The diffusion bound** (Ho, Jain & Abbeel 2020, eq. 5 and section 3.3): with ``x_0`` in [-1, 1],

``-log p(x_0) <= L_T + sum_{t=2..T} L_{t-1} + L_0``:

``L_T = KL(q(x_T | x_0) || N(0, I))`` (the prior, tiny), ``L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))``
(how well the network undoes one step) and ``L_0 = -log p(x_0 | x_1)``, a Gaussian integrated over each pixel's
bin (a *discretised* decoder). This is the bound of the network's ``T``-step ancestral sampler
(:func:`course_utils.diffusion.ddpm_sample`), whose step ``t`` has the posterior variance.

The Gaussian artist's density is :meth:`course_utils.models.GaussianArtist.log_density`; the VAE's bound is
:func:`course_utils.losses.importance_weighted_bound` with ``decoder='continuous_bernoulli'``;
:func:`kernel_density_log_likelihood` is the density of a model that traces its training pictures.
"""

from __future__ import annotations

import math

import torch

from course_utils.diffusion import NoisePredictor, NoiseSchedule, posterior_mean, predict_x0, q_sample

LN2 = math.log(2)


def pixel_levels(images: torch.Tensor, max_levels: int = 256, tolerance: float = 1e-3) -> int:
    """The number of grey levels ``L`` of pictures in [0, 1]: the smallest ``L`` with every pixel ``k / (L - 1)``.

    256 for MNIST (pixels ``k / 255``), 17 for the scikit-learn digits (``k / 16``).
    """
    # The distinct values only, found 2**23 pixels (about 10,000 MNIST pictures) at a time: sorting all of 60,000
    # MNIST pictures at once (and in float64) took 1.3 GB, most of Binder's memory, to find at most 256 values.
    pieces = images.detach().reshape(-1).split(2**23)
    values = torch.unique(torch.cat([torch.unique(piece) for piece in pieces])).cpu().double()
    if values.min() < 0 or values.max() > 1:
        raise ValueError("pixels must lie in [0, 1]; convert [-1, 1] images with data.to_unit first")
    for levels in range(2, max_levels + 1):
        scaled = values * (levels - 1)
        if (scaled - scaled.round()).abs().max() < tolerance:
            return levels
    raise ValueError(
        f"these pixels are not on a grid of at most {max_levels} grey levels (k / (L - 1)): "
        "they are not quantised pictures, so bits per dimension is not defined for them"
    )


def dequantise(images: torch.Tensor, levels: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each pixel ``k / (levels - 1)`` moved to a uniformly random point of its bin ``[k / levels, (k + 1) / levels)``.

    The bins tile [0, 1], so a density evaluated at these points bounds the discrete likelihood (see the module's
    docstring). Returns a tensor of the images' shape, in [0, 1).
    """
    if not isinstance(levels, int) or levels < 2:
        raise ValueError(f"levels must be an integer >= 2, got {levels!r}")
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError("pixels must lie in [0, 1]; convert [-1, 1] images with data.to_unit first")
    k = (images * (levels - 1)).round()
    noise = torch.rand(images.shape, generator=generator).to(images.device, images.dtype)
    return (k + noise) / levels


def bits_per_dim(log_likelihood_nats: torch.Tensor, n_dims: int, levels: int | None = 256) -> torch.Tensor:
    """Bits per dimension from log-likelihoods in nats (one per picture): ``-(log p - D ln L) / (D ln 2)``.

    ``log_likelihood_nats`` is the log-density of dequantised pictures scaled to [0, 1] (bins of width
    ``1 / levels``, :func:`dequantise`); with ``levels=None`` it is already the log-probability of the discrete
    pictures, and the result is ``-log P / (D ln 2)``. Lower is better; ``log2(levels)`` is a uniform guess.
    """
    if not isinstance(n_dims, int) or n_dims < 1:
        raise ValueError(f"n_dims must be a positive integer (pixels per picture), got {n_dims!r}")
    if levels is not None and (not isinstance(levels, int) or levels < 2):
        raise ValueError(f"levels must be an integer >= 2 (256 for 8-bit pixels) or None, got {levels!r}")
    log_likelihood_nats = torch.as_tensor(log_likelihood_nats, dtype=torch.float64)
    bin_volume = 0.0 if levels is None else n_dims * math.log(levels)
    return -(log_likelihood_nats - bin_volume) / (n_dims * LN2)


def kernel_density_log_likelihood(
    queries: torch.Tensor, centres: torch.Tensor, bandwidth: float, chunk: int = 256, centre_chunk: int = 2048
) -> torch.Tensor:
    """``log p(x)`` of each query (nats) under an equal mixture of ``N(centre, bandwidth^2 I)``, one per centre.

    A Parzen window, or kernel density estimate: with a small ``bandwidth`` it is the model that hands back its
    training pictures with a hair of noise. Pictures of any shape are flattened; computed in float64, ``chunk``
    queries against ``centre_chunk`` centres at a time (60,000 MNIST centres at once in float64 took 600 MB).
    """
    if bandwidth <= 0:
        raise ValueError(f"bandwidth must be positive, got {bandwidth}")
    queries, centres = queries.flatten(1).double(), centres.flatten(1)
    if queries.shape[1] != centres.shape[1]:
        raise ValueError(f"queries and centres must have as many pixels, got {queries.shape[1]} and {centres.shape[1]}")
    n_dims = queries.shape[1]
    normaliser = math.log(len(centres)) + 0.5 * n_dims * math.log(2 * math.pi * bandwidth**2)
    # log sum over all centres = logsumexp of the per-block log sums: exact, block by block.
    blocks = [
        torch.stack(
            [
                torch.logsumexp(-torch.cdist(q, block.double()).pow(2) / (2 * bandwidth**2), dim=1)
                for block in centres.split(centre_chunk)
            ]
        ).logsumexp(dim=0)
        for q in queries.split(chunk)
    ]
    return torch.cat(blocks) - normaliser


def discretised_gaussian_log_likelihood(
    x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor | float, levels: int
) -> torch.Tensor:
    """``log P(x)`` per pixel for pixels ``x`` on ``levels`` evenly spaced values in [-1, 1] (float64).

    ``P(x)`` is the mass of ``N(mean, std^2)`` on the pixel's bin, ``x +- 1 / (levels - 1)``; the bins of -1 and 1
    reach to -infinity and +infinity, so the probabilities of the ``levels`` values add up to 1 (Ho et al. eq. 13).
    """
    if not isinstance(levels, int) or levels < 2:
        raise ValueError(f"levels must be an integer >= 2, got {levels!r}")
    x, mean = x.double(), mean.double()
    std = torch.as_tensor(std, dtype=torch.float64, device=x.device)
    half_bin = 1.0 / (levels - 1)
    upper = torch.where(x > 1 - half_bin / 2, torch.inf, (x + half_bin - mean) / std)
    lower = torch.where(x < -1 + half_bin / 2, -torch.inf, (x - half_bin - mean) / std)
    # log(Phi(upper) - Phi(lower)) without cancellation: mirror bins in the upper tail into the lower one,
    # where log_ndtr is accurate, then log(Phi(b) - Phi(a)) = log Phi(b) + log(1 - Phi(a) / Phi(b)).
    mirror = lower > 0
    a = torch.where(mirror, -upper, lower)
    b = torch.where(mirror, -lower, upper)
    log_b, log_a = torch.special.log_ndtr(b), torch.special.log_ndtr(a)
    return log_b + torch.log1p(-torch.exp(log_a - log_b))


@torch.no_grad()
def diffusion_negative_elbo(
    model: NoisePredictor,
    schedule: NoiseSchedule,
    images: torch.Tensor,
    levels: int,
    n_timesteps: int,
    generator: torch.Generator | None = None,
    batch_size: int = 100,
) -> torch.Tensor:
    """Ho et al.'s bound on ``-log P(x)`` (nats, one number per picture) for pictures in [0, 1] on ``levels`` values.

    ``L_T`` and ``L_0`` are computed for every picture; the ``T - 1`` middle terms are estimated by stratified
    sampling: ``n_timesteps`` strata of consecutive steps, one random step per stratum and picture, weighted by
    the stratum's size (unbiased; exact when ``n_timesteps = T - 1``). The model's ``x_0`` guesses are clipped
    to [-1, 1] as the sampler does. Timesteps are 0-based as in :mod:`course_utils.diffusion`: index ``i`` is
    the paper's step ``i + 1``.
    """
    n_steps = schedule.timesteps
    if not isinstance(n_timesteps, int) or not 1 <= n_timesteps <= n_steps - 1:
        raise ValueError(f"n_timesteps must be an integer in 1 .. {n_steps - 1} (T - 1), got {n_timesteps!r}")
    if images.ndim != 4 or images.min() < 0 or images.max() > 1:
        raise ValueError("images must be N x C x H x W with pixels in [0, 1]")
    device = next(model.parameters()).device if isinstance(model, torch.nn.Module) else images.device
    edges = torch.linspace(1, n_steps, n_timesteps + 1).round().long()  # strata [edges[j], edges[j + 1])
    alpha_bar_last = schedule.alpha_bar[-1].cpu().double()
    totals = []
    for chunk in images.split(batch_size):
        # The network runs on its device; the bound's float64 arithmetic on the CPU (MPS has no float64).
        x0 = (2 * chunk - 1).cpu()  # [-1, 1], as the model was trained
        n = len(x0)

        def noisy_and_guess(t: torch.Tensor, x0: torch.Tensor = x0) -> tuple[torch.Tensor, torch.Tensor]:
            # x_t drawn from q(x_t | x_0), and the model's guess of x_0 from it, clipped as the sampler does.
            noise = torch.randn(x0.shape, generator=generator)
            x_t = q_sample(x0, t, noise, schedule)
            eps = model(x_t.to(device), t.to(device)).float().cpu()
            return x_t, predict_x0(x_t, t, eps, schedule).clamp(-1, 1)

        # L_T: KL(N(sqrt(abar_T) x0, 1 - abar_T) || N(0, 1)) per pixel, in closed form.
        prior = 0.5 * (alpha_bar_last * x0.double().pow(2) + (1 - alpha_bar_last) - 1 - torch.log(1 - alpha_bar_last))
        total = prior.flatten(1).sum(1)
        # L_0: the discretised Gaussian decoder at step 1, mean mu(x_1, 1), variance beta_1 (Ho et al. section 3.3).
        first = torch.zeros(n, dtype=torch.int64)
        x_1, x0_hat = noisy_and_guess(first)
        mean = posterior_mean(x0_hat, x_1, first, schedule)
        decoder = discretised_gaussian_log_likelihood(x0, mean, schedule.betas[0].cpu().double().sqrt(), levels)
        total = total - decoder.flatten(1).sum(1)
        # L_{t-1}, t >= 2: both Gaussians have the posterior variance, so the KL is the squared distance of their
        # means over twice that variance; the means differ by coef_x0 * (x_0 - x0_hat) (Ho et al. eq. 7).
        for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True):
            t = torch.randint(lo, hi, (n,), generator=generator)
            _, x0_hat = noisy_and_guess(t)
            coef = schedule.posterior_mean_coef_x0.cpu().double()[t]
            variance = schedule.posterior_variance.cpu().double()[t]
            squared = (x0.double() - x0_hat.double()).pow(2).flatten(1).sum(1)
            total = total + (hi - lo) * coef.pow(2) * squared / (2 * variance)
        totals.append(total)
    return torch.cat(totals)
