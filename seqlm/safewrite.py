"""Writing a run folder's files without ever following a symbolic link.

Each file is written whole into a fresh temporary file beside it (``.NAME-XXXXXXXX.tmp``,
created exclusively, so never through a link) and then renamed over the target. A rename
replaces a link itself, never the file it points to, and a reader never sees a half
written file. A failure (a full disk, say) names the file and leaves the old one whole.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from seqlm.errors import OutputError


def cannot_write(path: Path, error: OSError) -> OutputError:
    """The one-line error for a file of the run folder that could not be written."""
    return OutputError(f"could not write {path} ({error.strerror or error}); free some disk "
                       "space or check the folder's permissions")


def write_atomic(path: Path, write: Callable[[BinaryIO], None], sync: bool = False) -> None:
    """Write ``path`` through ``write(file)`` into a temporary file, then rename it.

    ``sync`` flushes the data to the disk before the rename, for files that must survive
    a power cut (checkpoints). Raises :class:`OutputError` naming ``path`` on failure.
    """
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            write(f)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise cannot_write(path, exc) from None
    finally:
        if tmp is not None and os.path.lexists(tmp):
            Path(tmp).unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes, sync: bool = False) -> None:
    """Write ``data`` to ``path`` as :func:`write_atomic` does."""
    write_atomic(path, lambda f: f.write(data), sync=sync)


def open_append(path: Path) -> BinaryIO:
    """Open ``path`` to append to it, creating it; a symbolic link there is refused.

    Raises :class:`OutputError` naming ``path`` when it cannot be opened.
    """
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.fdopen(os.open(path, flags, 0o644), "ab")
    except OSError as exc:
        raise cannot_write(Path(path), exc) from None
