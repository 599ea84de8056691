"""The random number generators a training run saves with its checkpoint, and puts back when it resumes.

:func:`course_utils.loop.fit` keeps the step's own generators (the noise), the loader's shuffling generator and
PyTorch's global ones, so that a resumed run draws the same numbers as if it had never stopped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


def generators_to_keep(loader: Iterable, generators: dict[str, torch.Generator]) -> dict[str, torch.Generator]:
    """The generators a checkpoint keeps: the step's own ones and the loader's shuffling generator."""
    named = dict(generators)
    if "shuffle" in named:
        raise ValueError("'shuffle' is the name of the loader's own generator; give yours another name")
    # course_utils.data.make_loader: DataLoader(sampler=BatchSampler(RandomSampler(generator=...)))
    sampler = getattr(getattr(loader, "sampler", None), "sampler", None)
    shuffle = getattr(sampler, "generator", None)
    if isinstance(shuffle, torch.Generator):
        named["shuffle"] = shuffle
    return named


def rng_state(named: dict[str, torch.Generator]) -> dict[str, Any]:
    """The states of the ``named`` generators and of PyTorch's global ones (CPU, CUDA, MPS), to save."""
    state: dict[str, Any] = {name: generator.get_state() for name, generator in named.items()}
    state["torch"] = torch.get_rng_state()  # dropout, reparameterization, a GAN's noise: PyTorch's global generator
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if torch.backends.mps.is_available():  # a VAE on a Mac draws its codes on the MPS device
        state["mps"] = torch.mps.get_rng_state()
    return state


def set_rng(named: dict[str, torch.Generator], state: dict[str, Any]) -> None:
    """Put back the generator states that :func:`rng_state` saved."""
    for name, generator in named.items():
        if name in state:
            generator.set_state(state[name])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "mps" in state and torch.backends.mps.is_available():
        torch.mps.set_rng_state(state["mps"])
