"""A small time-conditioned U-Net: the sculptor's hands in notebook 05.

Given a noisy image ``x_t`` and its timestep ``t`` it predicts the noise in ``x_t``. The
shape is a "U": convolutions shrink the picture level by level (seeing more of it at once),
then grow it back, and skip connections hand each level's fine detail straight across.
Every residual block is told the timestep, so one network handles every noise level.

With ``num_classes`` the net is also told which class to draw ("draw me a 7"): a learned vector per
class is added to the time embedding. One extra index, ``num_classes`` itself, is the "no label"
token; training shows it in place of the label now and then, so the same net also learns to draw
without being told a class. That is what classifier-free guidance needs (:mod:`course_utils.guidance`).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _groups(channels: int) -> int:
    """The number of GroupNorm groups: 8 when the channels allow it, else the largest divisor <= 8."""
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


class SinusoidalTimeEmbedding(nn.Module):
    """Turn integer timesteps into vectors of sines and cosines at many frequencies (as in Transformers)."""

    def __init__(self, dim: int, max_period: float = 10_000.0) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"the time embedding dimension must be even, got {dim}")
        frequencies = torch.exp(-math.log(max_period) * torch.arange(dim // 2) / (dim // 2))
        self.register_buffer("frequencies", frequencies, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t.float()[:, None] * self.frequencies[None, :]  # N x dim/2
        return torch.cat([angles.sin(), angles.cos()], dim=1)  # N x dim


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with the time embedding added in between, plus a shortcut around them."""

    def __init__(self, in_channels: int, out_channels: int, time_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_channels), in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time = nn.Linear(time_dim, out_channels)  # tells the block how noisy its input is
        self.norm2 = nn.GroupNorm(_groups(out_channels), out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.act = nn.SiLU()
        # The shortcut needs a 1x1 convolution only when the number of channels changes.
        self.shortcut = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, time_embedding: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        h = h + self.time(time_embedding)[:, :, None, None]  # one shift per channel, broadcast over the pixels
        h = self.conv2(self.act(self.norm2(h)))
        return h + self.shortcut(x)


class UNet(nn.Module):
    """Predict the noise in ``x_t`` (``N x C x H x W``) at integer timesteps ``t`` (``N``).

    ``channels`` lists the width of each level, e.g. ``(16, 32, 32)``: the image is halved in size
    between levels, so ``H`` and ``W`` must be divisible by ``2 ** (len(channels) - 1)``
    (28x28 -> 14 -> 7, 8x8 -> 4 -> 2). One residual block per level on the way down, one in the middle,
    one per level on the way up, each fed the skip connection from its level on the way down.

    ``num_classes=None`` makes the unconditional net, called as ``net(x_t, t)``. With ``num_classes=K``
    it is called as ``net(x_t, t, labels)``, ``labels`` integers in ``0 .. K``, where ``K`` (``net.null_label``)
    means "no label"; leaving ``labels`` out asks every image with the "no label" token.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        channels: tuple[int, ...] = (16, 32, 32),
        time_dim: int = 64,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        in_channels, height, width = image_shape
        factor = 2 ** (len(channels) - 1)
        if len(channels) < 1 or height % factor or width % factor:
            raise ValueError(
                f"a U-Net with {len(channels)} levels halves the image {len(channels) - 1} times, so height and width "
                f"must be divisible by {factor}; got {height}x{width}. Use fewer levels (shorter `channels`)."
            )
        self.image_shape = tuple(image_shape)
        self.channels = tuple(channels)
        self.time_embedding = nn.Sequential(
            SinusoidalTimeEmbedding(time_dim), nn.Linear(time_dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim)
        )
        self.num_classes = num_classes
        if num_classes is not None:
            if num_classes < 1:
                raise ValueError(f"num_classes must be a positive integer or None, got {num_classes}")
            # One vector per class and one more, at index num_classes, for "no label".
            self.label_embedding = nn.Embedding(num_classes + 1, time_dim)
        self.stem = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.downsample = nn.ModuleList()
        previous = channels[0]
        for level, width_here in enumerate(channels):
            self.down_blocks.append(ResidualBlock(previous, width_here, time_dim))
            previous = width_here
            if level < len(channels) - 1:  # halve the image: a stride-2 convolution
                self.downsample.append(nn.Conv2d(width_here, width_here, 3, stride=2, padding=1))
        self.middle = ResidualBlock(previous, previous, time_dim)
        self.up_blocks = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(len(channels))):
            # Input: the path from below concatenated with the skip connection of this level.
            self.up_blocks.append(ResidualBlock(previous + channels[level], channels[level], time_dim))
            previous = channels[level]
            if level > 0:  # double the image: nearest-neighbour upsampling, then a convolution to smooth it
                self.upsample.append(
                    nn.Sequential(
                        nn.Upsample(scale_factor=2, mode="nearest"),
                        nn.Conv2d(previous, channels[level - 1], 3, padding=1),
                    )
                )
                previous = channels[level - 1]
        self.out = nn.Sequential(
            nn.GroupNorm(_groups(previous), previous), nn.SiLU(), nn.Conv2d(previous, in_channels, 3, padding=1)
        )
        nn.init.zeros_(self.out[-1].weight)  # start by predicting zero noise: a calm, stable first step
        nn.init.zeros_(self.out[-1].bias)

    @property
    def null_label(self) -> int | None:
        """The index of the "no label" token (``num_classes``), or None for an unconditional net."""
        return self.num_classes

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if x.shape[1:] != self.image_shape:
            raise ValueError(f"this U-Net expects images of shape N x {self.image_shape}, got {tuple(x.shape)}")
        t = torch.as_tensor(t, device=x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        time_embedding = self.time_embedding(t)
        if self.num_classes is not None:
            # The class is told to every block the same way as the noise level: added to the time embedding.
            time_embedding = time_embedding + self.label_embedding(self._check_labels(labels, x))
        elif labels is not None:
            raise ValueError("this U-Net is unconditional (num_classes=None): call it as net(x_t, t), without labels")
        h = self.stem(x)
        skips = []
        for level, block in enumerate(self.down_blocks):
            h = block(h, time_embedding)
            skips.append(h)  # keep this level's detail for the way up
            if level < len(self.downsample):
                h = self.downsample[level](h)
        h = self.middle(h, time_embedding)
        for i, block in enumerate(self.up_blocks):
            h = block(torch.cat([h, skips.pop()], dim=1), time_embedding)
            if i < len(self.upsample):
                h = self.upsample[i](h)
        return self.out(h)

    def _check_labels(self, labels: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
        if labels is None:  # no class asked for: every image gets the "no label" token
            return torch.full((x.shape[0],), self.num_classes, dtype=torch.int64, device=x.device)
        labels = torch.as_tensor(labels, device=x.device)
        if labels.ndim == 0:
            labels = labels.expand(x.shape[0])
        if labels.dtype not in (torch.int64, torch.int32) or labels.shape != (x.shape[0],):
            raise ValueError(
                f"labels must be an integer tensor of shape ({x.shape[0]},), one class per image; "
                f"got {labels.dtype} {tuple(labels.shape)}"
            )
        if labels.min() < 0 or labels.max() > self.num_classes:
            raise ValueError(
                f"labels must lie in 0 .. {self.num_classes} ({self.num_classes} is 'no label'), "
                f"got {int(labels.min())} .. {int(labels.max())}"
            )
        return labels.long()
