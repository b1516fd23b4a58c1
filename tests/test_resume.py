"""Exact resume: an interrupted run, resumed, ends exactly where an unbroken one does."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from click.testing import CliRunner

import seqlm
from seqlm.cli import main
from seqlm.errors import TrainingError, UsageError
from seqlm.interfaces import Callback
from seqlm.training.trainer import DefaultTrainer

# Dropout (on activations and on recurrent weights), AdamW and a cosine schedule: every
# piece of state a resume must restore.
RECIPE = dict(hidden=16, max_tokens=2500, batch_size=8, num_steps=10, predict=5,
              embedding_dim=8, dropout=0.2, num_layers=2, optimizer="adamw",
              cell_options={"weight_dropout": 0.2},
              schedule="cosine", warmup_epochs=1, sampler="random", checkpoint_every=3)


class StopAt(Callback):
    """Presses Ctrl-C just after epoch ``epoch`` finishes."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, trainer, metrics):
        if metrics.epoch == self.epoch:
            raise KeyboardInterrupt


def _rows(path):
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("seconds", "tokens_per_s")} for r in rows]


def test_ten_epochs_equal_five_plus_resumed_five(book_path, tmp_path, capsys):
    whole = seqlm.run(data=book_path, out=tmp_path / "whole", epochs=10, **RECIPE)
    with pytest.raises(KeyboardInterrupt):
        seqlm.run(data=book_path, out=tmp_path / "split", epochs=10, callbacks=[StopAt(5)],
                  **RECIPE)
    assert "Resume with: seqlm run --resume" in capsys.readouterr().err
    resumed = seqlm.run(resume=tmp_path / "split")
    assert [m.epoch for m in resumed.history] == list(range(1, 11))
    assert resumed.history[-1].train_loss == pytest.approx(whole.history[-1].train_loss,
                                                           abs=1e-6)
    assert resumed.history[-1].val_loss == pytest.approx(whole.history[-1].val_loss, abs=1e-6)
    split_rows = _rows(tmp_path / "split" / "metrics.jsonl")
    whole_rows = _rows(tmp_path / "whole" / "metrics.jsonl")
    assert len(split_rows) == len(whole_rows) == 10
    for got, want in zip(split_rows, whole_rows, strict=True):
        assert got == pytest.approx(want, abs=1e-6)
    for key, value in whole.model.state_dict().items():
        assert torch.allclose(resumed.model.state_dict()[key], value, atol=1e-6), key
    assert resumed.summary["best_val_ppl"] == pytest.approx(whole.summary["best_val_ppl"])


def test_interrupt_mid_epoch_keeps_the_last_finished_epoch(book_path, tmp_path, monkeypatch):
    real = DefaultTrainer._train_epoch

    def interrupted(self, epoch, *args, **kwargs):
        if epoch == 3:
            raise KeyboardInterrupt
        return real(self, epoch, *args, **kwargs)

    monkeypatch.setattr(DefaultTrainer, "_train_epoch", interrupted)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "run", "--data", str(book_path), "--out", str(out), "--epochs", "6", "--hidden", "8",
        "--max-tokens", "1500", "--batch-size", "4", "--num-steps", "8",
        "--checkpoint-every", "0",
    ])
    assert result.exit_code == 130
    assert f"Resume with: seqlm run --resume {out}" in result.output
    header = json.loads((out / "checkpoint.json").read_text())
    assert header["state"]["epoch"] == 2
    monkeypatch.undo()
    resumed = CliRunner().invoke(main, ["run", "--resume", str(out)])
    assert resumed.exit_code == 0, resumed.output
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]


def test_nan_loss_stops_with_the_epoch_and_keeps_the_last_good_checkpoint(
    book_path, tmp_path, monkeypatch
):
    real = DefaultTrainer.reduce_epoch_totals
    calls = []

    def poisoned(self, loss_sum, tokens):
        calls.append(1)
        total, tokens = real(self, loss_sum, tokens)
        return (float("nan") if len(calls) == 3 else total), tokens

    monkeypatch.setattr(DefaultTrainer, "reduce_epoch_totals", poisoned)
    with pytest.raises(TrainingError, match=r"nan at epoch 3.*smaller --lr.*of epoch 2"):
        seqlm.run(data=book_path, out=tmp_path / "nan", epochs=5, hidden=8, max_tokens=1500,
                  batch_size=4, num_steps=8, checkpoint_every=0)
    header = json.loads((tmp_path / "nan" / "checkpoint.json").read_text())
    assert header["state"]["epoch"] == 2


def test_a_run_config_that_resumes_counts_its_settings_as_given(book_path, tmp_path):
    seqlm.run(data=book_path, out=tmp_path / "r", epochs=1, hidden=8, max_tokens=1500,
              batch_size=4, num_steps=8)
    longer = seqlm.run(seqlm.RunConfig(resume=tmp_path / "r", epochs=2))
    assert [m.epoch for m in longer.history] == [1, 2]
    with pytest.raises(UsageError, match="--hidden cannot change when resuming"):
        seqlm.run(seqlm.RunConfig(resume=tmp_path / "r", epochs=3, hidden=99))


def test_a_moved_run_resumes_with_its_config_pointed_at_its_new_folder(book_path, tmp_path):
    first = seqlm.run(data=book_path, out=tmp_path / "r", epochs=1, hidden=8,
                      max_tokens=1500, batch_size=4, num_steps=8, quiet=True)
    (tmp_path / "r").rename(tmp_path / "moved")
    config = replace(first.config, resume=tmp_path / "moved", out=tmp_path / "moved",
                     epochs=2)
    longer = seqlm.run(config, quiet=True)
    assert [m.epoch for m in longer.history] == [1, 2]
    assert (tmp_path / "moved" / "summary.json").is_file()
    with pytest.raises(UsageError, match="--out cannot change when resuming"):
        seqlm.run(replace(config, out=tmp_path / "elsewhere", epochs=3), quiet=True)


def test_resume_refuses_to_change_the_model(book_path, tmp_path):
    seqlm.run(data=book_path, out=tmp_path / "r", epochs=1, hidden=8, max_tokens=1500,
              batch_size=4, num_steps=8)
    with pytest.raises(UsageError, match="--hidden cannot change when resuming"):
        seqlm.run(resume=tmp_path / "r", hidden=16)
    longer = seqlm.run(resume=tmp_path / "r", epochs=2)
    assert [m.epoch for m in longer.history] == [1, 2]


def test_raising_epochs_on_resume_trains_on_at_the_longer_schedules_rates(book_path,
                                                                          tmp_path):
    small = dict(hidden=8, max_tokens=1500, batch_size=4, num_steps=8, predict=3,
                 schedule="cosine")
    seqlm.run(data=book_path, out=tmp_path / "r", epochs=4, **small)
    resumed = seqlm.run(resume=tmp_path / "r", epochs=8)
    whole = seqlm.run(data=book_path, out=tmp_path / "w", epochs=8, **small)
    # Epochs 5 to 8 follow the 8-epoch cosine, not the 4-epoch one's floor first.
    assert [m.lr for m in resumed.history[4:]] == pytest.approx(
        [m.lr for m in whole.history[4:]])


class Halving(DefaultTrainer):
    """Halves the rate every epoch: a schedule of its own, not a factor of the base."""

    def make_scheduler(self, optimizer):
        return torch.optim.lr_scheduler.MultiplicativeLR(optimizer, lambda epoch: 0.5)


def test_a_trainers_own_schedule_resumes_at_its_own_rate(book_path, tmp_path, registered):
    registered("trainer", "halving", Halving)
    small = dict(hidden=8, max_tokens=1500, batch_size=4, num_steps=8, predict=3,
                 trainer="halving", optimizer="adam", lr=0.016)
    seqlm.run(data=book_path, out=tmp_path / "r", epochs=3, **small)
    resumed = seqlm.run(resume=tmp_path / "r", epochs=5)
    whole = seqlm.run(data=book_path, out=tmp_path / "w", epochs=5, **small)
    assert [m.lr for m in resumed.history] == pytest.approx([m.lr for m in whole.history])
    assert resumed.history[-1].lr == pytest.approx(0.001)  # 0.016 halved four times


def test_a_config_reused_to_resume_its_run_keeps_its_out(book_path, tmp_path, monkeypatch):
    from dataclasses import replace

    monkeypatch.chdir(tmp_path)
    config = seqlm.RunConfig(data=str(book_path), out=tmp_path / "r", epochs=1, hidden=8,
                             max_tokens=1500, batch_size=4, num_steps=8, predict=3)
    seqlm.run(config)
    # The run folder as a Path, the checkpoint's as a str: one folder.
    longer = seqlm.run(replace(config, resume=config.out, epochs=2))
    assert [m.epoch for m in longer.history] == [1, 2]


def test_a_quiet_run_that_is_stopped_says_nothing(book_path, tmp_path, capsys):
    with pytest.raises(KeyboardInterrupt):
        seqlm.run(data=book_path, out=tmp_path / "r", epochs=3, callbacks=[StopAt(2)],
                  quiet=True, hidden=8, max_tokens=1500, batch_size=4, num_steps=8)
    assert capsys.readouterr() == ("", "")
    assert json.loads((tmp_path / "r" / "checkpoint.json").read_text())["state"]["epoch"] == 2
