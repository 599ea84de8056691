"""The first artist: one Gaussian per class, P(X | Y), in a small PCA subspace.

It is the simplest generative model that makes recognisable digits: squash every image onto
its ``n_components`` main directions of variation (PCA), fit one Gaussian (mean and full
covariance) per class there, and sample new points, mapped back to pixels. Because it models
P(X | Y) and P(Y), Bayes' rule also turns it into a classifier:
P(Y | X) is proportional to P(X | Y) P(Y).

In pixel space the Gaussians are flat (they live on a k-dimensional subspace), so the artist has no density
there. :meth:`GaussianArtist.log_density` completes it as probabilistic PCA does (Tipping & Bishop 1999):
isotropic Gaussian noise, of the training pictures' average variance off the subspace, in the other D - k
directions.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class GaussianArtist(nn.Module):
    """Class-conditional Gaussians in a PCA subspace: ``fit``, then ``sample`` or ``predict_proba``."""

    def __init__(
        self, image_shape: tuple[int, int, int] = (1, 28, 28), n_components: int = 40, n_classes: int = 10
    ) -> None:
        super().__init__()
        n_pixels = image_shape[0] * image_shape[1] * image_shape[2]
        if not 1 <= n_components <= n_pixels:
            raise ValueError(f"n_components must lie between 1 and {n_pixels}, got {n_components}")
        self.image_shape = tuple(image_shape)
        self.n_classes = n_classes
        self.register_buffer("pixel_mean", torch.zeros(n_pixels))
        self.register_buffer("basis", torch.zeros(n_pixels, n_components))  # columns: principal directions
        self.register_buffer("class_means", torch.zeros(n_classes, n_components))
        self.register_buffer("class_covariances", torch.eye(n_components).repeat(n_classes, 1, 1))
        self.register_buffer("class_priors", torch.full((n_classes,), 1.0 / n_classes))
        # The mean variance of the training pictures off the subspace (per direction), for log_density.
        self.register_buffer("residual_variance", torch.ones(()))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Coordinates of each image along the principal directions (N x n_components)."""
        return (images.flatten(1) - self.pixel_mean) @ self.basis

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Images (N x C x H x W, clamped to [0, 1]) from subspace coordinates."""
        pixels = codes @ self.basis.T + self.pixel_mean
        return pixels.clamp(0.0, 1.0).view(-1, *self.image_shape)

    @torch.no_grad()
    def fit(self, images: torch.Tensor, labels: torch.Tensor, shrinkage: float = 1e-3) -> GaussianArtist:
        """Estimate the subspace, then each class's mean, covariance and frequency, from data."""
        if images.shape[1:] != self.image_shape:
            raise ValueError(f"expected images of shape N x {self.image_shape}, got {tuple(images.shape)}")
        missing = set(range(self.n_classes)) - set(labels.tolist())
        if missing:
            raise ValueError(f"every class needs examples to fit its Gaussian; none for {sorted(missing)}")
        mean, covariance = _pixel_statistics(images.flatten(1))
        # The principal directions are the eigenvectors of the pixels' covariance with the largest eigenvalues.
        # Working on the D x D covariance (not on the N x D data) keeps memory small for 60,000 pictures.
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # eigenvalues in ascending order
        k = self.basis.shape[1]
        basis = eigenvectors.flip(1)[:, :k]
        # Probabilistic PCA's noise variance: the variance the subspace leaves out, shared by the D - k other
        # directions (Tipping & Bishop 1999, eq. 8). The floor keeps it positive when nothing is left out.
        left_out = eigenvalues.flip(0)[k:].clamp(min=0).sum() / max(len(eigenvalues) - k, 1)
        self.residual_variance.fill_(max(float(left_out), 1e-6))
        codes = torch.cat([(chunk.double() - mean) @ basis for chunk in images.flatten(1).split(10_000)])
        eye = torch.eye(basis.shape[1], dtype=torch.float64)
        for c in range(self.n_classes):
            mine = codes[labels == c]
            centred = mine - mine.mean(dim=0)
            covariance = centred.T @ centred / max(len(mine) - 1, 1)
            # A little shrinkage keeps the covariance invertible when a class has few images.
            covariance += shrinkage * covariance.diagonal().mean() * eye
            self.class_means[c] = mine.mean(dim=0).float()
            self.class_covariances[c] = covariance.float()
            self.class_priors[c] = len(mine) / len(codes)
        self.pixel_mean.copy_(mean.float())
        self.basis.copy_(basis.float())
        return self

    def _distributions(self) -> torch.distributions.MultivariateNormal:
        return torch.distributions.MultivariateNormal(self.class_means, covariance_matrix=self.class_covariances)

    @torch.no_grad()
    def sample(
        self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` new images: pick a class (from P(Y), or ``labels``), then a code from its Gaussian.

        Returns ``(images, labels)``; images are N x C x H x W in [0, 1].
        """
        if labels is None:
            labels = torch.multinomial(self.class_priors, n, replacement=True, generator=generator)
        elif len(labels) != n:
            raise ValueError(f"got {len(labels)} labels for {n} samples")
        # z = mu + L eps, with L the Cholesky factor of the covariance (L L^T = Sigma).
        cholesky = torch.linalg.cholesky(self.class_covariances[labels])
        eps = torch.randn(n, self.basis.shape[1], 1, generator=generator)
        codes = self.class_means[labels] + (cholesky @ eps).squeeze(-1)
        return self.decode(codes), labels

    @torch.no_grad()
    def log_likelihood(self, images: torch.Tensor) -> torch.Tensor:
        """log P(x | y) for every image and every class, in the subspace (N x n_classes)."""
        codes = self.encode(images).unsqueeze(1)  # N x 1 x k, broadcast against the classes
        return self._distributions().log_prob(codes)

    @torch.no_grad()
    def log_density(self, images: torch.Tensor) -> torch.Tensor:
        """log p(x) of each image in pixel space (N numbers, nats), the classes summed out: a normalised density.

        ``p(x) = sum_y P(y) N(code; mu_y, Sigma_y) x N(residual; 0, sigma^2 I)``: the code is the image's
        position in the subspace, the residual what the subspace misses (D - k numbers, ``sigma^2`` the
        ``residual_variance`` measured by :meth:`fit`). It equals the density of the D-dimensional Gaussian mixture
        with covariances ``B Sigma_y B^T + sigma^2 (I - B B^T)`` (``B``: the basis).
        """
        if images.shape[1:] != self.image_shape:
            raise ValueError(f"expected images of shape N x {self.image_shape}, got {tuple(images.shape)}")
        # In float64 on the CPU, wherever the artist lives: the densities span hundreds of nats (MPS has no float64).
        centred = images.flatten(1).cpu().double() - self.pixel_mean.cpu().double()
        basis = self.basis.cpu().double()
        codes = centred @ basis
        residual = centred - codes @ basis.T
        in_subspace = torch.distributions.MultivariateNormal(
            self.class_means.cpu().double(), covariance_matrix=self.class_covariances.cpu().double()
        ).log_prob(codes.unsqueeze(1))  # N x n_classes
        mixture = torch.logsumexp(in_subspace + self.class_priors.cpu().double().log(), dim=1)
        n_left_out = basis.shape[0] - basis.shape[1]
        variance = self.residual_variance.cpu().double()
        off_subspace = -0.5 * (n_left_out * torch.log(2 * math.pi * variance) + residual.pow(2).sum(1) / variance)
        return mixture + off_subspace

    @torch.no_grad()
    def predict_proba(self, images: torch.Tensor) -> torch.Tensor:
        """P(y | x) by Bayes' rule: softmax over classes of log P(x | y) + log P(y)."""
        return torch.softmax(self.log_likelihood(images) + self.class_priors.log(), dim=1)


def _pixel_statistics(pixels: torch.Tensor, chunk: int = 10_000) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of the rows of ``pixels`` (N x D), in float64, a chunk of rows at a time."""
    mean = sum(rows.double().sum(dim=0) for rows in pixels.split(chunk)) / len(pixels)
    scatter = torch.zeros(pixels.shape[1], pixels.shape[1], dtype=torch.float64)
    for rows in pixels.split(chunk):
        centred = rows.double() - mean
        scatter += centred.T @ centred
    return mean, scatter / max(len(pixels) - 1, 1)
