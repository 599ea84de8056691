"""Shapes, ranges and gradients of the GAN generators and discriminators, at 28x28 and at 8x8."""

import math

import pytest
import torch
from torch import nn

from course_utils.models import GAN, ConvDiscriminator, ConvGenerator, MLPDiscriminator, MLPGenerator, make_gan

SHAPES = [(1, 28, 28), (1, 8, 8)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", ["mlp", "dcgan"])
def test_generator_and_discriminator_shapes(kind, shape):
    torch.manual_seed(0)
    gan = make_gan(kind, shape, latent_dim=7, channels=4)
    z = gan.noise(5)
    assert z.shape == (5, 7)
    fake = gan(z)
    assert fake.shape == (5, *shape)
    # Tanh output: inside [-1, 1], and both signs occur for an untrained net.
    assert fake.min() >= -1 and fake.max() <= 1
    assert fake.min() < 0 < fake.max()
    logits = gan.discriminator(fake)
    assert logits.shape == (5,)
    # Logits, not probabilities: the discriminator ends in a linear layer, no sigmoid squeezes it into [0, 1].
    assert isinstance(list(gan.discriminator.modules())[-1], nn.Linear)


def test_source_text_sizes():
    generator, discriminator = MLPGenerator(), MLPDiscriminator()
    g = [(m.in_features, m.out_features) for m in generator.modules() if isinstance(m, nn.Linear)]
    d = [(m.in_features, m.out_features) for m in discriminator.modules() if isinstance(m, nn.Linear)]
    assert g == [(100, 256), (256, 512), (512, 784)]
    assert d == [(784, 512), (512, 256), (256, 1)]
    assert isinstance(list(generator.net)[-2], nn.Tanh)


@pytest.mark.parametrize("kind", ["mlp", "dcgan"])
def test_gradients_reach_every_parameter(kind):
    torch.manual_seed(0)
    gan = make_gan(kind, (1, 8, 8), latent_dim=3, channels=4)
    gan.discriminator(gan(gan.noise(6))).sum().backward()
    for name, parameter in gan.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_conv_pair_is_smaller_than_mlp_pair():
    def count(m):
        return sum(p.numel() for p in m.parameters())

    mlp, conv = make_gan("mlp"), make_gan("dcgan", channels=32)
    assert count(conv) < count(mlp)
    # The conv discriminator's linear head sees 2C feature maps of 7x7.
    head = [m for m in conv.discriminator.modules() if isinstance(m, nn.Linear)][-1]
    assert head.in_features == 64 * 7 * 7


def test_noise_is_seedable():
    gan = make_gan("mlp", (1, 8, 8), latent_dim=4)
    a = gan.noise(3, generator=torch.Generator().manual_seed(1))
    b = gan.noise(3, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    assert gan.noise(3).shape == (3, 4)


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(ValueError, match="multiples of 4"):
        ConvGenerator(10, (1, 10, 10))
    with pytest.raises(ValueError, match="multiples of 4"):
        ConvDiscriminator((1, 6, 6))
    with pytest.raises(ValueError, match="latent_dim"):
        MLPGenerator(0)
    with pytest.raises(ValueError, match="image_shape"):
        MLPDiscriminator((28, 28))
    with pytest.raises(ValueError, match="same image_shape"):
        GAN(MLPGenerator(4, (1, 8, 8)), MLPDiscriminator((1, 28, 28)))
    with pytest.raises(ValueError, match="unknown GAN kind"):
        make_gan("vae")
    with pytest.raises(ValueError, match="n must be positive"):
        make_gan("mlp", (1, 8, 8)).noise(0)


def test_mlp_works_at_any_size():
    gan = make_gan("mlp", (1, 5, 7), latent_dim=2)
    assert gan(gan.noise(2)).shape == (2, 1, 5, 7)
    assert math.prod(gan.image_shape) == 35


def test_layer_by_layer_follows_the_picture_growing():
    from course_utils.models.gan import layer_by_layer

    torch.manual_seed(0)
    generator = ConvGenerator(10, (1, 28, 28), channels=8).eval()
    z = torch.randn(2, 10)
    steps = layer_by_layer(generator, z)
    shapes = [tuple(out.shape) for name, out in steps if name in ("Unflatten", "ConvTranspose2d")]
    assert shapes == [(2, 16, 7, 7), (2, 8, 14, 14), (2, 1, 28, 28)]
    torch.testing.assert_close(steps[-1][1], generator(z))
    assert steps[-1][0] == "Tanh"
    with pytest.raises(TypeError, match=".net"):
        layer_by_layer(nn.Linear(2, 2), z)
