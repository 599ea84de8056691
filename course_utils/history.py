"""What a training run logged: :class:`History`, every step's values and their means per epoch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class History:
    """What a training run logged: every step's values, and their mean over each complete epoch."""

    steps: dict[str, list[float]] = field(default_factory=dict)
    epochs: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    _epoch_start: dict[str, int] = field(default_factory=dict, repr=False)

    def log_step(self, values: dict[str, float]) -> None:
        """Append one step's values (numbers or one-element tensors)."""
        for key, value in values.items():
            self.steps.setdefault(key, []).append(float(value))

    def end_epoch(self) -> None:
        """Close the epoch: store the mean of each key over the steps logged since the last epoch."""
        for key, values in self.steps.items():
            start = self._epoch_start.get(key, 0)
            if len(values) > start:
                self.epochs.setdefault(key, []).append(sum(values[start:]) / (len(values) - start))
            self._epoch_start[key] = len(values)

    def last(self, key: str) -> float:
        """The most recent value of ``key`` (raises ``KeyError`` listing the keys when absent)."""
        if key not in self.steps or not self.steps[key]:
            raise KeyError(f"no values logged for {key!r}; logged keys: {sorted(self.steps)}")
        return self.steps[key][-1]

    @property
    def n_epochs(self) -> int:
        """How many epochs are complete."""
        return max((len(v) for v in self.epochs.values()), default=0)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers, for checkpoints and JSON (an unfinished epoch's start included)."""
        return {"steps": self.steps, "epochs": self.epochs, "seconds": self.seconds, "epoch_start": self._epoch_start}

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> History:
        """Rebuild a history saved with :meth:`to_dict`."""
        history = cls({k: list(v) for k, v in saved["steps"].items()}, {k: list(v) for k, v in saved["epochs"].items()})
        history.seconds = float(saved.get("seconds", 0.0))
        history._epoch_start = dict(saved.get("epoch_start") or {k: len(v) for k, v in history.steps.items()})
        return history
