"""Tests for the conditional VAE (notebook 02) and the latent-space VAE of the tiny Stable Diffusion."""

import pytest
import torch

from course_utils import losses
from course_utils.models import ConditionalVAE, LatentVAE

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8)])
def test_conditional_vae_shapes_range_and_gradients(shape):
    model = ConditionalVAE(shape, latent_dim=6, hidden_dim=32)
    x, labels = torch.rand(5, *shape), torch.tensor([0, 1, 2, 3, 9])
    x_hat, mu, logvar = model(x, labels)
    assert x_hat.shape == x.shape and mu.shape == logvar.shape == (5, 6)
    assert 0 <= x_hat.min() and x_hat.max() <= 1
    losses.vae_loss(x_hat, x, mu, logvar).loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.decode(torch.zeros(2, 6), torch.tensor([3, 7])).shape == (2, *shape)
    assert model.reconstruct(x, labels).shape == x.shape


def test_conditional_vae_decodes_the_requested_class():
    """Label in, label out: trained on two shapes, the same code drawn as class 0 or 1 gives that class's shape."""
    torch.manual_seed(0)
    shape = (1, 8, 8)
    bar = torch.zeros(shape)
    bar[:, :, 3:5] = 1.0  # class 0: a vertical bar
    ring = torch.ones(shape)
    ring[:, 2:6, 2:6] = 0.0  # class 1: a square ring
    labels = torch.arange(64) % 2
    x = torch.stack([bar if label == 0 else ring for label in labels])
    model = ConditionalVAE(shape, latent_dim=2, hidden_dim=32, num_classes=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        x_hat, mu, logvar = model(x, labels)
        loss = losses.vae_loss(x_hat, x, mu, logvar).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    z = torch.randn(8, 2)  # new codes from the prior
    with torch.no_grad():
        as_bars = model.decode(z, torch.zeros(8, dtype=torch.long))
        as_rings = model.decode(z, torch.ones(8, dtype=torch.long))

    def distance(images, target):
        return (images - target).abs().mean(dim=(1, 2, 3))

    assert (distance(as_bars, bar) < distance(as_bars, ring)).all()
    assert (distance(as_rings, ring) < distance(as_rings, bar)).all()
    assert distance(as_bars, bar).median() < 0.1 and distance(as_rings, ring).median() < 0.1


@pytest.mark.parametrize(
    ("labels", "message"),
    [(torch.tensor([0, 10]), "0 .. 9"), (torch.tensor([0.0, 1.0]), "integer"), (torch.tensor([0]), "one label")],
)
def test_conditional_vae_explains_bad_labels(labels, message):
    model = ConditionalVAE((1, 8, 8), latent_dim=4, hidden_dim=16)
    with pytest.raises(ValueError, match=message):
        model.decode(torch.zeros(2, 4), labels)


@pytest.mark.parametrize(
    ("shape", "latent_channels", "downsamples", "latent_shape"),
    [((1, 28, 28), 2, 2, (2, 7, 7)), ((1, 8, 8), 2, 1, (2, 4, 4))],
)
def test_latent_vae_shapes_range_and_gradients(shape, latent_channels, downsamples, latent_shape):
    model = LatentVAE(shape, latent_channels, channels=8, downsamples=downsamples)
    assert model.latent_shape == latent_shape
    x = torch.rand(3, *shape)
    x_hat, mu, logvar = model(x)
    assert x_hat.shape == x.shape and mu.shape == logvar.shape == (3, *latent_shape)
    assert 0 <= x_hat.min() and x_hat.max() <= 1
    losses.vae_loss(x_hat, x, mu, logvar, beta=0.5).loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.reconstruct(x).shape == x.shape


def test_latent_scale_gives_unit_variance_and_round_trips():
    torch.manual_seed(0)
    model = LatentVAE((1, 8, 8), 2, channels=8, downsamples=1).eval()
    images = torch.rand(200, 1, 8, 8)
    assert float(model.latent_scale) == 1.0
    scale = model.fit_scale(images)
    assert scale == pytest.approx(float(model.latent_scale))
    z = model.to_latent(images, generator=torch.Generator().manual_seed(1))
    assert z.std().item() == pytest.approx(1.0, abs=0.1)
    unscaled = model.to_latent(images, scaled=False, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(z, unscaled * scale)
    with torch.no_grad():
        assert torch.allclose(model.from_latent(z), model.decode(unscaled), atol=1e-5)
    # The scale is a buffer: it is saved and loaded with the weights.
    copy = LatentVAE((1, 8, 8), 2, channels=8, downsamples=1)
    copy.load_state_dict(model.state_dict())
    assert float(copy.latent_scale) == pytest.approx(scale)


def test_latent_vae_explains_bad_shapes():
    with pytest.raises(ValueError, match="divisible by 4"):
        LatentVAE((1, 10, 10), downsamples=2)
    model = LatentVAE((1, 8, 8), 2, channels=8, downsamples=1)
    with pytest.raises(ValueError, match="pictures of shape"):
        model.encode(torch.rand(1, 1, 28, 28))
    with pytest.raises(ValueError, match="latents of shape"):
        model.decode(torch.randn(1, 4, 4, 4))


def test_latent_vae_decoder_reads_the_whole_grid():
    """One latent in one corner of the grid changes pixels all over the picture: the first layer mixes all places
    (with only convolutions it would reach a patch around its own place)."""
    torch.manual_seed(0)
    model = LatentVAE((1, 28, 28), 2, channels=8, downsamples=2).eval()
    z = torch.randn(1, 2, 7, 7)
    nudged = z.clone()
    nudged[0, 0, 0, 0] += 3.0  # the top-left place
    with torch.no_grad():
        change = (model.decode(nudged) - model.decode(z)).abs()[0, 0]
    assert change[20:, 20:].max() > 1e-4  # the bottom-right corner, far out of a convolution's reach
