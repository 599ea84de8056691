"""The argument checks every image model runs when it is built, with messages that say how to fix them."""

from __future__ import annotations

ImageShape = tuple[int, int, int]


def check_image_shape(image_shape: ImageShape) -> ImageShape:
    """``image_shape`` as a tuple of three positive ints ``(channels, height, width)``, or a ``ValueError``."""
    image_shape = tuple(int(s) for s in image_shape)
    if len(image_shape) != 3 or min(image_shape) <= 0:
        raise ValueError(f"image_shape must be (channels, height, width), e.g. (1, 28, 28); got {image_shape}")
    return image_shape  # type: ignore[return-value]


def check_latent_dim(latent_dim: int) -> int:
    """``latent_dim`` (the size of a code or of a noise vector) if it is a positive int, else a ``ValueError``."""
    if not isinstance(latent_dim, int) or latent_dim <= 0:
        raise ValueError(
            f"latent_dim (the size of the code or noise vector) must be a positive integer, got {latent_dim!r}"
        )
    return latent_dim


def check_halves_twice(image_shape: ImageShape, models: str) -> None:
    """The course's convolutional ``models`` halve (or double) a picture twice: height and width must divide by 4."""
    _, height, width = image_shape
    if height % 4 or width % 4:
        raise ValueError(
            f"the convolutional {models} halve (or double) the picture twice, so height and width must be multiples "
            f"of 4; got {height}x{width} (28x28 and 8x8 both work; use the MLP version for other sizes)"
        )
