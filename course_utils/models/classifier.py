"""The critic: a small convolutional classifier of digits, P(Y | X).

Notebook 00 trains it as the discriminative half of the story; later notebooks reuse it as a
judge of generated images (how confidently does it recognise them? are all classes there?), and
notebook 08 uses its penultimate layer, ``features``, as the feature space for FID.
"""

from __future__ import annotations

import torch
from torch import nn


class Classifier(nn.Module):
    """Two convolution blocks, then a feature layer, then one logit per class.

    Works for any image size divisible by 4 (28x28 MNIST, 8x8 digits).
    """

    def __init__(self, image_shape: tuple[int, int, int] = (1, 28, 28), n_classes: int = 10, feature_dim: int = 128):
        super().__init__()
        channels, height, width = image_shape
        if height % 4 or width % 4:
            raise ValueError(f"image height and width must be divisible by 4, got {height}x{width}")
        self.image_shape = tuple(image_shape)
        self.conv = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # H/2
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # H/4
        )
        self.to_features = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * (height // 4) * (width // 4), feature_dim), nn.ReLU()
        )
        self.head = nn.Linear(feature_dim, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The ``feature_dim``-long description of each image that the last layer classifies."""
        if x.shape[1:] != self.image_shape:
            raise ValueError(f"expected images of shape N x {self.image_shape}, got {tuple(x.shape)}")
        return self.to_features(self.conv(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (unnormalised log-probabilities), one per class; softmax gives P(Y | X)."""
        return self.head(self.features(x))
