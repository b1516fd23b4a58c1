"""``seqlm compare``: several runs' curves in one picture and their figures side by side.

Each run is labelled by the settings in which it differs from the others (``cell=gru,
hidden=64``), so the picture says what changed without a legend of every setting.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seqlm.errors import UsageError
from seqlm.runs.listing import RunRecord, read_run
from seqlm.runs.plot import wants_log_scale
from seqlm.storage.runfiles import MANIFEST, is_seqlm_name
from seqlm.storage.safewrite import write_atomic

#: Settings that say where and how a run was kept, not what was trained; never compared.
BOOKKEEPING = ("out", "force", "resume", "log", "log_every", "checkpoint_every", "keep_every",
               "predict", "prefix", "threads")

#: Settings that decide what a token is: runs that differ in one count in different units.
TOKENIZATION = ("tokenizer", "tokenizer_options", "clean")

#: The mark seqlm compare leaves in the metadata of the pictures it writes: a file is
#: replaced only if it carries it, so that a picture of the user's is never overwritten.
MARK = "seqlm compare"
#: Picture formats ``-o`` may name, with the metadata entry that carries the mark in each.
FORMATS = {".png": "Software", ".svg": "Creator", ".pdf": "Creator"}
#: How much of a picture is read to find the mark: matplotlib writes it near the start of
#: a PNG or SVG file, and near the end of a PDF file.
_MARK_WITHIN = 1 << 16
#: The mark in matplotlib's SVG metadata (Dublin Core: dc:creator's agent).
_SVG_MARK = re.compile(rb"<dc:creator>\s*<cc:Agent>\s*<dc:title>" + re.escape(MARK.encode())
                       + rb"</dc:title>")


def load_runs(paths: Sequence[str | Path]) -> list[RunRecord]:
    """Read the runs to compare; each must be a run folder with at least one epoch."""
    if len(paths) < 2:
        raise UsageError("seqlm compare needs at least two run folders, such as "
                         "seqlm compare runs/a runs/b")
    resolved = [Path(p).resolve() for p in paths]
    if len(set(resolved)) < len(resolved):
        raise UsageError("the same run is given twice; give different run folders")
    records = [read_run(Path(p)) for p in paths]
    for record in records:
        if not record.history and record.unsaved:
            raise UsageError(f"{record.path} ended before it saved a checkpoint (its "
                             f"{record.unsaved} epoch(s) in metrics.jsonl were never "
                             "saved); compare runs that saved at least one epoch")
        if not record.history:
            why = (" (made by an older seqlm, whose metrics.jsonl it lacks)"
                   if record.older else "")
            raise UsageError(f"{record.path} has no finished epoch in metrics.jsonl{why}; "
                             "compare runs that trained at least one epoch")
    return records


def differing_settings(records: Sequence[RunRecord]) -> list[str]:
    """The settings whose values are not the same in every run, in the settings' order."""
    keys: list[str] = []
    for record in records:
        keys.extend(k for k in record.config if k not in keys and k not in BOOKKEEPING)
    return [k for k in keys if len({_show(r.config.get(k)) for r in records}) > 1]


def _show(value: Any) -> str:
    if value is None:
        return "default"  # None settings mean "the default" (--lr, --weight-decay, ...)
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items())) or "{}"
    return str(value)


def labels(records: Sequence[RunRecord], keys: Sequence[str]) -> list[str]:
    """One label per run: its differing settings, or its folder name where none differ."""
    found = [", ".join(f"{k}={_show(r.config.get(k))}" for k in keys) or r.name
             for r in records]
    if len(set(found)) < len(found):  # same settings: only the folder tells them apart
        found = [f"{r.name}: {text}" if text != r.name else text
                 for r, text in zip(records, found, strict=True)]
    return found


def tokenization_note(records: Sequence[RunRecord]) -> str | None:
    """A one-line note where the runs split text into different tokens, else None.

    A perplexity is per token, so a word-level run's and a character-level run's figures
    measure different things; only a figure per character of the same text would compare
    them, and the runs' folders do not hold one.
    """
    differ = [key for key in differing_settings(records) if key in TOKENIZATION]
    if not differ:
        return None
    settings = "; ".join(
        f"{key}: {', '.join(dict.fromkeys(_show(r.config.get(key)) for r in records))}"
        for key in differ)
    return (f"the runs split their text into different tokens ({settings}): per-token "
            "figures (perplexity, bits per token) of different tokenizations are not "
            "comparable; bits per character of the same text would be")


def check_output(path: Path) -> None:
    """Refuse an ``-o`` that would create folders or replace anything but a picture."""
    if path.suffix.lower() not in FORMATS:
        raise UsageError(f"-o {path}: name a picture ending in {', '.join(FORMATS)}")
    if not path.parent.is_dir():
        raise UsageError(f"-o {path}: the folder {path.parent} does not exist; create it "
                         "first or choose another path")
    if path.is_dir():
        raise UsageError(f"-o {path}: is a folder; give a file name such as compare.png")
    if is_seqlm_name(path.name) and (path.parent / MANIFEST).exists():
        raise UsageError(f"-o {path}: is one of the files a run writes in its own folder; "
                         "choose another name, or a folder outside the run")
    if path.exists() and not made_by_compare(path):
        raise UsageError(f"-o {path}: exists and is not a picture seqlm compare made; give "
                         "another -o (seqlm compare replaces only its own pictures)")


def made_by_compare(path: Path) -> bool:
    """Whether the picture at ``path`` carries the mark seqlm compare writes (:data:`MARK`).

    Raises :class:`UsageError` if it cannot be read.
    """
    suffix = path.suffix.lower()
    try:
        with open(path, "rb") as f:
            if suffix == ".pdf":  # the document's information comes last
                f.seek(max(0, f.seek(0, os.SEEK_END) - _MARK_WITHIN))
            data = f.read(_MARK_WITHIN)
    except OSError as exc:
        raise UsageError(f"-o {path}: cannot be read ({exc.strerror}); give another -o") from None
    if suffix == ".png":
        return _png_text(data, FORMATS[".png"].encode()) == MARK.encode()
    if suffix == ".svg":
        return _SVG_MARK.search(data) is not None
    return f"/{FORMATS['.pdf']} ({MARK})".encode() in data


def _png_text(data: bytes, key: bytes) -> bytes | None:
    """The value of the PNG text chunk ``key`` among the chunks before the image data."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    at = 8
    while at + 8 <= len(data):
        length, kind = int.from_bytes(data[at:at + 4], "big"), data[at + 4:at + 8]
        if kind in (b"IDAT", b"IEND"):
            break
        if kind == b"tEXt":
            name, _, value = data[at + 8:at + 8 + length].partition(b"\0")
            if name == key:
                return value
        at += 12 + length  # length, kind, data and checksum
    return None


def plot_runs(records: Sequence[RunRecord], names: Sequence[str], path: Path) -> Path:
    """Training (solid) and validation (dashed) perplexity of each run, in one picture."""
    # A figure of its own, drawn headless, rather than pyplot's: the caller's backend (a
    # notebook's inline one) and open figures stay as they were.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(9, 5.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, (record, name) in enumerate(zip(records, names, strict=True)):
        colour = f"C{i % 10}"
        history = record.history
        # One legend entry per run: the title says which line style is which.
        ax.plot([m.epoch for m in history], [m.train_ppl for m in history],
                color=colour, label=name)
        validated = [m for m in history if m.val_loss is not None]
        if validated:
            ax.plot([m.epoch for m in validated], [m.val_ppl for m in validated],
                    color=colour, linestyle="--")
    ax.set_xlabel("Epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("Perplexity")
    if wants_log_scale(v for line in ax.get_lines() for v in line.get_ydata()):
        ax.set_yscale("log")
    ax.set_title(f"{len(records)} runs: solid training, dashed validation")
    ax.grid(linestyle="--", alpha=0.7)
    ax.legend(fontsize="small")
    fig.tight_layout()
    # Written beside the target and renamed, so a failure leaves no half picture; a
    # failure names the picture asked for, not the temporary file.
    suffix = path.suffix.lower()
    write_atomic(path, lambda f: fig.savefig(f, format=suffix[1:],
                                             metadata={FORMATS[suffix]: MARK}))
    return path


def comparison(records: Sequence[RunRecord]) -> dict[str, Any]:
    """The settings that differ and each run's final and best figures, JSON-ready."""
    keys = differing_settings(records)
    rows = []
    for record, label in zip(records, labels(records, keys), strict=True):
        row = record.to_dict()
        rows.append({
            "name": record.name, "path": str(record.path), "label": label,
            "settings": {k: record.config.get(k) for k in keys},
            **{k: row[k] for k in ("status", "epochs", "final_train_ppl", "final_val_ppl",
                                   "best_val_ppl", "best_val_bits_per_token", "best_epoch")},
            "tokens_per_s": _speed(record),
        })
    return {"differing_settings": keys, "runs": rows}


def _speed(record: RunRecord) -> float | None:
    seconds = sum(m.seconds for m in record.history)
    return sum(m.tokens for m in record.history) / seconds if seconds > 0 else None


def comparison_table(result: dict[str, Any]) -> Any:
    """A rich table of :func:`comparison`'s result (what ``seqlm compare`` prints).

    One column per run, side by side: the settings that differ, then the figures. Runs
    are few and figures many, so this keeps the table within an 80-column terminal.
    """
    from rich.markup import escape
    from rich.table import Table

    def num(value: float | None, digits: int = 4) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    runs = result["runs"]
    table = Table(title="seqlm compare", title_justify="left")
    table.add_column("")
    for row in runs:
        table.add_column(escape(row["name"]), justify="right", overflow="fold")
    for key in result["differing_settings"]:
        table.add_row(escape(key), *(escape(_show(row["settings"][key])) for row in runs))
    table.add_section()
    figures = {
        "epochs done": lambda r: str(r["epochs"]),
        "train ppl": lambda r: num(r["final_train_ppl"]),
        "val ppl": lambda r: num(r["final_val_ppl"]),
        "best val ppl": lambda r: num(r["best_val_ppl"]),
        "best epoch": lambda r: str(r["best_epoch"] or "-"),
        "best bits/token": lambda r: num(r["best_val_bits_per_token"], 3),
        "tokens/s": lambda r: "-" if r["tokens_per_s"] is None else f"{r['tokens_per_s']:,.0f}",
        "status": lambda r: escape(r["status"]),
    }
    for name, show in figures.items():
        table.add_row(name, *(show(row) for row in runs))
    return table
