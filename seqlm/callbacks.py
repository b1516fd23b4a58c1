"""Callbacks: hooks into the training loop for progress, logging and saving."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from seqlm.interfaces import Trainer
    from seqlm.metrics import EpochMetrics


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

    def on_train_start(self, trainer: Trainer) -> None:  # noqa: D102
        for cb in self.callbacks:
            cb.on_train_start(trainer)

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:  # noqa: D102
        for cb in self.callbacks:
            cb.on_epoch_end(trainer, metrics)

    def on_train_end(self, trainer: Trainer, history: Sequence[EpochMetrics]) -> None:  # noqa: D102
        for cb in self.callbacks:
            cb.on_train_end(trainer, history)

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:  # noqa: D102
        for cb in self.callbacks:
            cb.on_exception(trainer, error)
