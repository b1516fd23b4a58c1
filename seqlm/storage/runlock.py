"""One writer per run folder: a second run (or resume) into a folder in use is refused.

Two processes writing the same folder would interleave their metrics rows and replace
each other's checkpoints. The lock is an advisory ``flock`` on ``.seqlm.lock`` in the
folder: the operating system drops it when the holding process ends, however it ends,
so a crashed run never leaves the folder locked. Where ``fcntl`` does not exist
(Windows) the lock is skipped.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from seqlm.errors import UsageError
from seqlm.storage.safewrite import cannot_write

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".seqlm.lock"


def _in_use(folder: Path, holder: str) -> UsageError:
    return UsageError(f"{folder} is in use by another seqlm run (process {holder}); wait for "
                      "it to finish, or choose another --out")


def check_not_in_use(folder: Path) -> None:
    """Raise :class:`UsageError` if another process holds ``folder``'s lock right now.

    Only a probe (the lock is released at once): it lets the folder's other checks speak
    of a running run's files as such, not as strange files.
    """
    path = Path(folder) / LOCK_NAME
    if fcntl is None or not path.is_file() or path.is_symlink():
        return
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return  # unreadable: the lock itself will say why
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _in_use(folder, os.pread(fd, 64, 0).decode(errors="replace").strip()
                      or "unknown") from None
    finally:
        os.close(fd)


@contextlib.contextmanager
def hold_run_folder(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s lock for the duration of the ``with`` block.

    Raises :class:`UsageError` naming the process that holds it, if another does.
    """
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    path = Path(folder) / LOCK_NAME
    try:
        # O_NOFOLLOW: a link planted at the lock's name must not lead the write elsewhere.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:
        if os.path.islink(path):
            raise UsageError(f"{path} is a symbolic link; seqlm never writes through one: "
                             "remove it, or choose another folder") from None
        raise cannot_write(path, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise _in_use(folder, holder) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except OSError as exc:
            raise cannot_write(path, exc) from None
        yield
    finally:
        os.close(fd)  # closing the file releases the lock
