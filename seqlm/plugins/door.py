"""The check at the door: before training, the first batch and the first forward pass.

A sampler or cell that breaks its contract would otherwise train silently into a
degenerate model (batch-major outputs, transposed batches) or fail deep inside seqlm.
Here it is refused before the run folder is made, with a one-line error naming the
component, its plugin's distribution and version, what was expected and what came, and
the section of ``docs/plugins/contracts.md``. It costs one batch and one forward pass
per run, and leaves the random number generators as it found them, so a seeded run
trains exactly as without it. Later batches get the part of the check that reads no
token, as training draws them (:class:`CheckedSampler`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import torch

from seqlm.errors import refuse
from seqlm.interfaces import RecurrentCell, Sampler, State, tokens_problem
from seqlm.plugins.blame import calling
from seqlm.plugins.culprit import SUPER_INIT_FIX

if TYPE_CHECKING:
    from seqlm.plugins.manager import Plugins


def describe_structure(state: Any) -> str:
    """A state's structure in words: ``tensor (1, 4, 8)``, ``(tensor ..., tensor ...)``."""
    if isinstance(state, torch.Tensor):
        return f"tensor {tuple(state.shape)}"
    if isinstance(state, tuple):
        return "(" + ", ".join(describe_structure(s) for s in state) + ")"
    return type(state).__name__


def batch_shape_problem(batch: Any, batch_size: int, num_steps: int,
                        fixed_length: bool = True) -> str | None:
    """What is wrong with one sampled batch's structure, shapes and types, or None.

    A batch is a pair ``(X, Y)`` of int64 tensors shaped ``(batch_size, num_steps)``.
    With ``fixed_length`` false (a sampler that varies its lengths) any length from 1 to
    twice ``num_steps`` will do. It reads no token, so it never waits for the device
    and can check every batch (:class:`CheckedSampler`).
    """
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        size = f" of {len(batch)} items" if isinstance(batch, (tuple, list)) else ""
        return f"expected a pair (X, Y), got a {type(batch).__name__}{size}"
    want = (batch_size, num_steps)
    for label, t in zip("XY", batch, strict=True):
        if not isinstance(t, torch.Tensor):
            return f"expected {label} to be a torch.Tensor, got a {type(t).__name__}"
        if t.dtype != torch.int64:
            return f"expected {label} of dtype torch.int64 (token ids), got {t.dtype}"
        if not fixed_length:
            if t.dim() == 2 and t.shape[0] == batch_size and 1 <= t.shape[1] <= 2 * num_steps:
                continue
            return (f"expected {label} shaped (batch_size, 1 to 2 x num_steps) = "
                    f"({batch_size}, 1..{2 * num_steps}), got {tuple(t.shape)}")
        if tuple(t.shape) != want:
            hint = ""
            if tuple(t.shape) == want[::-1]:
                hint = " (transposed: rows are sequences, columns time steps)"
            elif t.dim() == 2 and t.shape[0] == batch_size:
                hint = " (a sampler that varies the length sets fixed_length = False)"
            return (f"expected {label} shaped (batch_size, num_steps) = {want}, got "
                    f"{tuple(t.shape)}{hint}")
    X, Y = batch
    if X.shape != Y.shape:
        return f"expected X and Y of one shape, got {tuple(X.shape)} and {tuple(Y.shape)}"
    return None


def batch_problem(batch: Any, batch_size: int, num_steps: int, vocab_size: int = 0,
                  fixed_length: bool = True) -> str | None:
    """What is wrong with one sampled batch, or None: :func:`batch_shape_problem`, and
    then its tokens: ids within the vocabulary, ``Y`` holding the token after each
    token of ``X``."""
    problem = batch_shape_problem(batch, batch_size, num_steps, fixed_length)
    if problem:
        return problem
    X, Y = batch
    if vocab_size and (int(X.min()) < 0 or int(X.max()) >= vocab_size):
        return f"expected token ids from 0 to {vocab_size - 1}, got {int(X.min())}..{int(X.max())}"
    if X.shape[1] > 1 and not torch.equal(X[:, 1:], Y[:, :-1]):
        return "expected Y to be X shifted by one token (Y[:, t] == X[:, t + 1]), got other ids"
    return None


def endless_epoch_problem(batches: int, tokens: int) -> str | None:
    """What is wrong with an epoch of a corpus of ``tokens`` that has reached batch number
    ``batches``, or None: every batch takes at least a token of each row, so an epoch
    still going after ``tokens`` batches never ends (and would hang the run unseen)."""
    if batches <= tokens:
        return None
    return (f"more than {tokens} batches from a corpus of {tokens} tokens: an epoch must end "
            "(each call of the sampler is one pass over the corpus)")


class CheckedSampler(Sampler):
    """A sampler whose every batch is checked as it is drawn, structure, shapes and
    types (:func:`batch_shape_problem`), and refused as ``label``'s fault.

    The check at the door reads the first batch only; a sampler whose later batches
    go wrong (a short last batch, say) would otherwise fail inside the cell or seqlm,
    or train on silently. Everything else is the wrapped sampler's.
    """

    def __init__(self, sampler: Sampler, label: str) -> None:
        super().__init__(sampler.batch_size, sampler.num_steps)
        self.inner = sampler
        self.label = label
        self.contiguous = sampler.contiguous
        self.fixed_length = sampler.fixed_length

    def __call__(self, corpus: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        inner = self.inner
        tokens = len(corpus)
        for number, batch in enumerate(inner(corpus), start=1):
            endless = endless_epoch_problem(number, tokens)
            if endless:
                raise refuse(self.label, "sampler", endless)
            problem = batch_shape_problem(batch, inner.batch_size, inner.num_steps,
                                          inner.fixed_length)
            if problem:
                raise refuse(self.label, "sampler", f"batch {number}: {problem}")
            yield batch

    def min_tokens(self) -> int:
        return self.inner.min_tokens()

    def __getattr__(self, name: str) -> Any:
        # Only for what this class does not have: the wrapped sampler's own members.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


def forward_problem(
    cell: RecurrentCell, result: Any, begin: State, num_steps: int, batch_size: int,
    dtype: torch.dtype | None = None,
) -> str | None:
    """What is wrong with what ``cell.forward`` returned, or None; ``dtype``, where
    given, is the one the outputs must have: the output layer's, which takes them."""
    if not isinstance(result, tuple) or len(result) != 2:
        size = f" of {len(result)} items" if isinstance(result, (tuple, list)) else ""
        return f"expected forward to return (outputs, state), got a {type(result).__name__}{size}"
    outputs, state = result
    if not isinstance(outputs, torch.Tensor):
        return f"expected outputs to be a torch.Tensor, got a {type(outputs).__name__}"
    want = (num_steps, batch_size, cell.output_size)
    if tuple(outputs.shape) != want:
        got = tuple(outputs.shape)
        hint = ""
        if got == (batch_size, num_steps, cell.output_size):
            hint = " (batch-major: outputs must be time-major)"
        elif got[-1:] != want[-1:] and got[:-1] == want[:-1]:
            hint = " (set self.output_size to the size of each output vector)"
        elif got == want[1:]:
            hint = " (the last step only: return the outputs of every step)"
        return (f"expected outputs shaped (num_steps, batch, output_size) = {want}, "
                f"got {got}{hint}")
    if dtype is not None and outputs.dtype != dtype:
        return (f"expected outputs of dtype {dtype} (the model's), got {outputs.dtype}; "
                "compute in the dtype of the cell's weights and inputs")
    if describe_structure(state) != describe_structure(begin):
        return (f"expected a state structured like begin_state's {describe_structure(begin)}, "
                f"got {describe_structure(state)}")
    if outputs.is_floating_point():
        bad = int((~torch.isfinite(outputs)).sum())
        if bad:
            return (f"expected finite outputs, got nan or infinity in {bad} of "
                    f"{outputs.numel()} values")
    return None


def cell_attributes_problem(cell: Any) -> str | None:
    """What is wrong with a freshly built cell's declared sizes, or None."""
    if not isinstance(cell, RecurrentCell):
        return f"expected a RecurrentCell from the constructor, got a {type(cell).__name__}"
    for name in ("input_size", "hidden_size", "output_size"):
        value = cell.__dict__.get(name, getattr(type(cell), name, None))
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            shown = "nothing" if value is None else repr(value)
            return f"expected self.{name} to be a positive int, got {shown}; {SUPER_INIT_FIX}"
    return None


def history_problem(history: Any) -> str | None:
    """What is wrong with what ``Trainer.fit`` returned, or None."""
    from seqlm.metrics import EpochMetrics

    if not isinstance(history, (list, tuple)) or not all(
            isinstance(m, EpochMetrics) for m in history):
        return (f"expected fit to return a list of EpochMetrics, one per epoch, got "
                f"{type(history).__name__}")
    return None


def state_problem(state: Any) -> str | None:
    """What is wrong with a state from ``begin_state``, or None."""
    if isinstance(state, torch.Tensor):
        return None
    if isinstance(state, tuple) and state and all(state_problem(s) is None for s in state):
        return None
    return ("expected begin_state to give a tensor or a tuple of tensors, got "
            f"{describe_structure(state)}")


@contextlib.contextmanager
def rng_kept() -> Iterator[None]:
    """Put torch's and Python's random number generators back as they were, however the
    block ends: the CPU's, and every GPU's where CUDA is in use (a sampler draws on the
    corpus's device, a logger on the model's, which need not be the current one)."""
    python = random.getstate()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(python)


def first_batch(
    sampler: Sampler, corpus: torch.Tensor, label: str, vocab_size: int = 0,
    guard: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The sampler's first batch of ``corpus``, checked; raises :class:`ContractError`.

    ``guard()`` wraps each call into the sampler (see :func:`seqlm.plugins.blame.calling`).
    """
    try:
        with guard():
            batches = iter(sampler(corpus))
            batch = next(batches)
    except StopIteration:
        raise refuse(label, "sampler", f"it yielded no batch from a corpus of {len(corpus)} "
                     f"tokens, which its min_tokens() ({sampler.min_tokens()}) says is "
                     "enough") from None
    problem = batch_problem(batch, sampler.batch_size, sampler.num_steps, vocab_size,
                            fixed_length=sampler.fixed_length)
    if problem:
        raise refuse(label, "sampler", problem)
    return batch


def check_forward(
    model: Any, X: torch.Tensor, label: str,
    guard: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> None:
    """Run the model's cell once on the inputs it would get for ``X``; check the result.

    When a batch is as long as it is wide, one step fewer is used, so that time-major
    and batch-major outputs differ in shape. ``guard()`` wraps each call into the cell.
    """
    if X.shape[0] == X.shape[1] and X.shape[1] > 1:
        X = X[:, :-1]
    cell = model.cell
    num_steps, batch_size = X.shape[1], X.shape[0]
    with guard():
        begin = cell.begin_state(batch_size, X.device)
    problem = state_problem(begin)
    if problem is None:
        inputs = model.cell_inputs(X.T)
        with torch.no_grad(), guard():
            result = cell(inputs, begin)
        problem = forward_problem(cell, result, begin, num_steps, batch_size,
                                  model.head.weight.dtype)
    if problem:
        raise refuse(label, "cell", problem)


def tokenizer_state_problem(
    tokenizer: Any, rebuild: Callable[[], Any], lines: list[str],
    guard: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> str | None:
    """What is wrong with a fitted tokenizer's ``state_dict``, or None: it must be JSON,
    and a tokenizer from ``rebuild()`` that loads it must split ``lines`` as the fitted
    one does (else a saved run would read its prefixes and texts with other tokens)."""
    with guard():
        state = tokenizer.state_dict()
    try:
        state = json.loads(json.dumps(state))
    except (TypeError, ValueError) as error:
        return f"state_dict() is not JSON-serialisable: {error}"
    with guard():
        once, again = tokenizer.tokenize(lines), tokenizer.tokenize(lines)
    if once != again:
        # Said first: a restored tokenizer could not split them alike either.
        first, second = _first_difference(once, again)
        return ("it splits the same lines differently from one call to the next (first "
                f"{first}, then {second}); tokenize must give the same tokens for the same "
                "lines (draw no random numbers there)")
    with guard():
        restored = rebuild()
        restored.load_state_dict(state)
        same = restored.tokenize(lines) == tokenizer.tokenize(lines)
    if not same:
        fitted, again = _first_difference(tokenizer.tokenize(lines), restored.tokenize(lines))
        return ("a tokenizer restored from state_dict() splits the lines differently "
                f"(the fitted one: {fitted}; the restored one: {again}); state_dict() must "
                "keep what fit (or tokenize) learned, as JSON")
    return None


def _first_difference(one: list[list[str]], two: list[list[str]]) -> tuple[str, str]:
    """The first line the two splits differ on, a few tokens of each from there."""
    for a, b in zip(one, two, strict=False):
        if a != b:
            start = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                         min(len(a), len(b)))
            return _shown(a[start:start + 6]), _shown(b[start:start + 6])
    return _shown(one[len(two):][:1]), _shown(two[len(one):][:1])


def _shown(tokens: list) -> str:
    return "[" + ", ".join(repr(t) for t in tokens) + (", ...]" if len(tokens) >= 6 else "]")


def check_tokenizer_output(
    tokenizer: Any, lines: list[str], label: str,
    guard: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> None:
    """Check what the (fitted) tokenizer gives for a few of the training lines."""
    with guard():
        tokens = tokenizer.tokenize(lines)
    problem = tokens_problem(lines, tokens)
    if problem is None and tokens and tokens[0]:
        with guard():
            text = tokenizer.detokenize(tokens[0])
        if not isinstance(text, str):
            problem = f"expected detokenize to give a str, got a {type(text).__name__}"
    if problem:
        raise refuse(label, "tokenizer", problem)


def component_label(kind: str, name: str, plugins: Plugins) -> str:
    """``cell 'NAME' from DIST VERSION``, or ``cell 'NAME' (built in)``."""
    return f"{kind} {name!r}{plugins.origin(kind, name) or ' (built in)'}"


def _spare(sampler: Sampler) -> Sampler:
    """A copy of ``sampler`` for the check, so that the run's own starts its first epoch
    as it would without the check (a sampler may count its calls, or change with each
    epoch); the sampler itself where it cannot be copied."""
    try:
        return copy.deepcopy(sampler)
    except Exception:  # the sampler's own __deepcopy__ or members: the check goes on
        return sampler


def check_before_training(
    model: Any, sampler: Sampler, corpus: torch.Tensor, vocab_size: int,
    names: dict[str, str], plugins: Plugins,
) -> None:
    """The check at the door: the sampler's first batch of ``corpus`` and the cell's
    first forward pass on it. ``names`` gives the ``sampler`` and ``cell`` names."""
    def guard(kind: str) -> Callable[[], contextlib.AbstractContextManager]:
        return lambda: calling(kind, names[kind], plugins)

    with rng_kept():
        X, _ = first_batch(_spare(sampler), corpus,
                           component_label("sampler", names["sampler"], plugins), vocab_size,
                           guard=guard("sampler"))
        check_forward(model, X, component_label("cell", names["cell"], plugins),
                      guard=guard("cell"))
