"""The run folder: where metrics, the summary and the plot are written."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seqlm.errors import UsageError
from seqlm.interfaces import Callback, Trainer
from seqlm.metrics import EpochMetrics
from seqlm.storage.runfiles import (
    check_run_folder,
    clear_previous_run,
    record_written,
    remove_stale_temporaries,
)
from seqlm.storage.runlock import check_not_in_use
from seqlm.storage.safewrite import cannot_write, open_append, write_bytes_atomic

RUNS_DIR = Path("runs")


def prepare_run_dir(out: str | Path | None, force: bool = False) -> Path:
    """Create and return the run folder, refusing to overwrite a previous run.

    Without ``out``, a fresh timestamped folder under ``runs/``, never one that exists.
    An existing non-empty ``out`` is refused unless ``force``, and even then when it
    holds files at seqlm's names that seqlm did not write (see :mod:`seqlm.storage.runfiles`);
    one that cannot be written is refused here, before any training, so no time is lost
    on a run that cannot be kept. Nothing is deleted here: :func:`start_run_files` does
    that once the folder's lock is held.
    """
    if out is None:
        return _new_timestamped_dir(RUNS_DIR)
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {path}: exists and is not a folder; choose another path")
    try:
        if path.is_dir():
            check_not_in_use(path)
            check_run_folder(path, force)
        path.mkdir(parents=True, exist_ok=True)
        _check_writable(path)
    except OSError as exc:
        raise UsageError(
            f"--out {path}: cannot write there ({exc.strerror}); choose a writable folder"
        ) from None
    return path


def _new_timestamped_dir(parent: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):
            path = parent / (stamp if n == 1 else f"{stamp}-{n}")
            try:
                # exist_ok=False: two runs started in the same second get different folders.
                path.mkdir()
            except FileExistsError:
                continue
            _check_writable(path)
            return path
    except OSError as exc:
        raise UsageError(
            f"cannot create a run folder in {parent.resolve()} ({exc.strerror}); "
            "pass --out with a writable folder"
        ) from None
    raise UsageError(f"{parent} holds too many runs named {stamp}*; pass --out")


def _check_writable(path: Path) -> None:
    with tempfile.TemporaryFile(dir=path):
        pass


def start_run_files(folder: Path, force: bool, resumed: bool) -> None:
    """Make ``folder`` ready for a run; call it while holding the folder's lock.

    Temporary files of a killed run go; with ``force`` (and not resuming), so do the
    files the earlier run wrote, so that nothing of it is taken for the new run.
    """
    remove_stale_temporaries(folder)
    if force and not resumed:
        clear_previous_run(folder)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file beside ``path``, then rename it into place.

    Never follows a link at ``path``; the file is recorded as seqlm's own
    (:mod:`seqlm.storage.runfiles`). Raises :class:`OutputError` naming ``path`` on failure.
    """
    write_bytes_atomic(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"))
    record_written(path.parent, path)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as :func:`write_json_atomic` does."""
    write_bytes_atomic(path, text.encode("utf-8"))
    record_written(path.parent, path)


class MetricsWriter(Callback):
    """Appends one JSON object per epoch to ``metrics.jsonl`` as training goes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = None

    def on_train_start(self, trainer: Trainer) -> None:
        self.file = open_append(self.path)

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        if self.file is not None:
            try:
                self.file.write((json.dumps(metrics.to_dict()) + "\n").encode("utf-8"))
                self.file.flush()
            except OSError as exc:
                raise cannot_write(self.path, exc) from None
            record_written(self.path.parent, self.path)

    def on_train_end(self, trainer: Trainer, history: Sequence[EpochMetrics]) -> None:
        self._close()

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
