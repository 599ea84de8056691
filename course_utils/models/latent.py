"""The first half of a tiny Stable Diffusion: a small convolutional VAE whose codes form a grid.

Denoising 784 pixels is slow; denoising a small grid of numbers that *describes* the picture is
fast. :class:`LatentVAE` squeezes a 28x28 digit into a ``2 x 7 x 7`` grid of latents (and an 8x8 digit
into ``2 x 4 x 4``). The encoder is convolutional, so its grid keeps a rough map of where things are; the
decoder's first layer reads the whole grid at once, so each latent may describe the digit as a whole, not
only its own patch. That is what lets random latents from N(0, I) decode into whole digits (the comment in
``__init__`` gives the figures).

Two details make the grid easy to model, as in Stable Diffusion (Rombach et al. 2022):

* a KL term (it is a VAE, not a plain autoencoder): the codes stay close to a standard normal cloud,
  so the space is smooth, with no holes or wild scales for the denoiser to learn;
* scaling to unit variance (:meth:`LatentVAE.fit_scale`): the diffusion schedule assumes its clean
  data has a spread near 1, so the latents are multiplied by ``1 / std`` before the denoiser sees them.
"""

from __future__ import annotations

import torch
from torch import nn

from course_utils.models.autoencoder import reparameterize
from course_utils.models.shapes import ImageShape, check_image_shape, check_latent_dim


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    """A 3x3 convolution that keeps the size, then SiLU."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.SiLU())


class LatentVAE(nn.Module):
    """A convolutional VAE with a spatial latent: pictures ``N x C x H x W`` <-> latents ``N x L x H/f x W/f``.

    ``downsamples`` halvings (``f = 2 ** downsamples``): 2 for 28x28 (grid 7x7), 1 for 8x8 (grid 4x4).
    ``encode`` gives ``(mu, logvar)`` per latent; ``decode`` gives pictures in [0, 1] (a sigmoid, for BCE).
    ``to_latent`` / ``from_latent`` add the unit-variance scaling a denoiser should see.
    """

    def __init__(
        self,
        image_shape: ImageShape = (1, 28, 28),
        latent_channels: int = 4,
        channels: int = 32,
        downsamples: int = 2,
    ) -> None:
        super().__init__()
        self.image_shape = check_image_shape(image_shape)
        check_latent_dim(latent_channels)
        c, height, width = self.image_shape
        factor = 2**downsamples
        if downsamples < 1 or height % factor or width % factor:
            raise ValueError(
                f"{downsamples} halvings need a height and width divisible by {factor}, got {height}x{width} "
                "(use downsamples=2 for 28x28, 1 for 8x8)"
            )
        self.latent_shape = (latent_channels, height // factor, width // factor)
        widths = [channels * 2**i for i in range(downsamples + 1)]  # e.g. 32, 64, 128: wider as the grid shrinks
        encoder: list[nn.Module] = [_block(c, widths[0])]
        for i in range(downsamples):  # each stride-2 convolution halves the picture
            encoder += [nn.Conv2d(widths[i], widths[i + 1], 4, stride=2, padding=1), nn.SiLU()]
        encoder += [_block(widths[-1], widths[-1]), nn.Conv2d(widths[-1], 2 * latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*encoder)  # -> mu and logvar, stacked along the channels
        grid_height, grid_width = self.latent_shape[1:]
        # The decoder's first layer reads the whole grid at once (every latent feeds every place). With only
        # convolutions each latent painted its own patch, and N(0, I), which draws every latent on its own, gave
        # patches that did not join up: at 28x28 random latents drew far worse digits than with this (README).
        decoder: list[nn.Module] = [
            nn.Flatten(),
            nn.Linear(latent_channels * grid_height * grid_width, widths[-1] * grid_height * grid_width),
            nn.Unflatten(1, (widths[-1], grid_height, grid_width)),
            nn.SiLU(),
            _block(widths[-1], widths[-1]),
        ]
        for i in reversed(range(downsamples)):  # each transposed convolution doubles it back
            decoder += [nn.ConvTranspose2d(widths[i + 1], widths[i], 4, stride=2, padding=1), nn.SiLU()]
        decoder += [_block(widths[0], widths[0]), nn.Conv2d(widths[0], c, 3, padding=1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*decoder)
        # Multiplies the latents before a denoiser sees them; set it from data with fit_scale.
        self.register_buffer("latent_scale", torch.tensor(1.0))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The cloud of codes of each picture: ``(mu, logvar)``, each ``N x latent_shape``."""
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"this VAE expects pictures of shape N x {self.image_shape}, got {tuple(x.shape)}")
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Pictures in [0, 1] from (unscaled) latents ``N x latent_shape``."""
        if tuple(z.shape[1:]) != self.latent_shape:
            raise ValueError(f"this VAE decodes latents of shape N x {self.latent_shape}, got {tuple(z.shape)}")
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(reconstruction, mu, logvar)`` for one code drawn from each picture's cloud (what the loss needs)."""
        mu, logvar = self.encode(x)
        return self.decode(reparameterize(mu, logvar)), mu, logvar

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decode the centre of each picture's cloud: pictures in [0, 1]."""
        return self.decode(self.encode(x)[0])

    @torch.no_grad()
    def fit_scale(self, images: torch.Tensor, batch_size: int = 500) -> float:
        """Set :attr:`latent_scale` to ``1 / std`` of the latents of ``images``, so that they have unit variance.

        Returns the scale. Stable Diffusion does the same (its 0.18215 is ``1 / std`` of its VAE's latents).
        """
        latents = torch.cat([self.to_latent(chunk, scaled=False) for chunk in images.split(batch_size)])
        self.latent_scale.fill_(1.0 / latents.std().clamp(min=1e-8).item())
        return float(self.latent_scale)

    def to_latent(self, x: torch.Tensor, scaled: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
        """Latents of pictures ``x`` in [0, 1], drawn from their clouds, times :attr:`latent_scale` when ``scaled``.

        Drawing (rather than taking ``mu``) is what Stable Diffusion trains its denoiser on: the decoder has
        learnt to paint every code in the cloud, so the denoiser may land anywhere in it.
        """
        mu, logvar = self.encode(x)
        noise = torch.randn(mu.shape, generator=generator).to(mu.device, mu.dtype)
        z = mu + (0.5 * logvar).exp() * noise
        return z * self.latent_scale if scaled else z

    def from_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Pictures in [0, 1] from scaled latents (undo :attr:`latent_scale`, then decode)."""
        return self.decode(z / self.latent_scale)
