"""status.json and `seqlm runs`: what each run folder says about how its run went."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

import seqlm
from seqlm.cli import main
from seqlm.errors import TrainingError
from seqlm.runs.status import StatusRecorder, current_status, read_status
from seqlm.storage.runlock import hold_run_folder

TINY = dict(hidden=8, batch_size=4, num_steps=5, max_tokens=400, predict=6, device="cpu",
            force=True)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    """Two finished runs that differ in cell and epochs, under one folder."""
    root = tmp_path_factory.mktemp("listing") / "runs"
    text = root.parent / "small.txt"
    text.write_text("the time traveller was expounding a recondite matter to us\n" * 20)
    seqlm.run(cell="lstm", epochs=2, data=text, out=root / "a-lstm", **TINY)
    seqlm.run(cell="gru", epochs=3, data=text, out=root / "b-gru", **TINY)
    return root


def listed(args):
    result = CliRunner().invoke(main, ["runs", *args, "--json"])
    assert result.exit_code == 0, result.output
    return {row["name"]: row for row in json.loads(result.stdout)}


def test_runs_lists_each_run_with_its_figures(runs_dir):
    rows = listed([str(runs_dir)])
    assert list(rows) == ["a-lstm", "b-gru"]  # oldest first
    for name, cell, epochs in (("a-lstm", "lstm", 2), ("b-gru", "gru", 3)):
        row = rows[name]
        summary = json.loads((runs_dir / name / "summary.json").read_text())
        assert (row["cell"], row["epochs"], row["status"]) == (cell, epochs, "finished")
        assert row["size"].startswith("8x1 (") and row["parameters"] == summary["parameters"]
        assert row["final_train_ppl"] == pytest.approx(summary["final_train_ppl"])
        assert row["final_val_ppl"] == pytest.approx(summary["final_val_ppl"])
        assert row["best_val_ppl"] == pytest.approx(summary["best_val_ppl"])
        assert row["best_epoch"] == summary["best_epoch"]


def test_runs_prints_a_table_and_reads_runs_by_default(runs_dir, monkeypatch):
    monkeypatch.chdir(runs_dir.parent)
    monkeypatch.setenv("COLUMNS", "80")
    result = CliRunner().invoke(main, ["runs"])
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout  # a classic terminal: figures are never cut short
    lines = [line for line in result.stdout.splitlines() if "a-lstm" in line or "b-gru" in line]
    assert len(lines) == 2
    assert "lstm" in lines[0] and "2/2" in lines[0] and "finished" in lines[0]
    assert "gru" in lines[1] and "3/3" in lines[1]


def test_an_older_run_is_listed_with_a_one_line_note(runs_dir, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(runs_dir / "a-lstm", old)
    (old / "status.json").unlink()
    result = CliRunner().invoke(main, ["runs", str(old)])
    assert result.exit_code == 0
    assert result.stderr == ("note: old: made by an older seqlm (no status.json); status "
                             "read from its files\n")
    row = listed([str(old)])["old"]
    assert row["status"] == "finished" and row["cell"] == "lstm" and row["epochs"] == 2


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "no such folder"),
    (lambda p: p.write_text("x"), "is not a folder"),
])
def test_runs_of_a_path_that_is_not_a_folder_is_a_usage_error(tmp_path, make, message):
    target = tmp_path / "target"
    make(target)
    result = CliRunner().invoke(main, ["runs", str(target)])
    assert result.exit_code == 2
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_a_folder_without_runs_says_so(tmp_path):
    (tmp_path / "notes").mkdir()
    result = CliRunner().invoke(main, ["runs", str(tmp_path)])
    assert result.exit_code == 0 and result.stderr.startswith(f"No runs in {tmp_path}")
    assert listed([str(tmp_path)]) == {}


def test_a_run_stopped_by_a_nan_loss_is_failed_with_its_error(small_text, tmp_path):
    with pytest.raises(TrainingError):
        seqlm.run(data=small_text, out=tmp_path, epochs=3, lr=1e38, clip=0, **TINY)
    record = read_status(tmp_path)
    assert record["status"] == "failed" and "TrainingError: the loss became" in record["error"]


def test_a_record_left_running_is_failed_unless_a_process_holds_the_folder(tmp_path):
    StatusRecorder(tmp_path, {"cell": "lstm"}).write("running")
    record = read_status(tmp_path)
    with hold_run_folder(tmp_path):
        assert current_status(tmp_path, record) == "running"
    assert current_status(tmp_path, record) == "failed"  # killed: nothing recorded its end


def test_ctrl_c_records_stopped_and_a_resume_keeps_the_date(small_text, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("SEQLM_LOAD_PLUGINS", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "seqlm", "run", "--data", str(small_text), "--out", str(out),
         "--epochs", "100000", "--hidden", "8", "--batch-size", "4", "--num-steps", "5",
         "--max-tokens", "400", "--device", "cpu", "--checkpoint-every", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.json").exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 130
    finally:
        process.kill()
    record = read_status(out)
    assert record["status"] == "stopped" and record["error"] is None
    assert listed([str(out)])["run"]["status"] == "stopped"
    done = json.loads((out / "checkpoint.json").read_text())["state"]["epoch"]
    seqlm.run(resume=out, epochs=done + 1)
    resumed = read_status(out)
    assert resumed["status"] == "finished" and resumed["created"] == record["created"]


def test_an_error_after_training_is_recorded_as_failed_with_its_message(
        small_text, tmp_path, monkeypatch):
    """Training is over, so no callback hears of it: the run records it itself."""
    def broken_generate(*args, **kwargs):
        raise RuntimeError("the sampler of tokens broke")

    monkeypatch.setattr("seqlm.runs.stages.generate", broken_generate)
    out = tmp_path / "late"
    with pytest.raises(RuntimeError, match="sampler of tokens"):
        seqlm.run(epochs=1, data=small_text, out=out, **TINY)
    status = read_status(out)
    assert status["status"] == "failed"
    assert status["error"] == "RuntimeError: the sampler of tokens broke"
    assert listed([str(tmp_path)])["late"]["status"] == "failed"


def _killed_copy(source, target, later_epochs):
    """A copy of a run as ``kill -9`` leaves it: rows in metrics.jsonl after the last
    checkpoint (better ones, to catch a best that no checkpoint holds), status running."""
    shutil.copytree(source, target)
    rows = [json.loads(line) for line in (target / "metrics.jsonl").read_text().splitlines()]
    for _ in range(later_epochs):
        row = dict(rows[-1], epoch=rows[-1]["epoch"] + 1, val_loss=rows[-1]["val_loss"] / 2)
        rows.append(row)
    (target / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (target / "summary.json").unlink()  # a killed run writes none
    StatusRecorder(target, read_status(source)["config"]).write("running")


def test_a_killed_run_shows_only_the_epochs_its_checkpoint_saved(runs_dir, tmp_path):
    killed = tmp_path / "killed"
    _killed_copy(runs_dir / "a-lstm", killed, later_epochs=3)
    result = CliRunner().invoke(main, ["runs", str(killed), "--json"])
    row = json.loads(result.stdout)[0]
    saved = json.loads((killed / "checkpoint.json").read_text())["state"]["epoch"]
    best = json.loads((killed / "best.json").read_text())["state"]["epoch"]
    assert row["status"] == "failed" and row["epochs"] == saved == 2
    assert row["best_epoch"] == best and row["unsaved_epochs"] == 3
    assert result.stderr == (f"note: killed: 3 epoch(s) after its checkpoint of epoch 2 were "
                             f"not saved and are left out; seqlm run --resume {killed} "
                             "continues from epoch 2\n")


def test_a_run_still_running_keeps_its_live_rows(runs_dir, tmp_path):
    live = tmp_path / "live"
    _killed_copy(runs_dir / "a-lstm", live, later_epochs=3)
    with hold_run_folder(live):
        result = CliRunner().invoke(main, ["runs", str(live), "--json"])
    row = json.loads(result.stdout)[0]
    assert (row["status"], row["epochs"], row["best_epoch"]) == ("running", 5, 5)
    assert row["unsaved_epochs"] == 0 and result.stderr == ""


def test_a_run_that_ended_before_its_first_checkpoint_shows_no_epoch(runs_dir, tmp_path):
    early = tmp_path / "early"
    _killed_copy(runs_dir / "a-lstm", early, later_epochs=0)
    for name in ("checkpoint.json", "best.json"):
        (early / name).unlink()
    result = CliRunner().invoke(main, ["runs", str(early), "--json"])
    row = json.loads(result.stdout)[0]
    assert row["epochs"] == 0 and row["best_val_ppl"] is None and row["unsaved_epochs"] == 2
    assert "its 2 epoch(s) in metrics.jsonl were never saved in a checkpoint" in result.stderr


def test_a_damaged_status_json_is_named_as_such(runs_dir, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(runs_dir / "a-lstm", damaged)
    (damaged / "status.json").write_text("{\n")
    result = CliRunner().invoke(main, ["runs", str(damaged)])
    assert result.exit_code == 0, result.output
    assert result.stderr == ("note: damaged: status.json is unreadable (damaged); status "
                             "read from its other files\n")
    assert listed([str(damaged)])["damaged"]["status"] == "finished"


def test_a_folder_whose_files_are_not_seqlms_is_no_run(runs_dir, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "summary.json").write_text('{"x": 1}')
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "metrics.jsonl").write_text('{"accuracy": 0.9}\n')
    shutil.copytree(runs_dir / "a-lstm", tmp_path / "run")
    assert list(listed([str(tmp_path)])) == ["run"]


def test_an_older_run_without_a_record_of_its_files_is_still_a_run(runs_dir, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(runs_dir / "a-lstm", old)
    for name in ("status.json", ".seqlm-files.json"):
        (old / name).unlink()
    assert listed([str(tmp_path)])["old"]["epochs"] == 2
    for name in ("summary.json", "checkpoint.json"):
        (old / name).unlink()  # metrics.jsonl alone still reads as seqlm's
    assert listed([str(tmp_path)])["old"]["epochs"] == 2
