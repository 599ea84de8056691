"""The course's models, each in plain PyTorch and short enough to read in one sitting."""

from course_utils.models.autoencoder import VAE, Autoencoder, ConvAutoencoder, ConvVAE
from course_utils.models.classifier import Classifier

__all__ = ["Autoencoder", "ConvAutoencoder", "VAE", "ConvVAE", "Classifier"]
