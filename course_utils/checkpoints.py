"""Saving and loading models safely.

A checkpoint is one ``torch.save``-d dictionary::

    {"format": 1,
     "modules": {name: {"class": "VAE", "state": state_dict}, ...},
     "extra": {...}}        # plain numbers, strings, lists: the epoch, a history, an accuracy

It is written to a temporary file and renamed into place, so an interrupted save never leaves a
half-written file, and it is read back with ``weights_only=True``, which refuses to run code
hidden in a file from somewhere else.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from course_utils import config

FORMAT = 1


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model it is loaded into. The message names the mismatch."""


class _NamedImages(Protocol):
    name: str
    image_shape: tuple[int, int, int]


def checkpoint_path(kind: str, data: _NamedImages) -> Path:
    """Where the notebooks keep a model of ``kind`` trained on ``data`` in the current profile.

    For example ``checkpoints/vae-mnist-28x28-full.pt``. The profile is part of the name because
    the ``fast`` profile trains smaller models than ``full``.
    """
    if not kind or not kind.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"kind must be a short name such as 'vae', got {kind!r}")
    _, height, width = data.image_shape
    return config.checkpoint_dir() / f"{kind}-{data.name}-{height}x{width}-{config.profile()}.pt"


def save_checkpoint(path: str | Path, modules: dict[str, Any], **extra: Any) -> Path:
    """Save the state of ``modules`` (models and optimizers, by name) and ``extra`` atomically."""
    if not modules:
        raise ValueError("save_checkpoint needs at least one module to save")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "modules": {
            name: {"class": type(module).__name__, "state": module.state_dict()} for name, module in modules.items()
        },
        "extra": extra,
    }
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        torch.save(payload, temporary)
        os.replace(temporary, path)  # atomic on POSIX and Windows
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def load_checkpoint(path: str | Path, modules: dict[str, Any], map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint saved by :func:`save_checkpoint` into ``modules``; return its ``extra``.

    Every module must be present in the file with the same class and the same parameter names and
    shapes; otherwise a :class:`CheckpointMismatchError` says what differs (nothing is loaded).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        raise CheckpointMismatchError(
            f"{path} is not a readable checkpoint ({type(error).__name__}: {error}); delete it and train again."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointMismatchError(f"{path} was not written by course_utils.checkpoints (format {FORMAT})")
    saved = payload["modules"]
    for name, module in modules.items():
        if name not in saved:
            raise CheckpointMismatchError(f"{path} holds no module named {name!r}; it has {sorted(saved)}")
        _check_compatible(path, name, module, saved[name])
    for name, module in modules.items():
        module.load_state_dict(saved[name]["state"])
    return payload["extra"]


def _check_compatible(path: Path, name: str, module: Any, saved: dict) -> None:
    cls = type(module).__name__
    if saved["class"] != cls:
        raise CheckpointMismatchError(f"{path}: {name!r} was saved from a {saved['class']}, not a {cls}")
    if not isinstance(module, nn.Module):
        return  # optimizers: load_state_dict checks the parameter groups itself
    ours = module.state_dict()
    theirs = saved["state"]
    missing = sorted(set(ours) - set(theirs))
    unexpected = sorted(set(theirs) - set(ours))
    if missing or unexpected:
        raise CheckpointMismatchError(
            f"{path}: {name!r} ({cls}) has a different architecture: "
            f"missing in the file {missing[:5]}, unexpected in the file {unexpected[:5]}"
        )
    for key, tensor in ours.items():
        if tuple(tensor.shape) != tuple(theirs[key].shape):
            raise CheckpointMismatchError(
                f"{path}: {name!r} ({cls}) parameter {key!r} has shape {tuple(theirs[key].shape)} in the file "
                f"but {tuple(tensor.shape)} in the model: it was built with other sizes "
                "(latent size, width, image size?)"
            )
