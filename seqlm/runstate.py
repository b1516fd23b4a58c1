"""Checking what a run's checkpoint holds before anything is built from it.

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

from seqlm.checkpoint import CheckpointError, checkpoint_path, load_checkpoint
from seqlm.config import RunConfig
from seqlm.errors import UsageError
from seqlm.vocab import Vocab


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
    path: str | Path, name: str = "checkpoint", device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """:func:`~seqlm.checkpoint.load_checkpoint` for a run's checkpoint, fields checked."""
    state = load_checkpoint(path, name, device)
    check_run_state(state, checkpoint_path(path, name))
    return state
