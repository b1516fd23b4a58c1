"""Settling a run's settings: checked, and for ``--resume`` the checkpoint's, with what
a resume may change applied and the rest refused (never dropped unseen)."""

from __future__ import annotations

import difflib
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import torch

from seqlm.checkpoints.format import LAST, checkpoint_path
from seqlm.checkpoints.runstate import load_run_checkpoint
from seqlm.config import RunConfig
from seqlm.data.textsum import check_same_text
from seqlm.errors import CheckpointError, NotARunError, SeqlmError, UsageError
from seqlm.plugins.manager import get_plugins
from seqlm.plugins.options import same_options
from seqlm.storage.runlock import check_not_in_use

#: Settings a resumed run may change; the others must stay as the checkpoint has them.
RESUMABLE = ("epochs", "device", "threads", "cuda_graph", "checkpoint_every", "keep_every",
             "prefix", "predict", "resume", "force", "log", "log_every", "patience")


def settle(
    config: RunConfig | None, overrides: dict[str, Any]
) -> tuple[RunConfig, dict[str, Any] | None]:
    """The run's settings, checked, and the checkpoint it resumes from (or None)."""
    if config is not None and not isinstance(config, RunConfig):
        raise UsageError(f"config must be a seqlm.RunConfig, got {type(config).__name__}; "
                         "or give the settings as keywords: run(epochs=2, hidden=64)")
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "; see seqlm.RunConfig"
        raise UsageError(f"{unknown[0]!r} is not a setting of seqlm.run{hint}")
    # A torch.device is taken as its name ("cuda:0"), from a RunConfig or a keyword.
    if config is not None and isinstance(config.device, torch.device):
        config = replace(config, device=str(config.device))
    if isinstance(overrides.get("device"), torch.device):
        overrides = {**overrides, "device": str(overrides["device"])}
    given = config
    config = replace(config or RunConfig(), **overrides)
    config.check_paths()  # before a checkpoint is looked for in an empty --resume
    resumed: dict[str, Any] | None = None
    if config.resume is not None:
        resumed = _checkpoint_to_resume(config.resume)
        # A RunConfig's own settings count as given, as keywords do: each is applied where
        # a resume may change it, and refused where it may not (never dropped unseen).
        asked = {**_set_fields(given), **overrides} if given is not None else overrides
        config = _resumed_config(resumed, config.resume, asked)
    config.validate()
    return config, resumed


def _component_class(kind: str, saved: RunConfig) -> type | None:
    """The class the saved run's ``kind`` names, where it can be found now (else None:
    the resume then fails later, naming what to install)."""
    try:
        return get_plugins().get(kind, getattr(saved, kind))
    except SeqlmError:
        return None


def _set_fields(config: RunConfig) -> dict[str, Any]:
    """The settings of ``config`` that differ from the defaults (``resume`` aside)."""
    defaults = RunConfig()
    return {f.name: getattr(config, f.name) for f in fields(RunConfig)
            if f.name != "resume" and getattr(config, f.name) != getattr(defaults, f.name)}


def _checkpoint_to_resume(resume: str | Path) -> dict[str, Any]:
    """The checkpoint ``--resume`` continues; a run stopped before it saved one (Ctrl-C
    during the first epoch) has none, and is started again instead."""
    try:
        return load_run_checkpoint(resume, LAST)
    except NotARunError:
        raise
    except CheckpointError:
        if checkpoint_path(resume, LAST).is_file():
            raise  # there, but unreadable: that error says how
        # No checkpoint yet may also mean a run still in its first epochs: say that.
        check_not_in_use(checkpoint_path(resume, LAST).parent)
        raise CheckpointError(
            f"--resume {resume}: the run stopped before its first checkpoint, so there is "
            f"nothing to resume; start it again with seqlm run --out {resume} --force and "
            "its settings") from None


def _resumed_config(
    checkpoint: dict[str, Any], resume: str | Path, overrides: dict[str, Any]
) -> RunConfig:
    saved = RunConfig.from_dict(checkpoint["config"])
    folder = checkpoint_path(resume, LAST).parent.resolve()

    def same(key: str, value: Any) -> bool:
        old = getattr(saved, key, value)
        if key == "out" and value is not None and Path(value).resolve() == folder:
            return True  # the run's own folder, where it is now (a moved run, say)
        if key in ("data", "out") and old is not None and value is not None:
            return Path(old).resolve() == Path(value).resolve()  # a str or a Path, alike
        if key.endswith("_options") and isinstance(old, dict) and isinstance(value, dict):
            # Typed text against the saved values, each converted as the component's
            # constructor declares (an Enum's member by name or value, say).
            return same_options(old, value, _component_class(key.removesuffix("_options"),
                                                             saved))
        return old == value

    moved = overrides.get("data")
    if moved is not None and not same("data", moved):
        check_same_text(checkpoint, moved, resume)  # the text moved: same content, new path
    else:
        moved = None
    changed = [k for k, v in overrides.items()
               if k not in RESUMABLE and not same(k, v) and not (k == "data" and moved)]
    if changed:
        flags = ", ".join(f"--{k.replace('_options', '-opt').replace('_', '-')}"
                          for k in changed)
        raise UsageError(f"{flags} cannot change when resuming (the checkpoint fixes it); "
                         f"drop it, or start a new run with --out")
    allowed = {k: v for k, v in overrides.items() if k in RESUMABLE and k != "resume"}
    done = int(checkpoint.get("epoch", 0))
    if allowed.get("epochs", saved.epochs) < done:
        raise UsageError(f"--epochs {allowed['epochs']} is fewer than the {done} epochs the "
                         f"checkpoint in {resume} has done; give more, or leave it out")
    if moved is not None:
        allowed["data"] = moved
    return replace(saved, **allowed, resume=resume, out=checkpoint_path(resume, LAST).parent)
