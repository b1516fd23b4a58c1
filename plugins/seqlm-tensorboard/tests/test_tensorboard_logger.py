"""`seqlm run --log tensorboard`, checked by reading the event files with TensorBoard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

TEXT = ("The Time Traveller (for so it will be convenient to speak of him) was expounding "
        "a recondite matter to us. His grey eyes shone and twinkled, and his usually pale "
        "face was flushed and animated.\n") * 12

TINY = ["--hidden", "8", "--batch-size", "4", "--num-steps", "5", "--max-tokens", "400",
        "--predict", "8", "--device", "cpu", "--threads", "1"]

SCALARS = {"loss/train": "train_loss", "perplexity/train": "train_ppl",
           "loss/validation": "val_loss", "perplexity/validation": "val_ppl",
           "bits_per_token/validation": "val_bits_per_token", "learning_rate": "lr",
           "grad_norm": "grad_norm", "tokens_per_s": "tokens_per_s"}


def seqlm(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SEQLM_LOAD_PLUGINS"}
    env.update(OMP_NUM_THREADS="1", COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "seqlm", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def events(run: Path) -> EventAccumulator:
    reader = EventAccumulator(str(run / "tensorboard"),
                              size_guidance={"scalars": 0, "tensors": 0})
    reader.Reload()
    return reader


def texts(reader: EventAccumulator, tag: str) -> dict[int, str]:
    return {e.step: e.tensor_proto.string_val[0].decode("utf-8")
            for e in reader.Tensors(f"{tag}/text_summary")}


@pytest.fixture
def book(tmp_path: Path) -> Path:
    path = tmp_path / "small.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_events_hold_every_figure_of_metrics_jsonl_and_samples(tmp_path, book):
    done = seqlm(["run", "--data", str(book), "--out", "run", "--epochs", "20",
                  "--log", "tensorboard", *TINY], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # Nothing is written outside the run folder (the text was there before).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "small.txt"]
    rows = [json.loads(line) for line in
            (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    reader = events(tmp_path / "run")
    assert set(SCALARS) | {"bits_per_token/train"} <= set(reader.Tags()["scalars"])
    for tag, key in SCALARS.items():
        logged = reader.Scalars(tag)
        assert [e.step for e in logged] == list(range(1, 21)), tag
        # Event files store float32.
        assert [e.value for e in logged] == pytest.approx([r[key] for r in rows], rel=1e-5)
    assert all(e.value > 0 for e in reader.Scalars("grad_norm"))
    # A sample every tenth of the run (2 epochs of 20), continuing the prefix.
    samples = texts(reader, "sample")
    assert sorted(samples) == list(range(2, 21, 2))
    assert all(s.strip().startswith("time traveller") for s in samples.values())
    assert '"hidden": 8' in texts(reader, "settings")[0]
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["config"]["log"] == ["tensorboard"]


def test_a_resumed_run_keeps_logging_without_repeating_epochs(tmp_path, book):
    first = seqlm(["run", "--data", str(book), "--out", "run", "--epochs", "2",
                   "--log", "tensorboard", *TINY], cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    # No --log: the run's record turns the logger on again.
    resumed = seqlm(["run", "--resume", "run", "--epochs", "4"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    reader = events(tmp_path / "run")
    assert [e.step for e in reader.Scalars("loss/train")] == [1, 2, 3, 4]
    assert len(list((tmp_path / "run" / "tensorboard").iterdir())) == 2  # one per session


def test_the_logger_is_listed_as_a_callback(tmp_path):
    listed = seqlm(["list", "callbacks", "--json"], cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    row = next(r for r in json.loads(listed.stdout) if r["name"] == "tensorboard")
    assert row["class"] == "seqlm_tensorboard.logger:TensorBoardLogger"
    assert row["status"] == "ok" and "seqlm-tensorboard" in row["plugin"]


def test_a_forced_new_run_shows_none_of_the_earlier_runs_events(tmp_path, book):
    first = seqlm(["run", "--data", str(book), "--out", "run", "--epochs", "4",
                   "--log", "tensorboard", *TINY], cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = seqlm(["run", "--data", str(book), "--out", "run", "--epochs", "2", "--force",
                    "--lr", "0.5", "--log", "tensorboard", *TINY], cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    rows = [json.loads(line) for line in
            (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = events(tmp_path / "run").Scalars("loss/train")
    assert [e.step for e in logged] == [1, 2]
    assert [e.value for e in logged] == pytest.approx([r["train_loss"] for r in rows],
                                                      rel=1e-5)
    assert '"lr": 0.5' in texts(events(tmp_path / "run"), "settings")[0]


def test_the_logger_keeps_seqlms_logger_contract():
    from seqlm_tensorboard.logger import TensorBoardLogger

    from seqlm.testing import check_logger

    check_logger(TensorBoardLogger)


def test_a_linked_tensorboard_folder_is_refused_before_training(tmp_path, book):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "run"
    out.mkdir()
    (out / "tensorboard").symlink_to(elsewhere)
    from click.testing import CliRunner

    from seqlm.cli import main

    result = CliRunner().invoke(main, ["run", "--data", str(book), "--out", str(out),
                                       "--epochs", "1", "--hidden", "8", "--max-tokens",
                                       "1500", "--log", "tensorboard", "--force"])
    assert result.exit_code != 0
    assert "is a symbolic link; the events go only inside the run folder" in result.output
    assert list(elsewhere.iterdir()) == []


def test_a_run_that_logged_resumes_without_its_plugin_with_log_none(tmp_path, book):
    from click.testing import CliRunner

    from seqlm.cli import main

    out = tmp_path / "run"
    small = ["--hidden", "8", "--max-tokens", "1500", "--checkpoint-every", "1"]
    first = CliRunner().invoke(main, ["run", "--data", str(book), "--out", str(out),
                                      "--epochs", "1", "--log", "tensorboard", *small])
    assert first.exit_code == 0, first.output
    import seqlm

    plugins = seqlm.get_plugins()
    key = next(k for k, info in plugins.info.items()
               if info.distribution == "seqlm-tensorboard")
    plugin = plugins.pm.get_plugin(key)
    plugins.remove(key)  # as where the plugin is not installed
    try:
        refused = CliRunner().invoke(main, ["run", "--resume", str(out), "--epochs", "2"])
        assert refused.exit_code == 2
        assert ("the run logs with --log tensorboard, which no installed plugin registers: "
                "install its plugin, or resume with --log none") in refused.output
        resumed = CliRunner().invoke(main, ["run", "--resume", str(out), "--epochs", "2",
                                            "--log", "none"])
        assert resumed.exit_code == 0, resumed.output
    finally:
        info = plugins.add(plugin, key, distribution="seqlm-tensorboard", version="0.1.0",
                           display="tensorboard")
        assert info.status == "ok", info.status
