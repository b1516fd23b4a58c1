"""What a run's checkpoint holds: written, checked before anything is built from it, read.

A checkpoint's JSON can be edited by hand. Each field seqlm reads is checked for its
type here, so that a bad one gives a one-line error naming the file and the field
instead of failing somewhere inside the model or the trainer.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import torch

from seqlm.checkpoints.format import LAST, checkpoint_path, load_checkpoint, load_weights
from seqlm.config import RunConfig
from seqlm.data.vocab import Vocab
from seqlm.errors import CheckpointError, UsageError
from seqlm.interfaces import Tokenizer, Trainer
from seqlm.plugins.manager import get_plugins
from seqlm.plugins.provenance import plugin_change
from seqlm.version import __version__


def _describe_type(kinds: tuple[type, ...]) -> str:
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "a string",
             dict: "an object", list: "a list", type(None): "null"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _config_kinds() -> dict[str, tuple[type, ...]]:
    """For each setting, the JSON types a checkpoint may give it."""
    hints = typing.get_type_hints(RunConfig)
    kinds: dict[str, tuple[type, ...]] = {}
    for f in dataclasses.fields(RunConfig):
        allowed: set[type] = set()
        hint = hints[f.name]
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        for part in typing.get_args(hint) if union else (hint,):
            origin = typing.get_origin(part) or part
            if origin is Path:
                origin = str
            allowed.add(origin)
            if origin is float:
                allowed.add(int)  # JSON writes 1.0 as 1 in some hands
        kinds[f.name] = tuple(sorted(allowed, key=lambda k: k.__name__))
    return kinds


def _is(value: Any, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in kinds  # bool is an int to Python, never to a setting
    return isinstance(value, kinds)


def check_run_state(state: Any, json_path: Path) -> None:
    """Raise :class:`CheckpointError` naming ``json_path`` and the first bad field."""
    def bad(field: str, want: str) -> CheckpointError:
        return CheckpointError(f"{json_path}: the field {field!r} must be {want}; the file was "
                               "edited or damaged: restore it, or train again")

    for field, kinds in (("config", (dict,)), ("vocab", (dict,)), ("tokenizer", (dict,)),
                         ("model", (dict,))):
        if not _is(state.get(field), kinds):
            raise bad(field, _describe_type(kinds))
    epoch = state.get("epoch")
    if not _is(epoch, (int,)) or epoch < 0:
        raise bad("epoch", "a whole number, 0 or more")
    for field in ("cell", "sampler", "trainer"):
        if field in state and field != "trainer" and not _is(state[field], (str,)):
            raise bad(field, "a string")
    if "trainer" in state and not _is(state["trainer"], (dict, str, type(None))):
        raise bad("trainer", "an object or null")
    if not _is(state["tokenizer"].get("name"), (str,)):
        raise bad("tokenizer.name", "a string")
    if not _is(state["tokenizer"].get("state"), (dict, type(None))):
        raise bad("tokenizer.state", "an object or null")
    for name, kinds in _config_kinds().items():
        if name in state["config"] and not _is(state["config"][name], kinds):
            raise bad(f"config.{name}", _describe_type(kinds))
    try:
        Vocab.from_dict(state["vocab"])
    except ValueError as exc:
        raise bad("vocab", f"a seqlm vocabulary ({exc})") from None
    try:
        # The values too, as the options are checked; the thread count depends on the
        # machine that resumes, not on the file, so it is left out.
        RunConfig.from_dict({**state["config"], "threads": 0}).validate()
    except UsageError as error:
        raise CheckpointError(f"{json_path}: a setting it records is out of range ({error}); "
                              "the file was edited or damaged: restore it, or train again"
                              ) from None


def load_run_checkpoint(
    path: str | Path, name: str = LAST, device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """:func:`~seqlm.checkpoints.format.load_checkpoint` for a run's checkpoint, fields checked."""
    state = load_checkpoint(path, name, device)
    check_run_state(state, checkpoint_path(path, name))
    return state


def describe_run(
    config: RunConfig, vocab: Vocab, tokenizer: Tokenizer, components: dict[str, Any],
    data_sha256: str | None,
) -> dict[str, Any]:
    """The parts of a run's checkpoint that stay the same while it trains.

    :class:`~seqlm.checkpoints.saver.CheckpointCallback` adds the rest at each save:
    ``epoch``, ``model`` (the weights) and ``trainer`` (the trainer's own state, from
    :meth:`~seqlm.interfaces.Trainer.state_dict`; the trainer's name is in ``config``).
    """
    settings = config.to_dict()
    if settings["data"] is not None:
        # Absolute, so that --resume finds the text from any working directory.
        settings["data"] = str(Path(settings["data"]).resolve())
    settings["resume"] = None
    return {
        "seqlm_version": __version__,
        "config": settings,
        "vocab": vocab.to_dict(),
        "tokenizer": {"name": config.tokenizer, "state": tokenizer.state_dict()},
        "cell": config.cell,
        "sampler": config.sampler,
        # Which distribution and version provided each component (seqlm.plugins.provenance).
        "components": components,
        "data_sha256": data_sha256,
    }


@dataclasses.dataclass
class SavedRun:
    """What a saved run's checkpoint holds to rebuild its model, read from its fields."""

    config: RunConfig
    vocab: Vocab
    tokenizer_name: str
    tokenizer_state: dict[str, Any]
    cell_name: str
    weights: dict[str, Any]
    components: dict[str, Any]
    epoch: int
    #: SHA-256 of the --data file it trained on; None for the downloaded book.
    data_sha256: str | None = None


def read_saved_run(state: dict[str, Any], run_dir: str | Path) -> SavedRun:
    """The fields of a checked checkpoint (:func:`load_run_checkpoint`) as a :class:`SavedRun`."""
    try:
        config = RunConfig.from_dict(state["config"])
        return SavedRun(
            config=config,
            vocab=Vocab.from_dict(state["vocab"]),
            tokenizer_name=state["tokenizer"]["name"],
            tokenizer_state=state["tokenizer"].get("state") or {},
            cell_name=state.get("cell", config.cell),
            weights=state["model"],
            components=state["components"] if isinstance(state.get("components"), dict)
            else {},
            epoch=int(state.get("epoch", 0)),
            data_sha256=state["data_sha256"] if isinstance(state.get("data_sha256"), str)
            else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"the checkpoint in {run_dir} lacks what a model needs ({exc}); "
                              "it is damaged") from None


def restore_run(
    model: torch.nn.Module, trainer: Trainer, checkpoint: dict[str, Any], config: RunConfig
) -> None:
    """Put a resumed run's weights and trainer state back from its last checkpoint."""
    components = checkpoint.get("components")
    recorded = components.get("cell") if isinstance(components, dict) else None
    load_weights(model, checkpoint.get("model"), config.out,
                 plugin_change(get_plugins(), "cell", recorded))
    state = checkpoint.get("trainer")
    if state is None:
        raise UsageError(f"trainer {config.trainer!r} cannot resume from {config.out}: it "
                         "keeps no state in checkpoints; start a new run")
    try:
        trainer.load_state_dict(state)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # The state is read from a file that may have been edited: a fault of the file.
        raise CheckpointError(f"{checkpoint_path(config.out, LAST)}: the field 'trainer' does "
                              f"not hold a state trainer {config.trainer!r} can resume from "
                              f"({type(exc).__name__}: {exc}); restore the file, or train "
                              "again") from None
