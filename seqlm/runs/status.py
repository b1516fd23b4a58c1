"""The run folder's ``status.json``: whether its run is running, finished, stopped or failed.

Written when training starts, and again when the run ends: ``finished`` once its outputs
are written, ``stopped`` on Ctrl-C (or an exit asked for), ``failed`` on any other error
(with the error's message). A process killed outright cannot write anything; its record
still says ``running`` while the run folder's lock (see :mod:`seqlm.storage.runlock`) is free,
which :func:`current_status` reads as ``failed``.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqlm.interfaces import Callback
from seqlm.runs.outputs import write_json_atomic
from seqlm.storage.runlock import LOCK_NAME
from seqlm.version import __version__

if TYPE_CHECKING:
    from seqlm.interfaces import Trainer
    from seqlm.metrics import EpochMetrics

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

STATUS_NAME = "status.json"
FORMAT = "seqlm-run"
VERSION = 1


def now() -> str:
    """The time in ISO 8601 with the UTC offset, as the record keeps it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def read_status(folder: Path) -> dict[str, Any] | None:
    """The folder's status record, or None when it has none (or an unreadable one)."""
    try:
        record = json.loads((folder / STATUS_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return None
    return record


def lock_is_held(folder: Path) -> bool | None:
    """Whether a live seqlm process holds the folder's lock (without writing anything).

    None where the system has no such locks (Windows): then nobody can tell.
    """
    if fcntl is None:  # pragma: no cover - Windows: no lock to ask
        return None
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the shared lock, if it was taken
    return False


def current_status(folder: Path, record: dict[str, Any]) -> str:
    """``running``, ``finished``, ``stopped`` or ``failed``, from the record and the lock."""
    status = str(record.get("status", "failed"))
    if status == "running" and lock_is_held(folder) is False:
        return "failed"  # the process ended without recording how: killed, or crashed
    return status


class StatusRecorder(Callback):
    """Keeps ``status.json`` in the run folder up to date; :meth:`finish` marks success."""

    def __init__(self, folder: Path, config: dict[str, Any]) -> None:
        self.folder = Path(folder)
        self.config = config
        previous = read_status(self.folder)
        # A resumed run keeps the date it was first started.
        self.created = previous.get("created", now()) if previous else now()

    def write(self, status: str, error: str | None = None) -> None:
        """Record ``status`` (and the error that ended the run, if any)."""
        write_json_atomic(self.folder / STATUS_NAME, {
            "format": FORMAT,
            "version": VERSION,
            "seqlm_version": __version__,
            "status": status,
            "created": self.created,
            "updated": now(),
            "error": error,
            "config": self.config,
        })

    def finish(self) -> None:
        """Mark the run finished: call once its outputs are written."""
        self.write("finished")

    def on_train_start(self, trainer: Trainer) -> None:
        self.write("running")

    def on_train_end(self, trainer: Trainer, history: Sequence[EpochMetrics]) -> None:
        pass  # finished only once the summary and the plot are written too

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        self.ended_by(error)

    def ended_by(self, error: BaseException) -> None:
        """Record the run as stopped (Ctrl-C, a stop signal, its output pipe closed by
        the reader) or failed, with the error; also for an error after training, while
        the summary, plot or sample is made."""
        # A SystemExit under a run is code that ended the process unasked: a failure.
        stopped = isinstance(error, (KeyboardInterrupt, BrokenPipeError))
        message = None if stopped else " ".join(f"{type(error).__name__}: {error}".split())
        with contextlib.suppress(OSError):  # the run's own error matters more than this one
            self.write("stopped" if stopped else "failed", message)
