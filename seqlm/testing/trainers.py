"""The rules of the Trainer contract."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch

from seqlm.checkpoints.format import UnstorableError, pack
from seqlm.interfaces import Callback, Trainer
from seqlm.plugins.door import history_problem
from seqlm.testing.basics import VOCAB, Rule, require, token_corpus


class _Recorder(Callback):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_train_start(self, trainer: Trainer) -> None:
        self.calls.append("start")

    def on_epoch_end(self, trainer: Trainer, metrics: Any) -> None:
        self.calls.append("epoch")

    def on_train_end(self, trainer: Trainer, history: Any) -> None:
        self.calls.append("end")


def train_briefly(cls: type, options: dict[str, Any], epochs: int = 2, seed: int = 0,
                  state: dict[str, Any] | None = None, model: Any = None,
                  callbacks: Sequence[Callback] = ()):
    """A trainer of ``cls`` built with ``options``, fitted for ``epochs`` on a small corpus
    (from ``state`` where given, ``model`` a fresh tanh RNN unless given), with
    ``callbacks`` and a recorder of the calls heard: ``(trainer, model, history,
    recorder)``. What ``fit`` returns is checked as the run checks it (rule trainer_fit)."""
    from seqlm.cells.torch_cells import TorchRNN
    from seqlm.data.samplers import SequentialSampler
    from seqlm.model.rnn import RNNModel

    torch.manual_seed(seed)
    if model is None:
        model = RNNModel(TorchRNN(VOCAB, 8), VOCAB)
    trainer = cls(lr=0.5, clip=1.0, epochs=epochs, device="cpu", **options)
    if state is not None:
        trainer.load_state_dict(state)
    recorder = _Recorder()
    corpus = token_corpus(300)
    history = trainer.fit(model, corpus[:240], SequentialSampler(4, 5), [*callbacks, recorder],
                          val_corpus=corpus[240:])
    problem = history_problem(history)
    require(problem is None, "trainer_fit", str(problem))
    return trainer, model, history, recorder


def trainer_fit(cls: type, options: dict[str, Any]) -> None:
    """fit trains every epoch, calls the callbacks, and returns (and keeps) the history."""
    trainer, model, history, recorder = train_briefly(cls, options)
    require(isinstance(trainer, Trainer), "trainer_fit",
             f"{cls.__qualname__} does not subclass seqlm.interfaces.Trainer")
    require([m.epoch for m in history] == [1, 2], "trainer_fit",
             f"expected the metrics of epochs [1, 2], got {[m.epoch for m in history]}")
    require(all(math.isfinite(m.train_loss) for m in history), "trainer_fit",
             "a training loss is not finite")
    require([m.epoch for m in trainer.history] == [1, 2], "trainer_fit",
             "trainer.history must hold the metrics of every finished epoch")
    require(recorder.calls == ["start", "epoch", "epoch", "end"], "trainer_fit",
             f"callbacks were called as {recorder.calls}; expected on_train_start, "
             "on_epoch_end per epoch, on_train_end")
    if cls.validates:
        require(all(m.val_loss is not None for m in history), "trainer_fit",
                 "validates is true, but the metrics have no val_loss")


def trainer_deterministic_under_a_seed(cls: type, options: dict[str, Any]) -> None:
    """The same seed trains to the same losses."""
    first = [m.train_loss for m in train_briefly(cls, options)[2]]
    second = [m.train_loss for m in train_briefly(cls, options)[2]]
    require(first == second, "trainer_deterministic_under_a_seed",
             f"the same seed gave losses {first} and {second}")


def trainer_state_round_trip(cls: type, options: dict[str, Any]) -> None:
    """A trainer resumed from state_dict() continues where it stopped (None: it cannot
    resume, and says so)."""
    trainer, model, _, _ = train_briefly(cls, options, epochs=1)
    state = trainer.state_dict()
    if state is None:
        return
    require(isinstance(state, dict), "trainer_state_round_trip",
             f"state_dict() must give a dict or None, got {type(state).__name__}")
    try:
        pack(state, {})  # what a checkpoint does with it
    except UnstorableError as error:
        require(False, "trainer_state_round_trip", f"state_dict() {error.problem()}")
    resumed, _, history, recorder = train_briefly(cls, options, epochs=2,
                                                  state=copy.deepcopy(state), model=model)
    require(resumed.start_epoch == 1, "trainer_state_round_trip",
             f"after load_state_dict of an epoch-1 state, start_epoch is {resumed.start_epoch}")
    require([m.epoch for m in history] == [1, 2] and recorder.calls.count("epoch") == 1,
             "trainer_state_round_trip",
             "a resumed trainer must train only the epochs left and return the whole history")


class _StopsAtEpochOne(Callback):
    def on_epoch_end(self, trainer: Trainer, metrics: Any) -> None:
        trainer.request_stop("the kit asked")


def trainer_stops_when_asked(cls: type, options: dict[str, Any]) -> None:
    """A callback's request_stop in on_epoch_end makes that epoch the last: fit returns
    its history so far, says why in stop_reason, and calls on_train_end."""
    from seqlm.cells.torch_cells import TorchRNN
    from seqlm.data.samplers import SequentialSampler
    from seqlm.model.rnn import RNNModel

    torch.manual_seed(0)
    trainer = cls(lr=0.5, clip=1.0, epochs=3, device="cpu", **options)
    recorder = _Recorder()
    corpus = token_corpus(300)
    history = trainer.fit(RNNModel(TorchRNN(VOCAB, 8), VOCAB), corpus[:240],
                          SequentialSampler(4, 5), [_StopsAtEpochOne(), recorder],
                          val_corpus=corpus[240:])
    require([m.epoch for m in history] == [1], "trainer_stops_when_asked",
             f"a callback called trainer.request_stop at epoch 1 of 3, yet fit returned "
             f"epochs {[m.epoch for m in history]}: check trainer.stop_requested after "
             "each epoch's callbacks and stop there")
    require(recorder.calls == ["start", "epoch", "end"], "trainer_stops_when_asked",
             f"callbacks were called as {recorder.calls}; a stopped fit still calls "
             "on_train_end")
    require(bool(trainer.stop_reason) and "the kit asked" in trainer.stop_reason,
             "trainer_stops_when_asked",
             f"stop_reason must say why fit stopped (the reason given), got "
             f"{trainer.stop_reason!r}")


TRAINER_RULES: tuple[Rule, ...] = (
    trainer_fit, trainer_deterministic_under_a_seed, trainer_state_round_trip,
    trainer_stops_when_asked,
)
