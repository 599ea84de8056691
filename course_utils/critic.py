"""The critic as a judge: train the course's classifier once, then use it to grade samples.

A generative model's samples should (a) look like *some* digit, so the classifier recognises
them confidently, and (b) cover *every* digit, so the predicted classes are spread evenly. Two
numbers measure that: the mean top-class confidence, and the entropy of the histogram of
predicted classes (log2(10) = 3.32 bits when all ten classes are equally common; a GAN that
collapsed onto one digit scores near 0). FID in the classifier's feature space completes them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from course_utils import config
from course_utils.checkpoints import CheckpointMismatchError, checkpoint_path, load_checkpoint, save_checkpoint
from course_utils.data import ImageData, load_dataset
from course_utils.models.classifier import Classifier
from course_utils.train import History, fit


def classifier_step(model: Classifier, optimizer: torch.optim.Optimizer, batch: tuple) -> dict[str, float]:
    """One step of ordinary supervised learning: cross-entropy between logits and labels."""
    images, labels = batch
    logits = model(images)
    loss = F.cross_entropy(logits, labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    accuracy = (logits.argmax(dim=1) == labels).float().mean()
    return {"loss": loss.item(), "accuracy": accuracy.item()}


@torch.no_grad()
def accuracy(model: nn.Module, data: ImageData, batch_size: int = 500) -> float:
    """Fraction of ``data`` that ``model`` classifies correctly (on whatever device ``model`` lives)."""
    model.eval()
    device = config.device_of(model)
    correct = 0
    for images, labels in data.loader(batch_size, shuffle=False):
        correct += (model(images.to(device)).argmax(dim=1).cpu() == labels.cpu()).sum().item()
    return correct / len(data)


def train_classifier(train: ImageData, epochs: int, seed: int = 0, checkpoint=None) -> tuple[Classifier, History]:
    """Train a fresh :class:`Classifier` on ``train`` with Adam; return it and its history."""
    config.seed_everything(seed)
    model = Classifier(train.image_shape)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = fit(
        lambda batch: classifier_step(model, optimizer, batch),
        train.loader(batch_size=128, seed=seed),
        epochs,
        desc="training the critic",
        checkpoint=checkpoint,
        modules={"model": model, "optimizer": optimizer},
    )
    return model, history


def get_classifier(data: ImageData, verbose: bool = True) -> Classifier:
    """The course's classifier for ``data``'s data set and image size, trained once and cached.

    The first call trains it on that data set's training split (a few seconds to a minute) and
    saves it with its test accuracy under the checkpoint folder; later calls load it.
    """
    path = checkpoint_path("critic", data)
    model = Classifier(data.image_shape)
    if path.exists():
        try:
            extra = load_checkpoint(path, {"model": model})
        except CheckpointMismatchError:
            extra = {}  # saved by an older version of the critic: training below sets the file aside
        if "test_accuracy" in extra:
            if verbose:
                print(f"Critic loaded from {path} (test accuracy {extra['test_accuracy']:.1%}).")
            return _frozen(model)
    train = load_dataset(data.name, "train", verbose=False)
    test = load_dataset(data.name, "test", verbose=False)
    if train.image_shape[-1] < 16:  # the 8x8 digits: 1,437 tiny images, so many cheap epochs
        epochs = config.by_profile(full=40, fast=15)
    else:
        epochs = config.by_profile(full=3, fast=1)
    train = train.subset(config.by_profile(full=None, fast=3000))
    model, history = train_classifier(train, epochs, checkpoint=path)
    test_accuracy = accuracy(model, test)
    save_checkpoint(path, {"model": model}, epoch=epochs, history=history.to_dict(), test_accuracy=test_accuracy)
    if verbose:
        print(f"Critic trained on {len(train)} {data.name} images: test accuracy {test_accuracy:.1%}; saved to {path}.")
    return _frozen(model)


def save_classifier(model: Classifier, data: ImageData, test_accuracy: float) -> None:
    """Keep ``model`` as the course's classifier for ``data`` (what :func:`get_classifier` loads later)."""
    if tuple(model.image_shape) != tuple(data.image_shape):
        raise ValueError(f"the model takes {model.image_shape} images but the data has {data.image_shape}")
    save_checkpoint(checkpoint_path("critic", data), {"model": model}, epoch=0, test_accuracy=float(test_accuracy))


def _frozen(model: Classifier) -> Classifier:
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def _check_images(classifier: Classifier, images: torch.Tensor) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError("images must be a tensor of shape N x 1 x H x W with pixels in [0, 1]")
    if tuple(images.shape[1:]) != classifier.image_shape:
        raise ValueError(
            f"the critic was trained on images of shape {classifier.image_shape}, got {tuple(images.shape[1:])}"
        )
    if images.min() < -0.01 or images.max() > 1.01:
        raise ValueError(
            f"pixels must lie in [0, 1], found [{images.min():.2f}, {images.max():.2f}]; "
            "convert [-1, 1] images with course_utils.data.to_unit"
        )
    return images.detach().to("cpu", torch.float32)


@torch.no_grad()
def predict_proba(classifier: Classifier, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Class probabilities P(Y | X) for images in [0, 1], batch by batch (a CPU tensor, wherever the images were)."""
    images = _check_images(classifier, images)
    device = config.device_of(classifier)
    return torch.cat([F.softmax(classifier(chunk.to(device)), dim=1).cpu() for chunk in images.split(batch_size)])


@torch.no_grad()
def features(classifier: Classifier, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """The classifier's feature vectors (N x 128, a CPU tensor) for images in [0, 1]."""
    images = _check_images(classifier, images)
    device = config.device_of(classifier)
    return torch.cat([classifier.features(chunk.to(device)).cpu() for chunk in images.split(batch_size)])


def judge(classifier: Classifier, images: torch.Tensor) -> dict:
    """How the critic sees a batch: mean top-class confidence, class entropy (bits), class histogram."""
    probs = predict_proba(classifier, images)
    n_classes = probs.shape[1]
    histogram = torch.bincount(probs.argmax(dim=1), minlength=n_classes).double() / len(probs)
    nonzero = histogram[histogram > 0]
    entropy = float(-(nonzero * nonzero.log2()).sum())
    return {
        "mean_confidence": float(probs.max(dim=1).values.mean()),
        "class_entropy_bits": entropy,
        "max_entropy_bits": math.log2(n_classes),
        "class_histogram": [round(float(h), 4) for h in histogram],
    }


def evaluate_samples(classifier: Classifier, samples: torch.Tensor, real: torch.Tensor) -> dict:
    """Confidence, class entropy and FID (in the critic's feature space) of ``samples`` against ``real``."""
    from course_utils.metrics import fid_from_features

    verdict = judge(classifier, samples)
    fid = fid_from_features(features(classifier, samples), features(classifier, real))
    return {
        "mean_confidence": verdict["mean_confidence"],
        "class_entropy_bits": verdict["class_entropy_bits"],
        "fid": float(fid),
    }
