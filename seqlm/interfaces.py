"""The interfaces that seqlm's components, built-in or from plugins, implement.

A plugin registers a class under a user-facing name (see :mod:`seqlm.hookspecs`); the
framework builds it with the keyword arguments listed on each class below, plus any
option the user passes. Everything the framework calls or reads on a component is
declared here, with a default where it is optional: seqlm never probes a component for
a member its interface does not declare. ``docs/plugins/contracts.md`` states each one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from seqlm.errors import UsageError

if TYPE_CHECKING:
    from seqlm.metrics import EpochMetrics

#: A recurrent state: one tensor (RNN, GRU) or a tuple of tensors (LSTM's ``(h, c)``).
State = torch.Tensor | tuple[torch.Tensor, ...]


class Tokenizer(ABC):
    """Turns lines of text into tokens, and tokens back into text.

    Built as ``cls(**options)``. :meth:`fit` is called once with the training lines before
    :meth:`tokenize`, so a tokenizer that learns its units (such as BPE) can do so.
    :meth:`detokenize` may receive ``"<unk>"``, the token that stands for what the
    vocabulary lacks.
    """

    #: What :meth:`detokenize` puts between tokens; used to show generated text.
    separator: ClassVar[str] = ""

    def fit(self, lines: Sequence[str]) -> None:  # noqa: B027 - optional hook, no-op default
        """Learn from the training lines; most tokenizers need nothing."""

    @abstractmethod
    def tokenize(self, lines: Sequence[str]) -> list[list[str]]:
        """Split each line into a list of tokens."""

    def detokenize(self, tokens: Sequence[str]) -> str:
        """Join tokens back into text (``"<unk>"`` among them, for unknown tokens)."""
        return self.separator.join(tokens)

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state needed to rebuild a fitted tokenizer."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional
        """Restore what :meth:`state_dict` returned."""


class Sampler(ABC):
    """Cuts a 1-D corpus of token ids into minibatches.

    Built as ``cls(batch_size=..., num_steps=..., **options)``; the base class keeps
    both as :attr:`batch_size` and :attr:`num_steps`. Calling it on a corpus yields
    ``(X, Y)`` pairs of int64 tensors shaped ``(batch_size, num_steps)``, ``Y`` being
    ``X`` shifted by one token. Randomness comes from torch's global generator, so
    ``--seed`` makes a run repeatable.
    """

    #: True when row ``i`` of each batch continues row ``i`` of the previous batch; the
    #: trainer then carries the hidden state over (detached) instead of starting afresh.
    contiguous: ClassVar[bool] = False

    #: False when batches vary in length around ``num_steps``; the default trainer then
    #: scales each batch's learning rate by its length over ``num_steps``.
    fixed_length: ClassVar[bool] = True

    def __init__(self, batch_size: int, num_steps: int) -> None:
        #: Rows of every batch.
        self.batch_size = batch_size
        #: Time steps (columns) of every batch.
        self.num_steps = num_steps

    @abstractmethod
    def __call__(self, corpus: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield one epoch of ``(X, Y)`` batches from ``corpus``."""

    def min_tokens(self) -> int:
        """The fewest corpus tokens that give at least one batch."""
        return self.batch_size * self.num_steps + 1


class RecurrentCell(nn.Module, ABC):
    """A (possibly multi-layer) recurrent network over a sequence of input vectors.

    Built as ``cls(input_size=..., hidden_size=..., num_layers=..., **options)``.
    ``forward(inputs, state)`` takes float inputs shaped ``(num_steps, batch, input_size)``
    (or, where :attr:`accepts_token_ids` is true, int64 token ids shaped ``(num_steps,
    batch)``) and returns ``(outputs, state)`` with outputs shaped ``(num_steps, batch,
    output_size)`` and a state of the structure :meth:`begin_state` gives.

    A subclass may call ``super().__init__()`` with no arguments, as every torch module
    does: the sizes the framework passed to the subclass's constructor are then taken
    from that call.
    """

    #: True when :meth:`forward` takes token ids instead of one-hot vectors (only used
    #: without ``--embedding-dim``); the cell then looks up its input weights' rows.
    accepts_token_ids: ClassVar[bool] = False
    #: True when the cell runs under bfloat16 autocast (``--precision bf16``);
    #: ``seqlm.testing.check_cell`` then checks that it does.
    supports_bf16: ClassVar[bool] = False

    #: Size of each output vector: hidden size times the number of directions.
    output_size: int

    def __new__(cls, *args: Any, **kwargs: Any) -> RecurrentCell:
        self = super().__new__(cls)
        # Kept so that ``super().__init__()`` without arguments still knows the sizes
        # the framework gave the subclass's constructor (always as keywords).
        object.__setattr__(self, "_given_sizes", {
            key: kwargs[key] for key in ("input_size", "hidden_size", "num_layers")
            if key in kwargs})
        return self

    def __init__(
        self, input_size: int | None = None, hidden_size: int | None = None,
        num_layers: int | None = None,
    ) -> None:
        super().__init__()
        given = self.__dict__.get("_given_sizes", {})
        sizes = {"input_size": input_size, "hidden_size": hidden_size,
                 "num_layers": num_layers}
        for key, value in sizes.items():
            sizes[key] = value if value is not None else given.get(key)
        if sizes["input_size"] is None or sizes["hidden_size"] is None:
            raise TypeError(f"{type(self).__qualname__} needs input_size and hidden_size: "
                            "build it with keywords, cls(input_size=..., hidden_size=...)")
        self.input_size: int = sizes["input_size"]
        self.hidden_size: int = sizes["hidden_size"]
        self.num_layers: int = sizes["num_layers"] or 1
        self.output_size = self.hidden_size

    @abstractmethod
    def begin_state(self, batch_size: int, device: torch.device | str) -> State:
        """The initial state for ``batch_size`` sequences on ``device``."""

    @abstractmethod
    def forward(self, inputs: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Run the cell over ``inputs``, starting from ``state``."""


class Trainer(ABC):
    """Runs the training loop.

    Built as ``cls(lr=..., clip=..., epochs=..., device=..., **options)``. Besides
    :meth:`fit`, the framework reads :attr:`start_epoch` and :attr:`history` (progress,
    metrics and checkpoints of a resumed run), calls :meth:`state_dict` after every epoch
    for the checkpoint and :meth:`load_state_dict` to resume.
    """

    #: False on the processes of a distributed run other than rank 0, which must not
    #: write files or print; the run's outputs come from rank 0 alone.
    is_main_process: bool = True
    #: True when :meth:`fit` validates on its ``val_corpus``; otherwise the run says
    #: that held-out text goes unused.
    validates: ClassVar[bool] = False
    #: Epochs already done before :meth:`fit` (non-zero once resumed).
    start_epoch: int = 0
    #: The metrics of every finished epoch, the resumed ones included.
    history: Sequence[EpochMetrics] = ()

    #: Why the last :meth:`fit` stopped before ``epochs`` (early stopping, or a
    #: callback's :meth:`request_stop`), else None.
    stop_reason: str | None = None
    #: What :meth:`request_stop` asked during this :meth:`fit`, else None.
    stop_requested: str | None = None

    def __init__(
        self, lr: float, clip: float, epochs: int, device: torch.device | str = "cpu"
    ) -> None:
        self.lr = lr
        self.clip = clip
        self.epochs = epochs
        self.device = torch.device(device)
        self.start_epoch = 0
        self.history = []

    def averaged_weights(self) -> dict[str, torch.Tensor] | None:
        """The averaged weights (``--average``) as the model's ``state_dict``, else None.

        The best checkpoint saves them for an epoch whose ``avg_val_loss`` is the lower.
        """
        return None

    def check(self, sampler: Sampler) -> None:  # noqa: B027 - optional hook, no-op default
        """Raise a usage error now if this trainer cannot train with ``sampler``.

        Called before the run folder is made, so a setting the trainer cannot use costs
        no folder and no time. Nothing to check by default.
        """

    @abstractmethod
    def fit(
        self,
        model: nn.Module,
        corpus: torch.Tensor,
        sampler: Sampler,
        callbacks: Sequence[Callback] = (),
        val_corpus: torch.Tensor | None = None,
    ) -> list[EpochMetrics]:
        """Train ``model`` on ``corpus`` for ``self.epochs`` epochs; return each epoch's metrics.

        ``model`` is a :class:`seqlm.model.rnn.RNNModel`: ``model(X, state)`` returns logits
        shaped ``(num_steps * batch, vocab_size)`` (time-major) and the new state, and
        ``model(X, state, with_penalty=True)`` also returns the activation penalty to
        add to the loss that is differentiated. ``val_corpus`` holds the held-out token
        ids (None when nothing is held out).
        """

    def request_stop(self, reason: str) -> None:
        """Ask :meth:`fit` to stop once the epoch that is ending is done, for ``reason``.

        A callback calls it from ``on_epoch_end``: the other callbacks still hear that
        epoch (its checkpoint is saved), then ``fit`` returns, with :attr:`stop_reason`
        saying why, and ``on_train_end`` is called as at the last epoch. A run stopped
        so resumes as any other.
        """
        if not isinstance(reason, str) or not reason.strip():
            raise UsageError(f"request_stop needs a reason, a non-empty str; got {reason!r}")
        self.stop_requested = " ".join(reason.split())

    def state_dict(self) -> dict[str, Any] | None:
        """The state a checkpoint keeps to resume this run; None: it cannot resume."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from what :meth:`state_dict` returned, at the next :meth:`fit`."""
        raise UsageError(f"trainer {type(self).__qualname__} keeps no state in checkpoints "
                         "and cannot resume; start a new run")


def map_state(fn: Callable[[torch.Tensor], torch.Tensor], state: State) -> State:
    """``fn`` applied to every tensor of a state, keeping the state's structure."""
    if isinstance(state, torch.Tensor):
        return fn(state)
    return tuple(map_state(fn, s) for s in state)


def detach_state(state: State) -> State:
    """Cut the autograd history of a state, keeping its values (for truncated BPTT)."""
    return map_state(torch.Tensor.detach, state)


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


def tokens_problem(lines: list[str], tokens: Any) -> str | None:
    """What is wrong with ``tokenize(lines)``'s result, or None."""
    if not isinstance(tokens, list) or len(tokens) != len(lines):
        size = f" of {len(tokens)} items" if isinstance(tokens, (list, tuple)) else ""
        return (f"expected tokenize to give a list of {len(lines)} lists (one per line), got "
                f"a {type(tokens).__name__}{size}")
    for line in tokens:
        if not isinstance(line, list):
            return f"expected each line's tokens as a list of str, got a {type(line).__name__}"
        wrong = next((t for t in line if not isinstance(t, str) or not t), None)
        if wrong is not None:
            return f"expected tokens to be non-empty str, got {wrong!r}"
    return None
