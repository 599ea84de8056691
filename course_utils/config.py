"""Run-time settings shared by every notebook: device, seeds, run profile, folders.

This module sits at the bottom of the package: it imports nothing else from
``course_utils``, so every other module (and every test) can rely on it alone.

Environment variables (all optional):

``COURSE_PROFILE``
    ``full`` (default: the real lesson, minutes on a laptop CPU) or ``fast``
    (CI: the same code with tiny sizes, seconds).
``COURSE_DATASET``
    Which data the notebooks use: ``auto`` (default), ``mnist``,
    ``fashion-mnist`` or ``digits``.
``COURSE_DATA_DIR`` / ``COURSE_CHECKPOINT_DIR``
    Where data sets are downloaded and models are saved.
``COURSE_DEVICE``
    Force a device (``cpu``, ``cuda``, ``mps``) instead of choosing the best one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import itertools
import os
import random
import sys
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

PROFILES = ("full", "fast")
"""The run profiles. The profile changes sizes (epochs, subsets, widths), never the code path."""

_T = TypeVar("_T")


def _project_root() -> Path:
    """The course's checkout; where course_utils was installed as a plain package (Colab), the current folder."""
    package_parent = Path(__file__).resolve().parents[1]
    return package_parent if (package_parent / "pyproject.toml").is_file() else Path.cwd()


PROJECT_ROOT = _project_root()
"""Data, checkpoints and results live below this folder unless their environment variables say otherwise."""


def profile() -> str:
    """Return the run profile named by ``COURSE_PROFILE`` (``full`` when unset).

    Raises a ``ValueError`` that lists the valid names when the variable holds anything else.
    """
    name = os.environ.get("COURSE_PROFILE", "full").strip().lower() or "full"
    if name not in PROFILES:
        raise ValueError(
            f"COURSE_PROFILE={name!r} is not a run profile; use one of {', '.join(PROFILES)} "
            "(for example `COURSE_PROFILE=fast make test`)."
        )
    return name


def by_profile(*, full: _T, fast: _T) -> _T:
    """Pick a number for the current profile: ``EPOCHS = by_profile(full=10, fast=1)``."""
    return full if profile() == "full" else fast


def is_fast() -> bool:
    """True in the ``fast`` (CI) profile."""
    return profile() == "fast"


def device() -> torch.device:
    """The best available device: CUDA, then Apple's MPS, then the CPU.

    ``COURSE_DEVICE`` overrides the choice; asking for a device that is not there is an error.
    """
    wanted = os.environ.get("COURSE_DEVICE", "").strip().lower()
    if wanted:
        if wanted == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("COURSE_DEVICE=cuda but PyTorch sees no CUDA GPU; unset it to use the CPU.")
        if wanted == "mps" and not _mps_available():
            raise RuntimeError("COURSE_DEVICE=mps but Apple's MPS backend is not available; unset it.")
        if wanted not in ("cpu", "cuda", "mps"):
            raise ValueError(f"COURSE_DEVICE={wanted!r} is not one of cpu, cuda, mps.")
        return torch.device(wanted)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


_CPU = torch.device("cpu")


def device_of(model: Any, default: torch.device | None = _CPU) -> torch.device | None:
    """The device ``model`` computes on: where its parameters (or buffers) live.

    ``model`` is an ``nn.Module`` or one of its bound methods (``vae.decode``, ``classifier.features``);
    for anything else, such as a plain function, whose device cannot be known, ``default`` is returned.
    Helpers that are handed a model send their inputs here, so that they work wherever the model was
    trained (CPU, CUDA or MPS).
    """
    owner = getattr(model, "__self__", model)
    if isinstance(owner, torch.nn.Module):
        for tensor in itertools.chain(owner.parameters(), owner.buffers()):
            return tensor.device
    return default


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) and return a seeded CPU generator.

    Pass the generator to data loaders and samplers so that their order is repeatable too.
    Results still differ between CPU and GPU and across PyTorch releases: round what you print.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def cpu_budget(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """How many CPU cores this process may really use.

    ``os.cpu_count()`` reports the whole host, but a container (Binder gives 1 CPU) may be limited by a cgroup
    quota or a CPU affinity mask. PyTorch's default is one thread per host core; far more threads than cores
    makes small models many times slower, so the course sizes its thread pool from this number.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = None
    try:  # cgroup v2: "max 100000" or "100000 100000"
        limit, period = (cgroup_root / "cpu.max").read_text().split()[:2]
        if limit != "max":
            quota = int(limit) / int(period)
    except (OSError, ValueError):
        try:  # cgroup v1
            limit = int((cgroup_root / "cpu" / "cpu.cfs_quota_us").read_text())
            period = int((cgroup_root / "cpu" / "cpu.cfs_period_us").read_text())
            if limit > 0:
                quota = limit / period
        except (OSError, ValueError):
            pass
    if quota is not None:
        cores = min(cores, max(1, int(quota + 0.5)))
    return max(1, cores)


THREAD_WORK = ("batched", "sequential")
"""The kinds of work :func:`use_threads` knows, each with its own CPU thread count."""

_TORCH_DEFAULT_THREADS = torch.get_num_threads()  # PyTorch's own choice, read before the course changes it


def use_threads(work: str = "batched") -> int:
    """Set PyTorch's CPU thread count for the kind of work that comes next; return the count now in use.

    A CPU thread pool pays off when each operation is big enough to share out, because handing work to the
    other threads and waiting for all of them to finish costs time on every single operation.

    ``"batched"`` (the default, set when the course is imported): as many threads as PyTorch chooses, but
    never more than the cores this process may really use (:func:`cpu_budget`; Binder gives 1). Convolutions
    over a batch of pictures are big operations that split well: the diffusion U-Net of notebook 05 trains
    markedly faster on 2 threads than on 1.

    ``"sequential"``: one thread. A small recurrent network (notebook 09's GRU reads one character after
    another) or a tiny test model does thousands of tiny matrix products in a row; each is too small to
    share out, so extra threads only add waiting, and on a busy or shared CPU they also wait for one another
    to get a core.

    Only affects the CPU: a GPU runs its own work in parallel whatever this says.
    """
    if work not in THREAD_WORK:
        raise ValueError(f"work must be one of {THREAD_WORK}, got {work!r}")
    threads = 1 if work == "sequential" else max(1, min(_TORCH_DEFAULT_THREADS, cpu_budget()))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def _folder(variable: str, default: Path) -> Path:
    # A relative folder in a variable counts from the project, not from the kernel's working directory (Jupyter
    # runs each notebook in notebooks/), so `COURSE_CHECKPOINT_DIR=my_models make lab` means <project>/my_models.
    path = Path(os.environ.get(variable) or default).expanduser()
    path = path if path.is_absolute() else PROJECT_ROOT / path
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """Folder for downloaded data sets (``COURSE_DATA_DIR``, default ``<project>/data``)."""
    return _folder("COURSE_DATA_DIR", PROJECT_ROOT / "data")


def checkpoint_dir() -> Path:
    """Folder for saved models (``COURSE_CHECKPOINT_DIR``, default ``<project>/checkpoints``)."""
    return _folder("COURSE_CHECKPOINT_DIR", PROJECT_ROOT / "checkpoints")


def dataset_choice() -> str:
    """The data set named by ``COURSE_DATASET`` (``auto`` when unset)."""
    return os.environ.get("COURSE_DATASET", "auto").strip().lower() or "auto"


def leave_triton_unloaded_without_gpu() -> bool:
    """Keep PyTorch from loading Triton, its GPU compiler, in a process that has no CUDA GPU; True if it did.

    Linux's pip wheels of torch bring Triton along, and the first optimizer a notebook builds imports
    ``torch._dynamo``, which imports Triton only to ask whether it is installed. That maps about 250 MB of
    shared libraries (Triton's, NVRTC's, nvJitLink's) that a CPU never uses, a big share of Binder's 2 GB.
    ``sys.modules["triton"] = None`` is Python's documented way to make an import fail, so PyTorch answers "not
    installed" (``torch.compile`` on a CPU does not use Triton). With a CUDA GPU, or once Triton is loaded,
    nothing changes.
    """
    if "triton" in sys.modules or torch.cuda.is_available():
        return False
    sys.modules["triton"] = None
    return True


def release_freed_memory() -> bool:
    """Hand memory that training freed back to the operating system (Linux); True if it was asked to.

    glibc's ``malloc`` keeps freed blocks for reuse, so after training the process still holds the batches'
    activations it no longer needs, and ``malloc_trim`` hands a good share of them back (after notebook 06's training
    with 60,000 MNIST pictures, hundreds of MB). Whatever the next cell allocates then starts lower, which keeps
    the notebook's peak (Binder's limit is 2 GB) lower. :func:`course_utils.loop.fit` calls it when it ends.
    Elsewhere (macOS, Windows, musl) it does nothing.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


@functools.cache
def _malloc_trim() -> Any:
    # Looked up once: finding the C library asks ldconfig, which costs more than the trim itself.
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


use_threads("batched")  # on import: every notebook imports config before it trains anything
leave_triton_unloaded_without_gpu()
