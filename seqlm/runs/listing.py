"""Reading run folders back: what ``seqlm runs`` lists and ``seqlm compare`` draws.

A run folder is recognised by the files ``seqlm run`` writes there: ``status.json`` (from
this version on), ``metrics.jsonl``, ``checkpoint.json`` and ``summary.json``, when they
are seqlm's: recorded in the folder's ``.seqlm-files.json``, or holding seqlm's fields (a
run of an older seqlm, which kept no such record). A folder with some of those but no
``status.json`` was made by an older seqlm; it is still read, with its status worked out
from its files where they tell.

A run that is no longer running shows only the epochs its ``checkpoint.json`` holds:
later rows of ``metrics.jsonl`` (a process killed between two checkpoints) describe no
model that was saved, and ``seqlm run --resume`` drops them.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqlm.errors import UsageError
from seqlm.metrics import EpochMetrics
from seqlm.runs.status import FORMAT as STATUS_FORMAT
from seqlm.runs.status import STATUS_NAME, current_status, lock_is_held, read_status
from seqlm.storage.runfiles import read_manifest

#: Files whose presence makes a folder a run folder, when they are seqlm's.
RUN_FILES = (STATUS_NAME, "metrics.jsonl", "checkpoint.json", "summary.json")
#: The format field of ``checkpoint.json``, as :mod:`seqlm.checkpoints.format` writes it
#: (not imported from there: that module loads torch, which listing runs never needs).
CHECKPOINT_FORMAT = "seqlm-checkpoint"


@dataclass
class RunRecord:
    """What a run folder holds: its settings, its metrics per epoch and its status."""

    path: Path
    status: str  # running, finished, stopped, failed, or unknown (older runs)
    created: str
    config: dict[str, Any]
    history: list[EpochMetrics] = field(default_factory=list)
    parameters: int | None = None
    #: A one-line remark about the folder (made by an older seqlm, damaged rows), or None.
    note: str | None = None
    #: Made by a seqlm that wrote no status.json; the status is read from its files.
    older: bool = False
    #: Epochs of metrics.jsonl after the last checkpoint of a run that ended: left out.
    unsaved: int = 0

    @property
    def name(self) -> str:
        """The folder's name."""
        return self.path.name

    @property
    def best(self) -> EpochMetrics | None:
        """The epoch with the lowest validation loss, or None without validation."""
        validated = [m for m in self.history if m.val_loss is not None]
        return min(validated, key=lambda m: m.val_loss) if validated else None

    @property
    def last(self) -> EpochMetrics | None:
        """The last epoch recorded, or None before the first one ended."""
        return self.history[-1] if self.history else None

    def size(self) -> str:
        """``HIDDENxLAYERS`` (and the parameter count when known), such as ``256x1 (0.3M)``."""
        hidden, layers = self.config.get("hidden"), self.config.get("num_layers")
        text = f"{hidden}x{layers}" if hidden is not None and layers is not None else "?"
        if self.parameters:
            text += f" ({_count(self.parameters)})"
        return text

    def to_dict(self) -> dict[str, Any]:
        """The JSON form ``seqlm runs --json`` prints."""
        last, best = self.last, self.best
        return {
            "name": self.name,
            "path": str(self.path),
            "date": self.created,
            "status": self.status,
            "cell": self.config.get("cell"),
            "size": self.size(),
            "hidden": self.config.get("hidden"),
            "num_layers": self.config.get("num_layers"),
            "parameters": self.parameters,
            "epochs": last.epoch if last else 0,
            "epochs_planned": self.config.get("epochs"),
            "final_train_ppl": last.train_ppl if last else None,
            "final_val_ppl": last.val_ppl if last else None,
            "best_val_ppl": best.val_ppl if best else None,
            "best_val_bits_per_token": best.val_bits if best else None,
            "best_epoch": best.epoch if best else None,
            "unsaved_epochs": self.unsaved,
            "note": self.note,
        }


def _count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 100_000 else f"{n / 1e3:.1f}k" if n >= 1000 else str(n)


def is_run_folder(path: Path) -> bool:
    """Whether ``path`` is a folder that ``seqlm run`` wrote to."""
    return path.is_dir() and bool(_seqlm_files(path))


def _present(path: Path) -> list[str]:
    """The names of :data:`RUN_FILES` that ``path`` holds as files."""
    return [name for name in RUN_FILES if (path / name).is_file()]


def _seqlm_files(path: Path) -> list[str]:
    """The run files of ``path`` that seqlm wrote: recorded in its manifest (however they
    read now: a damaged ``status.json`` is still the run's), or holding seqlm's fields."""
    recorded = read_manifest(path)
    return [name for name in _present(path)
            if name in recorded or _holds_seqlm_fields(path / name)]


def _holds_seqlm_fields(path: Path) -> bool:
    """Whether the run file at ``path`` reads as seqlm writes it: a file of the user's that
    happens to be called summary.json does not make a folder a run."""
    if path.name == "metrics.jsonl":
        return _first_row_is_seqlm(path)
    data = _read_json(path)
    if data is None:
        return False
    if path.name == STATUS_NAME:
        return data.get("format") == STATUS_FORMAT
    if path.name == "checkpoint.json":
        return data.get("format") == CHECKPOINT_FORMAT
    # summary.json: every seqlm wrote these two since the first.
    return isinstance(data.get("config"), dict) and "final_train_ppl" in data


def _first_row_is_seqlm(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            line = next((line for line in f if line.strip()), "")
        EpochMetrics.from_dict(json.loads(line))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return True


def _not_a_run(path: Path) -> str:
    """The one-line error for a path given as a run that is not one."""
    fix = "give a folder made by seqlm run (seqlm runs lists them)"
    if path.is_file():
        return f"{path} is a file, not a run folder; {fix}"
    if not path.is_dir():
        return f"{path} is not a folder; {fix}"
    present = _present(path)
    if present:
        verb = "is" if len(present) == 1 else "are"
        return (f"{path} is not a seqlm run folder (its {', '.join(present)} {verb} not "
                f"seqlm's); {fix}")
    return f"{path} is not a seqlm run folder (it has none of {', '.join(RUN_FILES)}); {fix}"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _read_metrics(path: Path) -> tuple[list[EpochMetrics], int]:
    """The rows of ``metrics.jsonl`` and how many could not be read."""
    rows: list[EpochMetrics] = []
    bad = 0
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return rows, 0
    for line in lines:
        if not line.strip():
            continue
        try:
            rows.append(EpochMetrics.from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            bad += 1  # a row cut short by a killed process, or not seqlm's
    return rows, bad


def _date(path: Path) -> str:
    stamp = dt.datetime.fromtimestamp(path.stat().st_mtime).astimezone()
    return stamp.strftime("%Y-%m-%dT%H:%M:%S%z")


def read_run(path: Path) -> RunRecord:
    """Read one run folder; raise :class:`UsageError` if ``path`` is not one."""
    if not path.exists():
        raise UsageError(f"{path}: no such folder; give a run folder (seqlm runs lists them)")
    if not is_run_folder(path):
        raise UsageError(_not_a_run(path))
    status = read_status(path)
    summary = _read_json(path / "summary.json")
    checkpoint = _read_json(path / "checkpoint.json")
    history, bad = _read_metrics(path / "metrics.jsonl")
    notes = []
    if status is not None:
        config = status.get("config") or {}
        state = current_status(path, status)
        created = str(status.get("created", _date(path)))
    else:
        config = ((summary or {}).get("config")
                  or _state(checkpoint).get("config") or {})
        state = _status_from_files(path, summary)
        created = _date(path)
        notes.append(f"{STATUS_NAME} is unreadable (damaged); status read from its other files"
                     if (path / STATUS_NAME).exists() else
                     f"made by an older seqlm (no {STATUS_NAME}); status read from its files")
    if bad:
        notes.append(f"{bad} unreadable row(s) in metrics.jsonl skipped")
    unsaved = 0
    if state not in ("running", "finished"):
        saved = _saved_epoch(path, checkpoint, recorded=status is not None)
        if saved is not None:
            history, unsaved = _up_to(history, saved)
            if unsaved:
                notes.append(_unsaved_note(path, saved, unsaved))
    parameters = (summary or {}).get("parameters")
    return RunRecord(path=path, status=state, created=created,
                     config=config if isinstance(config, dict) else {}, history=history,
                     parameters=parameters if isinstance(parameters, int) else None,
                     note="; ".join(notes) or None, older=not (path / STATUS_NAME).exists(),
                     unsaved=unsaved)


def _state(checkpoint: dict[str, Any] | None) -> dict[str, Any]:
    """The ``state`` of a checkpoint's JSON; empty where it has none."""
    state = (checkpoint or {}).get("state")
    return state if isinstance(state, dict) else {}


def _status_from_files(path: Path, summary: dict[str, Any] | None) -> str:
    """The status of a run without a readable status.json: running while a process holds
    its lock; else finished if it wrote its summary (only a run that finished does), else
    unknown, as the folder cannot tell how the run ended."""
    if lock_is_held(path):
        return "running"
    return "finished" if summary is not None else "unknown"


def _saved_epoch(path: Path, checkpoint: dict[str, Any] | None, recorded: bool) -> int | None:
    """The epoch that ``checkpoint.json`` holds; 0 for a run (with a status record) that
    saved none; None where that cannot be told (an unreadable checkpoint, or an older
    seqlm's run, which may have kept none)."""
    if checkpoint is None:
        return 0 if recorded and not (path / "checkpoint.json").exists() else None
    epoch = _state(checkpoint).get("epoch")
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None


def _up_to(history: list[EpochMetrics], epoch: int) -> tuple[list[EpochMetrics], int]:
    """The rows up to ``epoch``, and how many came after it."""
    kept = [m for m in history if m.epoch <= epoch]
    return kept, len(history) - len(kept)


def _unsaved_note(path: Path, saved: int, unsaved: int) -> str:
    if saved == 0:
        return (f"its {unsaved} epoch(s) in metrics.jsonl were never saved in a checkpoint "
                "and are left out; start the run again (seqlm run --resume needs one)")
    return (f"{unsaved} epoch(s) after its checkpoint of epoch {saved} were not saved and are "
            f"left out; seqlm run --resume {path} continues from epoch {saved}")


def find_runs(folder: Path) -> list[RunRecord]:
    """The runs in ``folder`` (or ``folder`` itself, if it is one), oldest first."""
    if not folder.exists():
        raise UsageError(f"{folder}: no such folder; give the folder that holds your runs "
                         "(seqlm run writes them under runs/)")
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder; give the folder that holds your runs")
    if is_run_folder(folder):
        return [read_run(folder)]
    try:
        children = sorted(p for p in folder.iterdir() if is_run_folder(p))
    except OSError as exc:
        raise UsageError(f"{folder}: cannot be read ({exc.strerror})") from None
    return sorted((read_run(p) for p in children), key=lambda r: (r.created, r.name))


def _ppl(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


#: Colours of the status column.
STATUS_STYLE = {"finished": "green", "running": "cyan", "stopped": "yellow", "failed": "red"}


def runs_table(records: list[RunRecord], title: str) -> Any:
    """A rich table of the runs, one row each (what ``seqlm runs`` prints).

    Figures and statuses never wrap; dates and models take two lines, so that the table
    fits an 80-column terminal.
    """
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                  collapse_padding=True)
    table.add_column("Run", overflow="fold")
    table.add_column("Started", no_wrap=True)
    table.add_column("Model", overflow="fold")
    for column in ("Epochs", "Train\nppl", "Val\nppl", "Best val\nppl (epoch)"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    for record in records:
        row = record.to_dict()
        planned = row["epochs_planned"]
        best = ("-" if row["best_val_ppl"] is None
                else f"{row['best_val_ppl']:.3f} ({row['best_epoch']})")
        style = STATUS_STYLE.get(record.status)
        status = escape(record.status) if style is None else f"[{style}]{record.status}[/]"
        day, _, clock = record.created[:16].partition("T")
        table.add_row(escape(record.name), f"{day}\n{clock}",
                      escape(f"{row['cell'] or '?'}\n{row['size']}"),
                      f"{row['epochs']}/{planned}" if planned else str(row["epochs"]),
                      _ppl(row["final_train_ppl"]), _ppl(row["final_val_ppl"]), best, status)
    return table
