"""The recipe's pieces: embeddings, dropout, AdamW, the cosine schedule, the best checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

import seqlm
from seqlm.checkpoints.format import load_checkpoint
from seqlm.errors import UsageError
from seqlm.training.trainer import cosine_factor

RECIPE = dict(hidden=16, num_layers=2, embedding_dim=8, dropout=0.3, optimizer="adamw",
              lr=0.01, weight_decay=0.1, schedule="cosine", warmup_epochs=1,
              max_tokens=3000, batch_size=8, num_steps=16, predict=5)


def test_recipe_run_builds_what_it_says_and_keeps_the_best_epoch(book_path, tmp_path):
    result = seqlm.run(data=book_path, out=tmp_path / "r", epochs=6, **RECIPE)
    model = result.model
    assert model.embedding is not None and model.embedding.embedding_dim == 8
    assert model.cell.rnn.dropout == pytest.approx(0.3)  # between the two layers
    lrs = [m.lr for m in result.history]
    assert lrs == pytest.approx([0.01 * cosine_factor(e, 6, 1) for e in range(6)])
    assert lrs[0] < lrs[1] > lrs[-1]  # warm-up, then decay
    val = [m.val_loss for m in result.history]
    best = load_checkpoint(tmp_path / "r", "best")
    assert best["epoch"] == 1 + val.index(min(val))
    assert best["trainer"] is None  # generation needs no optimizer state
    assert result.history[-1].train_ppl < result.history[0].train_ppl
    row = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[0])
    assert row["lr"] == pytest.approx(lrs[0])


def test_dropout_is_active_in_training_and_off_in_evaluation(book_path, tmp_path):
    result = seqlm.run(data=book_path, out=tmp_path / "r", epochs=1, **RECIPE)
    model, X = result.model, torch.randint(0, len(result.vocab), (2, 9))
    model.train()
    a, _ = model(X, model.begin_state(2, "cpu"))
    b, _ = model(X, model.begin_state(2, "cpu"))
    model.eval()
    c, _ = model(X, model.begin_state(2, "cpu"))
    d, _ = model(X, model.begin_state(2, "cpu"))
    assert not torch.equal(a, b) and torch.equal(c, d)


def test_adam_learning_rate_default_differs_from_sgd():
    assert seqlm.RunConfig(optimizer="adamw").learning_rate == pytest.approx(0.002)
    assert seqlm.RunConfig().learning_rate == 1.0
    assert seqlm.RunConfig(optimizer="adam", lr=0.01).learning_rate == 0.01


@pytest.mark.parametrize("setting, flag", [
    ({"optimizer": "lbfgs"}, "--optimizer"), ({"schedule": "step"}, "--schedule"),
    ({"dropout": 1.0}, "--dropout"), ({"embedding_dim": -1}, "--embedding-dim"),
    ({"checkpoint_every": -2}, "--checkpoint-every"), ({"keep_every": -1}, "--keep-every"),
])
def test_bad_recipe_settings_are_usage_errors(setting, flag):
    with pytest.raises(UsageError, match=flag):
        seqlm.run(**setting)
