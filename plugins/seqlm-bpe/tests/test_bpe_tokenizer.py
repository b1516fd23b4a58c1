"""The BPE tokenizer on its own, and registered through seqlm's entry point."""

from __future__ import annotations

import json

import pytest
from seqlm_bpe.tokenizer import BPETokenizer

import seqlm
from seqlm.errors import DataError, UsageError
from seqlm.testing import parametrize_checks

LINES = [
    "the time traveller for so it will be convenient to speak of him",
    "was expounding a recondite matter to us his grey eyes shone and",
    "twinkled and his usually pale face was flushed and animated",
] * 20


def fitted(**options) -> BPETokenizer:
    tokenizer = BPETokenizer(**options)
    tokenizer.fit(LINES)
    return tokenizer


def test_learns_subwords_up_to_the_vocabulary_size():
    small, large = fitted(vocab_size=40), fitted(vocab_size=200)
    count = lambda t: sum(len(line) for line in t.tokenize(LINES))  # noqa: E731
    assert count(large) < count(small) < sum(len(line) + 1 for line in LINES)
    assert small._bpe.get_vocab_size() <= 40


def test_detokenize_gives_back_the_text_and_lines_do_not_run_together():
    tokenizer = fitted()
    (tokens,) = tokenizer.tokenize(["time traveller said he"])
    assert tokenizer.detokenize(tokens) == "time traveller said he"
    # As seqlm joins the lines' tokens, the text reads with a space at each line break.
    stream = [t for line in tokenizer.tokenize(LINES[:2]) for t in line]
    assert tokenizer.detokenize(stream) == f"{LINES[0]} {LINES[1]}"
    # Lines that keep their line endings (--clean none) get nothing added.
    raw = [line + "\n" for line in LINES]
    tokenizer.fit(raw)
    stream = [t for line in tokenizer.tokenize(raw[:3]) for t in line]
    assert tokenizer.detokenize(stream) == "".join(raw[:3])


def test_unseen_bytes_read_as_unk():
    (tokens,) = fitted().tokenize(["time é"])
    assert tokens[-1] == "<unk>"


def test_state_dict_is_json_and_restores_the_same_tokenizer():
    tokenizer = fitted(vocab_size=120)
    state = json.loads(json.dumps(tokenizer.state_dict()))
    restored = BPETokenizer()
    restored.load_state_dict(state)
    assert restored.vocab_size == 120
    assert restored.tokenize(LINES[:3]) == tokenizer.tokenize(LINES[:3])
    with pytest.raises(DataError, match="not a saved bpe tokenizer"):
        BPETokenizer().load_state_dict({"vocab_size": 10})


@pytest.mark.parametrize("options", [{"vocab_size": 0}, {"vocab_size": "big"},
                                     {"min_frequency": 1.5}])
def test_bad_options_are_usage_errors(options):
    with pytest.raises(UsageError, match="--tokenizer-opt .* must be a whole number"):
        BPETokenizer(**options)


def test_unfitted_tokenizer_says_what_to_do():
    with pytest.raises(RuntimeError, match="call fit"):
        BPETokenizer().tokenize(["x"])


def test_registered_as_bpe_through_the_entry_point():
    plugins = seqlm.get_plugins()
    assert plugins.get("tokenizer", "bpe") is BPETokenizer
    info = next(i for i in plugins.info.values() if i.distribution == "seqlm-bpe")
    assert info.status == "ok" and info.registered == {"tokenizer": ["bpe"]}


@parametrize_checks([BPETokenizer, (BPETokenizer, {"vocab_size": 60, "min_frequency": 1})])
def test_conforms_to_the_tokenizer_contract(check):
    """seqlm's conformance kit: tokens, detokenize (with <unk>), repeatable fits, state."""
    check()
