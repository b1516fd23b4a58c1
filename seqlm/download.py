"""Fetching *The Time Machine* once into a cache directory, verified by its checksum."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

from seqlm.errors import DataError

#: The d2l mirror of the book, the text the seed trains on.
BOOK_URL = "http://d2l-data.s3-accelerate.amazonaws.com/timemachine.txt"
#: Project Gutenberg's edition (a different file, with its licence header): download it
#: yourself and pass it with ``--data`` to train on it instead.
GUTENBERG_URL = "https://www.gutenberg.org/cache/epub/35/pg35.txt"
BOOK_SHA1 = "090b5e7e70c295757f55df93cb0a180b9691891a"
BOOK_FILENAME = "timemachine.txt"


def data_dir() -> Path:
    """Where downloaded data lives: ``$SEQLM_DATA_DIR``, else the user cache directory."""
    env = os.environ.get("SEQLM_DATA_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("seqlm")) / "data"


def sha1_of(path: Path) -> str:
    """The hex SHA-1 of a file's bytes."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _log(message: str) -> None:
    print(f"seqlm: {message}", file=sys.stderr)


def book_path(
    url: str | None = None,
    directory: Path | None = None,
    *,
    retries: int = 3,
    backoff_s: float = 1.0,
    timeout_s: float = 30.0,
) -> Path:
    """The path of the verified book, downloading it first if the cache has no good copy.

    The download goes to a temporary file in the cache directory that is renamed into
    place only once its SHA-1 matches, so a cut-off or wrong download is never taken for
    the book. ``$SEQLM_BOOK_URL`` overrides the default mirror.
    """
    directory = directory if directory is not None else data_dir()
    target = directory / BOOK_FILENAME
    if target.is_file() and sha1_of(target) == BOOK_SHA1:
        return target
    url = url or os.environ.get("SEQLM_BOOK_URL") or BOOK_URL
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create the data directory {directory} ({exc.strerror}); "
            "set SEQLM_DATA_DIR to a writable folder or pass --data FILE"
        ) from None
    if target.exists():
        _log(f"{target} does not match the book's checksum; downloading it again")
    payload = _download(url, retries=retries, backoff_s=backoff_s, timeout_s=timeout_s)
    actual = hashlib.sha1(payload).hexdigest()
    if actual != BOOK_SHA1:
        raise DataError(
            f"the file downloaded from {url} has SHA-1 {actual}, not the book's {BOOK_SHA1}; "
            "nothing was saved. Try again later, or download the book yourself and pass --data"
        )
    fd, tmp_name = tempfile.mkstemp(prefix=".timemachine-", suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def _download(url: str, *, retries: int, backoff_s: float, timeout_s: float) -> bytes:
    import requests

    _log(f"downloading The Time Machine from {url}")
    last_error = "no attempt made"
    for attempt in range(1, retries + 1):
        try:
            response = requests.get(url, timeout=timeout_s)
            response.raise_for_status()
            expected = response.headers.get("Content-Length")
            if expected is not None and int(expected) != len(response.content):
                raise OSError(f"got {len(response.content)} of {expected} bytes")
            return response.content
        except (requests.RequestException, OSError) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
            if attempt < retries:
                wait = backoff_s * 2 ** (attempt - 1)
                _log(f"download attempt {attempt} of {retries} failed ({last_error}); "
                     f"retrying in {wait:g} s")
                time.sleep(wait)
    raise DataError(
        f"could not download the book from {url} after {retries} attempts ({last_error}); "
        "check the network, or download it yourself and pass --data FILE"
    )
