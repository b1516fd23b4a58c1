"""Stopping ``seqlm run`` with real signals, as ``kill``, systemd, Slurm and a closed
terminal do: each stop keeps a checkpoint, says so truthfully, and exits 128 + N."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from seqlm.checkpoints.format import load_checkpoint, save_checkpoint
from seqlm.checkpoints.saver import CheckpointCallback
from seqlm.cli import main
from seqlm.training.stopping import Stopped, exit_code_of, stop_on_signals

TINY = ["--hidden", "8", "--batch-size", "4", "--num-steps", "8", "--max-tokens", "1500",
        "--predict", "5", "--device", "cpu", "--threads", "1"]


class Run:
    """``python -m seqlm run ...`` in a child process, its output read as it comes."""

    def __init__(self, *args: object, merged: bool = False) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
        # merged: stderr into the same pipe as stdout, as `2>&1 | head` gives.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "seqlm", "run", *map(str, args)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merged else subprocess.PIPE,
            text=True, env=env)
        self.seen = ""

    def wait_for(self, text: str, timeout: float = 90) -> None:
        """Read stdout until ``text`` appears (the run is then at that point)."""
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(left, 0))
            line = self.proc.stdout.readline() if ready else ""
            if not line and (not ready or self.proc.poll() is not None):
                self.proc.kill()
                pytest.fail(f"never saw {text!r}; stdout: {self.seen}; stderr: "
                            f"{self.proc.stderr.read()}")
            self.seen += line

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err


def _epoch_of(folder: Path) -> int:
    return int(load_checkpoint(folder)["epoch"])


@pytest.mark.slow  # a child process: torch's import alone takes seconds
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_save_a_checkpoint_and_the_run_resumes(
    small_text, tmp_path, sig, code
):
    out = tmp_path / "r[bold]y"  # rich markup in the name: the resume command must show it
    run = Run("--data", small_text, "--out", out, "--epochs", 200, *TINY)
    run.wait_for("epoch 20/200")
    run.proc.send_signal(sig)
    status, err = run.finish()
    assert status == code, err
    saved = _epoch_of(out)
    assert 19 <= saved < 200  # the signal may come while epoch 20 is being recorded
    assert f"Saved the checkpoint of epoch {saved} (the last finished)" in err
    assert f"Resume with: seqlm run --resume '{out}'" in err
    assert f"Stopped by {signal.Signals(sig).name}." in err
    assert "Traceback" not in err
    resumed = CliRunner().invoke(main, ["run", "--resume", str(out), "--epochs",
                                        str(saved + 1)])
    assert resumed.exit_code == 0, resumed.output
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, saved + 2))


@pytest.mark.slow  # a child process: torch's import alone takes seconds
def test_a_second_ctrl_c_during_the_save_does_not_lose_it(small_text, tmp_path):
    out = tmp_path / "run"
    # A larger model, so that the emergency save takes a moment to land a signal in.
    run = Run("--data", small_text, "--out", out, "--epochs", 50, "--hidden", "256",
              "--batch-size", "4", "--num-steps", "8", "--device", "cpu", "--threads", "1")
    run.wait_for("epoch 5/50")
    run.proc.send_signal(signal.SIGINT)
    time.sleep(0.02)
    run.proc.send_signal(signal.SIGINT)
    status, err = run.finish()
    assert status == 130, err
    saved = _epoch_of(out)  # a whole checkpoint, whichever moment the signals came
    assert saved >= 4
    assert "no checkpoint was saved" not in err
    if "Saved the checkpoint" in err:
        assert f"Saved the checkpoint of epoch {saved} " in err
    # A second Ctrl-C while Python shuts down is ignored: no traceback from torch's
    # finalizers, and the process ends with its status, not killed by the signal.
    assert err.rstrip().endswith("Interrupted."), err
    assert "Traceback" not in err and "Exception ignored" not in err, err


def test_a_signal_inside_the_emergency_save_is_held_back(tmp_path, monkeypatch):
    import seqlm.checkpoints.saver as checkpointing

    def interrupted_save(directory, state, name="checkpoint"):
        os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C, midway through the save
        return save_checkpoint(directory, state, name)

    monkeypatch.setattr(checkpointing, "save_checkpoint", interrupted_save)
    saver = CheckpointCallback(tmp_path, model=None, describe=dict)  # type: ignore[arg-type]
    saver.snapshot = {"epoch": 3, "model": {}, "trainer": None}
    saver.on_exception(None, KeyboardInterrupt())  # type: ignore[arg-type]
    assert saver.interrupted_at == 3
    assert load_checkpoint(tmp_path)["epoch"] == 3
    assert "Saved the checkpoint of epoch 3" in saver.stop_message()


@pytest.mark.slow  # a child process: torch's import alone takes seconds
def test_a_stop_before_the_first_epoch_leaves_a_folder_a_retry_may_use(
    book_path, small_text, tmp_path
):
    out = tmp_path / "run"
    # The whole book in one epoch: long enough to stop it before the epoch ends.
    run = Run("--data", book_path, "--out", out, "--epochs", 2, "--max-tokens", 0,
              "--device", "cpu", "--threads", "1")
    run.wait_for("device: cpu")
    time.sleep(0.3)  # into the first epoch, which takes seconds
    run.proc.send_signal(signal.SIGINT)
    status, err = run.finish()
    assert status == 130, err
    assert "Stopped before the first epoch finished; no checkpoint was saved." in err
    assert not (out / "checkpoint.json").exists()
    retry = CliRunner().invoke(main, ["run", "--data", str(small_text), "--out", str(out),
                                      "--epochs", "1", *TINY])
    assert retry.exit_code == 0, retry.output
    assert (out / "checkpoint.json").is_file()


@pytest.mark.slow  # a child process: torch's import alone takes seconds
def test_a_stopped_generation_keeps_the_summary_and_the_plot(small_text, tmp_path):
    out = tmp_path / "run"
    run = Run("--data", small_text, "--out", out, "--epochs", 1, *TINY, "--predict", 500_000)
    run.wait_for("generating 500,000 tokens")
    run.proc.send_signal(signal.SIGINT)
    status, err = run.finish()
    assert status == 130, err
    assert ("Stopped while generating; the checkpoint, summary.json and perplexity.png are "
            f"in {out}") in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 1 and summary["sample"] is None
    assert (out / "perplexity.png").read_bytes().startswith(b"\x89PNG")
    assert _epoch_of(out) == 1


@pytest.mark.parametrize("name, code", [("SIGUSR1", 138), ("SIGUSR2", 140), ("SIGXCPU", 152),
                                        ("SIGTERM", 143), ("SIGHUP", 129)])
def test_each_stop_signal_raises_a_keyboard_interrupt_with_its_exit_status(name, code):
    sig = getattr(signal, name)
    before = signal.getsignal(sig)
    with pytest.raises(Stopped) as stopped:
        with stop_on_signals():
            os.kill(os.getpid(), sig)
            time.sleep(5)  # the handler raises before this ends
    assert isinstance(stopped.value, KeyboardInterrupt)
    assert exit_code_of(stopped.value) == code and str(stopped.value) == name
    assert signal.getsignal(sig) == before  # the handler is put back
    assert exit_code_of(KeyboardInterrupt()) == 130


@pytest.mark.slow  # a child process: torch's import alone takes seconds
def test_a_closed_output_pipe_stops_the_run_with_a_checkpoint(small_text, tmp_path):
    out = tmp_path / "run"
    run = Run("--data", small_text, "--out", out, "--epochs", 200, "--checkpoint-every", 0,
              *TINY)
    run.wait_for("epoch 20/200")
    run.proc.stdout.close()  # the reader goes away, as `| head` does
    err = run.proc.stderr.read()
    assert run.proc.wait(timeout=60) == 141, err
    saved = _epoch_of(out)
    assert f"Saved the checkpoint of epoch {saved} (the last finished)" in err
    assert "Stopped: the output pipe was closed." in err


@pytest.mark.slow  # a child process: torch's import alone takes seconds
def test_a_pipe_closed_on_both_outputs_still_stops_as_a_stop(small_text, tmp_path):
    out = tmp_path / "run"
    run = Run("--data", small_text, "--out", out, "--epochs", 200, "--checkpoint-every", 0,
              *TINY, merged=True)
    run.wait_for("epoch 20/200")
    run.proc.stdout.close()  # `2>&1 | head`: nowhere is left to say anything
    assert run.proc.wait(timeout=60) == 141
    assert _epoch_of(out) >= 20  # the checkpoint is saved all the same
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "stopped" and status["error"] is None


def test_ctrl_c_during_a_regular_save_waits_for_it_then_stops(tmp_path, monkeypatch):
    import seqlm.checkpoints.saver as checkpointing

    def interrupted_save(directory, state, name="checkpoint"):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives midway through the save
        return save_checkpoint(directory, state, name)

    monkeypatch.setattr(checkpointing, "save_checkpoint", interrupted_save)
    saver = CheckpointCallback(tmp_path, model=None, describe=dict)  # type: ignore[arg-type]
    saver.snapshot = {"epoch": 5, "model": {}, "trainer": None}
    with pytest.raises(Stopped) as stopped, stop_on_signals():
        saver.on_train_end(None, [])  # type: ignore[arg-type]
    assert exit_code_of(stopped.value) == 143
    assert load_checkpoint(tmp_path)["epoch"] == 5  # written whole before stopping
    assert "Saved the checkpoint of epoch 5" in saver.stop_message()


def test_ctrl_c_under_debug_shows_where_and_still_exits_130(monkeypatch, tmp_path):
    from seqlm.runs import saved

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(saved, "evaluate_text", interrupted)
    text = tmp_path / "t.txt"
    text.write_text("some text\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["--debug", "eval", str(tmp_path), "--data", str(text)])
    assert result.exit_code == 130
    assert "Traceback" in result.stderr and "in interrupted" in result.stderr
    assert result.stderr.rstrip().endswith("Interrupted.")
    assert "Aborted!" not in result.output


STUBBORN = '''
import seqlm
from seqlm.training.trainer import DefaultTrainer


class Stubborn(DefaultTrainer):
    """Catches Ctrl-C and trains again: a plugin that does not stop when asked."""

    def fit(self, *args, **kwargs):
        while True:
            try:
                return super().fit(*args, **kwargs)
            except KeyboardInterrupt:
                print("retrying", flush=True)


@seqlm.hookimpl
def register_trainers(register):
    register("stubborn", Stubborn)
'''


@pytest.mark.slow  # a child process: torch's import alone takes seconds
def test_a_third_ctrl_c_ends_a_run_that_does_not_stop(small_text, tmp_path, monkeypatch):
    from plugin_dists import make_dist, unique

    module = unique("stubborn")
    make_dist(tmp_path / "site", "seqlm-stubborn", {module: STUBBORN}, {"stubborn": module})
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    run = Run("--data", small_text, "--out", tmp_path / "run", "--epochs", 100000,
              "--trainer", "stubborn", "--log-every", 1, *TINY)
    run.wait_for("epoch 1/")
    for _ in range(2):
        run.proc.send_signal(signal.SIGINT)
        run.wait_for("retrying\n")
        # The next request only once training goes on again: one that came while the
        # plugin printed would end the run as a plain Ctrl-C does, before the third.
        run.seen = ""
        run.wait_for("epoch ")
    run.proc.send_signal(signal.SIGINT)
    code, err = run.finish()
    assert code == 130
    assert ("seqlm: stopped at once at stop request 3; the last checkpoint written is "
            "kept") in err


def test_a_stop_while_an_epoch_is_shown_saves_that_epoch(small_text, tmp_path, monkeypatch):
    # Ctrl-C as the live table shows epoch 2: the epoch it shows is the one saved.
    from seqlm.interfaces import Callback
    from seqlm.runs import stages

    class StopWhileShowing(Callback):
        def on_epoch_end(self, trainer, metrics):
            if metrics.epoch == 2:
                raise KeyboardInterrupt

    monkeypatch.setattr(stages, "make_progress", lambda *args: StopWhileShowing())
    result = CliRunner().invoke(main, ["run", "--data", str(small_text), "--out",
                                       str(tmp_path / "run"), "--epochs", "5", *TINY])
    assert result.exit_code == 130
    assert "Saved the checkpoint of epoch 2" in result.output
    assert _epoch_of(tmp_path / "run") == 2


def test_a_pipe_closed_as_an_epoch_is_shown_leaves_its_metrics_row(small_text, tmp_path,
                                                                   monkeypatch):
    # The progress row of epoch 2 fails to reach a closed pipe: epoch 2 is the one saved,
    # and metrics.jsonl (so seqlm runs and compare) goes as far.
    from seqlm.interfaces import Callback
    from seqlm.runs import stages

    class PipeClosesAtTwo(Callback):
        def on_epoch_end(self, trainer, metrics):
            if metrics.epoch == 2:
                raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(stages, "make_progress", lambda *args: PipeClosesAtTwo())
    result = CliRunner().invoke(main, ["run", "--data", str(small_text), "--out",
                                       str(tmp_path / "run"), "--epochs", "5", *TINY])
    # (The runner's stdout is no real file, so its exit status is not the 141 of a shell.)
    assert "Saved the checkpoint of epoch 2 (the last finished)" in result.output
    assert _epoch_of(tmp_path / "run") == 2
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(row)["epoch"] for row in rows] == [1, 2]


def test_a_stop_during_a_regular_save_leaves_the_metrics_as_far_as_the_checkpoint(
    small_text, tmp_path, monkeypatch
):
    real = CheckpointCallback.save

    def save_then_ctrl_c(self):
        real(self)
        if self.saved_epoch == 2:
            os.kill(os.getpid(), signal.SIGINT)  # held back until the save is whole

    monkeypatch.setattr(CheckpointCallback, "save", save_then_ctrl_c)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "--data", str(small_text), "--out", str(out),
                                       "--epochs", "5", "--checkpoint-every", "1", *TINY])
    assert result.exit_code == 130, result.output
    assert _epoch_of(out) == 2
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(row)["epoch"] for row in rows] == [1, 2]


@pytest.mark.parametrize("error", [KeyboardInterrupt, ValueError])
def test_a_callback_that_stops_after_an_epoch_loses_none_of_its_files(
    small_text, tmp_path, error
):
    import seqlm
    from seqlm.interfaces import Callback

    class Fails(Callback):  # the caller's: after the snapshot, before the writer
        def on_epoch_end(self, trainer, metrics):
            if metrics.epoch == 2:
                raise error("stopped here")

    out = tmp_path / "run"
    with pytest.raises(error):
        seqlm.run(data=small_text, out=out, epochs=4, keep_every=2, checkpoint_every=1,
                  hidden=8, batch_size=4, num_steps=8, max_tokens=1500, predict=3,
                  callbacks=[Fails()], quiet=True)
    assert _epoch_of(out) == 2  # the finished epoch's regular checkpoint
    assert (out / "epoch-2.json").is_file()  # and the epoch it was due to keep


def test_a_stop_during_the_last_save_is_recorded_as_a_stop(small_text, tmp_path, monkeypatch):
    real = CheckpointCallback.save

    def save_then_ctrl_c(self):
        real(self)
        if self.saved_epoch == 2:  # the last epoch: the save at the end of training
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(CheckpointCallback, "save", save_then_ctrl_c)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "--data", str(small_text), "--out", str(out),
                                       "--epochs", "2", *TINY])
    assert result.exit_code == 130, result.output
    assert json.loads((out / "status.json").read_text())["status"] == "stopped"
