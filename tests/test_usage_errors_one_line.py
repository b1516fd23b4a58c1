"""Usage errors that click itself finds are one line too, with where to read the usage."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from seqlm.cli import main


@pytest.mark.parametrize("args, expected", [
    (["generate", "DIR", "--length", "-1"],
     "Error: Invalid value for '--length': -1 is not in the range x>=0. "
     "(see seqlm generate --help)"),
    (["run", "--cell-opt", "novalue"],
     "Error: Invalid value for '--cell-opt': 'novalue' is not KEY=VALUE (for example "
     "dropout=0.2) (see seqlm run --help)"),
    (["eval"], "Error: Missing argument 'DIR...'. (see seqlm eval --help)"),
    (["nosuch"], "Error: No such command 'nosuch'. (see seqlm --help)"),
    (["--bogus"], "Error: No such option '--bogus'. (see seqlm --help)"),
    (["run", "--epochs"], "Error: Option '--epochs' requires an argument. "
     "(see seqlm run --help)"),
    (["list"], "Error: Missing argument 'KIND'. Choose from: tokenizers, samplers, cells, "
     "trainers, callbacks (see seqlm list --help)"),
])
def test_a_usage_error_click_finds_is_one_line_with_exit_status_2(args, expected):
    result = CliRunner().invoke(main, args, prog_name="seqlm")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [expected]
    assert "Usage:" not in result.output


def test_help_still_shows_the_usage():
    result = CliRunner().invoke(main, ["generate", "--help"], prog_name="seqlm")
    assert result.exit_code == 0 and result.output.startswith("Usage: seqlm generate")


def test_seqlm_alone_shows_the_help_and_succeeds():
    result = CliRunner().invoke(main, [], prog_name="seqlm")
    assert result.exit_code == 0
    assert result.output.startswith("Usage: seqlm [OPTIONS] COMMAND")
    assert "Error" not in result.output


def test_shell_completion_still_completes_commands(monkeypatch):
    monkeypatch.setenv("_SEQLM_COMPLETE", "bash_complete")
    monkeypatch.setenv("COMP_WORDS", "seqlm r")
    monkeypatch.setenv("COMP_CWORD", "1")
    result = CliRunner().invoke(main, [], prog_name="seqlm", complete_var="_SEQLM_COMPLETE")
    assert result.exit_code == 0
    assert result.output.splitlines() == ["plain,run", "plain,runs"]
