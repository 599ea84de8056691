"""Helpers that several test modules share (pytest puts ``tests/`` on ``sys.path``: ``from helpers import ...``)."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import torch

from course_utils.data import ImageData


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    """Write ``array`` (unsigned bytes) as an IDX file, MNIST's format; gzipped with ``compress``."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as handle:
        handle.write(payload)


def make_tiny_mnist(root: Path, n_train: int = 12, n_test: int = 6, folder: str = "MNIST") -> Path:
    """A torchvision-style MNIST folder under ``root`` (``MNIST/raw``) with a few random 28x28 pictures."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, size=(n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    return raw


def make_test_split_folder(folder: Path, n: int = 10) -> Path:
    """A folder holding a tiny stand-in for MNIST's gzipped test split (what ``COURSE_MNIST_TEST_DIR`` names)."""
    folder.mkdir()
    images = np.arange(n * 28 * 28).reshape(n, 28, 28) % 256
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images, compress=True)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(n) % 10, compress=True)
    return folder


def blobs(n: int = 64, size: int = 8) -> ImageData:
    """Tiny 8x8 'digits' of two classes: a bright square top left (class 0) or bottom right (class 1), so a few
    diffusion steps learn something (the guided recipe's tests use the labels too)."""
    images = torch.zeros(n, 1, size, size)
    labels = torch.arange(n) % 2
    images[labels == 0, :, 1:4, 1:4] = 1.0
    images[labels == 1, :, 4:7, 4:7] = 1.0
    return ImageData(images, labels, "digits", "test blobs")


def data_world() -> dict[str, str]:
    """The data set a notebook run in a fresh kernel uses, as its environment: the bundled digits, unless the caller
    named one (``COURSE_DATASET``, or ``COURSE_MNIST_TEST_DIR`` as CI's second world does). The Makefile's nbval
    targets pin the same, so a test sees the same world whatever MNIST lies in ``data/`` and whether or not the
    machine is online."""
    chosen = os.environ.get("COURSE_DATASET", "").strip() or os.environ.get("COURSE_MNIST_TEST_DIR", "").strip()
    return {} if chosen else {"COURSE_DATASET": "digits"}
