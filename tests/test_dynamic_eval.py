"""Dynamic evaluation: the model adapts to a text as it reads it, and the run stays as saved."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from seqlm.cli import main
from seqlm.config import (
    DYNAMIC_DECAY,
    DYNAMIC_LR,
    DYNAMIC_PLAIN_LR,
    DYNAMIC_RMS,
    DYNAMIC_STEPS,
    DYNAMIC_STREAMS,
)
from seqlm.data.corpus import text_tokens
from seqlm.errors import UsageError
from seqlm.runs.saved import load_trained
from seqlm.training.dynamic_eval import DynamicSettings, dynamic_loss
from seqlm.training.evaluation import evaluate_loss


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, book_path) -> Path:
    out = tmp_path_factory.mktemp("dyn") / "run"
    result = CliRunner().invoke(main, [
        "run", "--data", str(book_path), "--out", str(out), "--max-tokens", "2000",
        "--hidden", "24", "--embedding-dim", "8", "--batch-size", "8", "--num-steps", "16",
        "--epochs", "2", "--optimizer", "adam", "--lr", "0.01", "--predict", "5",
    ])
    assert result.exit_code == 0, result.output
    return out


def _drifting_text(path: Path) -> Path:
    # Words the book's opening hardly has, repeated: a model that adapts learns them
    # within a few segments, a static one keeps guessing from the book.
    path.write_text("zebra quiz jazz fox vex " * 60, encoding="utf-8")
    return path


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


def test_dynamic_beats_static_on_a_drifting_text_and_the_run_is_unchanged(trained_run,
                                                                          tmp_path):
    text = _drifting_text(tmp_path / "drift.txt")
    before = _digests(trained_run)
    result = CliRunner().invoke(main, ["eval", str(trained_run), "--data", str(text),
                                       "--dynamic", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    dynamic = report["dynamic"]
    # Several percent better, with the default step size and decay.
    assert dynamic["perplexity"] < 0.9 * report["perplexity"], report
    assert dynamic["lr"] == DYNAMIC_LR and dynamic["decay"] == DYNAMIC_DECAY
    assert dynamic["rms"] is DYNAMIC_RMS is True and dynamic["steps"] == DYNAMIC_STEPS
    assert dynamic["streams"] == DYNAMIC_STREAMS
    # The text (1,440 tokens) is one stream either way, so the static figures agree.
    assert dynamic["static_perplexity"] == pytest.approx(report["perplexity"], rel=1e-6)
    assert dynamic["tokens"] == report["tokens"]
    assert _digests(trained_run) == before


def test_the_sentence_gives_static_and_dynamic_side_by_side(trained_run, tmp_path):
    text = _drifting_text(tmp_path / "drift.txt")
    result = CliRunner().invoke(main, ["eval", str(trained_run), "--data", str(text),
                                       "--dynamic", "--dynamic-rms", "--dynamic-lr", "0.003",
                                       "--dynamic-steps", "10"])
    assert result.exit_code == 0, result.output
    first, second = result.output.strip().splitlines()
    assert first.startswith("perplexity ")
    assert second.startswith("dynamic: perplexity ") and "--dynamic-rms" in second
    assert "--dynamic-streams 1" in second
    static = float(first.split()[1].rstrip(","))
    adapted = float(second.split()[2].rstrip(","))
    assert adapted < static


def test_without_steps_dynamic_equals_static_and_the_model_is_untouched(trained_run):
    trained = load_trained(trained_run)
    ids = torch.randint(0, len(trained.vocab), (900,))
    weights = {k: v.clone() for k, v in trained.model.state_dict().items()}
    static_sum, count = evaluate_loss(trained.model, ids, 8)
    total, tokens = dynamic_loss(trained.model, ids, DynamicSettings(lr=0, decay=0, streams=8))
    assert tokens == count
    assert total == pytest.approx(static_sum.item(), rel=1e-5)
    adapted, _ = dynamic_loss(trained.model, ids, DynamicSettings(lr=0.1, streams=8))
    assert adapted != pytest.approx(total, rel=1e-6)
    for key, value in trained.model.state_dict().items():
        assert torch.equal(value, weights[key]), key


def test_one_stream_reads_the_text_in_order_and_many_streams_side_by_side(trained_run):
    trained = load_trained(trained_run)
    ids = torch.randint(0, len(trained.vocab), (9000,))
    # 9,000 tokens make at most two streams of MIN_STREAM_TOKENS (4,096) or more.
    one_static, one_count = evaluate_loss(trained.model, ids, 1)
    two_static, two_count = evaluate_loss(trained.model, ids, 8)
    assert (one_count, two_count) == (8999, 8998)
    for streams, static, count in ((1, one_static, one_count), (8, two_static, two_count)):
        total, tokens = dynamic_loss(trained.model, ids,
                                     DynamicSettings(lr=0, decay=0, streams=streams))
        assert tokens == count
        assert total == pytest.approx(static.item(), rel=1e-5)
    one, _ = dynamic_loss(trained.model, ids, DynamicSettings())
    two, _ = dynamic_loss(trained.model, ids, DynamicSettings(streams=8))
    assert one != pytest.approx(two, rel=1e-6)


@pytest.mark.parametrize("field", ["steps", "streams"])
@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_segment_length_and_streams_must_be_whole_and_positive(field, value):
    with pytest.raises(UsageError, match=f"{field} must be a whole number of at least 1"):
        DynamicSettings(**{field: value})


@pytest.mark.parametrize("field, value, message", [
    ("lr", -1.0, "lr must be a number 0 or more, got -1.0"),
    ("lr", float("nan"), "lr must be a number 0 or more, got nan"),
    ("lr", "big", "lr must be a number 0 or more, got 'big'"),
    ("decay", -5.0, "decay must be a number from 0 to 1, got -5.0"),
    ("decay", 2, "decay must be a number from 0 to 1, got 2"),
    ("rms", "yes", "rms must be True or False, got 'yes'"),
])
def test_step_size_decay_and_rms_are_checked_as_the_options_are(field, value, message):
    with pytest.raises(UsageError) as caught:
        DynamicSettings(**{field: value})
    assert str(caught.value) == message


def test_the_cli_defaults_are_the_librarys():
    settings = DynamicSettings()
    assert (DYNAMIC_LR, DYNAMIC_DECAY, DYNAMIC_STEPS, DYNAMIC_RMS, DYNAMIC_STREAMS) == (
        settings.lr, settings.decay, settings.steps, settings.rms, settings.streams)
    assert DYNAMIC_STREAMS == 1
    assert DynamicSettings(rms=False).lr == DYNAMIC_PLAIN_LR
    assert DynamicSettings(lr=0.5, rms=False).lr == 0.5


def test_plain_steps_take_their_own_default_step_size(trained_run, tmp_path):
    text = _drifting_text(tmp_path / "drift.txt")
    result = CliRunner().invoke(main, ["eval", str(trained_run), "--data", str(text),
                                       "--dynamic", "--dynamic-plain", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["dynamic"]["lr"] == DYNAMIC_PLAIN_LR and report["dynamic"]["rms"] is False
    assert report["dynamic"]["perplexity"] < report["perplexity"]


def test_a_negative_step_size_is_a_usage_error(trained_run, tmp_path):
    text = _drifting_text(tmp_path / "drift.txt")
    result = CliRunner().invoke(main, ["eval", str(trained_run), "--data", str(text),
                                       "--dynamic", "--dynamic-lr", "-1"])
    assert result.exit_code == 2
    assert "--dynamic-lr" in result.output


@pytest.mark.parametrize("lr, message", [
    ("inf", "Error: --dynamic-lr must be a finite number, got inf"),
    ("nan", "Error: --dynamic-lr must be a finite number, got nan"),
    ("1e30", "Error: dynamic evaluation diverged (perplexity inf) with --dynamic-lr 1e+30; "
     "give a smaller --dynamic-lr"),
])
def test_steps_that_cannot_give_a_figure_are_usage_errors_not_json_infinity(
        trained_run, tmp_path, lr, message):
    text = _drifting_text(tmp_path / "drift.txt")
    result = CliRunner().invoke(main, ["eval", str(trained_run), "--data", str(text),
                                       "--dynamic", "--dynamic-plain", "--dynamic-lr", lr,
                                       "--json"])
    assert result.exit_code == 2
    assert message in result.output and "Infinity" not in result.output


@pytest.mark.parametrize("args, message", [
    (["--dynamic-plain"], "Error: --dynamic-plain sets how --dynamic evaluates, and "
                          "--dynamic is not given; add --dynamic, or drop it"),
    (["--dynamic-lr", "1"], "Error: --dynamic-lr sets how --dynamic evaluates"),
    (["--dynamic", "--dynamic-decay", "nan"], "Error: --dynamic-decay must be a finite "
                                              "number, got nan"),
])
def test_dynamic_settings_are_never_ignored_or_left_unchecked(trained_run, tmp_path, args,
                                                              message):
    text = _drifting_text(tmp_path / "drift.txt")
    result = CliRunner().invoke(main, ["eval", str(trained_run), "--data", str(text), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_static_beside_dynamic_is_read_as_the_same_streams(trained_run, tmp_path):
    # Long enough for two streams at the run's batch size (8): the top-level figure reads
    # it as two, the dynamic entry's static figure as one, like its dynamic figure.
    text = tmp_path / "long.txt"
    text.write_text(("the time traveller " * 480) + "the", encoding="utf-8")
    result = CliRunner().invoke(main, ["eval", str(trained_run), "--data", str(text),
                                       "--dynamic", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    dynamic = report["dynamic"]
    trained = load_trained(trained_run)
    tokens = text_tokens(text.read_text(encoding="utf-8"), trained.tokenizer, "letters")
    ids = torch.tensor(trained.vocab[tokens], dtype=torch.long)
    # 9,123 tokens: one stream predicts 9,122 of them, two streams 2 x 4,561.
    assert len(ids) == 9123
    assert report["tokens"] == 9122 and dynamic["tokens"] == 9122
    one_stream, count = evaluate_loss(trained.model, ids, 1)
    assert count == dynamic["tokens"]
    assert dynamic["static_loss"] == pytest.approx(one_stream.item() / count, rel=1e-5)
    assert dynamic["static_loss"] != pytest.approx(report["loss"], rel=1e-6)
    result = CliRunner().invoke(main, ["eval", str(trained_run), "--data", str(text),
                                       "--dynamic", "--dynamic-streams", "8", "--json"])
    side_by_side = json.loads(result.output)["dynamic"]
    assert side_by_side["streams"] == 8
    assert side_by_side["streams_read"] == 2 and dynamic["streams_read"] == 1
    said = CliRunner().invoke(main, ["eval", str(trained_run), "--data", str(text),
                                     "--dynamic", "--dynamic-streams", "8"])
    assert "--dynamic-streams 8 (read as 2), --dynamic-rms)" in said.output
    assert side_by_side["static_perplexity"] == pytest.approx(report["perplexity"], rel=1e-6)


def test_progress_is_told_every_segment_up_to_the_total(trained_run):
    trained = load_trained(trained_run)
    ids = torch.randint(0, len(trained.vocab), (95,))
    seen: list[tuple[int, int]] = []
    dynamic_loss(trained.model, ids, DynamicSettings(steps=10),
                 progress=lambda done, total: seen.append((done, total)))
    # 94 predicted tokens in segments of 10: ten segments, the last of four.
    assert seen == [(n, 10) for n in range(1, 11)]
