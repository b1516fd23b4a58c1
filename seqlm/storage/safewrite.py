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


def _current_umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it, and put it back
    os.umask(mask)
    return mask


#: Read once, at import: changing the umask is process-wide, so never from a thread.
_UMASK = _current_umask()


def temporary_beside(path: Path, suffix: str = ".tmp", prefix: str | None = None
                     ) -> tuple[int, str]:
    """A new temporary file in ``path``'s folder, created exclusively (never a link).

    Its mode follows the user's umask, as any file the user makes (``mkstemp`` alone would
    make it readable by its owner only). Returns the open descriptor and the file's name.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=prefix if prefix is not None else f".{path.name}-",
                                suffix=suffix, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
    except OSError:
        pass  # a file system without modes (FAT, say): keep what it gave
    return fd, name


def cannot_write(path: Path, error: OSError) -> OutputError:
    """The one-line error for a file of the run folder that could not be written."""
    return OutputError(f"could not write {path} ({error.strerror or error}); free some disk "
                       "space or check the folder's permissions")


def replace_atomically(path: Path, write: Callable[[BinaryIO], None], sync: bool = False) -> None:
    """Write ``path`` through ``write(file)`` into a temporary file, then rename it.

    ``sync`` flushes the data to the disk before the rename, for files that must survive
    a power cut (checkpoints). The temporary file never outlives a failure, which is
    raised as it came (an :class:`OSError`, say).
    """
    path = Path(path)
    tmp = None
    try:
        fd, tmp = temporary_beside(path)
        with os.fdopen(fd, "wb") as f:
            write(f)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp is not None and os.path.lexists(tmp):
            Path(tmp).unlink(missing_ok=True)


def write_atomic(path: Path, write: Callable[[BinaryIO], None], sync: bool = False) -> None:
    """:func:`replace_atomically`, with a failure raised as :class:`OutputError` naming
    ``path``."""
    try:
        replace_atomically(path, write, sync=sync)
    except OSError as exc:
        raise cannot_write(Path(path), exc) from None


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
