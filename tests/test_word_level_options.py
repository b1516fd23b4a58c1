"""--tie-weights and the variable sampler (what AWD-LSTM uses for word-level models)."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import seqlm
from seqlm.cli import main
from seqlm.data.samplers import SequentialSampler, VariableLengthSampler
from seqlm.errors import UsageError
from seqlm.runs.saved import load_trained
from seqlm.training.trainer import DefaultTrainer

SMALL = ["--max-tokens", "1500", "--batch-size", "4", "--num-steps", "8", "--epochs", "1",
         "--predict", "5"]


def test_tied_weights_share_one_matrix_and_survive_the_checkpoint(book_path, tmp_path):
    out = tmp_path / "r"
    result = CliRunner().invoke(main, ["run", "--data", str(book_path), *SMALL, "--hidden",
                                       "12", "--embedding-dim", "12", "--tie-weights",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    untied = seqlm.run(data=book_path, out=tmp_path / "u", hidden=12, embedding_dim=12,
                       max_tokens=1500, batch_size=4, num_steps=8, epochs=1, predict=5)
    model = load_trained(out).model
    assert model.head.weight is model.embedding.weight
    tied_count = sum(p.numel() for p in model.parameters())
    untied_count = sum(p.numel() for p in untied.model.parameters())
    assert untied_count - tied_count == model.embedding.weight.numel()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parameters"] == tied_count and summary["config"]["tie_weights"] is True


@pytest.mark.parametrize("extra, size", [(["--embedding-dim", "8"], 12),
                                         ([], 12),
                                         (["--embedding-dim", "12", "--bidirectional"], 24)])
def test_tie_weights_with_another_size_is_a_usage_error(extra, size, tmp_path, book_path):
    out = tmp_path / "r"
    result = CliRunner().invoke(main, ["run", "--data", str(book_path), *SMALL, "--hidden",
                                       "12", "--tie-weights", *extra, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert f"--embedding-dim must equal the top layer's output size ({size})" in result.output
    assert not out.exists()


def test_variable_batches_vary_continue_row_by_row_and_cover_the_text():
    torch.manual_seed(0)
    corpus = torch.arange(4 * 400 + 1)
    sampler = VariableLengthSampler(batch_size=4, num_steps=20)
    batches = list(sampler(corpus))
    lengths = [X.shape[1] for X, _ in batches]
    assert len(set(lengths)) > 5 and min(lengths[:-1]) >= 5 and max(lengths) <= 40
    assert abs(sum(lengths) / len(lengths) - 20) < 3
    for (X, Y), (X2, _) in zip(batches, batches[1:], strict=False):
        assert torch.equal(Y[:, :-1], X[:, 1:])
        assert torch.equal(X2[:, 0], Y[:, -1])  # each row continues where it stopped
    assert sum(lengths) == 400
    assert sampler.contiguous and not sampler.fixed_length


def test_each_batch_trains_with_the_learning_rate_scaled_by_its_length(book_path, tmp_path,
                                                                       monkeypatch):
    seen: list[tuple[int, float]] = []
    real = DefaultTrainer._step

    def spy(self, X, Y, state, model, optimizer, *args, **kwargs):
        seen.append((X.shape[1], optimizer.param_groups[0]["lr"]))
        return real(self, X, Y, state, model, optimizer, *args, **kwargs)

    monkeypatch.setattr(DefaultTrainer, "_step", spy)
    result = seqlm.run(data=book_path, out=tmp_path / "r", sampler="variable", lr=0.5,
                       hidden=8, max_tokens=1500, batch_size=4, num_steps=8, epochs=2,
                       predict=5)
    assert len({n for n, _ in seen}) > 2
    for length, lr in seen:
        assert lr == pytest.approx(0.5 * length / 8)
    assert [m.lr for m in result.history] == [0.5, 0.5]  # the base rate, restored


def test_a_cuda_graph_demanded_with_varying_lengths_is_a_usage_error():
    trainer = DefaultTrainer(lr=1, clip=1, epochs=1, device="cuda", cuda_graph=True)
    with pytest.raises(UsageError, match="--cuda-graph needs batches of one length"):
        trainer.check(VariableLengthSampler(batch_size=2, num_steps=8))
    trainer.check(SequentialSampler(batch_size=2, num_steps=8))  # one length: fine


def test_the_automatic_cuda_graph_steps_aside_for_varying_lengths():
    trainer = DefaultTrainer(lr=1, clip=1, epochs=1, device="cuda")  # cuda_graph "auto"
    trainer.check(VariableLengthSampler(batch_size=2, num_steps=8))  # no error
    assert trainer.graph_decision().record
    trainer._fixed_length = False  # as fit sets it from a varying sampler
    decision = trainer.graph_decision()
    assert not decision.record and "varies the batches' length" in decision.reason


@settings(max_examples=30, deadline=None)
@given(batch_size=st.integers(1, 5), num_steps=st.integers(1, 40),
       extra=st.integers(0, 300), seed=st.integers(0, 1000))
def test_variable_batches_read_every_stream_once_in_order(batch_size, num_steps, extra, seed):
    torch.manual_seed(seed)
    sampler = VariableLengthSampler(batch_size=batch_size, num_steps=num_steps)
    corpus = torch.arange(sampler.min_tokens() + extra)
    batches = list(sampler(corpus))
    xs = torch.cat([X for X, _ in batches], dim=1)
    ys = torch.cat([Y for _, Y in batches], dim=1)
    per_row = (len(corpus) - 1) // batch_size
    assert torch.equal(xs, corpus[:batch_size * per_row].reshape(batch_size, -1))
    assert torch.equal(ys, xs + 1)
    assert all(1 <= X.shape[1] <= 2 * num_steps for X, _ in batches)
