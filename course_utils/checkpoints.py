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

from course_utils import config, pretrained

FORMAT = 1


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model it is loaded into. The message names the mismatch."""


class _NamedImages(Protocol):
    name: str
    image_shape: tuple[int, int, int]


def checkpoint_path(kind: str, data: _NamedImages) -> Path:
    """Where the notebooks keep a model of ``kind`` trained on ``data`` in the current profile.

    For example ``checkpoints/vae-mnist-28x28-full.pt``. The profile is part of the name because
    the ``fast`` profile trains smaller models than ``full``. With ``COURSE_PRETRAINED=1`` and no file there yet,
    the course's own finished model of that name, when it ships one, is put there first (checked against its
    SHA-256, see :mod:`course_utils.pretrained`), so the recipe loads it instead of training.
    """
    if not kind or not kind.replace("_", "").isalnum():
        raise ValueError(f"kind must be a short name such as 'vae' or 'latent_vae' (no '-'), got {kind!r}")
    _, height, width = data.image_shape
    return pretrained.provide(config.checkpoint_dir() / f"{kind}-{data.name}-{height}x{width}-{config.profile()}.pt")


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


def load_checkpoint(
    path: str | Path,
    modules: dict[str, Any],
    map_location: str | torch.device = "cpu",
    settings: dict[str, Any] | None = None,
    required: tuple[str, ...] = (),
) -> dict:
    """Load a checkpoint saved by :func:`save_checkpoint` into ``modules``; return its ``extra``.

    Every module must be present in the file with the same class and the same parameter names and
    shapes, and with ``settings`` (a recipe's settings, e.g. ``VAEConfig(...).model_settings()``) the
    file's ``extra["settings"]`` must hold the same values; otherwise a :class:`CheckpointMismatchError`
    says what differs and nothing is loaded. So does a file whose ``extra`` lacks a key named in ``required``.
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
    missing = [key for key in required if key not in payload["extra"]]
    if missing:
        raise CheckpointMismatchError(f"{path} was saved by an older version of the course (it lacks {missing})")
    if settings is not None:
        _check_settings(path, payload["extra"].get("settings"), settings)
    saved = payload["modules"]
    for name, module in modules.items():
        if name not in saved:
            raise CheckpointMismatchError(f"{path} holds no module named {name!r}; it has {sorted(saved)}")
        _check_compatible(path, name, module, saved[name])
    for name, module in modules.items():
        module.load_state_dict(saved[name]["state"])
    return payload["extra"]


def _check_settings(path: Path, saved: dict[str, Any] | None, wanted: dict[str, Any]) -> None:
    if saved is None:
        raise CheckpointMismatchError(f"{path} does not record the settings it was trained with (an older checkpoint)")
    differences = [
        f"{key}={_plain(saved.get(key, '(not saved)'))!r} in the file, {value!r} now"
        for key, value in wanted.items()
        if _plain(saved.get(key, "(not saved)")) != _plain(value)
    ]
    if differences:
        raise CheckpointMismatchError(
            f"{path} was trained with other settings: {'; '.join(differences)}. To use it, set these back; "
            "to train a new model, delete the file or pass another checkpoint path."
        )


def _plain(value: Any) -> Any:
    # A checkpoint may hand tuples back as lists: compare both as lists.
    return [_plain(v) for v in value] if isinstance(value, (tuple, list)) else value


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
