"""--average (averaged weights) and --patience (early stopping), with exact resume."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

import seqlm
from seqlm.checkpoints.format import load_checkpoint
from seqlm.cli import main
from seqlm.errors import UsageError
from seqlm.metrics import EpochMetrics
from seqlm.runs.saved import load_trained
from seqlm.training.averaging import average_starts
from seqlm.training.early_stopping import early_stop_reason
from seqlm.training.trainer import DefaultTrainer
from tests.test_resume import RECIPE, StopAt, _rows

SMALL = dict(hidden=12, max_tokens=1500, batch_size=4, num_steps=8, predict=5,
             checkpoint_every=0)


def _history(*val_losses: float) -> list[EpochMetrics]:
    return [EpochMetrics(epoch=i, train_loss=1.0, tokens=1, seconds=1.0, val_loss=v)
            for i, v in enumerate(val_losses, start=1)]


def test_the_average_starts_when_validation_stops_improving_or_in_the_last_quarter():
    assert not average_starts(2, 20, _history(3.0, 2.0))
    assert average_starts(3, 20, _history(3.0, 2.0, 2.5))  # no better than the best
    assert average_starts(3, 20, _history(3.0, 2.0, 2.0))
    assert not average_starts(15, 20, _history(*[3.0 - 0.1 * i for i in range(15)]))
    assert average_starts(16, 20, _history(*[3.0 - 0.1 * i for i in range(16)]))


def test_patience_counts_epochs_since_the_best_selected_loss():
    history = _history(3.0, 2.0, 2.5, 2.6)
    assert early_stop_reason(history, 0) is None
    assert early_stop_reason(history, 3) is None
    reason = early_stop_reason(history, 2)
    assert reason is not None and "epoch 2" in reason and "--patience 2" in reason
    history[-1].avg_val_loss = 1.9  # the average bettered it: the wait starts again
    assert early_stop_reason(history, 1) is None


def test_average_is_validated_and_kept_as_best_when_better(book_path, tmp_path):
    # A large step size makes the weights wander, which is where an average gains.
    result = seqlm.run(data=book_path, out=tmp_path / "r", epochs=6, average=True, lr=8,
                       **SMALL)
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").open()]
    assert [r["epoch"] for r in rows if "avg_val_loss" in r] == [5, 6]  # the last quarter
    last = rows[-1]
    assert last["avg_val_loss"] < last["val_loss"]
    summary = result.summary
    assert summary["best_is_average"] is True and summary["best_epoch"] == 6
    assert summary["best_val_ppl"] == pytest.approx(last["avg_val_ppl"])
    best = load_checkpoint(tmp_path / "r", "best")
    assert best["averaged"] is True
    # The best checkpoint holds the average of epochs 5 and 6, not the last weights.
    model = load_trained(tmp_path / "r").model
    assert any(not torch.equal(v, result.model.state_dict()[k])
               for k, v in model.state_dict().items())


def test_patience_stops_keeps_the_best_and_says_why(book_path, tmp_path, monkeypatch):
    losses = iter([3.0, 2.0, 2.5, 2.6, 2.7, 2.8, 2.9, 3.0])
    monkeypatch.setattr(DefaultTrainer, "_validate", lambda self, *a, **k: next(losses))
    out = tmp_path / "r"
    result = CliRunner().invoke(main, [
        "run", "--data", str(book_path), "--out", str(out), "--epochs", "8", "--patience",
        "2", "--hidden", "8", "--max-tokens", "1500", "--batch-size", "4", "--num-steps",
        "8", "--predict", "5"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 4 and summary["stopped_early"] is True
    assert "no better validation loss in 2 epochs" in summary["stop_reason"]
    assert summary["stop_reason"] in result.output  # the table's last line
    assert summary["best_epoch"] == 2
    assert load_checkpoint(out, "best")["epoch"] == 2
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 4
    # Resumed with more epochs, it stops again at once rather than training on.
    again = seqlm.run(resume=out, epochs=12)
    assert len(again.history) == 4 and again.summary["stopped_early"]


def test_a_run_that_runs_all_epochs_says_so(book_path, tmp_path):
    result = seqlm.run(data=book_path, out=tmp_path / "r", epochs=2, patience=5, **SMALL)
    assert result.summary["stopped_early"] is False
    assert result.summary["stop_reason"] == "ran all 2 epochs"


@pytest.mark.parametrize("flag", ["--patience 2", "--average"])
def test_without_held_out_text_patience_and_average_are_usage_errors(flag, tmp_path):
    result = CliRunner().invoke(main, ["run", *flag.split(), "--val-fraction", "0",
                                       "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert f"{flag.split()[0]} needs held-out text" in result.output
    assert not (tmp_path / "r").exists()


def test_eight_epochs_with_average_and_patience_equal_seven_plus_resumed_one(book_path,
                                                                          tmp_path):
    recipe = {**RECIPE, "average": True, "patience": 6}
    whole = seqlm.run(data=book_path, out=tmp_path / "whole", epochs=8, **recipe)
    with pytest.raises(KeyboardInterrupt):
        seqlm.run(data=book_path, out=tmp_path / "split", epochs=8, callbacks=[StopAt(7)],
                  **recipe)
    split = load_checkpoint(tmp_path / "split", "checkpoint")
    assert split["trainer"]["average"]["start"] is not None  # the average was under way
    resumed = seqlm.run(resume=tmp_path / "split")
    got, want = _rows(tmp_path / "split" / "metrics.jsonl"), _rows(tmp_path / "whole" /
                                                                  "metrics.jsonl")
    assert len(got) == len(want) == 8
    for a, b in zip(got, want, strict=True):
        assert a == pytest.approx(b, abs=1e-6)
    assert "avg_val_loss" in got[-1]
    for key, value in whole.model.state_dict().items():
        assert torch.allclose(resumed.model.state_dict()[key], value, atol=1e-6), key
    best_whole = load_trained(tmp_path / "whole").model.state_dict()
    best_split = load_trained(tmp_path / "split").model.state_dict()
    for key, value in best_whole.items():
        assert torch.allclose(best_split[key], value, atol=1e-6), key
    assert resumed.summary["best_val_ppl"] == pytest.approx(whole.summary["best_val_ppl"])


def test_average_cannot_change_on_resume_but_patience_can(book_path, tmp_path):
    seqlm.run(data=book_path, out=tmp_path / "r", epochs=1, **SMALL)
    with pytest.raises(UsageError, match="--average"):
        seqlm.run(resume=tmp_path / "r", epochs=2, average=True)
    result = seqlm.run(resume=tmp_path / "r", epochs=2, patience=3)
    assert result.config.patience == 3


def test_a_callback_stops_a_run_which_keeps_that_epoch_and_resumes(book_path, tmp_path):
    from seqlm.interfaces import Callback

    class Enough(Callback):
        def on_epoch_end(self, trainer, metrics) -> None:
            if metrics.epoch == 2:
                trainer.request_stop("the loss is low enough")

    out = tmp_path / "r"
    stopped = seqlm.run(data=book_path, out=out, epochs=5, quiet=True, callbacks=[Enough()],
                        **{**SMALL, "checkpoint_every": 1})
    assert [m.epoch for m in stopped.history] == [1, 2]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped_early"] is True
    assert summary["stop_reason"] == "stopped after epoch 2, as asked: the loss is low enough"
    assert load_checkpoint(out, "checkpoint")["epoch"] == 2
    # Nothing of the request is kept: resumed, the run trains its last three epochs.
    resumed = seqlm.run(resume=out, quiet=True)
    assert [m.epoch for m in resumed.history] == [1, 2, 3, 4, 5]
    assert resumed.summary["stop_reason"] == "ran all 5 epochs"


def test_a_stop_needs_a_reason():
    with pytest.raises(UsageError, match="request_stop needs a reason, a non-empty str; "
                       "got ''"):
        DefaultTrainer(lr=1, clip=1, epochs=2).request_stop("")
