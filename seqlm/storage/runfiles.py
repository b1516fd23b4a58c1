"""Which files of a run folder seqlm wrote, so that it never touches any other.

Every file seqlm writes into a run folder is recorded, with its size and SHA-256, in the
folder's ``.seqlm-files.json``. ``--force`` deletes exactly the recorded files that are
still as seqlm left them, and nothing else: a file the user put there, or changed since,
is never deleted or overwritten. A name seqlm writes that holds something seqlm did not
write (a file of the user's, a folder, a symbolic link) stops the run before training,
with the names listed.

Temporary files follow seqlm's own naming (``.NAME-XXXXXXXX.tmp``); ones left behind by
a run that was killed mid-write are removed when the folder is next used, under its
lock, so never while another run writes them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from seqlm.errors import UsageError

#: The record of the files seqlm wrote into the folder.
MANIFEST = ".seqlm-files.json"
_FORMAT = "seqlm-run-files"
#: Files a run writes under fixed names (in the order seqlm run's last line names them).
OUTPUT_NAMES = ("summary.json", "metrics.jsonl", "perplexity.png", "checkpoint.json",
                "best.json", "status.json")
#: seqlm's own bookkeeping, which holds no results.
INTERNAL_NAMES = (".seqlm.lock", MANIFEST)
#: The epochs that ``--keep-every`` keeps: ``epoch-N.json``.
_KEPT = re.compile(r"epoch-[1-9][0-9]*\.json")
_TENSORS = re.compile(r"(?:checkpoint|best|epoch-[1-9][0-9]*)-[0-9a-f]{8}\.safetensors")
# tempfile.mkstemp's names: the prefix, then 8 of [a-z0-9_], then the suffix.
_TEMPORARY = re.compile(
    r"\.(?:" + "|".join(re.escape(name) for name in (*OUTPUT_NAMES, MANIFEST))
    + "|" + _KEPT.pattern + "|" + _TENSORS.pattern + r")-[a-z0-9_]{8}\.tmp"
)


def is_seqlm_name(name: str) -> bool:
    """Whether seqlm writes files of this name into a run folder."""
    return (name in OUTPUT_NAMES or name in INTERNAL_NAMES or bool(_KEPT.fullmatch(name))
            or bool(_TENSORS.fullmatch(name)) or bool(_TEMPORARY.fullmatch(name)))


def is_temporary(name: str) -> bool:
    """Whether ``name`` is one of seqlm's temporary files (``.NAME-XXXXXXXX.tmp``)."""
    return bool(_TEMPORARY.fullmatch(name))


def _digest(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    size = 0
    # O_NOFOLLOW: a record describes the file itself, never one a link points to.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return {"size": size, "sha256": digest.hexdigest()}


def _recorded(path: Path) -> dict[str, Any] | None:
    """The ``files`` of the record at ``path`` if it is seqlm's record, else None."""
    try:
        if path.is_symlink() or not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None  # an unreadable record vouches for nothing
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or data.get("format") != _FORMAT:
        return None
    return files


def read_manifest(folder: Path) -> dict[str, dict[str, Any]]:
    """The recorded files of ``folder``: name to size and SHA-256; empty if none."""
    files = _recorded(Path(folder) / MANIFEST) or {}
    return {name: entry for name, entry in files.items()
            if isinstance(entry, dict) and is_seqlm_name(name) and "/" not in name}


def _write_manifest(folder: Path, files: dict[str, dict[str, Any]]) -> None:
    from seqlm.storage.safewrite import write_bytes_atomic

    data = {"format": _FORMAT, "files": dict(sorted(files.items()))}
    write_bytes_atomic(Path(folder) / MANIFEST,
                       (json.dumps(data, indent=1) + "\n").encode("utf-8"))


def record_written(folder: Path, *paths: Path) -> None:
    """Record ``paths`` (files seqlm just wrote in ``folder``) and forget deleted ones."""
    folder = Path(folder)
    files = read_manifest(folder)
    for path in paths:
        files[Path(path).name] = _digest(Path(path))
    files = {name: entry for name, entry in files.items()
             if os.path.lexists(folder / name)}
    _write_manifest(folder, files)


def owned_files(folder: Path) -> list[str]:
    """The recorded files of ``folder`` that are still exactly as seqlm wrote them."""
    folder = Path(folder)
    owned = []
    for name, entry in read_manifest(folder).items():
        path = folder / name
        try:
            if stat.S_ISREG(os.lstat(path).st_mode) and _digest(path) == {
                "size": entry.get("size"), "sha256": entry.get("sha256")
            }:
                owned.append(name)
        except OSError:
            continue
    return sorted(owned)


def _kind(path: Path) -> str | None:
    """What is wrong with ``path`` as a file seqlm writes, or None if nothing is."""
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        return f"is a symbolic link (to {os.readlink(path)})"
    if stat.S_ISDIR(info.st_mode):
        return "is a folder"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if info.st_nlink > 1:
        # Writing it in place (the lock is) would change the other names' file too.
        return "is a hard link (the same file has another name)"
    return None


def check_names_are_files(folder: Path, flag: str = "--out") -> None:
    """Refuse ``folder`` if a name seqlm writes there is a link, a folder or not a file.

    A hard link is refused too: the same file under a name outside the run folder.
    """
    wrong = []
    for name in sorted(os.listdir(folder)):
        if is_seqlm_name(name):
            problem = _kind(Path(folder) / name)
            if problem:
                wrong.append(f"{name} {problem}")
    if wrong:
        other = f" or choose another {flag}" if flag == "--out" else ""
        raise UsageError(f"{flag} {folder}: {'; '.join(wrong)}. seqlm writes these names "
                         f"itself and never through a link or over a folder; move them away{other}")


def check_run_folder(folder: Path, force: bool, flag: str = "--out") -> None:
    """Refuse ``folder`` before training if a run could not write it safely.

    Refused: seqlm's names taken by links, folders or other non-files (in any case);
    earlier results without ``force``; and with ``force``, any file at one of seqlm's
    names that seqlm did not write there. A folder holding only a failed start's
    leftovers (the lock, the record, an empty ``metrics.jsonl``, temporary files) is
    accepted as if it were empty.
    """
    folder = Path(folder)
    check_names_are_files(folder, flag)
    entries = sorted(os.listdir(folder))
    results = [name for name in entries if not _is_leftover(folder, name)]
    if not results:
        return
    if not force:
        raise UsageError(f"{flag} {folder}: folder is not empty (a previous run?); choose "
                         "another folder or pass --force to write into it")
    owned = set(owned_files(folder))
    foreign = [name for name in results if is_seqlm_name(name) and name not in owned]
    if foreign:
        raise UsageError(
            f"{flag} {folder}: {', '.join(foreign)} {'was' if len(foreign) == 1 else 'were'} "
            "not written by seqlm in this folder, or changed since; --force replaces only "
            f"seqlm's own files, so move {'it' if len(foreign) == 1 else 'them'} away or "
            f"choose another {flag}"
        )


def _holds_seqlm_bookkeeping(path: Path, name: str) -> bool:
    """Whether the lock or the record at ``path`` reads as seqlm wrote it: the lock holds
    a process id (or nothing), the record is seqlm's JSON. Anything else is the user's,
    and is never overwritten."""
    if name == MANIFEST:
        return _recorded(path) is not None
    try:
        held = path.read_bytes().strip()
        return len(held) <= 32 and (not held or held.isdigit())
    except OSError:
        return False


def _is_leftover(folder: Path, name: str) -> bool:
    if name in INTERNAL_NAMES:
        return _holds_seqlm_bookkeeping(Path(folder) / name, name)
    if is_temporary(name):
        return True
    if name == "status.json":
        # How a start that never finished an epoch ended: nothing to keep without metrics.
        # Only seqlm's own record: a file of the user's by that name is never overwritten.
        metrics = folder / "metrics.jsonl"
        return name in owned_files(folder) and (
            not os.path.lexists(metrics) or os.lstat(metrics).st_size == 0)
    return name == "metrics.jsonl" and os.lstat(folder / name).st_size == 0


def remove_stale_temporaries(folder: Path) -> list[str]:
    """Delete temporary files a killed run left in ``folder``; return their names.

    Call it only while holding the folder's lock: a running writer's temporary files
    look the same.
    """
    removed = []
    for name in sorted(os.listdir(folder)):
        path = Path(folder) / name
        if is_temporary(name) and stat.S_ISREG(os.lstat(path).st_mode):
            path.unlink(missing_ok=True)
            removed.append(name)
    return removed


def clear_previous_run(folder: Path) -> list[str]:
    """Delete the files an earlier run wrote in ``folder`` (``--force``); return their names.

    Only recorded files still exactly as seqlm wrote them are deleted; the record is
    then emptied, so nothing of the earlier run is taken for the new one.
    """
    folder = Path(folder)
    removed = owned_files(folder)
    for name in removed:
        (folder / name).unlink(missing_ok=True)
    if read_manifest(folder) or (folder / MANIFEST).exists():
        _write_manifest(folder, {})
    return removed
