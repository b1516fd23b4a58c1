"""The training text's checksum, so a run can be resumed on the text after it moved.

A checkpoint records the SHA-256 of the file it trained on. ``--resume DIR --data NEW``
is accepted when ``NEW`` has that checksum, whatever its path, and refused otherwise.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from seqlm.errors import DataError, UsageError


def text_checksum(path: str | Path) -> str:
    """The hex SHA-256 of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_same_text(checkpoint: dict[str, Any], new_data: str | Path, resume: str | Path) -> None:
    """Accept ``new_data`` for the run in ``resume`` only if its content is the run's text.

    Raises :class:`UsageError` saying why when it is not, or cannot be told.
    """
    recorded = checkpoint.get("data_sha256")
    old = (checkpoint.get("config") or {}).get("data")
    if old is None:
        raise UsageError(f"--data {new_data}: the run in {resume} trained on The Time Machine "
                         "(no --data); resume it without --data")
    if not isinstance(recorded, str):
        raise UsageError(f"--data {new_data}: the checkpoint in {resume} records no checksum of "
                         f"its text ({old}), so another file cannot be checked against it; "
                         "resume with the text at its original path")
    try:
        actual = text_checksum(new_data)
    except OSError as exc:
        raise DataError(f"--data {new_data}: cannot be read ({exc.strerror}); give the "
                        "run's text") from None
    if actual != recorded:
        raise UsageError(f"--data {new_data}: its content differs from the text the run in "
                         f"{resume} trained on ({old}; SHA-256 {recorded[:12]}..., this file "
                         f"{actual[:12]}...); resume with the same text, or start a new run")
