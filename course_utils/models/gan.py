"""The two players of a GAN, generators (the artist) and discriminators, in plain PyTorch.

* A **generator** (the artist) turns a vector of random numbers, the *noise* ``z``, into a picture.
  Its last layer is a Tanh, so its pixels lie in ``[-1, 1]`` (convert with
  :func:`course_utils.data.to_unit` to show them).
* A **discriminator** looks at a picture and returns one number per picture: a
  *logit*, any real number, large when it believes "real", very negative when it believes "fake".
  The probability "this is real" is a sigmoid away: ``D(x) = torch.sigmoid(logit)``. We keep the
  logit because the losses computed from it are numerically stable (see :mod:`course_utils.losses`).

Two families, same interface: the MLP pair of the source text (noise 100 -> 256 -> 512 -> pixels;
pixels -> 512 -> 256 -> 1) and a small DCGAN-style convolutional pair. Every class takes the image
shape and the noise size as arguments, so the same code runs at 28x28 (MNIST) and 8x8 (the digits).
:class:`GAN` keeps one generator and one discriminator together, which is what gets trained,
saved and sampled.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from course_utils.models.shapes import ImageShape, check_halves_twice, check_image_shape, check_latent_dim

GAN_KINDS = ("mlp", "dcgan")
"""The two GAN families :func:`make_gan` builds."""


# --------------------------------------------------------------------------- MLP pair (the source text's)


class MLPGenerator(nn.Module):
    """The artist as a plain MLP: noise (100) -> 256 -> 512 -> pixels, Tanh, reshaped to a picture."""

    def __init__(
        self, latent_dim: int = 100, image_shape: ImageShape = (1, 28, 28), hidden_dims: tuple[int, ...] = (256, 512)
    ) -> None:
        super().__init__()
        self.latent_dim = check_latent_dim(latent_dim)
        self.image_shape = check_image_shape(image_shape)
        layers: list[nn.Module] = []
        width = latent_dim
        for hidden in hidden_dims:
            # LeakyReLU lets a little gradient through for negative inputs, so no unit goes silent for good.
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        layers += [nn.Linear(width, math.prod(self.image_shape)), nn.Tanh(), nn.Unflatten(1, self.image_shape)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Noise ``N x latent_dim`` -> pictures ``N x C x H x W`` in [-1, 1]."""
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """The discriminator as a plain MLP: pixels -> 512 -> 256 -> 1 logit per picture (no sigmoid: see the module
    doc)."""

    def __init__(self, image_shape: ImageShape = (1, 28, 28), hidden_dims: tuple[int, ...] = (512, 256)) -> None:
        super().__init__()
        self.image_shape = check_image_shape(image_shape)
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(self.image_shape)
        for hidden in hidden_dims:
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        layers += [nn.Linear(width, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pictures ``N x C x H x W`` in [-1, 1] -> logits of shape ``N`` (``sigmoid(logit)`` = P(real))."""
        return self.net(x).squeeze(1)


# --------------------------------------------------------------------------- DCGAN-style pair


class ConvGenerator(nn.Module):
    """A DCGAN-style artist: noise -> a small 2C x H/4 x W/4 feature map -> two transposed convolutions that double it.

    At 28x28: 7x7 -> 14x14 -> 28x28; at 8x8: 2x2 -> 4x4 -> 8x8. Batch normalisation after each hidden
    layer (as in the DCGAN paper) keeps the activations in a steady range while the discriminator keeps moving.
    """

    def __init__(self, latent_dim: int = 100, image_shape: ImageShape = (1, 28, 28), channels: int = 32) -> None:
        super().__init__()
        self.latent_dim = check_latent_dim(latent_dim)
        self.image_shape = check_image_shape(image_shape)
        check_halves_twice(self.image_shape, "GANs")
        c, h, w = self.image_shape
        self.net = nn.Sequential(
            nn.Linear(latent_dim, 2 * channels * (h // 4) * (w // 4), bias=False),
            nn.BatchNorm1d(2 * channels * (h // 4) * (w // 4)),
            nn.ReLU(),
            nn.Unflatten(1, (2 * channels, h // 4, w // 4)),
            nn.ConvTranspose2d(2 * channels, channels, kernel_size=4, stride=2, padding=1, bias=False),  # x2
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.ConvTranspose2d(channels, c, kernel_size=4, stride=2, padding=1),  # x2 again
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Noise ``N x latent_dim`` -> pictures ``N x C x H x W`` in [-1, 1]."""
        return self.net(z)


class ConvDiscriminator(nn.Module):
    """A DCGAN-style discriminator: two stride-2 convolutions (28 -> 14 -> 7) with LeakyReLU, then one linear logit."""

    def __init__(self, image_shape: ImageShape = (1, 28, 28), channels: int = 32) -> None:
        super().__init__()
        self.image_shape = check_image_shape(image_shape)
        check_halves_twice(self.image_shape, "GANs")
        c, h, w = self.image_shape
        self.net = nn.Sequential(
            nn.Conv2d(c, channels, kernel_size=4, stride=2, padding=1),  # halve
            nn.LeakyReLU(0.2),
            nn.Conv2d(channels, 2 * channels, kernel_size=4, stride=2, padding=1),  # halve again
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(2 * channels * (h // 4) * (w // 4), 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pictures ``N x C x H x W`` in [-1, 1] -> logits of shape ``N`` (``sigmoid(logit)`` = P(real))."""
        return self.net(x).squeeze(1)


# --------------------------------------------------------------------------- the pair


class GAN(nn.Module):
    """A generator and a discriminator kept together: what is trained, checkpointed and sampled.

    ``gan.noise(n)`` draws the artist's dice rolls; ``gan(z)`` (the same as ``gan.generator(z)``)
    paints pictures in [-1, 1]; ``gan.discriminator(x)`` judges them (logits).
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module) -> None:
        super().__init__()
        if not hasattr(generator, "latent_dim") or not hasattr(generator, "image_shape"):
            raise TypeError("the generator must have .latent_dim and .image_shape (use MLPGenerator or ConvGenerator)")
        if tuple(generator.image_shape) != tuple(getattr(discriminator, "image_shape", generator.image_shape)):
            raise ValueError(
                f"the generator paints {generator.image_shape} pictures but the discriminator judges "
                f"{discriminator.image_shape}: build both for the same image_shape"
            )
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim: int = generator.latent_dim
        self.image_shape: ImageShape = tuple(generator.image_shape)  # type: ignore[assignment]

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` noise vectors ``z ~ N(0, I)`` on the model's device (a seeded ``generator`` makes them repeatable)."""
        if n <= 0:
            raise ValueError(f"n must be positive, got {n}")
        device = next(self.parameters()).device
        return torch.randn(n, self.latent_dim, generator=generator).to(device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Paint: noise ``N x latent_dim`` -> pictures in [-1, 1]."""
        return self.generator(z)


def make_gan(
    kind: str = "dcgan", image_shape: ImageShape = (1, 28, 28), latent_dim: int = 100, channels: int = 32
) -> GAN:
    """Build a :class:`GAN`: ``kind='mlp'`` (the source text's MLP pair) or ``'dcgan'`` (convolutional).

    ``channels`` sets the width of the convolutional pair (the MLP pair keeps the source's sizes).
    """
    if kind == "mlp":
        return GAN(MLPGenerator(latent_dim, image_shape), MLPDiscriminator(image_shape))
    if kind == "dcgan":
        return GAN(ConvGenerator(latent_dim, image_shape, channels), ConvDiscriminator(image_shape, channels))
    raise ValueError(f"unknown GAN kind {kind!r}; choose one of {', '.join(GAN_KINDS)}")


def layer_by_layer(model: nn.Module, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Run ``x`` through ``model.net`` one layer at a time; return ``(layer name, output)`` after each layer.

    For looking inside: print the shapes to see how noise grows into a picture (or a picture shrinks
    into one logit), or show the intermediate feature maps.
    """
    net = getattr(model, "net", None)
    if not isinstance(net, nn.Sequential):
        raise TypeError("layer_by_layer needs one of the course's GAN networks (they keep their layers in .net)")
    steps = []
    with torch.no_grad():
        for layer in net:
            x = layer(x)
            steps.append((type(layer).__name__, x))
    return steps
