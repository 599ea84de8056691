"""The training loop: one :func:`fit` around any step, and what every training run needs.

Each model's *step* (one optimisation step on one batch) is written out in full in its recipe
(:mod:`course_utils.recipes`). :func:`fit` runs a step over the batches for some epochs and adds what
nobody wants to read every time: a progress bar, a :class:`History` of the losses, a guard against
NaN/inf, budgets (epochs, steps, seconds) and checkpoints.

A checkpoint keeps everything a run needs to carry on as if it had never stopped: the weights and
optimizers, the states of the random number generators (the loader's shuffling, the noise, PyTorch's
global one), how far into the epoch the run got, and the settings it was trained with. A run stopped
by its budget or by Ctrl-C is saved where it stopped and the next call resumes at the very next batch,
so on the CPU a resumed run ends with the same weights as an uninterrupted one, bit for bit (the tests check it).
On a GPU the generators are saved too (CUDA's and Apple's MPS), but some GPU kernels (cuDNN's convolutions)
do not give the same bits twice, so a resumed run there ends close to, not exactly at, the uninterrupted one.
"""

from __future__ import annotations

import functools
import math
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from course_utils.checkpoints import CheckpointMismatchError, load_checkpoint, save_checkpoint
from course_utils.config import release_freed_memory
from course_utils.generators import generators_to_keep, rng_state, set_rng
from course_utils.history import History

BUDGET = {"budget": True}
"""Field metadata for settings that only change how long a run trains (see :class:`TrainingConfig`)."""
SAMPLING = {"sampling": True}
"""Field metadata for settings that only change how a trained model is used: sampler steps, DDIM's eta, the guidance
scale, the precision, the snapshots kept (see :class:`TrainingConfig`)."""


class NonFiniteLossError(RuntimeError):
    """A training step returned NaN or infinity; the message says where and what to try."""


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """What every recipe's settings share: the seed, the batch size, and how long to train.

    Each model family extends it with its own sizes and optimizer settings (e.g.
    :class:`course_utils.recipes.autoencoder.VAEConfig`). The settings are saved in the checkpoint and
    compared when it is loaded. Fields marked ``BUDGET`` (``images``, ``epochs``, ``max_steps``,
    ``max_seconds``) only say how long to train: a student who raises them wants to *continue* the saved
    run, so they never make a checkpoint mismatch. Budgets count the whole run, across resumes:
    ``max_seconds=390`` means 390 s of training in all, however many times the notebook is run. Fields marked
    ``SAMPLING`` (e.g. ``sample_steps``) only say how the trained model is sampled: they may change freely, and a
    model trained with 20 DDIM steps samples with 50 without being trained again.

    ``images``, when given, replaces ``epochs``: the run trains on about that many pictures (repeats
    counted), rounded to whole passes over the data, at least one. So a run lasts about as long on the
    60,000 downloaded MNIST digits as on 8,000 of them, where a budget in epochs would train 7.5 times longer.
    """

    seed: int = 0
    batch_size: int = 128
    images: int | None = field(default=None, metadata=BUDGET)
    epochs: int = field(default=1, metadata=BUDGET)
    max_steps: int | None = field(default=None, metadata=BUDGET)
    max_seconds: float | None = field(default=None, metadata=BUDGET)

    def __post_init__(self) -> None:
        if self.batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        if self.images is not None and self.images <= 0:
            raise ValueError(f"images must be positive or None, got {self.images}")
        if self.max_steps is not None and self.max_steps <= 0:
            raise ValueError(f"max_steps must be positive or None, got {self.max_steps}")
        if self.max_seconds is not None and self.max_seconds < 0:
            raise ValueError(f"max_seconds must be >= 0 or None, got {self.max_seconds}")

    def epochs_for(self, n_images: int) -> int:
        """How many passes over ``n_images`` pictures this budget asks for (see ``images`` above)."""
        if self.images is None:
            return self.epochs
        if n_images <= 0:
            raise ValueError(f"a budget in images needs a non-empty data set, got {n_images} pictures")
        return max(1, round(self.images / n_images))

    def model_settings(self) -> dict[str, Any]:
        """The settings a checkpoint must match, those that shape the weights: every field except the budgets
        and the sampling settings."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if not (f.metadata.get("budget") or f.metadata.get("sampling"))
        }


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Run the body with ``model`` in eval mode and without gradients, then put its mode back as it was.

    Every ``sample_*`` helper uses it: batch norm and dropout behave as at test time while pictures
    are made, and a model that was training carries on training afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def fit(
    step_fn: Callable[[Any], dict[str, float]],
    loader: Iterable,
    epochs: int | None = None,
    *,
    settings: TrainingConfig | None = None,
    desc: str = "training",
    checkpoint: str | Path | None = None,
    modules: dict[str, Any] | None = None,
    on_epoch_end: Callable[[int, History], None] | None = None,
    max_steps: int | None = None,
    max_seconds: float | None = None,
) -> History:
    """Run ``step_fn`` on every batch of ``loader`` for ``epochs`` epochs and return the history.

    ``step_fn(batch)`` does one optimisation step and returns the numbers to log, e.g.
    ``{"loss": 0.31}``. ``max_steps`` and ``max_seconds`` end the run early; they count the whole run,
    across resumes. A recipe passes its ``settings`` (a :class:`TrainingConfig`) instead of the three.

    With ``checkpoint`` (a path) and ``modules`` (what to keep, by name: models, optimizers, anything with
    a ``state_dict``, and the ``torch.Generator`` objects the step draws noise from), the run is saved
    after every epoch and wherever it stops, together with the states of the loader's shuffling
    generator and of PyTorch's global generator. A later call with the same path resumes at the next batch, or
    simply loads a finished run. A checkpoint that does not fit (another architecture, other settings)
    is moved aside as ``*.stale.pt`` with a message that says what differs, and training starts afresh.
    The first Ctrl-C (or Jupyter's interrupt button) stops after the current step and saves; a second
    one stops at once.
    """
    if settings is not None:
        if epochs is not None or max_steps is not None or max_seconds is not None:
            raise ValueError("give the run's length in settings or as epochs/max_steps/max_seconds, not both")
        epochs, max_steps, max_seconds = settings.epochs, settings.max_steps, settings.max_seconds
        if settings.images is not None:
            epochs = settings.epochs_for(_dataset_size(loader))
    if epochs is None or epochs < 0:
        raise ValueError(f"epochs must be a number >= 0, got {epochs}")
    if checkpoint is not None and not modules:
        raise ValueError("checkpointing needs modules={'model': model, 'optimizer': optimizer, ...} to save")
    modules = modules or {}
    generators = {name: g for name, g in modules.items() if isinstance(g, torch.Generator)}
    modules = {name: m for name, m in modules.items() if name not in generators}
    run = _Run(step_fn, loader, generators_to_keep(loader, generators), epochs, max_steps, max_seconds)
    resumed = _resume(Path(checkpoint), modules, settings) if checkpoint and Path(checkpoint).exists() else None
    if resumed is not None:
        run.progress = resumed
        finished = run.finished()
        if finished:
            print(f"Loaded {checkpoint}: {finished}, nothing to do.")
            return run.progress.history
        print(f"Resuming from {checkpoint}: {run.where()}.")
        if _optimizers_left_out(modules):
            print(
                "The file keeps no optimizer state (the course's shipped weights leave it out): the optimizers start "
                "afresh (Adam's averages, any warm-up), so this run does not end where an uninterrupted one would."
            )
    save = None if checkpoint is None else functools.partial(_save, checkpoint, modules, run, settings)
    with _StopAfterStepOnCtrlC() as ctrl_c:
        message = run.train(desc, ctrl_c, modules, save, on_epoch_end)
    if message:
        print(message)
    release_freed_memory()
    return run.progress.history


@dataclass
class _Progress:
    """Where a run stands: what a checkpoint records besides the weights."""

    history: History = field(default_factory=History)
    epoch: int = 0  # complete epochs
    in_epoch: int = 0  # batches done in the epoch after those (0 when it has not begun)
    steps: int = 0  # steps in all, over every call
    rng: dict[str, Any] | None = None  # generator states saved where the run stopped


class _Run:
    """The loop itself, and what it needs to know between steps."""

    def __init__(
        self,
        step_fn: Callable[[Any], dict[str, float]],
        loader: Iterable,
        named: dict[str, torch.Generator],
        epochs: int,
        max_steps: int | None,
        max_seconds: float | None,
    ) -> None:
        self.step_fn, self.loader, self.named = step_fn, loader, named
        self.epochs, self.max_steps, self.max_seconds = epochs, max_steps, max_seconds
        self.progress = _Progress()
        self.began, self.seconds_before = time.perf_counter(), 0.0

    def finished(self) -> str:
        """Why a loaded run needs no more training ('' when it does)."""
        progress = self.progress
        if progress.epoch >= self.epochs:
            return f"already trained for {progress.epoch} epochs"
        if self.max_steps is not None and progress.steps >= self.max_steps:
            return f"its budget of max_steps={self.max_steps} is spent (raise it, or epochs, to train on)"
        if self.max_seconds is not None and progress.history.seconds >= self.max_seconds:
            return f"its budget of max_seconds={self.max_seconds:g} is spent (raise it to train on)"
        return ""

    def where(self) -> str:
        """Where a resumed run carries on, in words."""
        progress = self.progress
        if progress.in_epoch:
            return (
                f"epoch {progress.epoch + 1} of {self.epochs} goes on at batch {progress.in_epoch + 1}, "
                "in the same order and with the same noise as if it had never stopped"
            )
        return f"after epoch {progress.epoch} of {self.epochs}"

    def seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.began

    def why_stop(self, ctrl_c: _StopAfterStepOnCtrlC) -> str:
        """The budget or request that ends the run now ('' to go on)."""
        if self.max_steps is not None and self.progress.steps >= self.max_steps:
            return f"max_steps={self.max_steps}"
        if self.max_seconds is not None and self.seconds() >= self.max_seconds:
            return f"max_seconds={self.max_seconds:g}"
        return "Ctrl-C" if ctrl_c.requested else ""

    def train(
        self,
        desc: str,
        ctrl_c: _StopAfterStepOnCtrlC,
        modules: dict[str, Any],
        save: Callable[[Any], None] | None,
        on_epoch_end: Callable[[int, History], None] | None,
    ) -> str:
        """Train until the epochs or a budget run out; return what to tell the student ('' when all went to plan)."""
        progress, history = self.progress, self.progress.history
        n_batches = _length(self.loader)
        total = None if n_batches is None else (self.epochs - progress.epoch) * n_batches - progress.in_epoch
        if self.max_steps is not None:
            total = min(total or self.max_steps, self.max_steps - progress.steps)
        self.bar = tqdm(total=total, desc=desc, unit="step")
        self.began, self.seconds_before = time.perf_counter(), history.seconds
        if progress.rng is not None and not progress.in_epoch:
            set_rng(self.named, progress.rng)  # saved after a complete epoch: carry on from there
        try:
            while progress.epoch < self.epochs:
                for module in modules.values():
                    if isinstance(module, nn.Module):
                        module.train()
                shuffle_at_start, stop = self.epoch(ctrl_c)
                history.seconds = self.seconds()
                if stop:  # the epoch stays unfinished
                    if save is None:
                        return f"Stopped by {stop} during epoch {progress.epoch + 1} after {progress.steps} steps."
                    save(shuffle_at_start)
                    return (
                        f"Stopped by {stop} during epoch {progress.epoch + 1}, after its batch {progress.in_epoch} "
                        f"({progress.steps} steps in all). Saved: the next run resumes mid-epoch at the next batch."
                    )
                history.end_epoch()
                progress.epoch, progress.in_epoch = progress.epoch + 1, 0
                if on_epoch_end is not None:  # first, so that what it adds (a GAN's snapshot) is saved with the epoch
                    on_epoch_end(progress.epoch - 1, history)
                if save is not None:
                    save(None)
                stop = self.why_stop(ctrl_c)
                if stop and progress.epoch < self.epochs:
                    return f"Stopped by {stop} after epoch {progress.epoch} ({progress.steps} steps in all)."
            return ""
        except KeyboardInterrupt:
            history.seconds = self.seconds()
            return (
                f"Interrupted at once during step {progress.steps + 1}: the model keeps what it has learned so far, "
                "but that step may be half done, so nothing was saved; a next run resumes from the last save."
            )
        finally:
            self.bar.close()

    def epoch(self, ctrl_c: _StopAfterStepOnCtrlC) -> tuple[Any, str]:
        """One epoch, or what is left of it. Returns the shuffling state it began with, and why it stopped early."""
        progress, shuffle = self.progress, self.named.get("shuffle")
        shuffle_at_start = None if shuffle is None else shuffle.get_state()
        batches = iter(self.loader)  # this draws a seed from the global generator: restore states after it
        if progress.in_epoch and progress.rng is not None:
            # Resuming mid-epoch: shuffle this epoch into the same order again, and take the noise where it stopped.
            set_rng(self.named, progress.rng)
            shuffle_at_start = progress.rng.get("shuffle")
        stop = ""
        for index, batch in enumerate(batches):
            if index < progress.in_epoch:
                continue  # done before the run stopped
            if stop:
                return shuffle_at_start, stop  # the budget ran out (or Ctrl-C) after the previous step
            values = self.step_fn(batch)
            _guard_finite(values, progress.epoch, progress.steps)
            progress.history.log_step(values)
            progress.steps += 1
            progress.in_epoch = index + 1
            self.bar.update(1)
            if progress.steps % 10 == 1:
                self.bar.set_postfix({k: f"{float(v):.4g}" for k, v in values.items()}, refresh=False)
            stop = self.why_stop(ctrl_c)
        return shuffle_at_start, ""


def _save(
    checkpoint: str | Path, modules: dict[str, Any], run: _Run, settings: TrainingConfig | None, shuffle_at_start: Any
) -> None:
    """Save the modules and where the run stands; mid-epoch, with the shuffling state that began the epoch."""
    rng = rng_state(run.named)
    if shuffle_at_start is not None:
        rng["shuffle"] = shuffle_at_start
    progress = run.progress
    save_checkpoint(
        checkpoint,
        modules,
        epoch=progress.epoch,
        in_epoch=progress.in_epoch,
        epoch_complete=progress.in_epoch == 0,
        steps=progress.steps,
        history=progress.history.to_dict(),
        rng=rng,
        settings=None if settings is None else asdict(settings),
    )


def _resume(path: Path, modules: dict[str, Any], settings: TrainingConfig | None) -> _Progress | None:
    """Load a checkpoint into ``modules`` and return where the run stands, or set the file aside (loudly) and
    return None when it does not fit."""
    wanted = None if settings is None else settings.model_settings()
    try:
        extra = load_checkpoint(path, modules, settings=wanted, required=("in_epoch", "steps", "rng"))
    except CheckpointMismatchError as error:
        # Saved by another version of the model or with other settings: keep the old file for reference and
        # train afresh rather than stop the notebook, but say so where nobody can miss it.
        stale = stale_path(path)
        path.replace(stale)
        line = "=" * 100
        print(
            f"{line}\n{error}\nThat checkpoint does not fit: moved it to {stale.name}; training from scratch.\n{line}"
        )
        return None
    return _Progress(
        history=History.from_dict(extra["history"]),
        epoch=int(extra["epoch"]),
        in_epoch=int(extra["in_epoch"]),
        steps=int(extra["steps"]),
        rng=extra["rng"],
    )


def stale_path(path: Path) -> Path:
    """Where a checkpoint that no longer fits is kept: its name, when it was last saved, and ``.stale.pt``, e.g.
    ``gan-digits-8x8-full.trained-20260101-120000.stale.pt``. A later mismatch never overwrites an earlier one."""
    when = time.strftime("%Y%m%d-%H%M%S", time.localtime(path.stat().st_mtime))
    stale = path.with_name(f"{path.stem}.trained-{when}.stale.pt")
    number = 2
    while stale.exists():
        stale = path.with_name(f"{path.stem}.trained-{when}-{number}.stale.pt")
        number += 1
    return stale


def _optimizers_left_out(modules: dict[str, Any]) -> bool:
    """Whether a loaded run's optimizers came without their state (a file packed for shipping)."""
    optimizers = [m for m in modules.values() if isinstance(m, torch.optim.Optimizer)]
    return bool(optimizers) and all(not optimizer.state for optimizer in optimizers)


class _StopAfterStepOnCtrlC:
    """While training, the first Ctrl-C (Jupyter's interrupt sends the same signal) asks to stop after the current
    step, so the run can be saved exactly; a second one raises ``KeyboardInterrupt`` at once, as usual."""

    def __enter__(self) -> _StopAfterStepOnCtrlC:
        self.requested = False
        self._previous: Any = None
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread only
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _dataset_size(loader: Iterable) -> int:
    """How many pictures the loader's data set holds (a budget in images needs to know)."""
    dataset = getattr(loader, "dataset", None)
    if dataset is None:
        raise ValueError("a budget in images needs a DataLoader over a data set of known size; give epochs instead")
    return len(dataset)


def _length(loader: Iterable) -> int | None:
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:
        return None


def _guard_finite(values: dict[str, float], epoch: int, step: int) -> None:
    if not isinstance(values, dict):
        raise TypeError(f"the step function must return a dict of numbers to log, got {type(values).__name__}")
    for key, value in values.items():
        number = float(value)
        if not math.isfinite(number):
            raise NonFiniteLossError(
                f"{key} became {number} at epoch {epoch + 1}, step {step + 1}: training stopped before the weights "
                "were ruined. Usual fixes: a smaller learning rate, a numerically stable loss (logits + "
                "BCEWithLogits instead of log(sigmoid)), or clamping a log-variance."
            )
