"""Validation: the held-out end of the text, its metrics, and --val-fraction 0 as the seed."""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner

import seqlm
from seqlm.cli import main
from seqlm.data.corpus import build_corpus, load_text
from seqlm.data.samplers import SequentialSampler
from seqlm.data.tokenizers import CharTokenizer
from seqlm.errors import DataError, UsageError
from seqlm.model.rnn import RNNModel
from seqlm.runs.build import build_cell
from seqlm.training.evaluation import evaluate_loss, hold_out
from seqlm.training.trainer import DefaultTrainer

SMALL = dict(hidden=16, max_tokens=2000, batch_size=8, num_steps=10, predict=5)


@pytest.mark.parametrize("n, fraction, n_val", [(10000, 0.1, 1000), (2000, 0.25, 500),
                                                (999, 0.1, 100), (500, 0.0, 0)])
def test_hold_out_keeps_the_end_of_the_text(n, fraction, n_val):
    ids = torch.arange(n)
    train, val = hold_out(ids, fraction)
    assert len(val) == n_val and len(train) == n - n_val
    assert torch.equal(torch.cat([train, val]), ids)  # the end, in order, nothing lost


def test_too_small_a_held_out_part_is_an_error():
    with pytest.raises(DataError, match="--val-fraction"):
        hold_out(torch.arange(10), 0.01)


def test_default_run_trains_on_the_first_90_percent(book_path, tmp_path):
    result = seqlm.run(data=book_path, out=tmp_path / "r", epochs=2, **SMALL)
    s = result.summary
    assert (s["train_tokens"], s["val_tokens"]) == (1800, 200)
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").open()]
    for row, m in zip(rows, result.history, strict=True):
        assert row["val_ppl"] == pytest.approx(math.exp(row["val_loss"]))
        assert row["val_bits_per_token"] == pytest.approx(row["val_loss"] / math.log(2))
        assert row["val_ppl"] == m.val_ppl
    assert s["final_val_ppl"] == result.history[-1].val_ppl
    assert s["best_val_ppl"] == min(m.val_ppl for m in result.history)
    assert (tmp_path / "r" / "best.json").is_file()


def test_val_fraction_zero_trains_exactly_as_the_seed(book_path, tmp_path):
    result = seqlm.run(data=book_path, out=tmp_path / "r", epochs=3, val_fraction=0, **SMALL)
    assert result.summary["final_val_ppl"] is None and result.summary["val_tokens"] == 0
    # The seed's loop by hand: same seed, same model construction, all the tokens.
    torch.manual_seed(0)
    import random

    random.seed(0)
    corpus = build_corpus(load_text(book_path), CharTokenizer(), max_tokens=2000)
    config = seqlm.RunConfig(**SMALL)
    model = RNNModel(build_cell(seqlm.get_plugins().get("cell", "lstm"), "lstm",
                                len(corpus.vocab), config), len(corpus.vocab))
    history = DefaultTrainer(lr=1.0, clip=1.0, epochs=3).fit(
        model, corpus.ids, SequentialSampler(8, 10))
    assert [m.train_loss for m in result.history] == [m.train_loss for m in history]
    assert "val_ppl" not in (tmp_path / "r" / "metrics.jsonl").read_text()


def test_validation_equals_a_plain_pass_over_the_held_out_text():
    torch.manual_seed(0)
    model = RNNModel(build_cell(seqlm.get_plugins().get("cell", "gru"), "gru", 7,
                                seqlm.RunConfig(hidden=8)), 7)
    ids = torch.randint(0, 7, (101,))
    loss_sum, count = evaluate_loss(model, ids, batch_size=1, num_steps=13)
    logits, _ = model(ids[None, :-1], model.begin_state(1, "cpu"))
    expected = torch.nn.functional.cross_entropy(logits, ids[1:], reduction="sum")
    assert count == 100 and loss_sum.item() == pytest.approx(expected.item(), rel=1e-5)


def test_eval_command_reproduces_the_validation_perplexity(tmp_path, small_text):
    out = tmp_path / "r"
    result = seqlm.run(data=small_text, out=out, epochs=2, clean="none", **SMALL)
    corpus = build_corpus(load_text(small_text), CharTokenizer(), clean="none",
                          max_tokens=2000)
    _, val = hold_out(corpus.ids, 0.1)
    held_out = tmp_path / "held.txt"
    held_out.write_text("".join(corpus.vocab.to_tokens(val.tolist())), encoding="utf-8")
    cli = CliRunner().invoke(main, ["eval", str(out), "--data", str(held_out),
                                    "--checkpoint", "last", "--json"])
    assert cli.exit_code == 0, cli.output
    report = json.loads(cli.output)
    assert report["perplexity"] == pytest.approx(result.summary["final_val_ppl"], rel=1e-5)
    assert report["bits_per_token"] == pytest.approx(math.log2(report["perplexity"]))
    # A held-out text this short is read as one stream: every token but the first scored.
    assert report["tokens"] == len(val) - 1


def test_bad_val_fraction_is_a_usage_error():
    with pytest.raises(UsageError, match="--val-fraction"):
        seqlm.run(val_fraction=1.0)
