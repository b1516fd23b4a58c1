"""The run folder: where metrics, the summary and the plot are written."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seqlm.callbacks import Callback
from seqlm.errors import UsageError
from seqlm.interfaces import Trainer
from seqlm.metrics import EpochMetrics

RUNS_DIR = Path("runs")


def prepare_run_dir(out: str | Path | None, force: bool = False) -> Path:
    """Create and return the run folder, refusing to overwrite a previous run.

    Without ``out``, a fresh timestamped folder under ``runs/``, never one that exists.
    An existing non-empty ``out`` is refused unless ``force``; one that cannot be written
    is refused here, before any training, so no time is lost on a run that cannot be kept.
    """
    if out is None:
        return _new_timestamped_dir(RUNS_DIR)
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {path}: exists and is not a folder; choose another path")
    try:
        if path.is_dir() and any(path.iterdir()) and not force:
            raise UsageError(
                f"--out {path}: folder is not empty (a previous run?); choose another "
                "folder or pass --force to write into it"
            )
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


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file beside ``path``, then rename it into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class MetricsWriter(Callback):
    """Appends one JSON object per epoch to ``metrics.jsonl`` as training goes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = None

    def on_train_start(self, trainer: Trainer) -> None:  # noqa: D102
        self.file = open(self.path, "a", encoding="utf-8")

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:  # noqa: D102
        if self.file is not None:
            self.file.write(json.dumps(metrics.to_dict()) + "\n")
            self.file.flush()

    def on_train_end(self, trainer: Trainer, history: Sequence[EpochMetrics]) -> None:  # noqa: D102
        self._close()

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:  # noqa: D102
        self._close()

    def _close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
