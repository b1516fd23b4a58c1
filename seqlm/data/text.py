"""Reading a text file and cleaning its lines."""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from pathlib import Path

from seqlm.errors import DataError, UsageError

_NON_LETTERS = re.compile("[^A-Za-z]+")


def clean_letters(line: str) -> str:
    """The seed's cleaning: every run of non-letters becomes one space; lower case."""
    return _NON_LETTERS.sub(" ", line).strip().lower()


def clean_none(line: str) -> str:
    """Keep the line as it is, line ending included, so the raw text is kept whole."""
    return line


#: Cleaning modes for ``--clean``.
CLEANERS: dict[str, Callable[[str], str]] = {"letters": clean_letters, "none": clean_none}


def read_text(path: str | Path, encoding: str = "utf-8", label: str | None = None) -> str:
    """Read a whole text file, with errors that say what is wrong and how to fix it.

    Raises :class:`DataError` for a missing, unreadable, empty or undecodable file and
    :class:`UsageError` for an unknown ``encoding``. The errors name the file as
    ``label`` (``--data PATH`` by default, as ``seqlm run`` takes it; a plugin's command
    gives its own argument).
    """
    check_encoding(encoding)
    path = Path(path).expanduser()
    named = label or f"--data {path}"
    try:
        exists = path.exists()
    except OSError:  # a name too long for the file system, say
        exists = False
    if not exists:
        raise DataError(f"{named}: no such file; give the path of a text file")
    if path.is_dir():
        raise DataError(f"{named}: is a folder; give the path of a text file in it")
    if not path.is_file():
        # A pipe or a device could block or never end.
        raise DataError(f"{named}: is not a regular file; save the text to a file first")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{named}: cannot be read ({exc.strerror}); "
                        "check its permissions") from None
    if not raw.strip():
        what = "is empty" if not raw else "holds only white space"
        raise DataError(f"{named}: the file {what}; give a file with some text")
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            hint = "the file starts with a UTF-16 mark; pass --encoding utf-16"
        elif codecs.lookup(encoding).name == "utf-8":
            hint = "pass --encoding (for example --encoding latin-1) or convert it to UTF-8"
        else:
            hint = "pass the file's real encoding with --encoding"
        raise DataError(
            f"{named}: not valid {encoding} at byte offset {exc.start} (line {line}, "
            f"byte 0x{raw[exc.start]:02x}); {hint}"
        ) from None


def check_encoding(encoding: str) -> None:
    """Raise :class:`UsageError` unless ``encoding`` is a text encoding Python knows."""
    try:
        info = codecs.lookup(encoding)
    except (LookupError, TypeError, ValueError):
        info = None
    # Codecs such as "base64" or "rot13" exist but do not turn bytes into text.
    if info is None or not getattr(info, "_is_text_encoding", True):
        raise UsageError(f"--encoding {encoding!r}: unknown text encoding; "
                         "try utf-8, latin-1 or cp1252")


def check_prefix_text(prefix: str) -> None:
    """A ``--prefix`` must hold some text besides white space: there is nothing else to
    continue (``seqlm run`` and ``seqlm generate`` say so alike)."""
    if not prefix.strip():
        raise UsageError("--prefix is empty; give some text for the model to continue, "
                         "for example --prefix 'time traveller'")


def clean_lines(text: str, clean: str = "letters") -> list[str]:
    """Split ``text`` into lines, clean each, and drop the lines left empty.

    As in the seed, lines are later joined without a separator, so the end of one line
    runs into the start of the next.
    """
    if not isinstance(text, str):
        raise UsageError(f"clean_lines takes the text as one str (its lines split here), "
                         f"got {type(text).__name__}")
    try:
        cleaner = CLEANERS[clean]
    except (KeyError, TypeError):
        raise DataError(
            f"--clean {clean!r} not recognized. Choose one of: {', '.join(CLEANERS)}"
        ) from None
    cleaned = (cleaner(line) for line in text.splitlines(keepends=clean == "none"))
    return [line for line in cleaned if line]
