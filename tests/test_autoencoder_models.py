"""Shapes, ranges and gradients of the autoencoders and VAEs, at 28x28 and at 8x8."""

import pytest
import torch

from course_utils.models import VAE, Autoencoder, ConvAutoencoder, ConvVAE
from course_utils.models.autoencoder import reparameterize

SHAPES = [(1, 28, 28), (1, 8, 8)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("cls", [Autoencoder, ConvAutoencoder])
def test_autoencoder_shapes_and_range(cls, shape):
    torch.manual_seed(0)
    model = cls(image_shape=shape, latent_dim=5)
    x = torch.rand(3, *shape)
    z = model.encode(x)
    assert z.shape == (3, 5)
    x_hat = model.decode(z)
    assert x_hat.shape == (3, *shape)
    assert 0 <= x_hat.min() and x_hat.max() <= 1
    torch.testing.assert_close(model(x), x_hat)
    torch.testing.assert_close(model.reconstruct(x), x_hat)


def test_classic_autoencoder_sizes():
    model = Autoencoder()  # the source text's 784 -> 128 -> 32 -> 128 -> 784
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(784, 128), (128, 32), (32, 128), (128, 784)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("cls", [VAE, ConvVAE])
def test_vae_shapes_and_gradients(cls, shape):
    torch.manual_seed(0)
    model = cls(image_shape=shape, latent_dim=4)
    x = torch.rand(6, *shape)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (6, 4)
    x_hat, mu2, logvar2 = model(x)
    assert x_hat.shape == (6, *shape)
    assert 0 <= x_hat.min() and x_hat.max() <= 1
    torch.testing.assert_close(mu, mu2)
    torch.testing.assert_close(logvar, logvar2)
    # Every parameter, both heads included, receives a gradient through the sampled code.
    x_hat.sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    # reconstruct decodes mu: no dice, so two calls agree.
    torch.testing.assert_close(model.reconstruct(x), model.reconstruct(x))
    torch.testing.assert_close(model.reconstruct(x), model.decode(mu))


def test_forward_samples_a_code():
    torch.manual_seed(0)
    model = VAE(image_shape=(1, 8, 8), latent_dim=3)
    x = torch.rand(4, 1, 8, 8)
    first, _, _ = model(x)
    second, _, _ = model(x)
    assert not torch.allclose(first, second)  # a fresh draw each time, as the ELBO estimate needs


def test_reparameterize_matches_the_gaussian_it_claims():
    torch.manual_seed(0)
    mu = torch.tensor([[2.0, -1.0, 0.0]]).expand(200_000, 3)
    logvar = torch.tensor([[0.0, 2.0, -2.0]]).expand(200_000, 3)
    z = reparameterize(mu, logvar)
    torch.testing.assert_close(z.mean(0), mu[0], atol=0.02, rtol=0)
    torch.testing.assert_close(z.var(0), logvar[0].exp(), atol=0.03, rtol=0.01)


def test_reparameterize_lets_gradients_reach_mu_and_logvar():
    torch.manual_seed(0)
    mu = torch.zeros(1000, 2, requires_grad=True)
    logvar = torch.zeros(1000, 2, requires_grad=True)
    z = reparameterize(mu, logvar)
    z.sum().backward()
    torch.testing.assert_close(mu.grad, torch.ones_like(mu))  # dz/dmu = 1
    # dz/dlogvar = 0.5 * exp(0.5 * logvar) * eps = 0.5 * eps at logvar = 0
    eps = z.detach()
    torch.testing.assert_close(logvar.grad, 0.5 * eps)


@pytest.mark.parametrize("cls", [ConvAutoencoder, ConvVAE])
def test_conv_models_reject_sizes_they_cannot_halve(cls):
    with pytest.raises(ValueError, match="multiples of 4"):
        cls(image_shape=(1, 10, 10))


@pytest.mark.parametrize("cls", [Autoencoder, VAE])
def test_bad_arguments_are_explained(cls):
    with pytest.raises(ValueError, match="channels, height, width"):
        cls(image_shape=(28, 28))
    with pytest.raises(ValueError, match="latent_dim"):
        cls(latent_dim=0)
