"""The losses behind the toys: the importance-weighted bound (IWAE) and WGAN-GP's gradient penalty."""

import math

import pytest
import torch
from torch import nn

from course_utils import losses
from course_utils.models import VAE

# --------------------------------------------------------------------------- IWAE


def test_log_mean_exp_is_stable_and_exact():
    values = torch.tensor([[-1000.0, 1000.0], [-1001.0, 999.0], [-1002.0, 1001.0]])
    got = losses.log_mean_exp(values, dim=0)
    shift = values.max(dim=0).values
    expected = shift + (values - shift).exp().mean(dim=0).log()
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(losses.log_mean_exp(torch.zeros(7, 3)), torch.zeros(3))
    small = torch.randn(4, 5)
    torch.testing.assert_close(losses.log_mean_exp(small, dim=1), small.exp().mean(dim=1).log())


def _tiny_vae() -> VAE:
    torch.manual_seed(0)
    return VAE((1, 8, 8), latent_dim=3, hidden_dim=16)


def _pictures() -> torch.Tensor:
    return torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(2))


def test_log_weights_are_log_joint_minus_log_posterior():
    vae, x = _tiny_vae(), _pictures()
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        log_w = losses.vae_log_weights(vae, x, 4, generator=g)
        mu, logvar = vae.encode(x)
        eps = torch.randn((4, *mu.shape), generator=torch.Generator().manual_seed(5))
        z = mu + torch.exp(0.5 * logvar) * eps
        probs = vae.decode(z.flatten(end_dim=1)).view(4, 6, -1)
        log_px = (
            torch.distributions.Bernoulli(probs=probs, validate_args=False)
            .log_prob(x.flatten(1).expand(4, -1, -1))
            .sum(-1)
        )
        prior = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
        posterior = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    assert log_w.shape == (4, 6)
    torch.testing.assert_close(log_w, log_px + prior - posterior, rtol=1e-4, atol=1e-3)


def test_iwae_at_k_1_is_the_one_sample_elbo():
    vae, x = _tiny_vae(), _pictures()
    with torch.no_grad():
        bound = losses.importance_weighted_bound(vae, x, 1, generator=torch.Generator().manual_seed(3))
        one = losses.vae_log_weights(vae, x, 1, generator=torch.Generator().manual_seed(3))[0]
        # on average over draws, a log-weight is E_q[log p(x|z)] - KL(q || p(z)): the ELBO of notebook 02
        mean_log_weight = losses.vae_log_weights(vae, x, 20_000, generator=torch.Generator().manual_seed(4)).mean(0)
        mu, logvar = vae.encode(x)
        g = torch.Generator().manual_seed(5)
        z = mu + torch.exp(0.5 * logvar) * torch.randn((2000, *mu.shape), generator=g)
        reconstruction = losses.reconstruction_loss(vae.decode(z.flatten(end_dim=1)), x.repeat(2000, 1, 1, 1))
        elbo = -reconstruction.view(2000, -1).mean(0) - losses.kl_divergence(mu, logvar)
    assert bound.shape == (6,)
    torch.testing.assert_close(bound, one)
    torch.testing.assert_close(mean_log_weight, elbo, rtol=0, atol=0.1)


def test_iwae_bound_rises_with_k_on_average():
    vae, x = _tiny_vae(), _pictures()
    with torch.no_grad():
        means = [
            torch.stack(
                [losses.importance_weighted_bound(vae, x, k, torch.Generator().manual_seed(s)) for s in range(30)]
            ).mean()
            for k in (1, 10, 100)
        ]
    assert means[0] < means[1] < means[2]


def test_iwae_rejects_a_bad_k():
    with pytest.raises(ValueError, match="positive"):
        losses.importance_weighted_bound(_tiny_vae(), _pictures(), 0)


# --------------------------------------------------------------------------- WGAN-GP


class _Linear(nn.Module):
    """D(x) = w . x: its gradient is w everywhere, so the penalty is (|w| - 1)^2 exactly."""

    def __init__(self, w: list[float]) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.w).sum(dim=1, keepdim=True)


def test_gradient_penalty_of_a_linear_discriminator_by_hand():
    real, fake = torch.randn(5, 2), torch.randn(5, 2)
    epsilon = torch.rand(5, 1)
    torch.testing.assert_close(losses.gradient_penalty(_Linear([3.0, 4.0]), real, fake, epsilon), torch.tensor(16.0))
    torch.testing.assert_close(losses.gradient_penalty(_Linear([0.6, 0.8]), real, fake, epsilon), torch.tensor(0.0))
    # d/dw (|w| - 1)^2 = 2 (|w| - 1) w / |w| = 2 * 4 * (0.6, 0.8) for w = (3, 4): the penalty trains D
    d = _Linear([3.0, 4.0])
    losses.gradient_penalty(d, real, fake, epsilon).backward()
    torch.testing.assert_close(d.w.grad, torch.tensor([4.8, 6.4]))


def test_gradient_penalty_is_taken_at_the_interpolates():
    # D(x) = |x|^2 / 2 has gradient x: the penalty is mean((|x_hat| - 1)^2), x_hat = eps real + (1 - eps) fake
    def quadratic(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x.pow(2).sum(dim=1)

    real = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    fake = torch.tensor([[0.0, 0.0], [0.0, -1.0]])
    epsilon = torch.tensor([0.25, 0.5])  # shape N is accepted as well as N x 1
    x_hat = torch.tensor([[0.5, 0.0], [0.0, 1.0]])
    expected = (x_hat.norm(dim=1) - 1).pow(2).mean()
    torch.testing.assert_close(losses.gradient_penalty(quadratic, real, fake, epsilon), expected)
    assert math.isclose(expected.item(), 0.125)
    with pytest.raises(ValueError, match="same shape"):
        losses.gradient_penalty(quadratic, real, fake[:1], epsilon)


def test_wasserstein_losses_are_score_gaps():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.0])
    torch.testing.assert_close(losses.wasserstein_discriminator_loss(real, fake), torch.tensor(-2.5))
    torch.testing.assert_close(losses.wasserstein_generator_loss(fake), torch.tensor(0.5))
