"""Property-based tests: tokenizer and vocabulary round trips, and the samplers' coverage,
disjointness and shapes over random corpora and sizes."""

from __future__ import annotations

from unittest import mock

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seqlm.data.samplers import RandomSampler, SequentialSampler
from seqlm.data.text import clean_letters
from seqlm.data.tokenizers import CharTokenizer, WordTokenizer
from seqlm.data.vocab import UNK, Vocab

FAST = settings(max_examples=60, deadline=None)

lines = st.lists(st.text(max_size=40), max_size=8)
words = st.text(alphabet=st.characters(blacklist_categories=("Zs", "Zl", "Zp", "Cc")),
                min_size=1, max_size=8)


@FAST
@given(lines)
def test_char_tokenizer_round_trips_any_text(text_lines: list[str]) -> None:
    tok = CharTokenizer()
    for line, tokens in zip(text_lines, tok.tokenize(text_lines), strict=True):
        assert tok.detokenize(tokens) == line
        assert all(len(t) == 1 for t in tokens)


@FAST
@given(st.lists(st.lists(words, max_size=10), max_size=6))
def test_word_tokenizer_round_trips_space_separated_words(word_lines: list[list[str]]) -> None:
    tok = WordTokenizer()
    text_lines = [" ".join(ws) for ws in word_lines]
    assert tok.tokenize(text_lines) == [ws for ws in word_lines]
    for line, tokens in zip(text_lines, tok.tokenize(text_lines), strict=True):
        assert tok.detokenize(tokens) == line


@FAST
@given(lines)
def test_word_tokenizer_normalises_white_space(text_lines: list[str]) -> None:
    tok = WordTokenizer()
    for line, tokens in zip(text_lines, tok.tokenize(text_lines), strict=True):
        assert tok.detokenize(tokens) == " ".join(line.split())


@FAST
@given(st.text(max_size=60))
def test_cleaning_leaves_lower_case_letters_and_single_spaces(line: str) -> None:
    cleaned = clean_letters(line)
    assert set(cleaned) <= set("abcdefghijklmnopqrstuvwxyz ")
    assert "  " not in cleaned and cleaned == cleaned.strip()
    assert clean_letters(cleaned) == cleaned


@FAST
@given(st.lists(st.lists(words, max_size=12), max_size=6), st.integers(0, 3))
def test_vocab_round_trip_and_order(token_lines: list[list[str]], min_freq: int) -> None:
    vocab = Vocab(token_lines, min_freq=min_freq)
    flat = [t for line in token_lines for t in line]
    counts = {t: flat.count(t) for t in set(flat)}
    # ids are 0..n-1 with <unk> first, and the two maps agree
    assert vocab.to_tokens(0) == UNK and vocab.unk == 0
    assert sorted(vocab.token_to_idx.values()) == list(range(len(vocab)))
    for token, idx in vocab.token_to_idx.items():
        assert vocab.to_tokens(idx) == token
    # kept tokens round trip, rare ones map to <unk>, frequencies never rise
    kept = [t for t in flat if counts[t] >= min_freq and t != UNK]
    assert vocab.to_tokens(vocab[kept]) == kept
    for t in flat:
        if counts[t] < min_freq and t != UNK:
            assert vocab[t] == vocab.unk
    freqs = [counts[t] for t in vocab.idx_to_token[1:] if t in counts]
    assert freqs == sorted(freqs, reverse=True)
    assert Vocab.from_dict(vocab.to_dict()).idx_to_token == vocab.idx_to_token


# -- samplers ------------------------------------------------------------------------------

sizes = st.tuples(st.integers(1, 6), st.integers(1, 9), st.integers(0, 120), st.integers(0, 999))


def _epoch(sampler, length: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(seed)
    # Token values equal their positions, so a batch shows where it was read from.
    return list(sampler(torch.arange(length)))


def _check_batches(sampler, batches, length: int) -> set[int]:
    """Shapes, the shift by one, bounds and disjointness; returns the positions read."""
    seen: list[int] = []
    for X, Y in batches:
        assert X.shape == Y.shape == (sampler.batch_size, sampler.num_steps)
        assert X.dtype == Y.dtype == torch.long
        assert torch.equal(Y, X + 1)
        assert int(Y.max()) < length and int(X.min()) >= 0
        seen.extend(X.flatten().tolist())
    assert len(seen) == len(set(seen)), "a token was read twice in one epoch"
    return set(seen)


@FAST
@given(sizes)
def test_sequential_sampler_covers_the_corpus_without_overlap(size) -> None:
    batch_size, num_steps, extra, seed = size
    sampler = SequentialSampler(batch_size=batch_size, num_steps=num_steps)
    length = sampler.min_tokens() + extra
    batches = _epoch(sampler, length, seed)
    seen = _check_batches(sampler, batches, length)
    assert len(batches) >= max(sampler.num_batches(length), 1)
    # Left out: the random offset, under one step per row, and the ragged end.
    assert length - len(seen) <= num_steps + batch_size * num_steps + batch_size
    for (x0, _), (x1, _) in zip(batches, batches[1:], strict=False):
        assert torch.equal(x1[:, 0], x0[:, -1] + 1), "rows must continue across batches"


@FAST
@given(sizes)
def test_random_sampler_covers_the_corpus_without_overlap(size) -> None:
    batch_size, num_steps, extra, seed = size
    sampler = RandomSampler(batch_size=batch_size, num_steps=num_steps)
    length = sampler.min_tokens() + extra
    batches = _epoch(sampler, length, seed)
    seen = _check_batches(sampler, batches, length)
    assert len(batches) >= max(sampler.num_batches(length), 1)
    # Left out: the offset, the pieces that do not fill a last batch, the ragged end.
    assert length - len(seen) <= (num_steps - 1) + batch_size * num_steps + num_steps
    starts = {int(x[0]) for X, _ in batches for x in X}
    assert len({s % num_steps for s in starts}) == 1, "pieces start on one offset grid"


@FAST
@given(st.sampled_from([SequentialSampler, RandomSampler]), sizes)
def test_min_tokens_and_num_batches_hold_for_the_worst_offset(cls, size) -> None:
    batch_size, num_steps, extra, seed = size
    sampler = cls(batch_size=batch_size, num_steps=num_steps)
    length = sampler.min_tokens() + extra
    worst = num_steps if cls is SequentialSampler else num_steps - 1
    with mock.patch("seqlm.data.samplers._randint", return_value=worst):
        batches = _epoch(sampler, length, seed)
        assert len(batches) == sampler.num_batches(length) >= 1
        _check_batches(sampler, batches, length)
        # One token fewer than min_tokens gives no batch at the worst offset.
        assert _epoch(sampler, sampler.min_tokens() - 1, seed) == []
