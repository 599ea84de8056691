"""Autoencoders and variational autoencoders, in plain PyTorch.

Four models, two ideas:

* :class:`Autoencoder` and :class:`ConvAutoencoder` squeeze a picture into a short code
  (``encode``) and rebuild it (``decode``): the "compressor robot".
* :class:`VAE` and :class:`ConvVAE` encode a picture into a *cloud* of codes, a Gaussian with
  mean ``mu`` and log-variance ``logvar``, draw one code from it with the reparameterization
  trick and decode it: the "master forger", who can also invent new codes.

Every model takes the image shape and the latent size as arguments, so the same class works on
28x28 MNIST and on the 8x8 digits. Decoders end in a sigmoid: they return pixels in ``[0, 1]``,
the convention of :mod:`course_utils.data`, which is also what the BCE loss expects.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from course_utils.models.shapes import ImageShape, check_halves_twice, check_image_shape, check_latent_dim

Pair = tuple[nn.Module, nn.Module] | None
"""An ``(encoder, decoder)`` pair that a convolutional subclass hands to its parent (None: the MLP pair)."""


def _mlp_encoder(image_shape: ImageShape, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """Flatten the picture, then one hidden layer: pixels -> hidden -> out."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(math.prod(image_shape), hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim)
    )


def _mlp_decoder(image_shape: ImageShape, hidden_dim: int, latent_dim: int) -> nn.Sequential:
    """The mirror image: code -> hidden -> pixels, reshaped to a picture, squashed into [0, 1]."""
    return nn.Sequential(
        nn.Linear(latent_dim, hidden_dim),
        nn.ReLU(),
        nn.Linear(hidden_dim, math.prod(image_shape)),
        nn.Unflatten(1, image_shape),
        nn.Sigmoid(),
    )


def _conv_encoder(image_shape: ImageShape, channels: int, out_dim: int) -> nn.Sequential:
    """Two stride-2 convolutions (28 -> 14 -> 7, or 8 -> 4 -> 2), then a linear layer to ``out_dim``."""
    c, h, w = image_shape
    return nn.Sequential(
        nn.Conv2d(c, channels, kernel_size=4, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(channels, 2 * channels, kernel_size=4, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(2 * channels * (h // 4) * (w // 4), out_dim),
    )


def _conv_decoder(image_shape: ImageShape, channels: int, latent_dim: int) -> nn.Sequential:
    """The mirror image: a linear layer to a small feature map, then two transposed convolutions that double it."""
    c, h, w = image_shape
    return nn.Sequential(
        nn.Linear(latent_dim, 2 * channels * (h // 4) * (w // 4)),
        nn.ReLU(),
        nn.Unflatten(1, (2 * channels, h // 4, w // 4)),
        nn.ConvTranspose2d(2 * channels, channels, kernel_size=4, stride=2, padding=1),
        nn.ReLU(),
        nn.ConvTranspose2d(channels, c, kernel_size=4, stride=2, padding=1),
        nn.Sigmoid(),
    )


# --------------------------------------------------------------------------- autoencoders


class Autoencoder(nn.Module):
    """The compressor robot: pixels -> 128 -> 32 numbers (the code) -> 128 -> pixels.

    ``encode(x)`` gives the code ``z`` (N x latent_dim); ``decode(z)`` gives pictures in [0, 1].
    """

    def __init__(
        self, image_shape: ImageShape = (1, 28, 28), latent_dim: int = 32, hidden_dim: int = 128, networks: Pair = None
    ) -> None:
        """``networks``: an ``(encoder, decoder)`` pair instead of the MLP pair (see :class:`ConvAutoencoder`)."""
        super().__init__()
        self.image_shape = check_image_shape(image_shape)
        self.latent_dim = check_latent_dim(latent_dim)
        if networks is None:
            networks = (
                _mlp_encoder(self.image_shape, hidden_dim, latent_dim),  # squish
                _mlp_decoder(self.image_shape, hidden_dim, latent_dim),  # stretch
            )
        self.encoder, self.decoder = networks

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Squish and stretch: pictures in [0, 1] (the same as calling the model)."""
        return self(x)


class ConvAutoencoder(Autoencoder):
    """The same compressor with convolutions: it looks at neighbouring pixels together."""

    def __init__(self, image_shape: ImageShape = (1, 28, 28), latent_dim: int = 32, channels: int = 32) -> None:
        image_shape, latent_dim = check_image_shape(image_shape), check_latent_dim(latent_dim)
        check_halves_twice(image_shape, "autoencoders")
        networks = (_conv_encoder(image_shape, channels, latent_dim), _conv_decoder(image_shape, channels, latent_dim))
        super().__init__(image_shape, latent_dim, networks=networks)


# --------------------------------------------------------------------------- variational autoencoders


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Draw ``z ~ N(mu, exp(logvar))`` as ``mu + std * eps`` with ``eps ~ N(0, I)``.

    The randomness lives in ``eps``, outside the network, so gradients flow through ``mu`` and
    ``logvar``. ``std = exp(0.5 * logvar)`` because the standard deviation is the square root of
    the variance: ``sqrt(exp(logvar)) = exp(logvar / 2)``.
    """
    std = torch.exp(0.5 * logvar)
    eps = torch.randn_like(std)
    return mu + std * eps


class VAE(nn.Module):
    """The master forger: pixels -> 400 -> (mu, logvar) of a 20-d Gaussian; a code drawn from it -> 400 -> pixels.

    The encoder has two heads. ``fc_mu`` gives the centre of the cloud of codes; ``fc_logvar`` gives
    the *logarithm* of its variance, any real number, so the variance ``exp(logvar)`` is always positive.
    ``forward`` returns ``(reconstruction, mu, logvar)`` for one code drawn from each cloud (the loss
    needs that draw); ``reconstruct`` decodes ``mu`` itself, without dice, for the sharpest picture.
    """

    def __init__(
        self, image_shape: ImageShape = (1, 28, 28), latent_dim: int = 20, hidden_dim: int = 400, networks: Pair = None
    ) -> None:
        """``networks``: an ``(encoder to hidden_dim features, decoder)`` pair instead of the MLP pair (see
        :class:`ConvVAE`)."""
        super().__init__()
        self.image_shape = check_image_shape(image_shape)
        self.latent_dim = check_latent_dim(latent_dim)
        if networks is None:
            self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(self.image_shape), hidden_dim), nn.ReLU())
        else:
            self.encoder = networks[0]
        self.fc_mu = nn.Linear(hidden_dim, latent_dim)
        self.fc_logvar = nn.Linear(hidden_dim, latent_dim)
        self.decoder = _mlp_decoder(self.image_shape, hidden_dim, latent_dim) if networks is None else networks[1]

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The cloud of codes for each picture: ``(mu, logvar)``, each N x latent_dim."""
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """One code per picture drawn from its cloud (see :func:`reparameterize`)."""
        return reparameterize(mu, logvar)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decode the centre of each picture's cloud (no dice): pictures in [0, 1]."""
        return self.decode(self.encode(x)[0])


class ConvVAE(VAE):
    """The same forger with convolutions: a conv encoder gives a feature vector, two linear heads give mu and logvar."""

    def __init__(
        self, image_shape: ImageShape = (1, 28, 28), latent_dim: int = 20, channels: int = 32, hidden_dim: int = 256
    ) -> None:
        image_shape, latent_dim = check_image_shape(image_shape), check_latent_dim(latent_dim)
        check_halves_twice(image_shape, "VAEs")
        encoder = nn.Sequential(_conv_encoder(image_shape, channels, hidden_dim), nn.ReLU())
        super().__init__(
            image_shape, latent_dim, hidden_dim, networks=(encoder, _conv_decoder(image_shape, channels, latent_dim))
        )


# --------------------------------------------------------------------------- conditioning: label in, label out


class ConditionalVAE(VAE):
    """A VAE told the class of each picture: the forger gets a note saying "this is a 7".

    The label, as a one-hot vector, is glued to the input of the encoder and to the code fed to the
    decoder. The code then need not store which digit it is, only *how* it is written (slant, stroke
    width), and ``decode(z, labels)`` draws the style ``z`` as the requested digit: label in, label out.
    """

    def __init__(
        self,
        image_shape: ImageShape = (1, 28, 28),
        latent_dim: int = 20,
        hidden_dim: int = 400,
        num_classes: int = 10,
    ) -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        image_shape = check_image_shape(image_shape)
        # The label is glued to the flattened picture and to the code: one-hot, num_classes more inputs each.
        encoder = nn.Sequential(nn.Linear(math.prod(image_shape) + num_classes, hidden_dim), nn.ReLU())
        decoder = _mlp_decoder(image_shape, hidden_dim, check_latent_dim(latent_dim) + num_classes)
        super().__init__(image_shape, latent_dim, hidden_dim, networks=(encoder, decoder))
        self.num_classes = num_classes

    def one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        """Labels (N integers) as one-hot rows N x num_classes, after checking them."""
        labels = torch.as_tensor(labels)
        if labels.dtype not in (torch.int64, torch.int32) or labels.ndim != 1:
            raise ValueError(f"labels must be a 1-D integer tensor, got {labels.dtype} {tuple(labels.shape)}")
        if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"labels must lie in 0 .. {self.num_classes - 1}, got {labels.tolist()[:10]}")
        return nn.functional.one_hot(labels.long(), self.num_classes).float()

    def encode(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The cloud of codes of each picture, given its class: ``(mu, logvar)``."""
        h = self.encoder(torch.cat([x.flatten(1), self.one_hot(labels).to(x.device)], dim=1))
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Draw the style ``z`` as the digits ``labels``: pictures in [0, 1]."""
        if len(labels) != len(z):
            raise ValueError(f"one label per code: got {len(z)} codes and {len(labels)} labels")
        return self.decoder(torch.cat([z, self.one_hot(labels).to(z.device)], dim=1))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x, labels)
        return self.decode(self.reparameterize(mu, logvar), labels), mu, logvar

    def reconstruct(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Decode the centre of each picture's cloud, told its class."""
        return self.decode(self.encode(x, labels)[0], labels)
