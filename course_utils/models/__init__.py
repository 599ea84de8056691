"""The course's models, each in plain PyTorch and short enough to read in one sitting."""

from course_utils.models.autoencoder import VAE, Autoencoder, ConvAutoencoder, ConvVAE
from course_utils.models.classifier import Classifier
from course_utils.models.gan import GAN, ConvDiscriminator, ConvGenerator, MLPDiscriminator, MLPGenerator, make_gan

__all__ = [
    "Autoencoder",
    "ConvAutoencoder",
    "VAE",
    "ConvVAE",
    "Classifier",
    "GAN",
    "MLPGenerator",
    "MLPDiscriminator",
    "ConvGenerator",
    "ConvDiscriminator",
    "make_gan",
]
