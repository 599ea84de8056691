"""Build a 60,000-image stand-in for the downloaded MNIST, to time the course as an online student runs it.

Machines without internet cannot download MNIST, but the course must stay within its time and memory budget on the
real 60,000 training images. This writes MNIST's test split, tiled six times, as the four files torchvision keeps in
``<data dir>/MNIST/raw``, so that ``COURSE_DATA_DIR=<data dir>`` makes every notebook read it through the same
torchvision code path as a downloaded MNIST::

    python tools/mnist_stand_in.py --test-split ../shared/data/mnist-test --out /tmp/mnist60k
    COURSE_DATA_DIR=/tmp/mnist60k python tools/benchmark.py --out build/benchmark/mnist60k

Only sizes and timings mean anything on it: its training images repeat, and contain its test images.
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as `python tools/mnist_stand_in.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from course_utils.data import MNIST_TEST_SPLIT_FILES, read_idx  # noqa: E402


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (unsigned bytes) as an uncompressed IDX file, the format torchvision reads."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def build_stand_in(test_split: Path, out: Path, copies: int = 6) -> Path:
    """Write ``copies`` tiles of the test split as MNIST's training set, and the split itself as its test set."""
    if copies < 1:
        raise ValueError(f"copies must be at least 1, got {copies}")
    images = read_idx(test_split / MNIST_TEST_SPLIT_FILES[0])
    labels = read_idx(test_split / MNIST_TEST_SPLIT_FILES[1])
    raw = out / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    write_idx(raw / "train-images-idx3-ubyte", np.concatenate([images] * copies))
    write_idx(raw / "train-labels-idx1-ubyte", np.concatenate([labels] * copies))
    write_idx(raw / "t10k-images-idx3-ubyte", images)
    write_idx(raw / "t10k-labels-idx1-ubyte", labels)
    return raw


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--test-split", type=Path, required=True, help="folder with MNIST's two t10k-*.gz files")
    parser.add_argument("--out", type=Path, required=True, help="the data folder to write (COURSE_DATA_DIR)")
    parser.add_argument("--copies", type=int, default=6, help="tiles of the test split (default 6: 60,000 images)")
    args = parser.parse_args(argv)
    raw = build_stand_in(args.test_split, args.out, args.copies)
    print(f"wrote {raw}: use COURSE_DATA_DIR={args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
