"""Shared fixtures: the book, small texts, and a quiet, repeatable torch."""

from __future__ import annotations

from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[2] / "shared" / "data" / "timemachine.txt"


@pytest.fixture(scope="session")
def book_path() -> Path:
    """The Time Machine, as laid beside the repository (never committed into it)."""
    if not BOOK.is_file():
        pytest.fail(f"the book is expected at {BOOK}; see README (Tests)")
    return BOOK


@pytest.fixture(autouse=True)
def _seeded_single_thread():
    """Seed torch for every test; one thread keeps small tests fast on shared cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _ctrl_c_restored():
    """A command interrupted in this process (CliRunner) ignores Ctrl-C from then on, as
    the process it expects to end would: give Ctrl-C back to the test session."""
    import signal

    yield
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def small_text(tmp_path: Path) -> Path:
    """A short English text file of a few thousand characters."""
    text = (
        "The Time Traveller (for so it will be convenient to speak of him) was expounding "
        "a recondite matter to us. His grey eyes shone and twinkled, and his usually pale "
        "face was flushed and animated.\n"
    ) * 12
    path = tmp_path / "small.txt"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def registered():
    """``registered(kind, name, cls)``: ``cls`` registered as ``name`` of ``kind`` by a
    throwaway plugin registered in code, removed when the test ends."""
    import seqlm
    from seqlm.plugins.manager import KINDS

    plugins = seqlm.get_plugins()
    keys: list[str] = []

    def register(kind: str, name: str, cls: type) -> None:
        def hook(register):
            register(name, cls)

        plugin = type(f"{name}-plugin", (), {KINDS[kind]: staticmethod(seqlm.hookimpl(hook))})
        key = f"{name}-plugin-{len(keys)}"
        info = plugins.add(plugin, key)
        keys.append(key)
        assert info.error is None, info.error

    yield register
    for key in keys:
        plugins.remove(key)
