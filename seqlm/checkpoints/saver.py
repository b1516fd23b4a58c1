"""The callback that saves checkpoints while a run trains.

After every epoch it keeps a copy (on the CPU) of everything a checkpoint holds, so that
it can save the state at the end of the last finished epoch at any moment: every
``every`` epochs, at the end, and when Ctrl-C stops the run midway through an epoch. A
run stopped by a NaN loss saves the last good epoch the same way, never the bad one. The
best epoch by validation loss is kept as a second checkpoint, ``best``; with ``--average``
that is the averaged weights wherever they validated better than the weights.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seqlm.checkpoints.format import (
    BEST,
    LAST,
    UnstorableError,
    kept_name,
    pack,
    read_header,
    save_checkpoint,
)
from seqlm.errors import CheckpointError, TrainingError, refuse
from seqlm.interfaces import Callback, Trainer
from seqlm.metrics import EpochMetrics
from seqlm.storage.runfiles import record_written
from seqlm.training.stopping import interrupt_for, signals_deferred

#: Values stored as they are.
_PLAIN = frozenset({bool, int, float, str, type(None)})


def cpu_copy(state: Any) -> Any:
    """A copy of a nested state whose tensors are fresh CPU clones.

    The result is what :func:`~seqlm.checkpoints.format.pack` then
    :func:`~seqlm.checkpoints.format.unpack` give (tuples become lists; anything a
    checkpoint cannot store is a ``TypeError`` now, not at the save), made in one pass:
    the run copies its state after every epoch, and the history in it grows by a row
    each time.
    """
    if type(state) in _PLAIN:
        return state
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True).contiguous()
    if isinstance(state, dict):
        if type(state) is dict and all(type(v) in _PLAIN for v in state.values()):
            return state.copy()  # a row of numbers (a history row): one shallow copy
        return {k: cpu_copy(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return [cpu_copy(v) for v in state]
    if isinstance(state, (bool, int, float, str)):
        return state
    raise TypeError(f"cannot store a {type(state).__name__} in a checkpoint")


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
        keep_every: int = 0,
        trainer_label: str = "the trainer",
    ) -> None:
        self.directory = Path(directory)
        #: Who answers for the trainer's state_dict (``trainer 'NAME' from DIST VERSION``).
        self.trainer_label = trainer_label
        self.model = model
        self.describe = describe
        self.every = every
        self.keep_every = keep_every
        self.snapshot: dict[str, Any] | None = None
        self.saved_epoch: int | None = None
        self.best: dict[str, Any] | None = None
        self.best_loss = float("inf")
        self.best_saved = True
        #: Set when Ctrl-C or a stop signal ended the run: the epoch whose checkpoint was
        #: saved.
        self.interrupted_at: int | None = None
        #: The epoch whose writes are due (see :meth:`write_due`), and whether a
        #: :class:`CheckpointWriter` makes them, after the other callbacks.
        self._due: int | None = None
        self.writes_later = False

    def _state(self, trainer: Trainer, epoch: int) -> dict[str, Any]:
        state = dict(self.describe())
        state["epoch"] = epoch
        state["model"] = self.model.state_dict()
        state["trainer"] = trainer.state_dict()
        return state

    def _unstorable(self, state: dict[str, Any], error: TypeError) -> Exception:
        """The error for a state a checkpoint cannot hold: where the trainer's state_dict
        holds it, that trainer's broken contract, with the key; else ``error`` itself."""
        try:
            pack(state, {})
        except UnstorableError as found:
            if found.key.startswith("trainer."):
                return refuse(self.trainer_label, "trainer",
                              f"state_dict() {found.problem(within='trainer.')}")
            return found
        return error

    def on_train_start(self, trainer: Trainer) -> None:
        self.saved_epoch = trainer.start_epoch or None
        for m in trainer.history:
            loss = m.selected_val_loss
            if loss is not None and loss < self.best_loss:
                self.best_loss = loss

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        state = self._state(trainer, metrics.epoch)
        try:
            self.snapshot = cpu_copy(state)
        except TypeError as error:
            raise self._unstorable(state, error) from None
        loss = metrics.selected_val_loss
        if loss is not None and loss < self.best_loss:
            averaged = trainer.averaged_weights() if metrics.average_is_better else None
            # The best model serves generation and evaluation; it needs no optimizer.
            # Built whole before it is kept: a stop meanwhile leaves the previous best.
            best = {**self._model_only(), "averaged": averaged is not None}
            if averaged is not None:
                best["model"] = cpu_copy(averaged)
            self.best, self.best_loss, self.best_saved = best, loss, False
        self._due = metrics.epoch
        if not self.writes_later:
            self.write_due()

    def write_due(self) -> None:
        """Write what the epoch just snapshotted is due to write: its kept epoch
        (``keep_every``) and the regular checkpoint (``every``), whole even if Ctrl-C or a
        stop signal comes meanwhile, then act on it. :class:`CheckpointWriter` calls it
        after the other callbacks have seen the epoch, so that a stop that comes during
        the save finds the epoch shown and in ``metrics.jsonl`` as well."""
        self._then_stop(self._write_due_files)

    def _write_due_files(self) -> bool:
        """Write the due files (see :meth:`write_due`), once; whether a regular checkpoint
        was among them."""
        epoch, self._due = self._due, None
        if epoch is None:
            return False
        if self.keep_every and epoch % self.keep_every == 0:
            # Written now and never again: a snapshot that an ensemble may use.
            self._save({**self._model_only(), "averaged": False}, kept_name(epoch))
        if self.every and epoch % self.every == 0:
            self.save()
            return True
        return False

    def _model_only(self) -> dict[str, Any]:
        """The latest snapshot without the optimizer, as the best and the kept epochs are
        saved: for generation and evaluation, not for resuming."""
        assert self.snapshot is not None
        return {**self.snapshot, "trainer": None,
                "history": self.snapshot["trainer"]["history"]
                if self.snapshot.get("trainer") else []}

    def on_train_end(self, trainer: Trainer, history: Sequence[EpochMetrics]) -> None:
        self.write_due()  # a trainer that called no writer after the last epoch
        self._save_then_stop()

    def _save_then_stop(self) -> None:
        """Save whole, even if Ctrl-C or a stop signal comes meanwhile; then act on it."""
        def save() -> bool:
            self.save()
            return True

        self._then_stop(save)

    def _then_stop(self, write: Callable[[], bool]) -> None:
        """Run ``write`` (which says whether it wrote the regular checkpoint) whole, even
        if Ctrl-C or a stop signal comes meanwhile; then act on what came."""
        with signals_deferred() as arrived:
            regular = write()
        if arrived:
            if regular:
                self.interrupted_at = self.saved_epoch
            raise interrupt_for(arrived[0])

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        # The snapshot is of the last finished epoch, so it is good even when the epoch
        # that failed (a NaN loss) was not; other errors may come from saving itself.
        # A closed output pipe (``seqlm run | head``) stops the run as Ctrl-C does.
        stops = (KeyboardInterrupt, TrainingError, BrokenPipeError)
        # A second Ctrl-C (or SIGTERM) while this is written must not cut it short: the
        # run is ending anyway, and the save is what the user is waiting for.
        with signals_deferred():
            if self._due is not None and not isinstance(error, (CheckpointError, OSError)):
                # The epoch finished, and a later callback failed or was stopped: its
                # kept epoch and regular checkpoint are written as if it had not.
                # (An error of saving itself, or of the disk, would only come again.)
                with contextlib.suppress(CheckpointError, OSError):
                    self._write_due_files()
            if isinstance(error, stops) and self.snapshot is not None:
                self.save()
        if isinstance(error, (KeyboardInterrupt, BrokenPipeError)) and self.snapshot is not None:
            self.interrupted_at = self.snapshot["epoch"]

    def stop_message(self) -> str:
        """What an interrupted run kept, and how to resume it; true in every case."""
        resume = f"Resume with: seqlm run --resume {shlex.quote(str(self.directory))}"
        if self.interrupted_at is not None:
            return (f"Saved the checkpoint of epoch {self.interrupted_at} (the last finished) "
                    f"in {self.directory}. {resume}")
        if self.saved_epoch:
            return (f"Stopped before epoch {self.saved_epoch + 1} finished; the checkpoint of "
                    f"epoch {self.saved_epoch} in {self.directory} is unchanged. {resume}")
        return "Stopped before the first epoch finished; no checkpoint was saved."

    def save(self) -> None:
        """Write the latest snapshot (and a newer best) unless already on disk."""
        if self.snapshot is not None and self.saved_epoch != self.snapshot["epoch"]:
            self._save(self.snapshot, LAST)
            self.saved_epoch = self.snapshot["epoch"]
        if self.best is not None and not self.best_saved:
            self._save(self.best, BEST)
            self.best_saved = True

    def _save(self, state: dict[str, Any], name: str) -> None:
        json_path = save_checkpoint(self.directory, state, name)
        # Recorded as seqlm's own, so that --force may later replace them (and only them).
        record_written(self.directory, json_path,
                       self.directory / read_header(json_path)["tensors"])


class CheckpointWriter(Callback):
    """Makes ``saver``'s writes of each epoch (:meth:`CheckpointCallback.write_due`), as the
    last callback of the epoch: the saver takes its snapshot first, before anything shows
    the epoch; the files are written once everything has."""

    def __init__(self, saver: CheckpointCallback) -> None:
        self.saver = saver
        saver.writes_later = True

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        self.saver.write_due()
