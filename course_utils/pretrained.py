"""The course's own finished models, shipped with the package, behind one switch: ``COURSE_PRETRAINED=1``.

On a slow machine (Binder's single CPU, an old laptop) the full profile's training takes long, and its time budgets
cut it short. With ``COURSE_PRETRAINED=1`` each notebook loads the model the course trained with the same recipe,
in the full profile, instead of training it: :func:`course_utils.checkpoints.checkpoint_path` calls :func:`install`,
which copies the shipped file into the checkpoint folder, and the recipe then finds a finished run and loads it.

Safety:

- Each shipped file is checked against the SHA-256 recorded in ``pretrained_weights/MANIFEST.json`` before it is
  copied. A damaged or changed file raises :class:`PretrainedWeightsError` and is never loaded.
- A file's name holds its model, its data set, its picture size and its profile (``vae-digits-8x8-full.pt``),
  and the checkpoint keeps the settings it was trained with: a model trained on other data than the student's, or
  with other settings, is never used silently (there is no file of that name, or the settings check sets it aside).
- A model the student trained already (a file in the checkpoint folder) is never replaced.

The weights are rebuilt with ``make pretrained`` (``tools/build_pretrained.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

WEIGHTS_DIR = Path(__file__).resolve().parent / "pretrained_weights"
MANIFEST_NAME = "MANIFEST.json"
SWITCH = "COURSE_PRETRAINED"
_ON, _OFF = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")
_said: set[str] = set()  # names already reported missing, so a notebook says it once


class PretrainedWeightsError(RuntimeError):
    """A shipped weights file is missing or does not match its recorded SHA-256; it was not loaded."""


def enabled() -> bool:
    """Whether ``COURSE_PRETRAINED`` asks for the course's finished models (``1``/``true``/``yes``/``on``)."""
    value = os.environ.get(SWITCH, "").strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    raise ValueError(f"{SWITCH}={os.environ[SWITCH]!r} is neither on ({', '.join(_ON)}) nor off (0, no, unset)")


def sha256_of(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, as 64 hexadecimal digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest(weights_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    """The shipped files, by name: each one's ``sha256``, ``bytes``, ``model``, ``dataset`` and ``profile``."""
    path = Path(weights_dir or WEIGHTS_DIR) / MANIFEST_NAME
    return json.loads(path.read_text())["files"] if path.exists() else {}


def describe_name(name: str) -> dict[str, str]:
    """What a checkpoint's file name says: ``vae-digits-8x8-full.pt`` -> model, dataset, size and profile
    (the size is the pictures' ``HxW``, or ``h256`` for notebook 09's character model). A companion file saved
    beside a checkpoint, such as ``gan-digits-8x8-full-extra.pt``, names its part too."""
    parts = Path(name).stem.split("-")
    at = max((i for i, part in enumerate(parts) if part in ("full", "fast")), default=-1)
    if at < 3:
        raise ValueError(f"{name!r} is not a course checkpoint name such as 'vae-digits-8x8-full.pt'")
    described = {"model": parts[0], "dataset": "-".join(parts[1 : at - 1]), "size": parts[at - 1]}
    described["profile"] = parts[at]
    if at < len(parts) - 1:
        described["part"] = "-".join(parts[at + 1 :])
    return described


def provide(target: Path) -> Path:
    """``target``, after :func:`install` has put the course's finished model there when the switch is on."""
    if enabled():
        install(target)
    return target


def install(target: str | Path, weights_dir: Path | None = None) -> bool:
    """Copy the shipped finished model named like ``target`` to ``target``, after checking its SHA-256.

    Returns True when it was installed, False when the course ships no model of that name (another data set or
    profile: the notebook trains it live, and says so once). Raises :class:`PretrainedWeightsError` for a missing
    or damaged file. Leaves an existing ``target`` alone.
    """
    target, weights_dir = Path(target), Path(weights_dir or WEIGHTS_DIR)
    if target.exists():
        return False
    shipped = manifest(weights_dir)
    entry = shipped.get(target.name)
    if entry is None:
        if target.name not in _said:
            _said.add(target.name)
            print(f"Pretrained: the course ships no {target.name} (only the full profile's models): training it here.")
        return False
    companions = [name for name in shipped if name.startswith(target.stem + "-")]  # e.g. the GAN's snapshots
    names = companions + [target.name]  # the checkpoint last: once it is there, the run counts as finished
    for name in names:  # every file checked before any is copied
        _check(weights_dir / name, shipped[name]["sha256"])
    for name in names:
        _copy(weights_dir / name, target.with_name(name))
    print(
        f"Pretrained: loading the course's finished {entry['model']} (trained on {entry['dataset']}, "
        f"{entry['profile']} profile) instead of training it. Unset {SWITCH} to watch it train."
    )
    return True


def _check(source: Path, sha256: str) -> None:
    """Raise :class:`PretrainedWeightsError` unless ``source`` exists and its bytes have the recorded SHA-256."""
    if not source.exists():
        raise PretrainedWeightsError(
            f"{source} is listed in {MANIFEST_NAME} but missing: reinstall the course, or unset {SWITCH} to train."
        )
    digest = sha256_of(source)
    if digest != sha256:
        raise PretrainedWeightsError(
            f"{source} is damaged or was changed: its SHA-256 is {digest[:16]}..., the course recorded "
            f"{sha256[:16]}.... It was not loaded. Reinstall the course (git checkout -- "
            f"course_utils/pretrained_weights, or pip install it again), or unset {SWITCH} to train the model yourself."
        )


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    shutil.copyfile(source, temporary)
    os.replace(temporary, target)  # atomic: a half-copied file is never seen


def pack(checkpoint: str | Path, weights_dir: Path | None = None) -> dict[str, Any]:
    """Copy a finished full-profile checkpoint into ``weights_dir`` for shipping, and return its manifest entry.

    Optimizer states are emptied (a finished run never steps again, and Adam's two moments would triple the size);
    everything else (weights, weight averages, history, settings, where the run stopped, a GAN's snapshots) is kept
    as it is. A companion file saved beside a checkpoint (``NAME-part.pt``) is copied as it is.
    """
    checkpoint = Path(checkpoint)
    described = describe_name(checkpoint.name)
    payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
    for module in payload.get("modules", {}).values() if isinstance(payload, dict) else ():
        state = module["state"]
        if isinstance(state, dict) and "param_groups" in state and "state" in state:
            module["state"] = {"state": {}, "param_groups": state["param_groups"]}
    weights_dir = Path(weights_dir or WEIGHTS_DIR)
    weights_dir.mkdir(parents=True, exist_ok=True)
    out = weights_dir / checkpoint.name
    torch.save(payload, out)
    return {"sha256": sha256_of(out), "bytes": out.stat().st_size, **described}


def write_manifest(entries: dict[str, dict[str, Any]], weights_dir: Path | None = None) -> Path:
    """Record the shipped files and their SHA-256 in ``weights_dir/MANIFEST.json``."""
    path = Path(weights_dir or WEIGHTS_DIR) / MANIFEST_NAME
    body = {
        "about": "The course's finished models (full profile); rebuilt by `make pretrained`. "
        "Each file is checked against its sha256 before it is loaded.",
        "files": dict(sorted(entries.items())),
    }
    path.write_text(json.dumps(body, indent=1) + "\n")
    return path
