"""Reading a text file and cleaning its lines."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from seqlm.errors import DataError

_NON_LETTERS = re.compile("[^A-Za-z]+")


def clean_letters(line: str) -> str:
    """The seed's cleaning: every run of non-letters becomes one space; lower case."""
    return _NON_LETTERS.sub(" ", line).strip().lower()


def clean_none(line: str) -> str:
    """Keep the line as it is, line ending included, so the raw text is kept whole."""
    return line


#: Cleaning modes for ``--clean``.
CLEANERS: dict[str, Callable[[str], str]] = {"letters": clean_letters, "none": clean_none}


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    """Read a whole text file, with errors that say what is wrong and how to fix it."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"--data {path}: no such file; give the path of a text file")
    if path.is_dir():
        raise DataError(f"--data {path}: is a directory; give the path of a text file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"--data {path}: cannot be read ({exc.strerror}); check permissions")
    if not raw.strip():
        raise DataError(f"--data {path}: the file is empty; give a file with some text")
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"--data {path}: not valid {encoding} at byte offset {exc.start}; "
            "convert it to UTF-8 or pass --encoding (for example --encoding latin-1)"
        ) from None
    except LookupError:
        raise DataError(f"--encoding {encoding}: unknown encoding; try utf-8 or latin-1") from None


def clean_lines(text: str, clean: str = "letters") -> list[str]:
    """Split ``text`` into lines, clean each, and drop the lines left empty.

    As in the seed, lines are later joined without a separator, so the end of one line
    runs into the start of the next.
    """
    try:
        cleaner = CLEANERS[clean]
    except KeyError:
        raise DataError(
            f"--clean {clean!r} not recognized. Choose one of: {', '.join(CLEANERS)}"
        ) from None
    cleaned = (cleaner(line) for line in text.splitlines(keepends=clean == "none"))
    return [line for line in cleaned if line]
