"""The callback that saves checkpoints while a run trains.

After every epoch it keeps a copy (on the CPU) of everything a checkpoint holds, so that
it can save the state at the end of the last finished epoch at any moment: every
``every`` epochs, at the end, and when Ctrl-C stops the run midway through an epoch. A
run stopped by a NaN loss saves the last good epoch the same way, never the bad one. The
best epoch by validation loss is kept as a second checkpoint, ``best``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seqlm.callbacks import Callback
from seqlm.checkpoint import pack, save_checkpoint, unpack
from seqlm.errors import TrainingError
from seqlm.interfaces import Trainer
from seqlm.metrics import EpochMetrics

LAST = "checkpoint"
BEST = "best"


def cpu_copy(state: Any) -> Any:
    """A copy of a nested state whose tensors are fresh CPU clones."""
    tensors: dict[str, torch.Tensor] = {}
    return unpack(pack(state, tensors), tensors)


class CheckpointCallback(Callback):
    """Saves ``checkpoint`` (to resume) and ``best`` (lowest validation loss) in ``directory``.

    ``describe()`` returns the parts of a checkpoint that do not change while training
    (settings, vocabulary, component names); the callback adds the epoch, the model's
    weights and the trainer's :meth:`~seqlm.interfaces.Trainer.state_dict` (None for a
    trainer that cannot resume).
    """

    def __init__(
        self,
        directory: Path,
        model: nn.Module,
        describe: Callable[[], dict[str, Any]],
        every: int = 0,
    ) -> None:
        self.directory = Path(directory)
        self.model = model
        self.describe = describe
        self.every = every
        self.snapshot: dict[str, Any] | None = None
        self.saved_epoch: int | None = None
        self.best: dict[str, Any] | None = None
        self.best_loss = float("inf")
        self.best_saved = True
        #: Set when Ctrl-C stopped the run: the epoch whose checkpoint was saved.
        self.interrupted_at: int | None = None

    def _state(self, trainer: Trainer, epoch: int) -> dict[str, Any]:
        state = dict(self.describe())
        state["epoch"] = epoch
        state["model"] = self.model.state_dict()
        state["trainer"] = trainer.state_dict()
        return state

    def on_train_start(self, trainer: Trainer) -> None:  # noqa: D102
        self.saved_epoch = trainer.start_epoch or None
        for m in trainer.history:
            if m.val_loss is not None and m.val_loss < self.best_loss:
                self.best_loss = m.val_loss

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:  # noqa: D102
        self.snapshot = cpu_copy(self._state(trainer, metrics.epoch))
        if metrics.val_loss is not None and metrics.val_loss < self.best_loss:
            self.best_loss = metrics.val_loss
            # The best model serves generation and evaluation; it needs no optimizer.
            self.best = {**self.snapshot, "trainer": None,
                         "history": self.snapshot["trainer"]["history"]
                         if self.snapshot.get("trainer") else []}
            self.best_saved = False
        if self.every and metrics.epoch % self.every == 0:
            self.save()

    def on_train_end(self, trainer: Trainer, history: Sequence[EpochMetrics]) -> None:  # noqa: D102
        self.save()

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:  # noqa: D102
        # The snapshot is of the last finished epoch, so it is good even when the epoch
        # that failed (a NaN loss) was not; other errors may come from saving itself.
        if isinstance(error, (KeyboardInterrupt, TrainingError)) and self.snapshot is not None:
            self.save()
            if isinstance(error, KeyboardInterrupt):
                self.interrupted_at = self.snapshot["epoch"]

    def save(self) -> None:
        """Write the latest snapshot (and a newer best) unless already on disk."""
        if self.snapshot is not None and self.saved_epoch != self.snapshot["epoch"]:
            save_checkpoint(self.directory, self.snapshot, LAST)
            self.saved_epoch = self.snapshot["epoch"]
        if self.best is not None and not self.best_saved:
            save_checkpoint(self.directory, self.best, BEST)
            self.best_saved = True
