"""Data sets and loaders, all in one convention.

Every data set comes back as an :class:`ImageData`:

* ``images``: a float32 tensor of shape ``N x 1 x H x W`` with pixel values in ``[0, 1]``
  (0 = background, 1 = ink);
* ``labels``: an int64 tensor of shape ``N`` with the class of each image (0-9).

Models that want pixels in ``[-1, 1]`` (GANs with a Tanh output, diffusion) convert with
:func:`to_signed` and back with :func:`to_unit`.

Names: ``mnist`` and ``fashion-mnist`` (28x28, through torchvision, downloaded into the data
folder when the network allows), ``digits`` (8x8, 1,797 real handwritten digits bundled with
scikit-learn: always offline), ``mnist-test-split`` (only MNIST's 10,000 test images, from a folder
that ``COURSE_MNIST_TEST_DIR`` names: its first 8,000 serve as training images and its last 2,000 as
test images), and ``auto`` (the test-split folder when that variable names one, else MNIST where it
is on disk or can be downloaded, else the digits, saying which and why).

The package never looks outside the project for data: a folder elsewhere is used only when an
environment variable names it.
"""

from __future__ import annotations

import gzip
import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

from course_utils import config

DATASETS = ("mnist", "fashion-mnist", "digits", "mnist-test-split")
"""The data set names :func:`load_dataset` accepts (besides ``auto``)."""

SPLITS = ("train", "test")

CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "digits": [str(d) for d in range(10)],
    "mnist-test-split": [str(d) for d in range(10)],
    "fashion-mnist": [
        "T-shirt",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
}

# A classroom (or CI) that has only MNIST's test split (the two files t10k-images-idx3-ubyte.gz and
# t10k-labels-idx1-ubyte.gz) names their folder in this variable. Its first 8,000 images serve as
# "train" and its last 2,000 as "test", so the two never overlap. The data set gets its own name,
# so its checkpoints, critic and results never mix with those of the real 60,000-image MNIST.
MNIST_TEST_SPLIT_VARIABLE = "COURSE_MNIST_TEST_DIR"
MNIST_TEST_SPLIT_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
TEST_SPLIT_TRAIN_SIZE = 8000

_TORCHVISION_FOLDER = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}


class DataUnavailableError(RuntimeError):
    """A data set could not be found on disk nor downloaded. The message says how to fix it."""


@dataclass
class ImageData:
    """A labelled image data set held in memory (see the module docstring for the convention)."""

    images: torch.Tensor
    labels: torch.Tensor
    name: str
    source: str

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[1] != 1:
            raise ValueError(f"images must be N x 1 x H x W, got shape {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels must have shape ({self.images.shape[0]},), got {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of one image, e.g. ``(1, 28, 28)``."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def class_names(self) -> list[str]:
        """Readable names of the ten classes."""
        return CLASS_NAMES[self.name]

    def subset(self, n: int | None) -> ImageData:
        """The first ``n`` images (all of them when ``n`` is None or larger than the set)."""
        if n is None or n >= len(self):
            return self
        if n <= 0:
            raise ValueError(f"subset size must be positive, got {n}")
        return ImageData(self.images[:n], self.labels[:n], self.name, self.source)

    def loader(self, batch_size: int, shuffle: bool = True, seed: int = 0) -> DataLoader:
        """A :func:`make_loader` over this data set."""
        return make_loader(self.images, self.labels, batch_size=batch_size, shuffle=shuffle, seed=seed)

    def __repr__(self) -> str:
        h, w = self.images.shape[2:]
        return f"ImageData({self.name}: {len(self)} images of 1x{h}x{w} in [0, 1], from {self.source})"


def make_loader(*tensors: torch.Tensor, batch_size: int, shuffle: bool = True, seed: int = 0) -> DataLoader:
    """A DataLoader over in-memory tensors that yields whole batches at once.

    It indexes each tensor with a batch of indices (no per-image Python work, much faster than
    the default DataLoader over a ``TensorDataset``), keeps ``num_workers=0`` (Binder has almost
    no shared memory) and shuffles with its own seeded generator, so epochs are repeatable.
    """
    if not tensors:
        raise ValueError("make_loader needs at least one tensor")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    dataset = TensorDataset(*tensors)
    if shuffle:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
    else:
        sampler = SequentialSampler(dataset)
    batches = BatchSampler(sampler, batch_size=batch_size, drop_last=False)
    return DataLoader(dataset, sampler=batches, batch_size=None, num_workers=0)


def is_small(image_shape: tuple[int, int, int]) -> bool:
    """True for tiny pictures such as the bundled 8x8 digits: the course's presets then pick smaller models and
    more passes over the (fewer) pictures."""
    return image_shape[-1] < 16


def to_signed(images: torch.Tensor) -> torch.Tensor:
    """Map pixels from ``[0, 1]`` to ``[-1, 1]`` (for Tanh generators and diffusion)."""
    return images * 2.0 - 1.0


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """Map pixels from ``[-1, 1]`` back to ``[0, 1]``, clamping what falls outside."""
    return ((images + 1.0) / 2.0).clamp(0.0, 1.0)


# --------------------------------------------------------------------------- loading


def load_dataset(
    name: str | None = None, split: str = "train", limit: int | None = None, verbose: bool = True
) -> ImageData:
    """Load a data set by name as an :class:`ImageData`.

    ``name`` is one of :data:`DATASETS` or ``auto``; None reads ``COURSE_DATASET`` (default
    ``auto``). ``limit`` keeps only the first images. With ``verbose`` it prints one line
    saying which data is in use and why.
    """
    name = (name or config.dataset_choice()).strip().lower()
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if name == "auto":
        name, why = _choose_auto()
    elif name in DATASETS:
        why = "asked for by name"
    else:
        raise ValueError(
            f"unknown data set {name!r}; choose one of {', '.join(DATASETS)} or 'auto' "
            "(COURSE_DATASET sets the default)"
        )
    data = _load_once(name, split).subset(limit)
    if verbose:
        print(f"Data: {data!r}; {why}.")
    return data


_LOADED: dict[tuple[str, ...], ImageData] = {}


def _load_once(name: str, split: str) -> ImageData:
    """Each data set is read once per process and then shared: notebook 05 holds MNIST's training pictures, and
    the critic's helper asks for them again; a second copy would cost 190 MB of a 2 GB Binder. The pictures are
    shared too, so change copies of them (``images.clone()``), never the tensors themselves."""
    key = (name, split, str(config.data_dir()), os.environ.get(MNIST_TEST_SPLIT_VARIABLE, ""))
    if key not in _LOADED:
        if name == "digits":
            _LOADED[key] = _load_digits(split)
        elif name == "mnist-test-split":
            _LOADED[key] = _load_mnist_test_split(split)
        else:
            _LOADED[key] = _load_torchvision(name, split)
    return _LOADED[key]


def _choose_auto() -> tuple[str, str]:
    if _mnist_test_split_dir() is not None:
        return "mnist-test-split", f"{MNIST_TEST_SPLIT_VARIABLE} names a folder with MNIST's test split"
    if _torchvision_files_present("mnist", config.data_dir()):
        return "mnist", f"MNIST found in {config.data_dir()}"
    if os.environ.get("COURSE_OFFLINE", "") not in ("", "0"):
        return "digits", "COURSE_OFFLINE is set, so the bundled 8x8 digits are used"
    try:
        _download_torchvision("mnist", config.data_dir(), train=True)
        return "mnist", "MNIST was downloaded"
    except DataUnavailableError:
        return (
            "digits",
            "MNIST is not on disk and could not be downloaded (offline?), so the bundled 8x8 digits are used",
        )


def _load_digits(split: str) -> ImageData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(bunch.target, dtype=torch.int64)
    # A fixed shuffle, so that train and test both hold every writer and every class.
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    n_test = 360
    index = order[n_test:] if split == "train" else order[:n_test]
    return ImageData(images[index], labels[index], "digits", "scikit-learn's bundled 8x8 digits")


def _torchvision_files_present(name: str, root: Path) -> bool:
    raw = root / _TORCHVISION_FOLDER[name] / "raw"
    return (raw / "train-images-idx3-ubyte").exists() and (raw / "t10k-images-idx3-ubyte").exists()


def _mnist_test_split_dir() -> Path | None:
    """The folder ``COURSE_MNIST_TEST_DIR`` names, or None when the variable is unset.

    A variable that names a folder without the two test-split files is a mistake worth stopping for.
    """
    value = os.environ.get(MNIST_TEST_SPLIT_VARIABLE, "").strip()
    if not value:
        return None
    folder = Path(value).expanduser()
    missing = [name for name in MNIST_TEST_SPLIT_FILES if not (folder / name).is_file()]
    if missing:
        raise DataUnavailableError(
            f"{MNIST_TEST_SPLIT_VARIABLE}={value} but {folder} lacks {', '.join(missing)}. Point the variable at "
            "the folder that holds MNIST's test split (both files, gzipped), or unset it."
        )
    return folder


def _load_torchvision(name: str, split: str) -> ImageData:
    root = config.data_dir()
    if not _torchvision_files_present(name, root):
        _download_torchvision(name, root, train=split == "train")
    images, labels = _read_torchvision_files(name, root, prefix="train" if split == "train" else "t10k")
    return ImageData(images, labels, name, f"torchvision files in {root}")


def _load_mnist_test_split(split: str) -> ImageData:
    folder = _mnist_test_split_dir()
    if folder is None:
        raise DataUnavailableError(
            f"the mnist-test-split data set needs {MNIST_TEST_SPLIT_VARIABLE} to name a folder holding "
            f"{' and '.join(MNIST_TEST_SPLIT_FILES)}; or choose mnist (downloaded) or digits (offline)."
        )
    images = read_idx(folder / MNIST_TEST_SPLIT_FILES[0])
    labels = read_idx(folder / MNIST_TEST_SPLIT_FILES[1])
    cut = TEST_SPLIT_TRAIN_SIZE
    part = slice(0, cut) if split == "train" else slice(cut, None)
    which = f"first {cut:,}" if split == "train" else f"last {len(labels) - cut:,}"
    return ImageData(
        torch.from_numpy(images[part].copy()).unsqueeze(1).to(torch.float32).div_(255.0),
        torch.from_numpy(labels[part].astype(np.int64)),
        "mnist-test-split",
        f"MNIST's test split in {folder} ({which} images)",
    )


def _torchvision_class(name: str):
    from torchvision import datasets

    return datasets.MNIST if name == "mnist" else datasets.FashionMNIST


def _read_torchvision_files(name: str, root: Path, prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The images (N x 1 x H x W in [0, 1]) and labels of the IDX files torchvision keeps in ``root``.

    They are read directly, not through torchvision's dataset class: importing torchvision alone costs about
    160 MB of memory, which a Binder pod cannot spare.
    """
    folder = root / _TORCHVISION_FOLDER[name] / "raw"
    try:
        pixels = read_idx(folder / f"{prefix}-images-idx3-ubyte")
        labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte")
        if pixels.ndim != 3 or labels.shape != pixels.shape[:1]:
            raise ValueError(f"images of shape {pixels.shape} do not match labels of shape {labels.shape}")
    except (OSError, ValueError) as error:
        raise DataUnavailableError(
            f"The {name} files in {folder} could not be read ({type(error).__name__}: {error}). "
            f"They are probably damaged: delete {folder} and run again to download them afresh, "
            "or use the offline digits with COURSE_DATASET=digits."
        ) from None
    images = torch.from_numpy(pixels.copy()).unsqueeze(1).to(torch.float32).div_(255.0)  # in place: 188 MB at 60k
    return images, torch.from_numpy(labels.astype(np.int64))


def _download_torchvision(name: str, root: Path, train: bool, timeout_s: float = 10.0) -> None:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)  # an offline machine may drop packets instead of refusing
    try:
        _torchvision_class(name)(root=str(root), train=train, download=True)
    except Exception as error:
        raise DataUnavailableError(
            f"Could not download {name} into {root} ({type(error).__name__}: {error}). "
            "Options: connect to the internet and run again; copy the four torchvision files "
            f"into {root / _TORCHVISION_FOLDER[name] / 'raw'}; set COURSE_DATA_DIR to a folder that has them; "
            "or use the offline 8x8 digits with COURSE_DATASET=digits."
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not, into a NumPy array.

    Raises a ``ValueError`` naming the file when it is truncated or not IDX at all.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"{path} could not be read as IDX: {error}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path} is truncated: its header is incomplete")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise ValueError(
            f"{path} is truncated or damaged: header promises {expected} values of shape {shape}, "
            f"found {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)
