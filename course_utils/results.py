"""Figures that notebooks report, kept as small JSON files so the benchmark can collect them.

A notebook that trains a generative model calls ``record("vae", {...})`` with its quality and
speed figures; ``load_all()`` reads every record back. The folder is ``build/results`` in the
project, or ``COURSE_RESULTS_DIR``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from course_utils import config


def results_dir() -> Path:
    """The folder holding the records (``COURSE_RESULTS_DIR``, default ``<project>/build/results``)."""
    path = Path(os.environ.get("COURSE_RESULTS_DIR") or config.PROJECT_ROOT / "build" / "results")
    path.mkdir(parents=True, exist_ok=True)
    return path


def record(kind: str, figures: dict[str, Any]) -> Path:
    """Write ``figures`` (numbers and short strings) for the model ``kind``; return the file."""
    if not kind or not kind.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"kind must be a short name such as 'vae', got {kind!r}")
    clean: dict[str, Any] = {"kind": kind, "profile": config.profile()}
    for key, value in figures.items():
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, float):
            value = value if math.isfinite(value) else None
        elif not isinstance(value, (int, str, bool, type(None), list)):
            raise TypeError(f"figure {key!r} must be a number, string or list, got {type(value).__name__}")
        clean[key] = value
    path = results_dir() / f"{kind}.json"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(clean, indent=2))
    os.replace(temporary, path)
    return path


def load_all() -> dict[str, dict[str, Any]]:
    """Every record in the folder, by kind."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(results_dir().glob("*.json"))}


def recorded(kind: str, dataset: str) -> dict[str, Any]:
    """The record of ``kind`` when it was made on ``dataset`` (e.g. ``'mnist 28x28'``) in this run profile, else ``{}``.

    A notebook comparing itself with another notebook's figures must not compare with a run on other data or in
    another profile, which a shared results folder may still hold.
    """
    figures = load_all().get(kind, {})
    return figures if figures.get("dataset") == dataset and figures.get("profile") == config.profile() else {}
