"""Callbacks: hooks into the training loop for progress, logging and saving."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from seqlm.interfaces import Trainer
    from seqlm.metrics import EpochMetrics


@dataclass
class RunInfo:
    """What a callback enabled with ``seqlm run --log NAME`` is built with: ``cls(run)``.

    A logger writes only inside :attr:`out_dir`, the run folder (in a folder of its own
    there, such as ``RUN/tensorboard``).
    """

    #: The run folder; a resumed run keeps the same one.
    out_dir: Path
    #: The run's settings, as :meth:`seqlm.config.RunConfig.to_dict` gives them.
    config: dict[str, Any]
    #: Log a sample (or anything else periodic) every this many epochs: the same
    #: cadence as the rows of the progress table (``--log-every``; by default about
    #: ten per run).
    log_every: int
    #: ``sample(length)`` continues the run's ``--prefix`` with ``length`` tokens from
    #: the model as it is now (greedy, so it draws no random numbers from training).
    sample: Callable[[int], str]


class Callback:
    """Base class with no-op methods; override the ones you need.

    The trainer calls :meth:`on_train_start` once, :meth:`on_epoch_end` after every
    epoch, then :meth:`on_train_end` on success or :meth:`on_exception` on any error or
    Ctrl-C, so a callback can always release what it holds (a live display, a file).
    """

    def on_train_start(self, trainer: Trainer) -> None:
        """Called before the first epoch."""

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        """Called after each epoch with its metrics."""

    def on_train_end(self, trainer: Trainer, history: Sequence[EpochMetrics]) -> None:
        """Called once after the last epoch."""

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        """Called when training stops with an exception (KeyboardInterrupt included)."""


class CallbackList(Callback):
    """Calls a sequence of callbacks in order."""

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        self.callbacks = list(callbacks)

    def on_train_start(self, trainer: Trainer) -> None:
        for cb in self.callbacks:
            cb.on_train_start(trainer)

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(trainer, metrics)

    def on_train_end(self, trainer: Trainer, history: Sequence[EpochMetrics]) -> None:
        for cb in self.callbacks:
            cb.on_train_end(trainer, history)

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        for cb in self.callbacks:
            cb.on_exception(trainer, error)
