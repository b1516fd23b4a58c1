"""The example third-party plugin, plugins/seqlm-bpe, installed as CI installs it."""

from __future__ import annotations

import json
from importlib import metadata

import pytest
from click.testing import CliRunner

from seqlm.cli import main
from seqlm.plugins.manager import reset_plugins


@pytest.fixture
def bpe_installed():
    try:
        metadata.distribution("seqlm-bpe")
    except metadata.PackageNotFoundError:
        pytest.fail("seqlm-bpe is not installed: pip install -e plugins/seqlm-bpe (.ci/run does)")
    reset_plugins()  # other tests may have narrowed the loaded plugins
    yield
    reset_plugins()


def test_seqlm_itself_does_not_depend_on_tokenizers():
    requirements = metadata.requires("seqlm") or []
    assert not [r for r in requirements if r.lower().startswith("tokenizers")]
    assert any(r.startswith("tokenizers") for r in metadata.requires("seqlm-bpe"))


def test_run_with_the_bpe_tokenizer_trains_subwords_and_prints_text(
    bpe_installed, book_path, tmp_path
):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "run", "--tokenizer", "bpe", "--tokenizer-opt", "vocab_size=300", "--clean", "none",
        "--data", str(book_path), "--max-tokens", "3000", "--epochs", "3", "--hidden", "32",
        "--num-steps", "10", "--batch-size", "8", "--predict", "12", "--device", "cpu",
        "--prefix", "The Time Traveller", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tokenizer"] == "bpe"
    assert summary["config"]["tokenizer_options"] == {"vocab_size": 300}
    # Subwords: fewer tokens than characters, a vocabulary of about the size asked for.
    assert 100 < summary["vocab_size"] <= 301
    losses = [json.loads(line)["train_loss"] for line in open(out / "metrics.jsonl")]
    assert losses[-1] < losses[0]
    sample = summary["sample"]
    assert sample.startswith("The Time Traveller")
    assert "Ġ" not in sample and "Ċ" not in sample  # decoded, not raw byte-level units
