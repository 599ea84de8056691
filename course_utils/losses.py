"""Loss functions of the course, one section per family of models.

Each loss is written the way its equation reads, in plain PyTorch, and tested against an
independent reference (a closed form, ``torch.distributions`` or a Monte-Carlo estimate).

Conventions: pictures are ``N x C x H x W`` tensors; "per image" losses are *summed* over the
pixels of each picture (and over the latent dimensions) and then averaged over the batch, so the
numbers are in nats per image, comparable with the literature (e.g. ~100 nats for an MNIST VAE).
"""

from __future__ import annotations

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
    pixel is a coin that comes up "ink" with probability ``x_hat``.
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
    since ``x_hat`` decodes one code drawn from the cloud): an upper bound on ``-log p(x)``.
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
