"""Fetching *The Time Machine* once into a cache directory, verified by its checksum.

The download streams into a temporary ``.part`` file beside the book, is checked
against the book's SHA-1, and only then renamed into place, so a cut-off, wrong or
interrupted download is never taken for the book and leaves no file behind.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from seqlm.errors import DataError, UsageError, first_line
from seqlm.storage.safewrite import temporary_beside

#: The d2l mirror of the book, the text the seed trains on.
BOOK_URL = "http://d2l-data.s3-accelerate.amazonaws.com/timemachine.txt"
#: Project Gutenberg's edition (a different file, with its licence header): download it
#: yourself and pass it with ``--data`` to train on it instead.
GUTENBERG_URL = "https://www.gutenberg.org/cache/epub/35/pg35.txt"
BOOK_SHA1 = "090b5e7e70c295757f55df93cb0a180b9691891a"
BOOK_FILENAME = "timemachine.txt"

#: Defaults of the download settings, each overridable by an environment variable.
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_S = 1.0
DEFAULT_TIMEOUT_S = 30.0
#: The book is 179 kB; a server sending more than this is sending something else, and
#: one that never stops would otherwise fill the disk.
DEFAULT_MAX_MB = 50.0


class _AttemptFailed(Exception):
    """One download attempt failed; ``retry`` says whether another try could help."""

    def __init__(self, reason: str, retry: bool = True) -> None:
        super().__init__(reason)
        self.retry = retry


def data_dir() -> Path:
    """Where downloaded data lives: ``$SEQLM_DATA_DIR``, else the user cache directory."""
    env = os.environ.get("SEQLM_DATA_DIR")
    if env:
        path = Path(env).expanduser()
        if path.exists() and not path.is_dir():
            raise DataError(f"SEQLM_DATA_DIR={env} is a file, not a folder; point it at a "
                            "folder (the book is cached there as timemachine.txt)")
        return path
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
    print(f"seqlm: {message}", file=sys.stderr)  # plain: no console needed to fetch a file


def _env_number(name: str, default: float, kind: type, minimum: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not value >= minimum or value != value:
        raise UsageError(f"{name}={raw!r} is not a valid setting; give a number of at least "
                         f"{minimum:g}, or unset it for the default ({default:g})")
    return value


def download_settings() -> tuple[int, float, float]:
    """``(retries, backoff_s, timeout_s)`` from the environment, else the defaults.

    ``SEQLM_DOWNLOAD_RETRIES`` (attempts, at least 1), ``SEQLM_DOWNLOAD_BACKOFF`` (seconds
    before the second attempt, doubling after each) and ``SEQLM_DOWNLOAD_TIMEOUT``
    (seconds without an answer or data before an attempt gives up).
    """
    retries = int(_env_number("SEQLM_DOWNLOAD_RETRIES", DEFAULT_RETRIES, int, 1))
    backoff_s = _env_number("SEQLM_DOWNLOAD_BACKOFF", DEFAULT_BACKOFF_S, float, 0)
    timeout_s = _env_number("SEQLM_DOWNLOAD_TIMEOUT", DEFAULT_TIMEOUT_S, float, 0.001)
    return retries, backoff_s, timeout_s


def download_limit_bytes() -> int:
    """The most bytes a download may bring: ``$SEQLM_DOWNLOAD_MAX_MB`` megabytes (50)."""
    return int(_env_number("SEQLM_DOWNLOAD_MAX_MB", DEFAULT_MAX_MB, float, 0.001) * 1_000_000)


def book_path(
    url: str | None = None,
    directory: Path | None = None,
    *,
    retries: int | None = None,
    backoff_s: float | None = None,
    timeout_s: float | None = None,
    max_bytes: int | None = None,
    fix: str = "pass --data FILE",
    log: Callable[[str], None] | None = None,
) -> Path:
    """The path of the verified book, downloading it first if the cache has no good copy.

    ``$SEQLM_BOOK_URL`` overrides the default mirror; settings left as None come from
    :func:`download_settings`, and ``max_bytes`` (the most a download may bring) from
    :func:`download_limit_bytes`. A file already at the book's place that does not match
    its checksum is kept, renamed with a ``.old`` suffix, once a good copy has arrived.
    ``fix`` ends each error's advice: what else gives the caller the text. ``log`` hears
    each line of progress (the download, a retry); by default they go to stderr.
    """
    say = log or _log
    env_retries, env_backoff, env_timeout = download_settings()
    retries = env_retries if retries is None else retries
    backoff_s = env_backoff if backoff_s is None else backoff_s
    timeout_s = env_timeout if timeout_s is None else timeout_s
    max_bytes = download_limit_bytes() if max_bytes is None else max_bytes
    directory = directory if directory is not None else data_dir()
    target = directory / BOOK_FILENAME
    if target.is_file() and sha1_of(target) == BOOK_SHA1:
        return target
    if target.exists() and not target.is_file():
        raise DataError(f"{target} exists but is not a file; remove it, or {fix}")
    url = url or os.environ.get("SEQLM_BOOK_URL") or BOOK_URL
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create the data directory {directory} ({exc.strerror}); "
            f"set SEQLM_DATA_DIR to a writable folder or {fix}"
        ) from None
    say(f"downloading The Time Machine from {url}")
    last_error = "no attempt made"
    for attempt in range(1, retries + 1):
        try:
            part = _download_verified(url, directory, timeout_s, max_bytes)
        except _AttemptFailed as failure:
            last_error = str(failure)
            if not failure.retry:
                raise DataError(f"the download from {url} was refused: {last_error}; nothing "
                                f"was saved. Download the book yourself and {fix}"
                                ) from None
            if attempt < retries:
                wait = backoff_s * 2 ** (attempt - 1)
                say(f"download attempt {attempt} of {retries} failed ({last_error}); "
                    f"retrying in {wait:g} s")
                time.sleep(wait)
            continue
        _install(part, target, fix, say)
        return target
    raise DataError(
        f"could not download the book from {url} after {retries} attempt(s) ({last_error}); "
        f"check the network, or download it yourself and {fix} "
        "(SEQLM_DOWNLOAD_TIMEOUT and SEQLM_DOWNLOAD_RETRIES allow a slow network more time)"
    )


def _install(part: Path, target: Path, fix: str, say: Callable[[str], None]) -> None:
    """Rename the verified ``part`` to ``target``, keeping any file already there."""
    try:
        if target.exists():
            kept = target.with_name(target.name + ".old")
            n = 1
            while kept.exists():
                n += 1
                kept = target.with_name(f"{target.name}.old{n}")
            os.replace(target, kept)
            say(f"{target} did not match the book's checksum; kept it as {kept}")
        os.replace(part, target)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise DataError(f"cannot save the book as {target} ({exc.strerror}); set "
                        f"SEQLM_DATA_DIR to a writable folder or {fix}") from None


def _download_verified(url: str, directory: Path, timeout_s: float, max_bytes: int) -> Path:
    """Stream ``url`` into a ``.part`` file and return it once its SHA-1 is the book's.

    More than ``max_bytes`` stops the download. Whatever goes wrong, Ctrl-C included,
    the ``.part`` file is removed.
    """
    import requests

    fd, name = temporary_beside(Path(directory) / "timemachine.txt", suffix=".part",
                                prefix=".timemachine-")
    part = Path(name)
    try:
        digest = hashlib.sha1()
        received = 0
        with os.fdopen(fd, "wb") as f:
            try:
                with requests.get(url, timeout=timeout_s, stream=True) as response:
                    _check_status(response)
                    expected = response.headers.get("Content-Length")
                    if expected is not None and expected.isdigit() and int(expected) > max_bytes:
                        raise _too_big(f"announces {int(expected):,} bytes", max_bytes)
                    for chunk in response.iter_content(chunk_size=1 << 16):
                        received += len(chunk)
                        if received > max_bytes:
                            raise _too_big(f"sent more than {max_bytes:,} bytes", max_bytes)
                        f.write(chunk)
                        digest.update(chunk)
            except requests.Timeout:
                raise _AttemptFailed(f"no answer within {timeout_s:g} s") from None
            except requests.RequestException as exc:
                raise _AttemptFailed(_connection_reason(exc, timeout_s)) from None
            f.flush()
            os.fsync(f.fileno())
        if expected is not None and expected.isdigit() and int(expected) != received:
            raise _AttemptFailed(f"the connection closed after {received} of {expected} bytes")
        actual = digest.hexdigest()
        if actual != BOOK_SHA1:
            raise _AttemptFailed(f"the file has SHA-1 {actual}, not the book's {BOOK_SHA1}",
                                 retry=False)
        return part
    except OSError as exc:  # writing the .part file failed (disk full, say)
        part.unlink(missing_ok=True)
        raise DataError(f"cannot write the download into {directory} ({exc.strerror}); "
                        "free some space, set SEQLM_DATA_DIR to another folder, or pass "
                        "--data FILE") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def _too_big(what: str, max_bytes: int) -> _AttemptFailed:
    # Asking again would bring the same flood: no retry.
    return _AttemptFailed(f"the server {what}, more than the limit of {max_bytes:,} "
                          f"(the book is about 179 kB; SEQLM_DOWNLOAD_MAX_MB raises the limit)",
                          retry=False)


def _check_status(response: object) -> None:
    status = getattr(response, "status_code", 200)
    if status >= 400:
        reason = getattr(response, "reason", "") or ""
        # A client error (404, 403...) will not go away by asking again.
        raise _AttemptFailed(f"the server answered {status} {reason}".strip(),
                             retry=status >= 500 or status in (408, 429))


def _connection_reason(exc: Exception, timeout_s: float) -> str:
    text = str(exc)
    if "timed out" in text:
        # requests reports a stall in the middle of the body as a ConnectionError.
        return f"no data for {timeout_s:g} s"
    if "Connection refused" in text:
        return "connection refused (no server at that address)"
    if "Name or service not known" in text or "getaddrinfo" in text or "resolve" in text:
        return "the host name could not be resolved (offline?)"
    if "IncompleteRead" in text or "Connection broken" in text:
        return "the connection broke off before the whole file arrived"
    return f"{type(exc).__name__}: {first_line(exc, 200)}"
