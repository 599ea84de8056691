"""The character model's recipe (notebook 09): a small GRU learns to guess the next character.

:class:`CharModelConfig` holds its settings and :func:`charmodel_preset` the course's choice. Text
data, the baselines and sampling (:func:`course_utils.text.generate`) live in :mod:`course_utils.text`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from course_utils import config, pretrained
from course_utils.history import History
from course_utils.loop import TrainingConfig, fit
from course_utils.models.text import CharGRU
from course_utils.text import TextData, text_loader


@dataclass(frozen=True, kw_only=True)
class CharModelConfig(TrainingConfig):
    """The character model's settings: windows of ``seq_len`` characters, ``batch_size`` windows a step, a
    GRU with ``embed_dim``-wide character vectors and ``hidden_size`` units, Adam with ``lr``."""

    seq_len: int = 128
    embed_dim: int = 32
    hidden_size: int = 256
    dropout: float = 0.1
    lr: float = 3e-3


def charmodel_preset() -> CharModelConfig:
    """Notebook 09's model: 256 hidden units (64 in the fast profile), at most 10 epochs within 200 s of training."""
    return CharModelConfig(
        seq_len=100,
        batch_size=32,
        hidden_size=config.by_profile(full=256, fast=64),
        epochs=config.by_profile(full=10, fast=1),
        max_seconds=config.by_profile(full=200, fast=12),
    )


def charmodel_checkpoint_path(data: TextData, settings: CharModelConfig) -> Path:
    """Where notebook 09 keeps its character model, e.g. ``checkpoints/charmodel-roman-plays-h256-full.pt``.

    With ``COURSE_PRETRAINED=1`` the course's finished model is put there first (:mod:`course_utils.pretrained`).
    """
    name = f"charmodel-{data.name}-h{settings.hidden_size}-{config.profile()}.pt"
    return pretrained.provide(config.checkpoint_dir() / name)


def charmodel_step(
    model: CharGRU, optimizer: torch.optim.Optimizer, windows: torch.Tensor, clip: float = 1.0
) -> dict[str, float]:
    """One optimisation step on a batch of ``B x (T + 1)`` character windows.

    Every position predicts the character that follows it, so the targets are the inputs shifted
    by one. The loss is the mean of -ln P(next character | all before it): the chain rule's
    factors, one per position. ``bits_per_char`` is the same number in bits (divided by ln 2).
    """
    inputs, targets = windows[:, :-1], windows[:, 1:]
    logits, _state = model(inputs)  # B x T x vocab: scores for the character after each position
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), clip)  # a recurrent net's gradients can explode: cap their size
    optimizer.step()
    return {"loss": loss.item(), "bits_per_char": loss.item() / math.log(2)}


def make_charmodel(data: TextData, settings: CharModelConfig) -> CharGRU:
    """A :class:`CharGRU` for ``data``'s alphabet, as ``settings`` say."""
    return CharGRU(len(data.vocab), settings.embed_dim, settings.hidden_size, dropout=settings.dropout)


def train_charmodel(
    data: TextData, settings: CharModelConfig, *, checkpoint: str | Path | None = None
) -> tuple[CharGRU, History]:
    """Train a :class:`CharGRU` on ``data.train_ids`` with :func:`charmodel_step` inside :func:`fit`.

    One epoch reads the training text once, in windows of ``settings.seq_len`` characters. With
    ``checkpoint`` (e.g. :func:`charmodel_checkpoint_path`) the run and its settings are saved, and the
    next call resumes it, or simply loads it when it is finished. Returns the model (in eval mode) and
    its history (``loss`` in nats and ``bits_per_char``, per step and per epoch). Sample from it with
    :func:`course_utils.text.generate`.
    """
    config.seed_everything(settings.seed)  # dropout draws from PyTorch's global generator, which fit saves
    device = config.device()
    model = make_charmodel(data, settings).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)

    def step(batch: tuple[torch.Tensor]) -> dict[str, float]:
        (windows,) = batch
        return charmodel_step(model, optimizer, windows.to(device))

    loader = text_loader(data.train_ids, settings.seq_len, settings.batch_size, shuffle=True, seed=settings.seed)
    modules = {"model": model, "optimizer": optimizer}
    history = fit(step, loader, settings=settings, desc="char model", checkpoint=checkpoint, modules=modules)
    return model.eval(), history
