"""Loss functions of the course, one section per family of models.

Each loss is written the way its equation reads, in plain PyTorch, and tested against an
independent reference (a closed form, ``torch.distributions`` or a Monte-Carlo estimate).

Conventions: pictures are ``N x C x H x W`` tensors; "per image" losses are *summed* over the
pixels of each picture (and over the latent dimensions) and then averaged over the batch, so the
numbers are in nats per image.

The "bce" reconstruction reads each pixel as a Bernoulli variable (ink or paper). The course's pixels are
grey values in [0, 1], not 0/1, so the VAE's negative ELBO here is a training objective, not a bound on the
log-likelihood of the data: it cannot be compared with published figures for binarized MNIST (~80-100 nats).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

# =========================================================================== autoencoders and VAEs

RECONSTRUCTION_KINDS = ("bce", "mse")


def _per_image(pixel_losses: torch.Tensor) -> torch.Tensor:
    """Sum every dimension except the first: one number per picture."""
    return pixel_losses.flatten(start_dim=1).sum(dim=1)


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """How far each rebuilt picture ``x_hat`` is from its original ``x``: a tensor of N numbers.

    ``bce``: binary cross-entropy, ``-sum(x log x_hat + (1 - x) log(1 - x_hat))`` over the pixels,
    for ``x_hat`` in [0, 1] (a sigmoid output) and ``x`` in [0, 1]. It is ``-log p(x | z)`` when each
    pixel is a coin that comes up "ink" with probability ``x_hat`` and ``x`` is 0 or 1; for grey ``x`` it
    is a training objective whose minimum, at ``x_hat = x``, is above 0.
    ``mse``: the squared error summed over the pixels (``-log p(x | z)`` for a Gaussian, up to
    a constant and a scale).
    """
    if x_hat.shape != x.shape:
        raise ValueError(f"x_hat and x must have the same shape, got {tuple(x_hat.shape)} and {tuple(x.shape)}")
    if kind == "bce":
        if x.min() < 0 or x.max() > 1:
            raise ValueError("BCE needs target pixels in [0, 1]; convert [-1, 1] images with data.to_unit first")
        # F.binary_cross_entropy clamps log(0) to -100, so a saturated sigmoid gives a large, finite loss.
        return _per_image(F.binary_cross_entropy(x_hat, x, reduction="none"))
    if kind == "mse":
        return _per_image((x_hat - x) ** 2)
    raise ValueError(f"kind must be one of {RECONSTRUCTION_KINDS}, got {kind!r}")


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL( N(mu, exp(logvar)) || N(0, I) )`` for each row: a tensor of N numbers (nats).

    The closed form for diagonal Gaussians (Kingma & Welling 2014, appendix B), summed over the
    latent dimensions: ``-0.5 * sum(1 + logvar - mu**2 - exp(logvar))``.
    """
    if mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must have the same shape, got {tuple(mu.shape)} and {tuple(logvar.shape)}")
    return -0.5 * _per_image(1 + logvar - mu.pow(2) - logvar.exp())


class VAELoss(NamedTuple):
    """The parts of the VAE loss, each averaged over the batch (nats per image)."""

    loss: torch.Tensor  # what the optimiser minimises: reconstruction + beta * kl
    reconstruction: torch.Tensor
    kl: torch.Tensor


def vae_loss(
    x_hat: torch.Tensor,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    beta: float = 1.0,
    kind: str = "bce",
) -> VAELoss:
    """The VAE objective: reconstruction + ``beta`` x KL, per image, averaged over the batch.

    With ``beta=1`` and ``kind='bce'``, ``loss`` is the negative ELBO (a one-sample estimate,
    since ``x_hat`` decodes one code drawn from the cloud): an upper bound on ``-log p(x)`` when the
    pixels are 0 or 1. On grey pixels it is the same objective without that meaning (see the module's note).
    ``beta > 1`` pushes the codes harder towards the prior (smoother latent space, blurrier
    pictures); ``beta < 1`` favours sharp reconstructions.
    """
    if beta < 0:
        raise ValueError(f"beta must be non-negative, got {beta}")
    reconstruction = reconstruction_loss(x_hat, x, kind).mean()
    kl = kl_divergence(mu, logvar).mean()
    return VAELoss(reconstruction + beta * kl, reconstruction, kl)


def negative_elbo(x_hat: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The negative ELBO in nats per image (BCE summed over pixels + KL), averaged over the batch."""
    return vae_loss(x_hat, x, mu, logvar, beta=1.0, kind="bce").loss


# --------------------------------------------------------------------------- the importance-weighted bound
#
# log p(x) = ELBO + KL(q(z|x) || p(z|x)): the ELBO falls short of log p(x) by how far the encoder's cloud is
# from the true posterior. Averaging K importance weights w_k = p(x, z_k) / q(z_k | x) inside the log closes
# part of that gap (Burda, Grosse & Salakhutdinov 2016, eq. 8): L_K = E[log (1/K) sum_k w_k] rises with K,
# equals the ELBO at K = 1 and tends to log p(x) as K grows.


def log_mean_exp(values: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """``log(mean(exp(values)))`` along ``dim``, computed stably: ``logsumexp(values) - log K``.

    Log-weights are large negative numbers (about -100 nats per picture): ``exp`` of them rounds to 0.
    ``logsumexp`` subtracts the largest value first, so nothing underflows or overflows.
    """
    return torch.logsumexp(values, dim=dim) - math.log(values.shape[dim])


def continuous_bernoulli_log_normaliser(probs: torch.Tensor) -> torch.Tensor:
    """``log C(lambda)`` per pixel: what turns the Bernoulli formula into a density on grey values in [0, 1].

    ``lambda^x (1 - lambda)^(1 - x)`` integrates over ``x`` in [0, 1] to ``1 / C(lambda)``, with
    ``C(lambda) = 2 artanh(1 - 2 lambda) / (1 - 2 lambda)`` and ``C(1/2) = 2`` (Loaiza-Ganem & Cunningham 2019, eq. 7).
    The formula is 0/0 at ``lambda = 1/2``; there (``|1 - 2 lambda| < 0.01``) its Taylor series
    ``log 2 + t^2 / 3 + 13 t^4 / 90`` (``t = 1 - 2 lambda``) is used instead. ``probs`` must lie strictly in (0, 1).
    """
    if probs.numel() and (probs.min() <= 0 or probs.max() >= 1):
        raise ValueError("probs must lie strictly between 0 and 1: clamp them, e.g. probs.clamp(1e-6, 1 - 1e-6)")
    t = 1 - 2 * probs
    near_half = t.abs() < 1e-2
    safe_t = torch.where(near_half, torch.full_like(t, 0.5), t)  # keeps 0/0 (and its NaN gradient) out
    exact = torch.log(2 * torch.atanh(safe_t) / safe_t)
    taylor = math.log(2) + t.pow(2) / 3 + 13 * t.pow(4) / 90
    return torch.where(near_half, taylor, exact)


def continuous_bernoulli_log_prob(x: torch.Tensor, probs: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``log p(x | lambda)`` of each pixel under the continuous Bernoulli, a normalised density on [0, 1].

    It is ``-BCE + log C(lambda)``: the Bernoulli's log-probability plus the normaliser that the BCE objective
    leaves out. ``probs`` (the decoder's sigmoid output, ``lambda``) is clamped into ``[eps, 1 - eps]`` first, and
    both terms use the clamped value, so the result is still an exact, normalised density. Computed in float64 on
    the CPU, wherever ``probs`` live (MPS has no float64), and returned there.
    """
    if x.shape != probs.shape:
        raise ValueError(f"x and probs must have the same shape, got {tuple(x.shape)} and {tuple(probs.shape)}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError("the continuous Bernoulli lives on [0, 1]: convert [-1, 1] images with data.to_unit first")
    lam = probs.cpu().double().clamp(eps, 1 - eps)
    x = x.cpu().double()
    return x * lam.log() + (1 - x) * torch.log1p(-lam) + continuous_bernoulli_log_normaliser(lam)


DECODERS = ("bernoulli", "continuous_bernoulli")


def vae_log_weights(
    model: torch.nn.Module,
    x: torch.Tensor,
    k: int,
    generator: torch.Generator | None = None,
    decoder: str = "bernoulli",
) -> torch.Tensor:
    """``log w = log p(x | z) + log p(z) - log q(z | x)`` for ``k`` codes per picture: a ``k x N`` tensor.

    ``model`` is a VAE (``encode(x) -> (mu, logvar)``, ``decode(z)`` -> pixel probabilities); ``p(z) = N(0, I)``.
    ``p(x | z)`` is its Bernoulli decoder (the BCE of :func:`reconstruction_loss`), or with
    ``decoder='continuous_bernoulli'`` the same outputs read as a continuous Bernoulli
    (:func:`continuous_bernoulli_log_prob`), a true density for grey pixels.
    """
    if k < 1:
        raise ValueError(f"k must be a positive number of samples, got {k}")
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
    mu, logvar = model.encode(x)
    std = torch.exp(0.5 * logvar)
    eps = torch.randn((k, *mu.shape), generator=generator).to(mu.device, mu.dtype)
    z = mu + std * eps  # k x N x latent
    decoded = model.decode(z.flatten(end_dim=1))
    targets = x.repeat(k, *([1] * (x.ndim - 1)))
    if decoder == "bernoulli":
        log_px_given_z = -reconstruction_loss(decoded, targets, "bce").view(k, -1)
    else:
        log_px = _per_image(continuous_bernoulli_log_prob(targets, decoded))  # float64 on the CPU
        log_px_given_z = log_px.view(k, -1).to(z.device, z.dtype)
    log_2pi = math.log(2 * math.pi)
    log_pz = -0.5 * (z.pow(2) + log_2pi).sum(dim=2)
    log_qz = -0.5 * (eps.pow(2) + logvar + log_2pi).sum(dim=2)
    return log_px_given_z + log_pz - log_qz


def importance_weighted_bound(
    model: torch.nn.Module,
    x: torch.Tensor,
    k: int,
    generator: torch.Generator | None = None,
    decoder: str = "bernoulli",
) -> torch.Tensor:
    """The IWAE bound ``L_k`` on ``log p(x)`` of each picture (``N`` numbers, nats): ``log_mean_exp`` of ``k``
    importance weights. ``k = 1`` is a one-sample ELBO; a larger ``k`` gives a tighter (higher) lower bound.
    ``decoder``: see :func:`vae_log_weights`.
    """
    return log_mean_exp(vae_log_weights(model, x, k, generator, decoder), dim=0)


# =========================================================================== GANs
#
# The discriminator D returns a *logit* l for each picture; D(x) = sigmoid(l) is its belief that x is
# real. The GAN game (Goodfellow et al. 2014, eq. 1) in words: D wants D(x) -> 1 on real pictures and
# D(G(z)) -> 0 on fakes; G wants D(G(z)) -> 1. The same game can be written three ways:
#
# * naive: -log(D(x)) on probabilities, exactly as textbooks print it. In float32, sigmoid(17) rounds
#   to 1.0 and sigmoid(-104) to 0.0, and then log(0) = -inf: the loss becomes inf and the gradient NaN.
# * stable: the same numbers computed from the logits with BCEWithLogits, which uses
#   log(sigmoid(l)) = -softplus(-l) and never takes log(0).
# * for G, two different objectives: the original "saturating" minimax loss log(1 - D(G(z))), whose
#   gradient vanishes exactly when D confidently rejects the fakes (early in training), and the
#   "non-saturating" loss -log(D(G(z))) (the paper's own fix), whose gradient is largest then.


def _check_probabilities(p: torch.Tensor, what: str) -> None:
    if p.numel() and (p.min() < 0 or p.max() > 1):
        raise ValueError(
            f"{what} must be probabilities in [0, 1]; got values in [{p.min().item():.3g}, {p.max().item():.3g}]. "
            "The naive losses take sigmoid outputs: pass torch.sigmoid(logits), or use the stable losses on logits."
        )


def discriminator_loss_naive(real_prob: torch.Tensor, fake_prob: torch.Tensor) -> torch.Tensor:
    """The textbook discriminator loss on probabilities: ``-mean(log D(x)) - mean(log(1 - D(G(z))))``.

    Numerically fragile: once ``D(x)`` rounds to 0 (or ``D(G(z))`` to 1), ``log(0) = -inf`` and the loss is
    ``inf``. Shown for teaching; train with :func:`discriminator_loss`.
    """
    _check_probabilities(real_prob, "real_prob")
    _check_probabilities(fake_prob, "fake_prob")
    return -(torch.log(real_prob).mean() + torch.log(1 - fake_prob).mean())


def generator_loss_naive(fake_prob: torch.Tensor) -> torch.Tensor:
    """The textbook (non-saturating) artist loss on probabilities: ``-mean(log D(G(z)))``.

    Fragile for the same reason: when the discriminator is sure a fake is fake, ``D(G(z))`` rounds to 0 and the
    loss is ``inf`` (its gradient NaN). Train with :func:`generator_loss`.
    """
    _check_probabilities(fake_prob, "fake_prob")
    return -torch.log(fake_prob).mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, real_label: float = 1.0) -> torch.Tensor:
    """The discriminator loss, stable, on logits: BCE(real pictures -> label 1) + BCE(fakes -> label 0).

    Equal to :func:`discriminator_loss_naive` on ``sigmoid(logits)`` wherever that one is finite.
    ``real_label`` below 1 (e.g. 0.9) is *one-sided label smoothing*: the discriminator is asked to be only
    90% sure of real pictures, which keeps it from growing over-confident and starving the artist.
    """
    if not 0.5 < real_label <= 1.0:
        raise ValueError(f"real_label must be in (0.5, 1], e.g. 1.0 or 0.9 for label smoothing; got {real_label}")
    real_loss = F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, real_label))
    fake_loss = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real_loss + fake_loss


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The artist loss used in practice: non-saturating and stable, ``-mean(log D(G(z)))`` from logits.

    It is BCE with the label "real" (1) on the fakes: the artist is rewarded for making the discriminator say
    "real". Its gradient with respect to a logit is ``sigmoid(l) - 1``: close to -1 when the discriminator
    rejects the fake with confidence, so the artist learns fastest when it is worst.
    """
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def generator_loss_saturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """The original minimax artist loss, ``mean(log(1 - D(G(z))))`` (to minimise), computed stably.

    ``log(1 - sigmoid(l)) = -softplus(l)``. Its gradient with respect to a logit is ``-sigmoid(l)``, which
    vanishes when the discriminator confidently rejects the fakes (``l`` very negative): early in training the
    artist gets almost no signal. That is why everyone uses :func:`generator_loss` instead.
    """
    return -F.softplus(fake_logits).mean()


# =========================================================================== Wasserstein GAN with gradient penalty
#
# WGAN (Arjovsky et al. 2017) replaces the probability "real or fake" by a score: the discriminator (the paper
# calls it a *critic*) gives real points high scores and fakes low ones, and the gap between the two means
# estimates the Wasserstein (earth mover's) distance between the data and the fakes, provided the
# discriminator is 1-Lipschitz (its slope is at most 1 everywhere). WGAN-GP (Gulrajani et al. 2017, eq. 3)
# asks for that softly: a penalty on points between real and fake pictures whose gradient norm is not 1.
# Its gradient never vanishes where the fakes lie, so the generator is always told where the missing data is.


def wasserstein_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """The WGAN discriminator's loss (to minimise): ``mean(D(fake)) - mean(D(real))``, scores not probabilities."""
    return fake_scores.mean() - real_scores.mean()


def wasserstein_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """The WGAN generator's loss (to minimise): ``-mean(D(fake))``: raise the score of the fakes."""
    return -fake_scores.mean()


def gradient_penalty(
    discriminator: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor, epsilon: torch.Tensor
) -> torch.Tensor:
    """WGAN-GP's penalty (Gulrajani et al. 2017, eq. 3, without its weight lambda): ``mean((|grad D(x_hat)| - 1)^2)``.

    ``x_hat = epsilon * real + (1 - epsilon) * fake`` are points on the lines between real and fake samples,
    ``epsilon`` one number in [0, 1] per row (shape ``N x 1 x ...`` broadcasting over ``real``, or ``N``).
    ``create_graph=True`` keeps the gradient itself differentiable, so that the penalty can train the discriminator.
    """
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have the same shape, got {tuple(real.shape)} and {tuple(fake.shape)}")
    if epsilon.ndim == 1:
        epsilon = epsilon.view(-1, *([1] * (real.ndim - 1)))
    x_hat = (epsilon * real.detach() + (1 - epsilon) * fake.detach()).requires_grad_(True)
    scores = discriminator(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    return (grad.flatten(start_dim=1).norm(dim=1) - 1).pow(2).mean()
