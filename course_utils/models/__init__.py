"""The course's models, each in plain PyTorch and short enough to read in one sitting."""

from course_utils.models.autoencoder import VAE, Autoencoder, ConditionalVAE, ConvAutoencoder, ConvVAE
from course_utils.models.classifier import Classifier
from course_utils.models.gan import GAN, ConvDiscriminator, ConvGenerator, MLPDiscriminator, MLPGenerator, make_gan
from course_utils.models.gaussian import GaussianArtist
from course_utils.models.latent import LatentVAE
from course_utils.models.text import CharGRU
from course_utils.models.unet import UNet

__all__ = [
    "Autoencoder",
    "ConvAutoencoder",
    "VAE",
    "ConvVAE",
    "ConditionalVAE",
    "LatentVAE",
    "Classifier",
    "GaussianArtist",
    "GAN",
    "MLPGenerator",
    "MLPDiscriminator",
    "ConvGenerator",
    "ConvDiscriminator",
    "make_gan",
    "CharGRU",
    "UNet",
]
