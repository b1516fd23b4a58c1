"""Reading and writing checkpoints: tensors in safetensors, everything else in JSON.

A checkpoint named ``NAME`` in a run folder is two files:

* ``NAME.json`` -- the format and version, the settings, vocabulary, epoch, metrics,
  random-number states and the structure of the optimizer's state, in which every tensor
  is replaced by a reference ``{"__tensor__": KEY}``; it also names the tensor file and
  records its SHA-256;
* ``NAME-XXXXXXXX.safetensors`` -- the tensors, weights and optimizer state included.

Nothing is ever unpickled, so a checkpoint from a stranger cannot run code. Writing is
atomic: the tensor file is written under a fresh name, then the JSON is written to a
temporary file and renamed over the old one; that rename is the moment the new checkpoint
replaces the old, so a write that fails at any point leaves the previous checkpoint whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

import torch

from seqlm.errors import CheckpointError, NotARunError, first_line
from seqlm.storage.runfiles import MANIFEST
from seqlm.storage.safewrite import replace_atomically

FORMAT = "seqlm-checkpoint"
#: Bumped when a change makes older seqlm versions misread new checkpoints.
VERSION = 1

#: The checkpoint a run saves every ``--checkpoint-every`` epochs and resumes from.
LAST = "checkpoint"
#: The checkpoint with the lowest validation loss so far (runs that hold out text).
BEST = "best"
#: The checkpoints ``--keep-every N`` keeps: ``epoch-N``, one per Nth epoch.
KEPT_PREFIX = "epoch-"


def kept_name(epoch: int) -> str:
    """The name of the checkpoint kept at ``epoch`` by ``--keep-every``."""
    return f"{KEPT_PREFIX}{epoch}"


def kept_epoch_of(name: str) -> int | None:
    """The epoch of a kept checkpoint's name (``epoch-7``: 7), or None for another name."""
    number = name.removeprefix(KEPT_PREFIX)
    return int(number) if number != name and number.isdigit() else None


def kept_epochs(run_dir: str | Path) -> list[int]:
    """The epochs whose models ``--keep-every`` kept in ``run_dir``, in order."""
    found = (kept_epoch_of(path.stem) for path in Path(run_dir).glob(f"{KEPT_PREFIX}*.json"))
    return sorted(epoch for epoch in found if epoch is not None)

_TENSOR = "__tensor__"
_ITEMS = "__items__"  # a dict whose keys are not all strings (an optimizer's state)


class UnstorableError(TypeError):
    """A value a checkpoint cannot hold, with where it is (``trainer.hook``, say)."""

    def __init__(self, type_name: str, key: str) -> None:
        super().__init__(f"cannot store a {type_name} at {key or 'top level'} in a checkpoint")
        self.type_name, self.key = type_name, key

    def problem(self, within: str = "") -> str:
        """``holds a function at hook, which a checkpoint cannot store; keep ...``: the
        key counted from ``within`` (``trainer.`` for what a trainer's state_dict gave)."""
        return (f"holds a {self.type_name} at {self.key.removeprefix(within)}, which a "
                f"checkpoint cannot store; keep {STORABLE}")


#: What a checkpoint holds, as a message says it.
STORABLE = "tensors, numbers, strings, None, and lists and dicts of them"


def pack(obj: Any, tensors: dict[str, torch.Tensor], key: str = "") -> Any:
    """Turn a nested structure into JSON-ready data, moving its tensors into ``tensors``."""
    if isinstance(obj, torch.Tensor):
        # A CPU clone: contiguous, and never sharing storage (safetensors refuses that).
        tensors[key] = obj.detach().to("cpu", copy=True).contiguous()
        return {_TENSOR: key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: pack(v, tensors, f"{key}.{k}" if key else k) for k, v in obj.items()}
        return {_ITEMS: [[k, pack(v, tensors, f"{key}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [pack(v, tensors, f"{key}.{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise UnstorableError(type(obj).__name__, key)


def unpack(data: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Undo :func:`pack`: put the tensors back where their references are."""
    if isinstance(data, dict):
        if set(data) == {_TENSOR}:
            try:
                return tensors[data[_TENSOR]]
            except (KeyError, TypeError):
                raise CheckpointError(f"the checkpoint refers to a tensor {data[_TENSOR]!r} "
                                      "that its tensor file lacks; it is corrupt") from None
        if set(data) == {_ITEMS}:
            return {k: unpack(v, tensors) for k, v in data[_ITEMS]}
        return {k: unpack(v, tensors) for k, v in data.items()}
    if isinstance(data, list):
        return [unpack(v, tensors) for v in data]
    return data


def save_checkpoint(directory: str | Path, state: dict[str, Any], name: str = LAST) -> Path:
    """Write ``state`` (nested dicts, lists, numbers, strings and tensors) atomically.

    Returns the path of the JSON file. On failure the previous checkpoint of that name is
    left as it was and :class:`CheckpointError` says why.
    """
    from safetensors.torch import save

    directory = Path(directory)
    tensors: dict[str, torch.Tensor] = {}
    meta = pack(state, tensors)
    payload = save(tensors)
    json_path = directory / f"{name}.json"
    previous = _previous_tensors(json_path, name)
    tensor_path = directory / f"{name}-{secrets.token_hex(4)}.safetensors"
    while os.path.lexists(tensor_path):  # never replace a file already there
        tensor_path = directory / f"{name}-{secrets.token_hex(4)}.safetensors"
    header = {
        "format": FORMAT,
        "version": VERSION,
        "tensors": tensor_path.name,
        "tensors_sha256": hashlib.sha256(payload).hexdigest(),
        "state": meta,
    }
    text = json.dumps(header, indent=1).encode("utf-8")
    try:
        replace_atomically(tensor_path, lambda f: f.write(payload), sync=True)
        replace_atomically(json_path, lambda f: f.write(text), sync=True)
    except OSError as exc:
        tensor_path.unlink(missing_ok=True)
        raise CheckpointError(
            f"could not write the checkpoint {json_path} ({exc.strerror or exc}); the previous "
            "one, if any, is unchanged. Free some disk space or choose another --out"
        ) from None
    # The JSON now points at the new tensors, so the ones it pointed at before can go;
    # no other file is touched, whatever its name.
    if previous is not None and previous != tensor_path.name:
        (directory / previous).unlink(missing_ok=True)
    return json_path


def _previous_tensors(json_path: Path, name: str) -> str | None:
    """The tensor file the checkpoint at ``json_path`` names, if it is one seqlm wrote."""
    try:
        tensors = read_header(json_path).get("tensors")
    except CheckpointError:
        return None
    if re.fullmatch(rf"{re.escape(name)}-[0-9a-f]{{8}}\.safetensors", tensors):
        return tensors
    return None


def load_weights(
    model: torch.nn.Module, weights: Any, where: str | Path, changed: str | None = None
) -> None:
    """Load a checkpoint's model weights, with a clear error when they do not fit:
    ``changed`` says what changed since the run (the cell's plugin, say), the likely
    cause; else the checkpoint was edited or damaged."""
    try:
        model.load_state_dict(weights)
    except (RuntimeError, KeyError, TypeError) as exc:
        cause = (f"the {changed}" if changed else "the checkpoint was edited or damaged: use "
                 "another (best/last) or train again")
        raise CheckpointError(f"the weights in {where} do not fit the model its settings "
                              f"describe ({_weights_problem(exc)}); {cause}") from None


def _weights_problem(error: Exception) -> str:
    """The first thing torch found wrong, not its header line ("Error(s) in loading
    state_dict for RNNModel:"), and how many more it found."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Error(s) in loading"):
        more = f"; and {len(lines) - 2} more" if len(lines) > 2 else ""
        return lines[1].rstrip(".") + more
    return first_line(error)


def checkpoint_path(path: str | Path, name: str = LAST) -> Path:
    """The JSON file of checkpoint ``name`` in run folder ``path`` (or ``path`` itself)."""
    path = Path(path)
    if path.is_dir():
        return path / f"{name}.json"
    if path.suffix == ".json" or path.exists():
        return path
    return path / f"{name}.json"


def read_header(json_path: Path) -> dict[str, Any]:
    """Read and check a checkpoint's JSON, without touching its tensors."""
    if not json_path.is_file():
        where = json_path.parent
        if not where.is_dir():
            raise NotARunError(f"{where}: no such folder; give the folder of a seqlm run "
                               "that saved a checkpoint")
        present = [f"{name}.json" for name in (BEST, LAST, *map(kept_name, kept_epochs(where)))
                   if (where / f"{name}.json").is_file()]
        if not present:
            # A run stopped before its first checkpoint is a run (exit status 1); any
            # other folder is the wrong argument (2).
            error = CheckpointError if (where / MANIFEST).is_file() else NotARunError
            raise error(f"no checkpoint at {json_path}; give the folder of a run that saved "
                        f"one ({where} has none)")
        raise CheckpointError(f"no checkpoint at {json_path}; {where} has "
                              f"{', '.join(present)}")
    try:
        header = json.loads(json_path.read_bytes().decode("utf-8"))
    except RecursionError:
        raise CheckpointError(f"{json_path} is nested too deeply to be a seqlm checkpoint; "
                              "restore it, or train again") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        if json_path.suffix != ".json":  # a file given where a run folder was meant
            raise NotARunError(f"{json_path} is a file, not a run folder; give the folder "
                               "of a seqlm run (or its checkpoint.json)") from None
        raise CheckpointError(
            f"{json_path} is not a readable checkpoint (corrupt or truncated: {exc}); use "
            "another checkpoint, or train again"
        ) from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{json_path} is not a seqlm checkpoint; give the folder of a "
                              "seqlm run")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{json_path}: the field 'version' must be a whole number (this "
                              f"seqlm reads {VERSION}), not {version!r}; the file was edited "
                              "or damaged")
    if version != VERSION:
        newer = version > VERSION
        raise CheckpointError(
            f"{json_path} has checkpoint format version {version!r}, but this seqlm reads "
            f"version {VERSION}; "
            + ("upgrade seqlm to load it" if newer else "load it with the seqlm that wrote it")
        )
    if not isinstance(header.get("tensors"), str) or "/" in header["tensors"] or not isinstance(
        header.get("state"), dict
    ):
        raise CheckpointError(f"{json_path} is a damaged seqlm checkpoint; train again")
    return header


def load_checkpoint(
    path: str | Path, name: str = LAST, device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """Read checkpoint ``name`` of a run folder (or a checkpoint's JSON file).

    The tensor file's SHA-256 must match the one recorded, so a truncated or altered
    file is refused before it is parsed; it is then parsed by safetensors, which reads
    raw numbers and never executes anything. Tensors land on ``device`` (the CPU by
    default, whatever device wrote them).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    json_path = checkpoint_path(path, name)
    header = read_header(json_path)
    tensor_path = json_path.parent / header["tensors"]
    try:
        payload = tensor_path.read_bytes()
    except OSError as exc:
        raise CheckpointError(
            f"{tensor_path}, the tensors of {json_path.name}, cannot be read "
            f"({exc.strerror}); the checkpoint is incomplete: use another checkpoint "
            "(best/last) or train again"
        ) from None
    if hashlib.sha256(payload).hexdigest() != header.get("tensors_sha256"):
        raise CheckpointError(
            f"{tensor_path} does not match the checksum in {json_path.name}: the file is "
            "truncated or corrupt; use another checkpoint (best/last) or train again"
        )
    try:
        tensors = load(payload)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{tensor_path} is not a valid safetensors file ({exc}); "
                              "the checkpoint is corrupt") from None
    if torch.device(device).type != "cpu":
        tensors = {k: t.to(device) for k, t in tensors.items()}
    return unpack(header["state"], tensors)
