"""Values that used to fail late, or as "unexpected ...": each is now a one-line error
before any run folder is made, or (for a checkpoint) one that names the file and field."""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from seqlm.cli import main
from seqlm.config.bounds import max_threads
from seqlm.errors import OutputError
from seqlm.storage.runlock import hold_run_folder

SMALL = ["--hidden", "8", "--batch-size", "4", "--num-steps", "8", "--max-tokens", "1500",
         "--predict", "5", "--device", "cpu"]


def seqlm(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A small finished run, and the text it trained on."""
    folder = tmp_path_factory.mktemp("trained")
    text = folder / "text.txt"
    text.write_text("the time traveller was expounding a recondite matter to us\n" * 40)
    result = seqlm("run", "--data", text, "--out", folder / "run", "--epochs", 2, *SMALL)
    assert result.exit_code == 0, result.output
    return folder / "run", text


@pytest.mark.parametrize("option, value, says", [
    ("--threads", "100000", "4 per CPU core"),
    ("--lr", "1e39", "beyond float32's range"),
    ("--weight-decay", "1e39", "beyond float32's range"),
    ("--predict", "10000000", "more than 1,000,000 tokens"),
    ("--hidden", "99999999999999999999", "more than 1,048,576"),
    ("--embedding-dim", "99999999999999999999", "more than 1,048,576"),
    ("--num-layers", "99999999999999999999", "more than 1000"),
])
def test_a_value_torch_cannot_take_is_a_usage_error_before_the_folder(
    small_text, tmp_path, option, value, says
):
    out = tmp_path / "run"
    result = seqlm("run", "--data", small_text, "--out", out, *SMALL, option, value)
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: {option} ") and says in result.output
    assert "unexpected" not in result.output
    assert not out.exists()


def test_the_thread_limit_follows_the_machine():
    assert max_threads() == 4 * (os.cpu_count() or 1)


@pytest.mark.parametrize("args, says", [
    (["--temperature", "inf"], "--temperature must be from 0.001 to 1000"),
    (["--temperature", "nan"], "--temperature must be from 0.001 to 1000"),
    (["--temperature", "1e-300"], "--temperature must be from 0.001 to 1000"),
    (["--temperature", "0"], "--temperature must be from 0.001 to 1000, got 0.0; for the most "
     "likely token every time, use --greedy"),
    (["--temperature", "-1"], "--temperature must be from 0.001 to 1000"),
    (["--seed", "99999999999999999999999"], "--seed must be a whole number"),
    (["--device", "nonsense"], "--device 'nonsense' not recognized"),
    (["--device", "meta"], "--device 'meta' not recognized"),
    (["--length", "10000000"], "--length 10000000 is more than 1,000,000 tokens"),
])
def test_generate_refuses_values_that_would_fail_in_torch(trained, args, says):
    result = seqlm("generate", trained[0], *args)
    assert result.exit_code == 2, result.output
    assert says in result.output and "unexpected" not in result.output


def test_greedy_generation_ignores_the_temperature(trained):
    for temperature in ("nan", "0", "-1"):
        result = seqlm("generate", trained[0], "--greedy", "--temperature", temperature,
                       "--length", 5)
        assert result.exit_code == 0, result.output


def _edited(run: Path, tmp_path: Path, edit) -> Path:
    copy = tmp_path / "edited"
    shutil.copytree(run, copy)
    path = copy / "checkpoint.json"
    header = json.loads(path.read_text())
    path.write_text(edit(header))
    return copy


def _set(path: str, value: object):
    def edit(header: dict) -> str:
        node = header
        *parents, last = path.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
        return json.dumps(header)
    return edit


@pytest.mark.parametrize("edit, field", [
    (_set("state.config", None), "'config' must be an object"),
    (_set("state.vocab", None), "'vocab' must be an object"),
    (_set("state.epoch", "abc"), "'epoch' must be a whole number"),
    (_set("state.config.hidden", "big"), "'config.hidden' must be a whole number"),
    (_set("state.config.cell_options", None), "'config.cell_options' must be an object"),
    (_set("state.config.hidden", -5), "out of range (--hidden must be a whole number"),
    (_set("state.tokenizer.name", 3), "'tokenizer.name' must be a string"),
    (_set("state.vocab.idx_to_token", ["a", "a"]), "'vocab' must be a seqlm vocabulary"),
    (_set("version", "1"), "'version' must be a whole number (this seqlm reads 1), not '1'"),
    (lambda header: "[" * 100_000 + "]" * 100_000, "nested too deeply"),
])
def test_a_hand_edited_checkpoint_names_the_file_and_the_field(trained, tmp_path, edit, field):
    folder = _edited(trained[0], tmp_path, edit)
    for args in (["generate", folder, "--checkpoint", "last", "--length", 3],
                 ["run", "--resume", folder, "--epochs", 3]):
        result = seqlm(*args)
        assert result.exit_code == 1, result.output
        assert str(folder / "checkpoint.json") in result.output and field in result.output
        assert "unexpected" not in result.output and len(result.output.splitlines()) == 1


@pytest.mark.parametrize("kind", ["tokenizer", "cell"])
def test_options_a_checkpoint_records_are_checked_before_use(trained, tmp_path, kind):
    folder = _edited(trained[0], tmp_path, _set(f"state.config.{kind}_options", {"bogus": 1}))
    result = seqlm("generate", folder, "--checkpoint", "last", "--length", 3)
    assert result.exit_code == 1, result.output
    assert f"{folder / 'checkpoint.json'}: {kind} " in result.output
    assert "'bogus'" in result.output and "unexpected" not in result.output


@pytest.mark.parametrize("field", ["rng", "optimizer"])
def test_a_hand_edited_trainer_state_names_the_file_and_the_field(trained, tmp_path, field):
    folder = _edited(trained[0], tmp_path, _set(f"state.trainer.{field}", 5))
    result = seqlm("run", "--resume", folder, "--epochs", 3)
    assert result.exit_code == 1, result.output
    assert f"{folder / 'checkpoint.json'}: the field 'trainer.{field}'" in result.output
    assert "unexpected" not in result.output


def test_a_run_resumes_on_its_text_after_the_text_moved(trained, tmp_path):
    run, text = trained
    folder = tmp_path / "run"
    shutil.copytree(run, folder)
    moved = tmp_path / "moved.txt"
    shutil.copy(text, moved)
    data = json.loads((folder / "checkpoint.json").read_text())
    data["state"]["config"]["data"] = str(tmp_path / "gone.txt")  # where it used to be
    (folder / "checkpoint.json").write_text(json.dumps(data))
    missing = seqlm("run", "--resume", folder, "--epochs", 3)
    assert missing.exit_code == 1 and "--data NEW_PATH" in missing.output
    resumed = seqlm("run", "--resume", folder, "--data", moved, "--epochs", 3)
    assert resumed.exit_code == 0, resumed.output
    other = tmp_path / "other.txt"
    other.write_text(text.read_text().replace("time", "tame"))
    refused = seqlm("run", "--resume", folder, "--data", other, "--epochs", 4)
    assert refused.exit_code == 2
    assert "its content differs from the text the run" in refused.output


def _run_with_file_size_limit(limit: int, *args: object) -> subprocess.CompletedProcess:
    """``seqlm run`` in a child that may write no file beyond ``limit`` bytes: to the
    program, exactly what a full disk looks like (the write fails with an OSError)."""
    def limit_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write, do not kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-m", "seqlm", "run", *map(str, args)],
                          preexec_fn=limit_files, capture_output=True, text=True, timeout=120)


@pytest.mark.slow  # a child process: torch's import alone takes seconds
def test_a_full_disk_names_the_file_and_keeps_the_checkpoint(small_text, tmp_path):
    out = tmp_path / "run"
    # The checkpoint fits in 30 kB; the plot (about 37 kB) does not.
    result = _run_with_file_size_limit(30_000, "--data", small_text, "--out", out,
                                       "--epochs", 2, *SMALL)
    assert result.returncode == 1, result.stderr
    assert f"could not write {out / 'perplexity.png'}" in result.stderr
    assert f"The checkpoint of epoch 2 is kept in {out}" in result.stderr
    assert "unexpected" not in result.stderr
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    resumed = seqlm("run", "--resume", out, "--epochs", 3)
    assert resumed.exit_code == 0, resumed.output


@pytest.mark.slow  # a child process: torch's import alone takes seconds
def test_a_full_disk_before_training_names_the_file(small_text, tmp_path):
    out = tmp_path / "run"
    result = _run_with_file_size_limit(2, "--data", small_text, "--out", out, *SMALL)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"Error: could not write {out}/")
    assert "(File too large)" in result.stderr and "unexpected" not in result.stderr


def test_a_full_disk_at_the_lock_names_the_lock(tmp_path, monkeypatch):
    def full(*args: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(OutputError, match=rf"could not write {tmp_path}/\.seqlm\.lock "
                                          r"\(No space left on device\)"):
        with hold_run_folder(tmp_path):
            pass


def test_a_checkpoint_that_cannot_be_written_names_the_one_that_was(small_text, tmp_path,
                                                                    monkeypatch):
    from seqlm.checkpoints import saver
    from seqlm.errors import CheckpointError

    real = saver.save_checkpoint

    def best_fails(directory, state, name="checkpoint"):
        if name == "best":  # checkpoint.json of the epoch is written first, then this
            raise CheckpointError(f"could not write the checkpoint {directory}/best.json (No "
                                  "space left on device); the previous one, if any, is "
                                  "unchanged")
        return real(directory, state, name)

    monkeypatch.setattr(saver, "save_checkpoint", best_fails)
    out = tmp_path / "run"
    result = seqlm("run", "--data", small_text, "--out", out, "--epochs", 2,
                   "--checkpoint-every", 1, *SMALL)
    assert result.exit_code == 1, result.output
    assert "best.json (No space left on device)" in result.output
    assert f"The checkpoint of epoch 1 is kept in {out}" in result.output
