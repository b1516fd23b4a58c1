"""The gradient norm and learning rate of each epoch: measured, recorded and shown."""

from __future__ import annotations

import json

import pytest
import torch
from rich.console import Console
from torch import nn

import seqlm
from seqlm.cells.torch_cells import TorchLSTM
from seqlm.data.samplers import SequentialSampler
from seqlm.metrics import EpochMetrics
from seqlm.model.rnn import RNNModel
from seqlm.runs.progress import PlainProgress, RichProgress
from seqlm.training.trainer import DefaultTrainer

CORPUS = (torch.arange(1200) * 7 % 19).long()


def fit(clip: float, epochs: int = 2, **options) -> list[EpochMetrics]:
    torch.manual_seed(0)
    model = RNNModel(TorchLSTM(input_size=19, hidden_size=12), vocab_size=19)
    trainer = DefaultTrainer(lr=1.0, clip=clip, epochs=epochs, **options)
    return trainer.fit(model, CORPUS, SequentialSampler(6, 8))


@pytest.mark.parametrize("clip", [0.01, 0.0])
def test_grad_norm_is_the_mean_of_each_batch_norm_before_clipping(monkeypatch, clip):
    norms: list[float] = []
    clip_grad_norm, total_norm = nn.utils.clip_grad_norm_, nn.utils.get_total_norm

    def spy(real):
        def measured(*args, **kwargs):
            norm = real(*args, **kwargs)
            norms.append(float(norm))
            return norm
        return measured

    monkeypatch.setattr(nn.utils, "clip_grad_norm_", spy(clip_grad_norm))
    monkeypatch.setattr(nn.utils, "get_total_norm", spy(total_norm))
    history = fit(clip, epochs=2)
    per_epoch = len(norms) // 2
    assert per_epoch == len(CORPUS) // (6 * 8) - (len(CORPUS) % 48 == 0)  # one per batch
    for m, batch in zip(history, (norms[:per_epoch], norms[per_epoch:]), strict=True):
        assert m.grad_norm == pytest.approx(sum(batch) / len(batch), rel=1e-5)
    if clip:
        # Before clipping: well above the clip that every step was cut down to.
        assert all(m.grad_norm > 4 * clip for m in history)


def test_the_norm_costs_no_host_sync_per_batch(monkeypatch):
    reads = []
    item = torch.Tensor.item

    def counted(self):
        reads.append(1)
        return item(self)

    monkeypatch.setattr(torch.Tensor, "item", counted)
    fit(1.0, epochs=3)
    # Per epoch: the loss, the gradient norm and the sampler's random offset (a CPU
    # tensor); a read per batch would be 24 per epoch.
    assert len(reads) == 3 * 3


def test_the_static_step_measures_the_same_norm(monkeypatch):
    plain = fit(1.0, epochs=2)
    monkeypatch.setattr(DefaultTrainer, "use_static_step", lambda self: True)
    static = fit(1.0, epochs=2)
    assert [m.grad_norm for m in static] == pytest.approx([m.grad_norm for m in plain])


def test_metrics_jsonl_has_lr_and_grad_norm_every_epoch(small_text, tmp_path):
    seqlm.run(data=small_text, out=tmp_path, epochs=3, hidden=8, batch_size=4, num_steps=5,
              max_tokens=400, predict=4, device="cpu", schedule="cosine", force=True)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert all(r["grad_norm"] > 0 for r in rows)
    assert rows[0]["lr"] > rows[1]["lr"] > rows[2]["lr"]  # the cosine schedule
    assert EpochMetrics.from_dict(rows[1]).grad_norm == rows[1]["grad_norm"]


class FakeTrainer:
    epochs = 2
    start_epoch = 0
    stop_reason = None  # declared on Trainer: why fit stopped early, if it did


def test_the_live_table_and_plain_lines_show_lr_and_grad_norm():
    metrics = EpochMetrics(epoch=1, train_loss=2.0, tokens=100, seconds=1.0, val_loss=2.1,
                           lr=0.002, grad_norm=0.4567)
    console = Console(record=True, width=80, force_terminal=True)
    table = RichProgress(console, log_every=1)
    table.on_train_start(FakeTrainer())
    table.on_epoch_end(FakeTrainer(), metrics)
    table.on_train_end(FakeTrainer(), [metrics])
    text = console.export_text()
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if "Epoch" in line)
    assert "Grad" in lines[at - 1] and "LR" in lines[at] and "norm" in lines[at]
    row = next(line for line in lines if "1/2" in line)
    assert "0.002" in row and "0.457" in row
    assert all(len(line) <= 80 for line in lines if line[:1] in "┃│")  # a classic terminal
    plain = Console(record=True, width=200)
    lines = PlainProgress(plain, log_every=1)
    lines.on_train_start(FakeTrainer())
    lines.on_epoch_end(FakeTrainer(), EpochMetrics(epoch=1, train_loss=2.0, tokens=10,
                                                   seconds=1.0))
    assert "lr -  grad norm -" in plain.export_text()  # a trainer that reports neither
