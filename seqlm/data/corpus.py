"""From raw text to a tensor of token ids and its vocabulary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from seqlm.data.text import clean_lines, read_text
from seqlm.data.vocab import Vocab
from seqlm.errors import DataError, UsageError, refuse
from seqlm.interfaces import Tokenizer, tokens_problem


@dataclass
class Corpus:
    """Token ids of a text (1-D int64 tensor) with the vocabulary that maps them."""

    ids: torch.Tensor
    vocab: Vocab

    def __len__(self) -> int:
        return len(self.ids)


def load_text(
    data: str | Path | None, encoding: str = "utf-8",
    log: Callable[[str], None] | None = None, label: str | None = None,
) -> str:
    """Read ``data``, or the cached (downloaded on first use) *Time Machine* if None;
    ``log`` hears the download's progress (by default on stderr), and errors name the
    file as ``label`` (by default ``--data PATH``, as ``seqlm run`` takes it)."""
    if data is None:
        from seqlm.data.download import book_path

        data = book_path(log=log)
    return read_text(data, encoding=encoding, label=label)


def text_tokens(
    text: str, tokenizer: Tokenizer, clean: str = "letters", fit: bool = False,
    label: str | None = None,
) -> list[str]:
    """Clean ``text`` and tokenize it into one stream (lines joined, as in the seed).

    ``fit`` lets the tokenizer learn from the cleaned lines first (training text only).
    What ``tokenize`` gives is checked against its contract (a list of token lists, one
    per line) and refused as ``label``'s fault (default: the tokenizer's class).
    """
    if not isinstance(tokenizer, Tokenizer):
        raise UsageError(f"the tokenizer must be a seqlm.Tokenizer instance, got "
                         f"{type(tokenizer).__name__} {tokenizer!r}; for a registered one, "
                         "get_plugins().get('tokenizer', name)()")
    lines = clean_lines(text, clean)
    if not lines:
        hint = " or use --clean none" if clean != "none" else ""
        raise DataError(f"nothing is left of the text after --clean {clean}; "
                        f"give a text with letters{hint}")
    if fit:
        tokenizer.fit(lines)
    tokenized = tokenizer.tokenize(lines)
    # The opening lines show a mistake; checking every token would cost a pass.
    problem = tokens_problem(lines, tokenized) if not isinstance(tokenized, list) or len(
        tokenized) != len(lines) else tokens_problem(lines[:3], tokenized[:3])
    if problem:
        raise refuse(label or f"tokenizer {type(tokenizer).__qualname__}", "tokenizer", problem)
    return [t for line in tokenized for t in line]


def build_corpus(
    text: str,
    tokenizer: Tokenizer,
    clean: str = "letters",
    max_tokens: int = 10000,
    min_freq: int = 0,
    label: str | None = None,
) -> Corpus:
    """Clean and tokenize ``text``, build the vocabulary, keep the first ``max_tokens``.

    As in the seed, the vocabulary is built from the whole text before truncation, and
    lines are concatenated into one stream of tokens. ``max_tokens=0`` keeps everything.
    ``label`` names the tokenizer in an error about what it gave.
    """
    for name, value in (("max_tokens", max_tokens), ("min_freq", min_freq)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise UsageError(f"{name} must be a whole number, 0 or more, got {value!r}")
    tokens = text_tokens(text, tokenizer, clean, fit=True, label=label)
    vocab = Vocab(tokens, min_freq=min_freq)
    ids = vocab[tokens]
    if max_tokens > 0:
        ids = ids[:max_tokens]
    if not ids:
        raise DataError("the tokenizer produced no tokens from the text; check --tokenizer")
    return Corpus(torch.tensor(ids, dtype=torch.long), vocab)
