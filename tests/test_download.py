"""The book download against a real HTTP server on 127.0.0.1, through requests."""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from seqlm.cli import main
from seqlm.data.download import (
    BOOK_FILENAME,
    BOOK_SHA1,
    book_path,
    data_dir,
    download_limit_bytes,
    sha1_of,
)
from seqlm.errors import DataError, UsageError

BOOK = Path(__file__).resolve().parents[2] / "shared/data/timemachine.txt"
FAST = {"retries": 2, "backoff_s": 0.01, "timeout_s": 0.5}


@pytest.fixture(scope="module")
def book_bytes() -> bytes:
    data = BOOK.read_bytes()
    assert sha1_of(BOOK) == BOOK_SHA1
    return data


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves the book, or misbehaves in the way the path names."""

    book = b""
    hits: dict[str, int] = {}

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def _send(self, body: bytes, length: int | None = None, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        book = self.book
        if self.path == "/book":
            self._send(book)
        elif self.path == "/wrong":
            self._send(b"this is not the book\n" * 100)
        elif self.path == "/cut":
            # Promise the whole book, send half, then hang up.
            self._send(book[: len(book) // 2], length=len(book))
            self.close_connection = True
        elif self.path == "/slow":
            time.sleep(1.5)
            self._send(book)
        elif self.path == "/stall":
            self.send_response(200)
            self.send_header("Content-Length", str(len(book)))
            self.end_headers()
            self.wfile.write(book[:1000])
            self.wfile.flush()
            time.sleep(3)
        elif self.path == "/endless":
            # No length announced, and data without end: only a limit stops it.
            self.send_response(200)
            self.end_headers()
            with contextlib.suppress(OSError):
                while True:
                    self.wfile.write(b"x" * 65536)
        elif self.path == "/huge":
            self._send(b"x" * 1000, length=10**10)  # announces 10 GB
        elif self.path == "/flaky":
            if self.hits[self.path] == 1:
                self._send(b"busy", status=503)
            else:
                self._send(book)
        else:
            self._send(b"not found", status=404)


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that gave up (the point of several tests) breaks the pipe; a
        # traceback printed from the server thread would land in other tests' output.
        pass


@pytest.fixture
def server(book_bytes: bytes) -> Iterator[str]:
    handler = type("Handler", (_Handler,), {"book": book_bytes, "hits": {}})
    httpd = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_downloads_and_verifies_the_book(server: str, tmp_path: Path) -> None:
    path = book_path(f"{server}/book", tmp_path, **FAST)
    assert path == tmp_path / BOOK_FILENAME
    assert sha1_of(path) == BOOK_SHA1
    assert _leftovers(tmp_path) == [BOOK_FILENAME]


def test_a_good_cached_copy_needs_no_network(server: str, tmp_path: Path) -> None:
    book_path(f"{server}/book", tmp_path, **FAST)
    # A closed port: any network access would fail.
    again = book_path(f"http://127.0.0.1:{_closed_port()}/book", tmp_path, **FAST)
    assert sha1_of(again) == BOOK_SHA1


def test_checksum_mismatch_is_refused_and_nothing_cached(server: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="SHA-1 .* not the book's .*nothing was saved.*--data"):
        book_path(f"{server}/wrong", tmp_path, **FAST)
    assert _leftovers(tmp_path) == []


def test_a_cut_off_download_is_never_taken_for_the_book(server: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="after 2 attempt.*--data"):
        book_path(f"{server}/cut", tmp_path, **FAST)
    assert _leftovers(tmp_path) == []


def test_unreachable_server_retries_then_suggests_data(tmp_path: Path, capsys) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/book"
    started = time.perf_counter()
    with pytest.raises(DataError) as caught:
        book_path(url, tmp_path, retries=3, backoff_s=0.01, timeout_s=0.5)
    message = str(caught.value)
    assert "after 3 attempt" in message and "connection refused" in message
    assert "--data" in message and "\n" not in message
    assert time.perf_counter() - started < 5
    assert capsys.readouterr().err.count("retrying in") == 2
    assert _leftovers(tmp_path) == []


def test_slow_server_times_out(server: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no answer within 0.3 s.*--data"):
        book_path(f"{server}/slow", tmp_path, retries=1, backoff_s=0.01, timeout_s=0.3)
    assert _leftovers(tmp_path) == []


def test_stalled_body_times_out(server: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no data for 0.3 s"):
        book_path(f"{server}/stall", tmp_path, retries=1, backoff_s=0.01, timeout_s=0.3)
    assert _leftovers(tmp_path) == []


def test_server_error_is_retried(server: str, tmp_path: Path) -> None:
    path = book_path(f"{server}/flaky", tmp_path, **FAST)
    assert sha1_of(path) == BOOK_SHA1


def test_not_found_is_not_retried(server: str, tmp_path: Path, capsys) -> None:
    with pytest.raises(DataError, match="404.*--data"):
        book_path(f"{server}/missing", tmp_path, retries=3, backoff_s=0.01, timeout_s=0.5)
    assert "retrying" not in capsys.readouterr().err


def test_ctrl_c_during_download_leaves_no_part_file(server: str, tmp_path: Path) -> None:
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            book_path(f"{server}/stall", tmp_path, retries=1, backoff_s=0.01, timeout_s=2)
    finally:
        timer.cancel()
    assert _leftovers(tmp_path) == []


def test_a_different_file_in_the_cache_is_kept(server: str, tmp_path: Path) -> None:
    mine = tmp_path / BOOK_FILENAME
    mine.write_text("my own notes\n")
    path = book_path(f"{server}/book", tmp_path, **FAST)
    assert sha1_of(path) == BOOK_SHA1
    assert (tmp_path / f"{BOOK_FILENAME}.old").read_text() == "my own notes\n"


def test_a_failed_download_keeps_the_file_already_there(tmp_path: Path) -> None:
    mine = tmp_path / BOOK_FILENAME
    mine.write_text("my own notes\n")
    with pytest.raises(DataError):
        book_path(f"http://127.0.0.1:{_closed_port()}/", tmp_path, **FAST)
    assert _leftovers(tmp_path) == [BOOK_FILENAME]
    assert mine.read_text() == "my own notes\n"


def test_data_dir_that_is_a_file(tmp_path: Path, monkeypatch) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    monkeypatch.setenv("SEQLM_DATA_DIR", str(afile))
    with pytest.raises(DataError, match="SEQLM_DATA_DIR=.* is a file, not a folder"):
        data_dir()


def test_bad_download_setting_in_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SEQLM_DOWNLOAD_RETRIES", "0")
    with pytest.raises(UsageError, match="SEQLM_DOWNLOAD_RETRIES='0'"):
        book_path("http://127.0.0.1:1/", tmp_path)


def test_cli_unreachable_server_one_line_exit_1(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SEQLM_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SEQLM_BOOK_URL", f"http://127.0.0.1:{_closed_port()}/book")
    monkeypatch.setenv("SEQLM_DOWNLOAD_RETRIES", "2")
    monkeypatch.setenv("SEQLM_DOWNLOAD_BACKOFF", "0.01")
    monkeypatch.setenv("SEQLM_DOWNLOAD_TIMEOUT", "0.5")
    monkeypatch.delenv("SEQLM_DEBUG", raising=False)
    result = CliRunner().invoke(main, ["run", "--epochs", "1", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "after 2 attempt" in lines[0] and "--data" in lines[0]
    assert "Traceback" not in result.output
    assert _leftovers(tmp_path / "cache") == []
    assert not (tmp_path / "o").exists() or _leftovers(tmp_path / "o") == []


@pytest.mark.parametrize("route", ["endless", "huge"])
def test_a_download_larger_than_the_limit_stops_and_leaves_nothing(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, route: str
) -> None:
    monkeypatch.setenv("SEQLM_DOWNLOAD_MAX_MB", "1")
    started = time.monotonic()
    with pytest.raises(DataError, match=r"more than the limit of 1,000,000.*SEQLM_DOWNLOAD_MAX_MB"):
        book_path(f"{server}/{route}", tmp_path, **FAST)
    assert time.monotonic() - started < 10
    assert _leftovers(tmp_path) == []


def test_the_download_limit_defaults_to_50_mb_and_rejects_nonsense(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SEQLM_DOWNLOAD_MAX_MB", raising=False)
    assert download_limit_bytes() == 50_000_000
    monkeypatch.setenv("SEQLM_DOWNLOAD_MAX_MB", "lots")
    with pytest.raises(UsageError, match="SEQLM_DOWNLOAD_MAX_MB"):
        download_limit_bytes()


def test_a_quiet_run_downloads_quietly(server: str, tmp_path: Path, monkeypatch, capsys) -> None:
    import seqlm

    monkeypatch.setenv("SEQLM_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SEQLM_BOOK_URL", f"{server}/book")
    seqlm.run(out=tmp_path / "o", epochs=1, hidden=8, max_tokens=1500, batch_size=4,
              num_steps=8, predict=3, quiet=True)
    said = capsys.readouterr()
    assert (said.out, said.err) == ("", "")
    assert (tmp_path / "cache" / BOOK_FILENAME).is_file()
