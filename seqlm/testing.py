"""A conformance kit for plugin authors: does a class keep its interface's contract?

``check_cell(MyCell)``, ``check_sampler(MySampler)``, ``check_tokenizer(MyTokenizer)``,
``check_trainer(MyTrainer)`` and ``check_logger(MyLogger)`` run every rule of the contract
against a class (built with the given constructor options) and raise an
:class:`AssertionError` that names the rule that failed and says what came instead. In a
pytest suite, :func:`parametrize_checks` turns the rules into one test case each::

    from seqlm.testing import parametrize_checks

    @parametrize_checks([MyCell, (MySampler, {"stride": 2})])
    def test_conformance(check):
        check()

The rules are those ``docs/plugins/contracts.md`` states, and the same that seqlm checks
before training (:mod:`seqlm.plugins.door`), plus what only a test can afford: gradients reach
every parameter, runs repeat under a seed, states survive a save and restore.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from seqlm.checkpoints.format import UnstorableError, pack
from seqlm.data.vocab import UNK
from seqlm.errors import SeqlmError
from seqlm.interfaces import (
    Callback,
    RecurrentCell,
    RunInfo,
    Sampler,
    Tokenizer,
    Trainer,
    detach_state,
)
from seqlm.plugins.culprit import SUPER_INIT_FIX, cause_hint
from seqlm.plugins.door import (
    batch_problem,
    forward_problem,
    history_problem,
    rng_kept,
    state_problem,
    tokenizer_state_problem,
)
from seqlm.plugins.manager import INTERFACES, interface_problem

#: Sizes the cell rules build with: unlike each other, so that a swapped axis shows.
INPUT_SIZE, HIDDEN_SIZE, STEPS, BATCH = 7, 6, 5, 3
#: A corpus for the sampler and trainer rules: token ``i`` is ``i % VOCAB``.
VOCAB = 11
LINES = ("the time traveller for so it will be convenient to speak of him",
         "was expounding a recondite matter to us his grey eyes shone and",
         "twinkled and his usually pale face was flushed and animated")

Rule = Callable[[type, dict[str, Any]], None]


def _fail(rule: str, message: str) -> AssertionError:
    return AssertionError(f"rule {rule} failed: {message}")


def _require(condition: bool, rule: str, message: str) -> None:
    if not condition:
        raise _fail(rule, message)


# -- cells ---------------------------------------------------------------------------


def _cell(cls: type, options: dict[str, Any], seed: int = 0) -> RecurrentCell:
    torch.manual_seed(seed)
    return cls(**{"input_size": INPUT_SIZE, "hidden_size": HIDDEN_SIZE, "num_layers": 1,
                  **options})


def _inputs(cell: RecurrentCell, steps: int = STEPS, batch: int = BATCH, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, INPUT_SIZE, (steps, batch), generator=generator)
    return ids, F.one_hot(ids, INPUT_SIZE).float()


def _run(cell: RecurrentCell, inputs: torch.Tensor, state=None):
    if state is None:
        state = cell.begin_state(inputs.shape[1], "cpu")
    return cell(inputs, state)


def cell_builds(cls: type, options: dict[str, Any]) -> None:
    """Built with keywords, the cell keeps its sizes and says its output size."""
    cell = _cell(cls, dict(options))
    _require(isinstance(cell, RecurrentCell), "cell_builds",
             f"{cls.__qualname__} does not subclass seqlm.interfaces.RecurrentCell")
    for name, want in (("input_size", INPUT_SIZE), ("hidden_size", HIDDEN_SIZE)):
        value = getattr(cell, name, None)
        hint = f"; {SUPER_INIT_FIX}" if value is None else ""
        _require(value == want, "cell_builds", f"self.{name} is {value!r}, expected {want}{hint}")
    _require(isinstance(cell.output_size, int) and cell.output_size > 0, "cell_builds",
             f"self.output_size must be a positive int, got {cell.output_size!r}")


def cell_shapes(cls: type, options: dict[str, Any]) -> None:
    """forward returns time-major outputs and a state structured like begin_state's."""
    cell = _cell(cls, dict(options)).eval()
    begin = cell.begin_state(BATCH, "cpu")
    problem = state_problem(begin)
    _require(problem is None, "cell_shapes", str(problem))
    _, inputs = _inputs(cell)
    with torch.no_grad():
        result = cell(inputs, begin)
    # Float inputs set the dtype; token ids (a cell that takes them) the default one.
    dtype = inputs.dtype if inputs.is_floating_point() else torch.get_default_dtype()
    problem = forward_problem(cell, result, begin, STEPS, BATCH, dtype)
    _require(problem is None, "cell_shapes", str(problem))


def cell_state_carries_over_detached(cls: type, options: dict[str, Any]) -> None:
    """Two halves, the state carried and detached between them, equal the whole; the
    detached state holds no autograd history."""
    cell = _cell(cls, dict(options)).eval()
    _, inputs = _inputs(cell)
    whole, _ = _run(cell, inputs)
    halves = _run(cell, inputs[:2])
    # The state must be one detach_state can take: a wrong one is the cell's fault,
    # named here, rather than an error from seqlm's own detach_state below.
    problem = forward_problem(cell, halves, cell.begin_state(BATCH, "cpu"), 2, BATCH)
    _require(problem is None, "cell_state_carries_over_detached", str(problem))
    first, state = halves
    detached = detach_state(state)
    tensors = [detached] if isinstance(detached, torch.Tensor) else list(detached)
    _require(all(not t.requires_grad for t in tensors), "cell_state_carries_over_detached",
             "detach_state(state) still requires grad")
    second, _ = _run(cell, inputs[2:], detached)
    _require(torch.allclose(torch.cat([first, second]), whole, atol=1e-5),
             "cell_state_carries_over_detached",
             "running the steps in two halves, carrying the state, differs from running "
             "them at once: forward must start from the state it is given")


def cell_gradients_reach_every_parameter(cls: type, options: dict[str, Any]) -> None:
    """A loss on the outputs gives every trainable parameter a finite gradient."""
    cell = _cell(cls, dict(options)).train()
    _, inputs = _inputs(cell)
    outputs, _ = _run(cell, inputs)
    outputs.float().square().sum().backward()
    for name, param in cell.named_parameters():
        if not param.requires_grad:
            continue
        _require(param.grad is not None, "cell_gradients_reach_every_parameter",
                 f"parameter {name} got no gradient: it does not take part in forward")
        _require(bool(torch.isfinite(param.grad).all()), "cell_gradients_reach_every_parameter",
                 f"parameter {name} got a non-finite gradient")


def cell_deterministic_under_a_seed(cls: type, options: dict[str, Any]) -> None:
    """The same seed builds the same weights and the same outputs."""
    runs = []
    for _ in range(2):
        cell = _cell(cls, dict(options), seed=5).eval()
        _, inputs = _inputs(cell)
        with torch.no_grad():
            runs.append(_run(cell, inputs)[0])
    _require(torch.equal(runs[0], runs[1]), "cell_deterministic_under_a_seed",
             "two cells built and run under the same seed gave different outputs; draw "
             "random numbers from torch's generator")


def cell_stacks_num_layers(cls: type, options: dict[str, Any]) -> None:
    """Built with one layer more, the cell computes something else, or refuses the count
    with a UsageError or ValueError: a cell that ignores ``num_layers`` would train another
    model than the run records."""
    layers = options.get("num_layers", 1)
    try:
        more = _cell(cls, {**options, "num_layers": layers + 1}, seed=5).eval()
    except (SeqlmError, ValueError):
        return  # refused, as a one-layer design may
    fewer = _cell(cls, {**options, "num_layers": layers}, seed=5).eval()
    _require(more.num_layers == layers + 1, "cell_stacks_num_layers",
             f"built with num_layers={layers + 1}, self.num_layers is {more.num_layers!r}")
    _, inputs = _inputs(fewer)
    with torch.no_grad():
        outputs = [_run(cell, inputs)[0] for cell in (fewer, more)]
    sizes = [sum(p.numel() for p in cell.parameters()) for cell in (fewer, more)]
    _require(sizes[0] != sizes[1] or not torch.equal(*outputs), "cell_stacks_num_layers",
             f"built with num_layers={layers + 1} the cell has the parameters and outputs it "
             f"has with {layers}: it ignores num_layers; stack the layers, or refuse other "
             "counts with a seqlm.errors.UsageError")


def cell_state_dict_round_trip(cls: type, options: dict[str, Any]) -> None:
    """Weights saved with state_dict and loaded into a fresh cell give the same outputs."""
    cell = _cell(cls, dict(options), seed=1).eval()
    other = _cell(cls, dict(options), seed=2).eval()
    other.load_state_dict(copy.deepcopy(cell.state_dict()))
    _, inputs = _inputs(cell)
    with torch.no_grad():
        want, got = _run(cell, inputs)[0], _run(other, inputs)[0]
    _require(torch.allclose(want, got), "cell_state_dict_round_trip",
             "a cell loaded from another's state_dict computes something else: keep every "
             "weight in a parameter or buffer")


def cell_token_ids_as_declared(cls: type, options: dict[str, Any]) -> None:
    """A cell that declares accepts_token_ids gives for ids what it gives for one-hot
    vectors; every cell takes float vectors."""
    cell = _cell(cls, dict(options)).eval()
    ids, one_hot = _inputs(cell)
    with torch.no_grad():
        from_vectors = _run(cell, one_hot)[0]
        if cls.accepts_token_ids:
            from_ids = _run(cell, ids)[0]
            _require(torch.allclose(from_ids, from_vectors, atol=1e-5),
                     "cell_token_ids_as_declared",
                     "accepts_token_ids is true, but token ids give other outputs than the "
                     "same tokens as one-hot vectors")


def cell_bf16_as_declared(cls: type, options: dict[str, Any]) -> None:
    """A cell that declares supports_bf16 runs under bfloat16 autocast with finite
    outputs of the right shape."""
    if not cls.supports_bf16:
        return
    cell = _cell(cls, dict(options)).eval()
    _, inputs = _inputs(cell)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        begin = cell.begin_state(BATCH, "cpu")
        outputs, _ = cell(inputs, begin)
    _require(tuple(outputs.shape) == (STEPS, BATCH, cell.output_size), "cell_bf16_as_declared",
             f"outputs under autocast are shaped {tuple(outputs.shape)}")
    _require(bool(torch.isfinite(outputs.float()).all()), "cell_bf16_as_declared",
             "outputs under bfloat16 autocast are not finite")


CELL_RULES: tuple[Rule, ...] = (
    cell_builds, cell_shapes, cell_state_carries_over_detached,
    cell_gradients_reach_every_parameter, cell_deterministic_under_a_seed,
    cell_stacks_num_layers, cell_state_dict_round_trip, cell_token_ids_as_declared,
    cell_bf16_as_declared,
)


# -- samplers ------------------------------------------------------------------------


def _corpus(length: int = 400) -> torch.Tensor:
    return torch.arange(length, dtype=torch.long) % VOCAB


def _sampler(cls: type, options: dict[str, Any], batch_size: int = BATCH,
             num_steps: int = STEPS) -> Sampler:
    return cls(batch_size=batch_size, num_steps=num_steps, **options)


def _epoch(sampler: Sampler, corpus: torch.Tensor, rule: str) -> Iterator[Any]:
    """The sampler's batches of one epoch of ``corpus``, failing ``rule`` where the epoch
    does not end (every batch takes at least one token of each row, so an epoch of a
    corpus of N tokens has fewer than N batches) or where the sampler changes the corpus
    it was given (the run's training text)."""
    before = corpus.clone()
    for count, batch in enumerate(sampler(corpus), start=1):
        _require(count <= len(corpus), rule,
                 f"more than {len(corpus)} batches from a corpus of {len(corpus)} tokens: "
                 "an epoch must end (each call of the sampler is one pass over the corpus)")
        yield batch
    _require(torch.equal(corpus, before), rule,
             "the sampler changed the corpus it was given (the run's training text); "
             "copy it before changing anything")


def sampler_builds(cls: type, options: dict[str, Any]) -> None:
    """Built with keywords, the sampler keeps batch_size and num_steps."""
    sampler = _sampler(cls, options)
    _require(isinstance(sampler, Sampler), "sampler_builds",
             f"{cls.__qualname__} does not subclass seqlm.interfaces.Sampler")
    _require((sampler.batch_size, sampler.num_steps) == (BATCH, STEPS), "sampler_builds",
             f"batch_size, num_steps are {sampler.batch_size}, {sampler.num_steps}; expected "
             f"{BATCH}, {STEPS}: call super().__init__(batch_size, num_steps)")
    _require(isinstance(cls.contiguous, bool), "sampler_builds",
             "the class attribute contiguous must be True or False")
    _require(isinstance(cls.fixed_length, bool), "sampler_builds",
             "the class attribute fixed_length must be True or False")


#: How many epochs the sampler rules draw from one sampler: a sampler may change with
#: each call (a schedule, a counter), and a run calls it once per epoch.
EPOCHS = 3


#: Corpus lengths the batch rule draws from besides 400: one of each remainder by
#: batch_size x num_steps, so that a batch that comes out short (or long) only at some
#: lengths shows.
OTHER_LENGTHS = tuple(range(401, 401 + BATCH * STEPS))


def sampler_batches(cls: type, options: dict[str, Any]) -> None:
    """Every batch of every epoch is a pair of int64 tensors (batch_size, num_steps), Y
    one token on, from a corpus of any length.

    A sampler whose ``fixed_length`` is false may vary the length, from 1 to twice
    ``num_steps``.
    """
    sampler = _sampler(cls, options)
    draws = [(epoch, 400) for epoch in range(1, EPOCHS + 1)]
    draws += [(1, length) for length in OTHER_LENGTHS]
    for epoch, length in draws:
        if length != 400 and epoch == 1:
            sampler = _sampler(cls, options)  # a fresh one, as a run of that text has
        corpus = torch.arange(length, dtype=torch.long)
        where = "" if length == 400 else f" of a corpus of {length} tokens"
        count = 0
        for count, batch in enumerate(_epoch(sampler, corpus, "sampler_batches"), start=1):
            problem = batch_problem(batch, BATCH, STEPS, len(corpus),
                                    fixed_length=cls.fixed_length)
            # Counted from 1, as the run counts them.
            _require(problem is None, "sampler_batches",
                     f"epoch {epoch}, batch {count}{where}: {problem}")
        _require(count > 0, "sampler_batches",
                 f"epoch {epoch}: no batch from a corpus of {length} tokens")


def sampler_min_tokens(cls: type, options: dict[str, Any]) -> None:
    """A corpus of min_tokens() tokens gives at least one batch, whatever the seed."""
    for batch_size, num_steps in ((1, 1), (2, 3), (4, 2)):
        sampler = _sampler(cls, options, batch_size, num_steps)
        need = sampler.min_tokens()
        _require(isinstance(need, int) and need > 0, "sampler_min_tokens",
                 f"min_tokens() must be a positive int, got {need!r}")
        for seed in range(5):
            torch.manual_seed(seed)
            batches = list(_epoch(sampler, _corpus(need), "sampler_min_tokens"))
            _require(len(batches) > 0, "sampler_min_tokens",
                     f"min_tokens() is {need} for batches of {batch_size} x {num_steps}, but "
                     f"{need} tokens gave no batch (seed {seed})")


def sampler_deterministic_under_a_seed(cls: type, options: dict[str, Any]) -> None:
    """The same seed gives the same batches."""
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        runs.append([X.tolist() for X, _ in _epoch(_sampler(cls, options), _corpus(),
                                                    "sampler_deterministic_under_a_seed")])
    _require(runs[0] == runs[1], "sampler_deterministic_under_a_seed",
             "the same seed gave other batches; draw random numbers from torch's generator")


def sampler_contiguous_as_declared(cls: type, options: dict[str, Any]) -> None:
    """With contiguous true, row i of each batch continues row i of the one before."""
    if not cls.contiguous:
        return
    corpus = torch.arange(400, dtype=torch.long)
    previous = None
    for X, _ in _epoch(_sampler(cls, options), corpus, "sampler_contiguous_as_declared"):
        if previous is not None:
            _require(torch.equal(X[:, 0], previous[:, -1] + 1), "sampler_contiguous_as_declared",
                     "contiguous is true, but a batch's rows do not continue the rows of "
                     "the batch before")
        previous = X


SAMPLER_RULES: tuple[Rule, ...] = (
    sampler_builds, sampler_batches, sampler_min_tokens, sampler_deterministic_under_a_seed,
    sampler_contiguous_as_declared,
)


# -- tokenizers ----------------------------------------------------------------------


def _lines(count: int = len(LINES)) -> list[str]:
    """The first ``count`` lines, as a list of the tokenizer's own (a run's lines)."""
    return list(LINES[:count])


def _fitted(cls: type, options: dict[str, Any]) -> Tokenizer:
    tokenizer = cls(**options)
    tokenizer.fit(_lines())
    return tokenizer


def tokenizer_tokenize(cls: type, options: dict[str, Any]) -> None:
    """tokenize gives a list of string tokens for each line."""
    tokenizer, lines = cls(**options), _lines()
    tokenizer.fit(lines)
    _require(lines == _lines(), "tokenizer_tokenize",
             "fit changed the lines it was given (the run's text); work on a copy")
    _require(isinstance(tokenizer, Tokenizer), "tokenizer_tokenize",
             f"{cls.__qualname__} does not subclass seqlm.interfaces.Tokenizer")
    lines = _lines()
    tokens = tokenizer.tokenize(lines)
    _require(lines == _lines(), "tokenizer_tokenize",
             "tokenize changed the lines it was given (the run's text); work on a copy")
    _require(isinstance(tokens, list) and len(tokens) == len(LINES), "tokenizer_tokenize",
             f"expected a list of {len(LINES)} lists (one per line), got {type(tokens).__name__}")
    for line in tokens:
        _require(isinstance(line, list) and line and all(isinstance(t, str) and t for t in line),
                 "tokenizer_tokenize", "each line must give a non-empty list of non-empty str")


def tokenizer_detokenize(cls: type, options: dict[str, Any]) -> None:
    """detokenize gives text back, for any tokens the vocabulary may hold, <unk> too."""
    tokenizer = _fitted(cls, options)
    tokens = tokenizer.tokenize(_lines(1))[0]
    text = tokenizer.detokenize(tokens)
    _require(isinstance(text, str) and text.strip(), "tokenizer_detokenize",
             f"detokenize gave {text!r} for the tokens of a line")
    with_unk = tokenizer.detokenize([*tokens[:3], UNK, *tokens[3:5]])
    _require(isinstance(with_unk, str), "tokenizer_detokenize",
             f"detokenize must take {UNK!r} (unknown tokens) and give text")


def tokenizer_deterministic(cls: type, options: dict[str, Any]) -> None:
    """Two tokenizers fitted on the same lines split them alike, and one splits them
    alike every time it is asked (a run tokenizes its text, its prefix, its samples)."""
    tokenizer = _fitted(cls, options)
    first = tokenizer.tokenize(_lines())
    _require(first == _fitted(cls, options).tokenize(_lines()),
             "tokenizer_deterministic", "two fits on the same lines tokenize differently")
    for call in range(2, EPOCHS + 1):
        _require(tokenizer.tokenize(_lines()) == first, "tokenizer_deterministic",
                 f"call {call} of tokenize on the same lines split them differently from "
                 "the first; tokenize must not change what it learned in fit")


def tokenizer_state_round_trip(cls: type, options: dict[str, Any]) -> None:
    """state_dict is JSON; load_state_dict on a fresh tokenizer restores the same splits."""
    tokenizer = _fitted(cls, options)
    tokenizer.tokenize(_lines())  # as a run does before its first checkpoint
    # Compared on less than it learned from, as a run compares its opening lines: a
    # tokenizer that learns in tokenize and keeps nothing shows itself there.
    problem = tokenizer_state_problem(tokenizer, lambda: cls(**options), _lines(1))
    _require(problem is None, "tokenizer_state_round_trip", str(problem))


TOKENIZER_RULES: tuple[Rule, ...] = (
    tokenizer_tokenize, tokenizer_detokenize, tokenizer_deterministic,
    tokenizer_state_round_trip,
)


# -- trainers ------------------------------------------------------------------------


class _Recorder(Callback):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_train_start(self, trainer: Trainer) -> None:
        self.calls.append("start")

    def on_epoch_end(self, trainer: Trainer, metrics: Any) -> None:
        self.calls.append("epoch")

    def on_train_end(self, trainer: Trainer, history: Any) -> None:
        self.calls.append("end")


def _fit(cls: type, options: dict[str, Any], epochs: int = 2, seed: int = 0,
         state: dict[str, Any] | None = None, model: Any = None,
         callbacks: Sequence[Callback] = ()):
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
    corpus = _corpus(300)
    history = trainer.fit(model, corpus[:240], SequentialSampler(4, 5), [*callbacks, recorder],
                          val_corpus=corpus[240:])
    problem = history_problem(history)
    _require(problem is None, "trainer_fit", str(problem))
    return trainer, model, history, recorder


def trainer_fit(cls: type, options: dict[str, Any]) -> None:
    """fit trains every epoch, calls the callbacks, and returns (and keeps) the history."""
    trainer, model, history, recorder = _fit(cls, options)
    _require(isinstance(trainer, Trainer), "trainer_fit",
             f"{cls.__qualname__} does not subclass seqlm.interfaces.Trainer")
    _require([m.epoch for m in history] == [1, 2], "trainer_fit",
             f"expected the metrics of epochs [1, 2], got {[m.epoch for m in history]}")
    _require(all(math.isfinite(m.train_loss) for m in history), "trainer_fit",
             "a training loss is not finite")
    _require([m.epoch for m in trainer.history] == [1, 2], "trainer_fit",
             "trainer.history must hold the metrics of every finished epoch")
    _require(recorder.calls == ["start", "epoch", "epoch", "end"], "trainer_fit",
             f"callbacks were called as {recorder.calls}; expected on_train_start, "
             "on_epoch_end per epoch, on_train_end")
    if cls.validates:
        _require(all(m.val_loss is not None for m in history), "trainer_fit",
                 "validates is true, but the metrics have no val_loss")


def trainer_deterministic_under_a_seed(cls: type, options: dict[str, Any]) -> None:
    """The same seed trains to the same losses."""
    first = [m.train_loss for m in _fit(cls, options)[2]]
    second = [m.train_loss for m in _fit(cls, options)[2]]
    _require(first == second, "trainer_deterministic_under_a_seed",
             f"the same seed gave losses {first} and {second}")


def trainer_state_round_trip(cls: type, options: dict[str, Any]) -> None:
    """A trainer resumed from state_dict() continues where it stopped (None: it cannot
    resume, and says so)."""
    trainer, model, _, _ = _fit(cls, options, epochs=1)
    state = trainer.state_dict()
    if state is None:
        return
    _require(isinstance(state, dict), "trainer_state_round_trip",
             f"state_dict() must give a dict or None, got {type(state).__name__}")
    try:
        pack(state, {})  # what a checkpoint does with it
    except UnstorableError as error:
        _require(False, "trainer_state_round_trip", f"state_dict() {error.problem()}")
    resumed, _, history, recorder = _fit(cls, options, epochs=2, state=copy.deepcopy(state),
                                         model=model)
    _require(resumed.start_epoch == 1, "trainer_state_round_trip",
             f"after load_state_dict of an epoch-1 state, start_epoch is {resumed.start_epoch}")
    _require([m.epoch for m in history] == [1, 2] and recorder.calls.count("epoch") == 1,
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
    corpus = _corpus(300)
    history = trainer.fit(RNNModel(TorchRNN(VOCAB, 8), VOCAB), corpus[:240],
                          SequentialSampler(4, 5), [_StopsAtEpochOne(), recorder],
                          val_corpus=corpus[240:])
    _require([m.epoch for m in history] == [1], "trainer_stops_when_asked",
             f"a callback called trainer.request_stop at epoch 1 of 3, yet fit returned "
             f"epochs {[m.epoch for m in history]}: check trainer.stop_requested after "
             "each epoch's callbacks and stop there")
    _require(recorder.calls == ["start", "epoch", "end"], "trainer_stops_when_asked",
             f"callbacks were called as {recorder.calls}; a stopped fit still calls "
             "on_train_end")
    _require(bool(trainer.stop_reason) and "the kit asked" in trainer.stop_reason,
             "trainer_stops_when_asked",
             f"stop_reason must say why fit stopped (the reason given), got "
             f"{trainer.stop_reason!r}")


TRAINER_RULES: tuple[Rule, ...] = (
    trainer_fit, trainer_deterministic_under_a_seed, trainer_state_round_trip,
    trainer_stops_when_asked,
)


# -- loggers (callbacks a plugin registers for --log NAME) --------------------------


class _Fails(Callback):
    def on_epoch_end(self, trainer: Trainer, metrics: Any) -> None:
        raise RuntimeError("training failed (the kit's own error)")


@contextlib.contextmanager
def _logger_run() -> Iterator[tuple[RunInfo, Path]]:
    """A :class:`RunInfo` whose run folder is a fresh temporary one, with the working
    directory moved to another, empty one for the rule (a logger that writes to a
    relative path shows there); the run folder and the working directory it used."""
    from seqlm.config import RunConfig

    with tempfile.TemporaryDirectory() as root:
        out_dir, cwd = Path(root) / "run", Path(root) / "cwd"
        out_dir.mkdir()
        cwd.mkdir()
        run = RunInfo(out_dir, RunConfig(out=str(out_dir)).to_dict(), 1,
                      lambda length: "the time traveller"[:length])
        before = os.getcwd()
        os.chdir(cwd)
        try:
            yield run, cwd
        finally:
            os.chdir(before)


def logger_builds(cls: type, options: dict[str, Any]) -> None:
    """Built as ``cls(run)`` with a :class:`~seqlm.interfaces.RunInfo`, it is a Callback."""
    with _logger_run() as (run, _):
        logger = cls(run, **options)
        _require(isinstance(logger, Callback), "logger_builds",
                 f"{cls.__qualname__} does not subclass seqlm.interfaces.Callback")


def logger_hears_a_run(cls: type, options: dict[str, Any]) -> None:
    """It hears a run of two epochs, its start, each epoch and its end, and writes only
    inside the run folder."""
    from seqlm.training.trainer import DefaultTrainer

    with _logger_run() as (run, cwd):
        _fit(DefaultTrainer, {}, callbacks=[cls(run, **options)])
        _require(not any(cwd.iterdir()), "logger_hears_a_run",
                 f"it wrote {sorted(p.name for p in cwd.iterdir())} into the working "
                 "directory; write only inside run.out_dir")


def logger_hears_a_failure(cls: type, options: dict[str, Any]) -> None:
    """When training fails, its on_exception is called and does not raise: the run's own
    error is the one the user sees."""
    from seqlm.training.trainer import DefaultTrainer

    with _logger_run() as (run, _):
        try:
            _fit(DefaultTrainer, {}, callbacks=[_Fails(), cls(run, **options)])
        except Exception as error:  # the run's, or one the logger raised in its stead
            _require("the kit's own error" in str(error), "logger_hears_a_failure",
                     f"on_exception raised {type(error).__name__}: {error}; it must let the "
                     "run's error through")
        else:
            _require(False, "logger_hears_a_failure", "training that failed did not raise")


LOGGER_RULES: tuple[Rule, ...] = (logger_builds, logger_hears_a_run, logger_hears_a_failure)


# -- entry points --------------------------------------------------------------------

_RULES = ((RecurrentCell, CELL_RULES), (Sampler, SAMPLER_RULES), (Tokenizer, TOKENIZER_RULES),
          (Trainer, TRAINER_RULES), (Callback, LOGGER_RULES))


def _kind_of(base: type) -> str:
    """``cell`` for RecurrentCell, and so on: the kind whose interface ``base`` is."""
    return next(k for k, name in INTERFACES.items() if name == base.__name__)


def interface(cls: type, options: dict[str, Any]) -> None:
    """What seqlm checks when the class is registered: it subclasses its interface and
    implements every abstract method (a sampler also says whether it is ``contiguous``)."""
    base = next(base for base, _ in _RULES if issubclass(cls, base))
    problem = interface_problem(_kind_of(base), cls)
    _require(problem is None, "interface", str(problem))


def rules_for(cls: type) -> tuple[Rule, ...]:
    """The rules of the interface ``cls`` implements, :func:`interface` first."""
    for base, rules in _RULES:
        if isinstance(cls, type) and issubclass(cls, base):
            return (interface, *rules)
    raise TypeError(f"{cls!r} implements none of seqlm's interfaces (RecurrentCell, Sampler, "
                    "Tokenizer, Trainer, Callback)")


def apply_rule(rule: Rule, cls: type, options: dict[str, Any]) -> None:
    """Run one rule; an exception the class raises fails the rule, with its name.

    The rule leaves torch's random generators and default dtype as it found them, so
    that one class's rules cannot fail another's; a class that changed the default dtype
    fails the rule (a run's model would change with it)."""
    dtype = torch.get_default_dtype()
    try:
        with rng_kept():
            rule(cls, dict(options))
    except AssertionError:
        raise
    except (Exception, SystemExit) as error:
        raise _fail(rule.__name__, f"{cls.__qualname__} raised {type(error).__name__}: "
                    f"{error}{cause_hint(error)}") from error
    finally:
        changed = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
    _require(changed == dtype, rule.__name__,
             f"{cls.__qualname__} changed torch's default dtype to {changed}: a component "
             "must leave torch's global settings as it found them")


def _check_all(cls: type, options: dict[str, Any], base: type) -> None:
    if not (isinstance(cls, type) and issubclass(cls, base)):  # another interface, or none
        raise _fail("interface", str(interface_problem(_kind_of(base), cls)))
    for rule in rules_for(cls):
        apply_rule(rule, cls, options)


def check_cell(cls: type, **options: Any) -> None:
    """Check a :class:`~seqlm.interfaces.RecurrentCell` class against its contract."""
    _check_all(cls, options, RecurrentCell)


def check_sampler(cls: type, **options: Any) -> None:
    """Check a :class:`~seqlm.interfaces.Sampler` class against its contract."""
    _check_all(cls, options, Sampler)


def check_tokenizer(cls: type, **options: Any) -> None:
    """Check a :class:`~seqlm.interfaces.Tokenizer` class against its contract."""
    _check_all(cls, options, Tokenizer)


def check_trainer(cls: type, **options: Any) -> None:
    """Check a :class:`~seqlm.interfaces.Trainer` class against its contract."""
    _check_all(cls, options, Trainer)


def check_logger(cls: type, **options: Any) -> None:
    """Check a logger (a :class:`~seqlm.interfaces.Callback` that a plugin registers for
    ``seqlm run --log NAME``) against its contract."""
    _check_all(cls, options, Callback)


def all_checks(
    components: Iterable[type | tuple[type, dict[str, Any]]],
) -> list[tuple[str, Callable[[], None]]]:
    """``(id, check)`` for every rule of every component; ``check()`` runs one rule.

    A component is a class, or a ``(class, options)`` pair. The id names the class, its
    options and the rule (``MinGRU[num_layers=2]-cell_shapes``), so the same class checked
    with two sets of options gives cases that say which set failed.
    """
    checks = []
    for item in components:
        cls, options = item if isinstance(item, tuple) else (item, {})
        label = cls.__qualname__
        if options:
            label += "[" + ",".join(f"{key}={value!r}" for key, value in options.items()) + "]"
        for rule in rules_for(cls):
            def check(rule: Rule = rule, cls: type = cls, options: dict = options) -> None:
                apply_rule(rule, cls, options)
            checks.append((f"{label}-{rule.__name__}", check))
    return checks


def parametrize_checks(components: Sequence[type | tuple[type, dict[str, Any]]]) -> Any:
    """A ``pytest.mark.parametrize`` over every rule of every component, as ``check``."""
    import pytest

    checks = all_checks(components)
    return pytest.mark.parametrize("check", [c for _, c in checks], ids=[i for i, _ in checks])
