"""The autoencoder / VAE losses against independent references."""

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from course_utils import losses


def test_bce_is_the_bernoulli_negative_log_likelihood_summed_per_image():
    torch.manual_seed(0)
    x_hat = torch.rand(5, 1, 8, 8).clamp(0.01, 0.99)
    x = (torch.rand(5, 1, 8, 8) > 0.5).float()
    expected = -Bernoulli(probs=x_hat).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(losses.reconstruction_loss(x_hat, x, "bce"), expected)


def test_bce_on_grey_targets_matches_the_formula():
    torch.manual_seed(1)
    x_hat = torch.rand(3, 1, 4, 4).clamp(0.01, 0.99)
    x = torch.rand(3, 1, 4, 4)
    expected = -(x * x_hat.log() + (1 - x) * (1 - x_hat).log()).sum(dim=(1, 2, 3))
    torch.testing.assert_close(losses.reconstruction_loss(x_hat, x, "bce"), expected)


def test_mse_is_summed_over_pixels_not_averaged():
    x = torch.zeros(2, 1, 3, 3)
    x_hat = torch.full((2, 1, 3, 3), 0.5)
    torch.testing.assert_close(losses.reconstruction_loss(x_hat, x, "mse"), torch.tensor([9 * 0.25, 9 * 0.25]))


def test_reconstruction_loss_rejects_mistakes():
    with pytest.raises(ValueError, match="same shape"):
        losses.reconstruction_loss(torch.rand(2, 1, 8, 8), torch.rand(2, 64))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        losses.reconstruction_loss(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8) * 2 - 1)
    with pytest.raises(ValueError, match="kind"):
        losses.reconstruction_loss(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8), "l1")


def test_kl_matches_torch_distributions():
    torch.manual_seed(0)
    mu = torch.randn(7, 5) * 2
    logvar = torch.randn(7, 5)
    q = Normal(mu, torch.exp(0.5 * logvar))
    p = Normal(torch.zeros_like(mu), torch.ones_like(mu))
    torch.testing.assert_close(losses.kl_divergence(mu, logvar), kl_divergence(q, p).sum(dim=1))


def test_kl_is_zero_only_at_the_prior():
    assert losses.kl_divergence(torch.zeros(1, 3), torch.zeros(1, 3)).item() == 0
    # One dimension with variance e: KL = 0.5 * (e - 1 - 1)
    torch.testing.assert_close(
        losses.kl_divergence(torch.zeros(1, 1), torch.ones(1, 1)), torch.tensor([0.5 * (math.e - 2)])
    )


def test_negative_elbo_matches_a_monte_carlo_estimate():
    """-ELBO = E_q[-log p(x|z)] + KL(q || p); estimate both parts by sampling and compare."""
    torch.manual_seed(0)
    n_samples, latent, pixels = 50_000, 3, 16
    decoder = torch.nn.Sequential(torch.nn.Linear(latent, pixels), torch.nn.Sigmoid(), torch.nn.Unflatten(1, (1, 4, 4)))
    x = (torch.rand(1, 1, 4, 4) > 0.5).float()
    mu, logvar = torch.randn(1, latent), torch.randn(1, latent) * 0.5
    q = Normal(mu, torch.exp(0.5 * logvar))
    with torch.no_grad():
        z = q.sample((n_samples,)).squeeze(1)  # n_samples x latent
        x_hat = decoder(z)
        log_px_given_z = Bernoulli(probs=x_hat).log_prob(x.expand_as(x_hat)).flatten(1).sum(1)
        log_pz = Normal(0.0, 1.0).log_prob(z).sum(1)
        log_qz = q.log_prob(z.unsqueeze(1)).squeeze(1).sum(1)
        monte_carlo = -(log_px_given_z + log_pz - log_qz).mean()
        ours = losses.negative_elbo(x_hat, x.expand_as(x_hat), mu.expand(n_samples, -1), logvar.expand(n_samples, -1))
    torch.testing.assert_close(ours, monte_carlo, atol=0.05, rtol=0.005)


def test_vae_loss_parts_and_beta():
    torch.manual_seed(0)
    x_hat, x = torch.rand(4, 1, 8, 8).clamp(0.05, 0.95), torch.rand(4, 1, 8, 8)
    mu, logvar = torch.randn(4, 2), torch.randn(4, 2)
    parts = losses.vae_loss(x_hat, x, mu, logvar, beta=4.0)
    torch.testing.assert_close(parts.reconstruction, losses.reconstruction_loss(x_hat, x).mean())
    torch.testing.assert_close(parts.kl, losses.kl_divergence(mu, logvar).mean())
    torch.testing.assert_close(parts.loss, parts.reconstruction + 4.0 * parts.kl)
    torch.testing.assert_close(losses.negative_elbo(x_hat, x, mu, logvar), parts.reconstruction + parts.kl)
    mse = losses.vae_loss(x_hat, x, mu, logvar, kind="mse")
    torch.testing.assert_close(mse.reconstruction, ((x_hat - x) ** 2).sum(dim=(1, 2, 3)).mean())
    with pytest.raises(ValueError, match="beta"):
        losses.vae_loss(x_hat, x, mu, logvar, beta=-1)
