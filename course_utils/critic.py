"""The critic: the course's classifier, trained once by one recipe, then used to grade samples.

Notebook 00 trains it with :func:`train_critic` and :func:`critic_preset`; every later notebook gets the
same model with :func:`get_critic`, which loads that checkpoint (or trains it the same way, once).

A generative model's samples should (a) look like *some* digit, so the classifier recognises
them confidently, and (b) cover *every* digit, so the predicted classes are spread evenly. Two
numbers measure that: the mean top-class confidence, and the entropy of the histogram of
predicted classes (log2(10) = 3.32 bits when all ten classes are equally common; a GAN that
collapsed onto one digit scores near 0). FID in the classifier's feature space completes them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from course_utils import config
from course_utils.checkpoints import CheckpointMismatchError, checkpoint_path, load_checkpoint
from course_utils.data import ImageData, is_small, load_dataset
from course_utils.history import History
from course_utils.loop import TrainingConfig, evaluating, fit
from course_utils.models.classifier import Classifier


@dataclass(frozen=True, kw_only=True)
class CriticConfig(TrainingConfig):
    """The critic's settings: the first ``train_size`` training images (None: all of them), Adam with ``lr``."""

    train_size: int | None = None
    lr: float = 1e-3


def critic_preset(data: ImageData) -> CriticConfig:
    """Notebook 00's critic: 24,000 pictures at 28x28; 57,600 for the tiny 8x8 digits (many cheap passes)."""
    train_size = config.by_profile(full=None, fast=2000)
    if is_small(data.image_shape):
        return CriticConfig(train_size=train_size, images=config.by_profile(full=57_600, fast=14_400))
    return CriticConfig(train_size=train_size, images=config.by_profile(full=24_000, fast=2_000))


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


def accuracy(model: nn.Module, data: ImageData, batch_size: int = 500) -> float:
    """Fraction of ``data`` that ``model`` classifies correctly (on whatever device ``model`` lives)."""
    device = config.device_of(model)
    correct = 0
    with evaluating(model):
        for images, labels in data.loader(batch_size, shuffle=False):
            correct += (model(images.to(device)).argmax(dim=1).cpu() == labels).sum().item()
    return correct / len(data)


def train_critic(
    data: ImageData,
    settings: CriticConfig,
    *,
    checkpoint: str | Path | None = None,
    device: str | torch.device = "cpu",
    desc: str = "training the critic",
) -> tuple[Classifier, History]:
    """Train a fresh :class:`Classifier` on ``data`` (the training split) with :func:`classifier_step` inside
    :func:`fit`; return it (in eval mode) and its history. With ``checkpoint`` (the course's is
    ``checkpoints.checkpoint_path('critic', data)``) the run and its settings are saved, and the next call
    resumes it, or simply loads it when it is finished. The critic is small: it trains on the CPU, where
    the notebooks use it, unless ``device`` says otherwise.
    """
    config.seed_everything(settings.seed)
    model = Classifier(data.image_shape).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
        return classifier_step(model, optimizer, (batch[0].to(device), batch[1].to(device)))

    loader = data.subset(settings.train_size).loader(settings.batch_size, seed=settings.seed)
    modules = {"model": model, "optimizer": optimizer}
    history = fit(step, loader, settings=settings, desc=desc, checkpoint=checkpoint, modules=modules)
    return model.eval(), history


def get_critic(data: ImageData, verbose: bool = True) -> Classifier:
    """The course's critic for ``data``'s data set and image size, trained once and cached (on the CPU, frozen).

    It is the model notebook 00 trains (:func:`critic_preset`, saved under ``checkpoint_path('critic', data)``).
    When that checkpoint is missing or unfinished, this trains it the same way (a few seconds to a minute).
    """
    path = checkpoint_path("critic", data)
    settings = critic_preset(data)
    train = load_dataset(data.name, "train", verbose=False)
    model = Classifier(data.image_shape)
    try:
        extra = load_checkpoint(path, {"model": model}, settings=settings.model_settings()) if path.exists() else {}
    except CheckpointMismatchError:
        extra = {}  # saved another way: train_critic below sets the file aside and says why
    if extra.get("epoch", 0) >= settings.epochs_for(len(train.subset(settings.train_size))):
        if verbose:
            print(f"Critic loaded from {path}.")
        return _frozen(model)
    model, _ = train_critic(train, settings, checkpoint=path)
    model = _frozen(model)
    if verbose:
        test_accuracy = accuracy(model, load_dataset(data.name, "test", verbose=False))
        print(f"Critic trained on {data.name}: test accuracy {test_accuracy:.1%}; saved to {path}.")
    return model


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


def class_agreement(classifier: Classifier, images: torch.Tensor, labels: torch.Tensor | Sequence[int]) -> float:
    """The share of ``images`` (in [0, 1]) that the critic recognises as the class asked for in ``labels``.

    For a model told which digit to draw: 1.0 means every picture reads as the requested digit; a model
    that ignores its label scores about 1 / (number of classes).
    """
    labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
    if labels.shape != (len(images),):
        raise ValueError(f"labels must hold one class per image, {len(images)}; got {tuple(labels.shape)}")
    return float((predict_proba(classifier, images).argmax(dim=1) == labels.cpu()).double().mean())


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
