"""Loggers chosen with --log: unknown names, and plugin loggers that fail."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner
from plugin_dists import TINY_RUN

import seqlm
from seqlm.cli import main
from seqlm.errors import PluginError
from seqlm.interfaces import Callback

TINY = dict(epochs=3, hidden=8, batch_size=4, num_steps=5, max_tokens=400, predict=6,
            device="cpu", force=True)


@pytest.fixture
def add_logger():
    """Register ``cls`` as logger ``name`` from a throwaway plugin; removed afterwards."""
    plugins = seqlm.get_plugins()
    added = []

    def add(name, cls):
        class Plugin:
            @seqlm.hookimpl
            def register_callbacks(self, register):
                register(name, cls)

        info = plugins.add(Plugin(), f"{name}-plugin")
        added.append(f"{name}-plugin")
        return info

    try:
        yield add
    finally:
        for key in added:
            plugins.remove(key)


class Broken(Callback):
    """Raises at the end of every epoch."""

    calls = 0

    def __init__(self, run):
        self.run = run

    def on_epoch_end(self, trainer, metrics):
        Broken.calls += 1
        raise OSError("disk full")


def test_an_unknown_logger_is_a_usage_error_naming_the_choices(small_text, tmp_path):
    result = CliRunner().invoke(main, ["run", "--log", "nope", "--data", str(small_text),
                                       "--out", str(tmp_path / "run"), *TINY_RUN])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: --log 'nope' not recognized. Choose one of:")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()  # refused before any folder is made


def test_a_logger_that_raises_is_turned_off_and_the_run_finishes(
    add_logger, small_text, tmp_path, capsys
):
    add_logger("broken", Broken)
    Broken.calls = 0
    result = seqlm.run(log=["broken", "broken"], data=small_text, out=tmp_path, **TINY)
    assert len(result.history) == 3 and Broken.calls == 1  # listed twice, built once
    err = capsys.readouterr().err
    assert "logger 'broken' of plugin broken-plugin (registered in code) failed in " \
           "on_epoch_end: OSError: disk full; it is off for the rest of this run" in err
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "finished"


def test_a_failing_logger_raises_when_plugin_errors_are_asked_for(
    add_logger, small_text, tmp_path, monkeypatch
):
    add_logger("broken", Broken)
    monkeypatch.setenv("SEQLM_RAISE_PLUGIN_ERRORS", "1")
    with pytest.raises(PluginError, match="logger 'broken' of plugin broken-plugin"):
        seqlm.run(log=["broken"], data=small_text, out=tmp_path, **TINY)
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "failed"


def test_a_logger_that_cannot_start_stops_the_run_before_training(
    add_logger, small_text, tmp_path
):
    class NoStart(Callback):
        def __init__(self, run):
            raise ValueError("needs a token")

    add_logger("nostart", NoStart)
    with pytest.raises(PluginError, match=r"logger 'nostart' of plugin nostart-plugin "
                       r"\(registered in code\) could not start: ValueError: needs a token"):
        seqlm.run(log=["nostart"], data=small_text, out=tmp_path, **TINY)
    assert not (tmp_path / "metrics.jsonl").read_text()
    assert not (tmp_path / "checkpoint.json").exists()


def test_a_logger_that_is_not_a_callback_fails_its_plugin(add_logger):
    info = add_logger("plain", dict)
    assert "does not subclass seqlm.interfaces.Callback" in info.status
    assert "plain" not in seqlm.get_plugins().choices("callback")


def test_log_every_sets_the_progress_rows_and_the_loggers_cadence(
    add_logger, small_text, tmp_path
):
    seen = []

    class Cadence(Callback):
        def __init__(self, run):
            seen.append(run.log_every)

    add_logger("cadence", Cadence)
    result = CliRunner().invoke(main, ["run", "--log", "cadence", "--log-every", "3",
                                       "--data", str(small_text), "--out", str(tmp_path),
                                       *TINY_RUN, "--epochs", "7"])
    assert result.exit_code == 0, result.output
    rows = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert rows == ["3/7", "6/7", "7/7"] and seen == [3]
    bad = CliRunner().invoke(main, ["run", "--log-every", "-1", "--data", str(small_text),
                                    "--out", str(tmp_path / "x"), *TINY_RUN])
    assert bad.exit_code == 2 and "--log-every must be a whole number, 0 or more" in bad.stderr


def test_sampling_in_a_logger_does_not_change_the_run(add_logger, small_text, tmp_path):
    class Sampler(Callback):
        def __init__(self, run):
            self.run = run

        def on_epoch_end(self, trainer, metrics):
            assert self.run.sample(5).startswith("time traveller")

    add_logger("sampling", Sampler)
    options = dict(TINY, data=small_text, sampler="random", dropout=0.3, embedding_dim=4)
    plain = seqlm.run(out=tmp_path / "plain", **options)
    logged = seqlm.run(out=tmp_path / "logged", log=["sampling"], **options)
    assert [m.train_loss for m in logged.history] == [m.train_loss for m in plain.history]


class Drawing(Callback):
    """Draws random numbers at every epoch's end, as a logger that subsamples might."""

    def __init__(self, run):
        pass

    def on_epoch_end(self, trainer, metrics):
        import random

        import torch

        torch.rand(10)
        random.random()


def test_a_logger_that_draws_random_numbers_does_not_change_the_run(
    add_logger, small_text, tmp_path
):
    add_logger("drawing", Drawing)
    options = dict(TINY, data=small_text, sampler="random", dropout=0.3, embedding_dim=4)
    plain = seqlm.run(out=tmp_path / "plain", **options)
    logged = seqlm.run(out=tmp_path / "logged", log=["drawing"], **options)
    assert [m.train_loss for m in logged.history] == [m.train_loss for m in plain.history]


class Doubling(Callback):
    """Sets torch's default dtype to float64 as training starts."""

    def __init__(self, run):
        pass

    def on_train_start(self, trainer):
        import torch

        torch.set_default_dtype(torch.float64)


def test_a_logger_that_changes_the_default_dtype_is_turned_off_and_changes_nothing(
    add_logger, small_text, tmp_path, capsys
):
    import torch

    add_logger("doubling", Doubling)
    plain = seqlm.run(out=tmp_path / "plain", data=small_text, **TINY)
    logged = seqlm.run(out=tmp_path / "logged", data=small_text, log=["doubling"], **TINY)
    assert [m.train_loss for m in logged.history] == [m.train_loss for m in plain.history]
    assert torch.get_default_dtype() == torch.float32
    assert ("logger 'doubling' of plugin doubling-plugin (registered in code) failed in "
            "on_train_start: changed torch's default dtype to torch.float64 (seqlm set it "
            "back to torch.float32)") in capsys.readouterr().err


@pytest.mark.parametrize("log_every, rows", [
    ([], ["1/20", "2/20", "3/20"]),  # automatic: every 2 epochs, and when a line is due
    (["--log-every", "10"], ["10/20", "20/20"]),  # the user's interval is kept as given
])
def test_plain_lines_come_at_least_every_so_often_unless_log_every_is_set(
    small_text, tmp_path, monkeypatch, log_every, rows
):
    monkeypatch.setattr("seqlm.runs.progress.PLAIN_AT_LEAST_EVERY_S", 0.0)
    result = CliRunner().invoke(main, ["run", "--data", str(small_text), "--out",
                                       str(tmp_path / "r"), *TINY_RUN, "--epochs", "20",
                                       *log_every])
    assert result.exit_code == 0, result.output
    shown = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert shown[:len(rows)] == rows
    assert len(shown) == (20 if not log_every else 2)


class FolderLogger(Callback):
    """Writes one file per epoch into a folder of its own in the run folder."""

    def __init__(self, run):
        self.folder = run.out_dir / "events"

    def on_epoch_end(self, trainer, metrics):
        self.folder.mkdir(exist_ok=True)
        (self.folder / f"epoch-{metrics.epoch}.txt").write_text("logged\n")


def test_the_last_line_names_the_folders_the_loggers_wrote(add_logger, small_text, tmp_path):
    add_logger("folders", FolderLogger)
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes").mkdir()  # the user's, older than the run
    os.utime(out / "notes", (1, 1))
    result = CliRunner().invoke(main, ["run", "--data", str(small_text), "--out", str(out),
                                       "--log", "folders", *TINY_RUN])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "loggers (folders) wrote to events/"
    plain = CliRunner().invoke(main, ["run", "--data", str(small_text), "--out",
                                      str(tmp_path / "plain"), *TINY_RUN])
    assert plain.output.splitlines()[-1].startswith("outputs in ")


class AppendingLogger(Callback):
    """Adds a row per epoch to one file it makes once, as a CSV logger does."""

    def __init__(self, run):
        self.file = run.out_dir / "csvlog" / "metrics.csv"

    def on_epoch_end(self, trainer, metrics):
        self.file.parent.mkdir(exist_ok=True)
        with self.file.open("a") as rows:
            rows.write(f"{metrics.epoch},{metrics.train_loss}\n")


def test_a_resumed_run_names_a_folder_whose_file_its_logger_added_to(add_logger, small_text,
                                                                     tmp_path):
    add_logger("appending", AppendingLogger)
    out = tmp_path / "run"
    first = CliRunner().invoke(main, ["run", "--data", str(small_text), "--out", str(out),
                                      "--log", "appending", *TINY_RUN])
    assert first.exit_code == 0, first.output
    os.utime(out / "csvlog", (1, 1))  # the folder as it would be a while later
    resumed = CliRunner().invoke(main, ["run", "--resume", str(out), "--epochs", "5"])
    assert resumed.exit_code == 0, resumed.output
    assert resumed.output.splitlines()[-1] == "loggers (appending) wrote to csvlog/"
    assert len((out / "csvlog" / "metrics.csv").read_text().splitlines()) == 5


def test_a_quiet_run_says_nothing_of_a_logger_it_turned_off(add_logger, small_text, tmp_path,
                                                            capsys):
    add_logger("broken", Broken)
    result = seqlm.run(data=small_text, out=tmp_path / "r", log=["broken"], quiet=True,
                       **{k: v for k, v in TINY.items() if k != "force"})
    assert result.history
    assert capsys.readouterr() == ("", "")
