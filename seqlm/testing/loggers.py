"""The rules of a logger: a Callback a plugin registers for ``seqlm run --log NAME``."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from seqlm.interfaces import Callback, RunInfo, Trainer
from seqlm.testing.basics import Rule, require
from seqlm.testing.trainers import train_briefly


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
        require(isinstance(logger, Callback), "logger_builds",
                 f"{cls.__qualname__} does not subclass seqlm.interfaces.Callback")


def logger_hears_a_run(cls: type, options: dict[str, Any]) -> None:
    """It hears a run of two epochs, its start, each epoch and its end, and writes only
    inside the run folder."""
    from seqlm.training.trainer import DefaultTrainer

    with _logger_run() as (run, cwd):
        train_briefly(DefaultTrainer, {}, callbacks=[cls(run, **options)])
        require(not any(cwd.iterdir()), "logger_hears_a_run",
                 f"it wrote {sorted(p.name for p in cwd.iterdir())} into the working "
                 "directory; write only inside run.out_dir")


def logger_hears_a_failure(cls: type, options: dict[str, Any]) -> None:
    """When training fails, its on_exception is called and does not raise: the run's own
    error is the one the user sees."""
    from seqlm.training.trainer import DefaultTrainer

    with _logger_run() as (run, _):
        try:
            train_briefly(DefaultTrainer, {}, callbacks=[_Fails(), cls(run, **options)])
        except Exception as error:  # the run's, or one the logger raised in its stead
            require("the kit's own error" in str(error), "logger_hears_a_failure",
                     f"on_exception raised {type(error).__name__}: {error}; it must let the "
                     "run's error through")
        else:
            require(False, "logger_hears_a_failure", "training that failed did not raise")


LOGGER_RULES: tuple[Rule, ...] = (logger_builds, logger_hears_a_run, logger_hears_a_failure)
