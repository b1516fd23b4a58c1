"""Building a run's pieces from its settings: the device, the tokenizer, the cell and
the model.

A new run and a saved one (``seqlm generate``, ``seqlm eval``) build them through the same
functions, so both check a component's options and blame its plugin alike.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any

import torch

from seqlm.config import RunConfig
from seqlm.config.bounds import check_threads
from seqlm.errors import UsageError, refuse
from seqlm.interfaces import RecurrentCell, Tokenizer
from seqlm.model.rnn import RNNModel
from seqlm.plugins.blame import calling
from seqlm.plugins.door import cell_attributes_problem, component_label
from seqlm.plugins.manager import check_options, get_plugins
from seqlm.plugins.options import convert_options

#: What the framework passes to each kind of component itself (not options).
CELL_ARGUMENTS = ("input_size", "hidden_size", "num_layers")
SAMPLER_ARGUMENTS = ("batch_size", "num_steps")
TRAINER_ARGUMENTS = ("lr", "clip", "epochs", "device")

#: Cell options that have a flag of their own.
CELL_FLAGS = {"bidirectional": "--bidirectional"}


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; a missing device is an error."""
    mps = getattr(torch.backends, "mps", None)
    mps_ok = mps is not None and mps.is_available()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_ok else torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: CUDA is not available on this machine; "
                             "use --device cpu or --device auto")
        index = torch.device(name).index
        if index is not None and index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    if name == "mps" and not mps_ok:
        raise UsageError("--device mps: Apple MPS is not available; use --device cpu or auto")
    return torch.device(name)


def use_threads(threads: int) -> None:
    """Set torch's CPU thread count; 0 leaves it as the process has it (torch's default,
    one per core, unless the caller chose another). More than
    :func:`~seqlm.config.bounds.max_threads` is a usage error."""
    check_threads(threads)
    if threads:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def process_kept() -> Iterator[contextlib.ExitStack]:
    """Give the caller's process back as it was: torch's thread count and default dtype,
    and whatever the block enters on the stack it is given (the random generators,
    where the run seeds them: :func:`~seqlm.plugins.door.rng_kept`)."""
    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    try:
        with contextlib.ExitStack() as stack:
            yield stack
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        torch.set_default_dtype(dtype)


def describe_device(device: torch.device, asked: str) -> str:
    """One line saying which device runs the job and why."""
    what = str(device)
    if device.type == "cuda":
        what += f" ({torch.cuda.get_device_name(device)})"
    if asked == "auto":
        reason = {"cuda": "CUDA is available", "mps": "Apple MPS is available",
                  "cpu": "neither CUDA nor Apple MPS is available"}.get(device.type, "")
        return f"device: {what} (auto: {reason})"
    return f"device: {what}"


def cell_options(cls: type, name: str, given: dict[str, Any]) -> dict[str, Any]:
    """``--cell-opt`` values converted to the types ``cls``'s constructor declares."""
    return convert_options("cell", name, cls, given, fixed=CELL_ARGUMENTS, flags=CELL_FLAGS,
                           origin=get_plugins().origin("cell", name))


def build_tokenizer(
    cls: type, name: str, options: dict[str, Any], state: dict[str, Any] | None = None
) -> Tokenizer:
    """The tokenizer, with ``state`` loaded when it is a saved run's; an exception from
    its code is put on its plugin. ``options`` are checked by the caller: a new run
    converts them from the command line's text, a saved run's come from its file."""
    with calling("tokenizer", name, get_plugins()):
        tokenizer = cls(**options)
        if state is not None:
            tokenizer.load_state_dict(state)
    return tokenizer


def build_cell(cls: type, name: str, input_size: int, config: RunConfig) -> RecurrentCell:
    """Build the cell with the size settings and any options the user passed.

    ``--dropout`` also applies between stacked layers when the cell takes a ``dropout``
    option and the user did not set one with ``--cell-opt``, and so does
    ``--locked-dropout`` where the cell takes a ``locked_dropout`` option.
    """
    options = cell_options(cls, name, config.cell_options)
    if config.bidirectional:
        options["bidirectional"] = True
    if (config.dropout > 0 and config.num_layers > 1 and "dropout" not in options
            and "dropout" in inspect.signature(cls).parameters):
        options["dropout"] = config.dropout
    if (config.locked_dropout and "locked_dropout" not in options
            and "locked_dropout" in inspect.signature(cls).parameters):
        options["locked_dropout"] = True
    check_options("cell", name, cls, options, fixed=CELL_ARGUMENTS, flags=CELL_FLAGS,
                  origin=get_plugins().origin("cell", name))
    try:
        cell = cls(input_size=input_size, hidden_size=config.hidden,
                   num_layers=config.num_layers, **options)
    except (TypeError, ValueError) as exc:
        if not config.cell_options:
            raise  # nothing the user passed: a fault of the cell, shown as such
        given = " ".join(f"--cell-opt {k}={v}" for k, v in config.cell_options.items())
        raise UsageError(f"cell {name!r} rejected {given}: {exc}") from exc
    problem = cell_attributes_problem(cell)
    if problem:
        raise refuse(component_label("cell", name, get_plugins()), "cell", problem)
    return cell


def unlocked_layers_note(cls: type, label: str, config: RunConfig) -> str | None:
    """A note where ``--locked-dropout`` cannot reach between the cell's layers: the cell
    takes a ``dropout`` option (so ``--dropout`` applies there) but no ``locked_dropout``
    one, and its masks between layers are then drawn at every step. None otherwise."""
    parameters = inspect.signature(cls).parameters
    if (not config.locked_dropout or config.num_layers < 2 or "locked_dropout" in parameters
            or "dropout" not in parameters):
        return None
    if config.cell_options.get("dropout", config.dropout) == 0:
        return None
    return (f"note: {label} takes no locked_dropout option, so its dropout between layers "
            "draws a new mask at every step; --locked-dropout applies to the embeddings "
            "and before the head")


def build_model(cell_cls: type, config: RunConfig, vocab_size: int) -> RNNModel:
    """The language model the settings describe, with fresh weights on the CPU, for a
    new run and a saved one alike; an exception from the cell's code is put on its
    plugin."""
    input_size = config.embedding_dim or vocab_size
    with calling("cell", config.cell, get_plugins()):
        cell = build_cell(cell_cls, config.cell, input_size, config)
    if config.tie_weights and config.embedding_dim != cell.output_size:
        raise UsageError(f"--tie-weights shares the embedding with the output layer, so "
                         f"--embedding-dim must equal the top layer's output size "
                         f"({cell.output_size}), got {config.embedding_dim}; set "
                         f"--embedding-dim {cell.output_size} or drop --tie-weights")
    return RNNModel(cell, vocab_size, embedding_dim=config.embedding_dim,
                    dropout=config.dropout, activation_reg=config.activation_reg,
                    temporal_reg=config.temporal_reg, tie_weights=config.tie_weights,
                    locked_dropout=config.locked_dropout)
