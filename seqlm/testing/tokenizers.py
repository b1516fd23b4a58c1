"""The rules of the Tokenizer contract."""

from __future__ import annotations

from typing import Any

from seqlm.data.vocab import UNK
from seqlm.interfaces import Tokenizer
from seqlm.plugins.door import tokenizer_state_problem
from seqlm.testing.basics import EPOCHS, LINES, Rule, require


def _lines(count: int = len(LINES)) -> list[str]:
    """The first ``count`` lines, as a list of the tokenizer's own (a run's lines)."""
    return list(LINES[:count])


def _fitted(cls: type, options: dict[str, Any]) -> Tokenizer:
    tokenizer = cls(**options)
    tokenizer.fit(_lines())
    return tokenizer


def tokenizer_tokenize(cls: type, options: dict[str, Any]) -> None:
    """tokenize gives a list of string tokens for each line."""
    tokenizer, lines = cls(**options), _lines()
    tokenizer.fit(lines)
    require(lines == _lines(), "tokenizer_tokenize",
             "fit changed the lines it was given (the run's text); work on a copy")
    require(isinstance(tokenizer, Tokenizer), "tokenizer_tokenize",
             f"{cls.__qualname__} does not subclass seqlm.interfaces.Tokenizer")
    lines = _lines()
    tokens = tokenizer.tokenize(lines)
    require(lines == _lines(), "tokenizer_tokenize",
             "tokenize changed the lines it was given (the run's text); work on a copy")
    require(isinstance(tokens, list) and len(tokens) == len(LINES), "tokenizer_tokenize",
             f"expected a list of {len(LINES)} lists (one per line), got {type(tokens).__name__}")
    for line in tokens:
        require(isinstance(line, list) and line and all(isinstance(t, str) and t for t in line),
                 "tokenizer_tokenize", "each line must give a non-empty list of non-empty str")


def tokenizer_detokenize(cls: type, options: dict[str, Any]) -> None:
    """detokenize gives text back, for any tokens the vocabulary may hold, <unk> too."""
    tokenizer = _fitted(cls, options)
    tokens = tokenizer.tokenize(_lines(1))[0]
    text = tokenizer.detokenize(tokens)
    require(isinstance(text, str) and text.strip(), "tokenizer_detokenize",
             f"detokenize gave {text!r} for the tokens of a line")
    with_unk = tokenizer.detokenize([*tokens[:3], UNK, *tokens[3:5]])
    require(isinstance(with_unk, str), "tokenizer_detokenize",
             f"detokenize must take {UNK!r} (unknown tokens) and give text")


def tokenizer_deterministic(cls: type, options: dict[str, Any]) -> None:
    """Two tokenizers fitted on the same lines split them alike, and one splits them
    alike every time it is asked (a run tokenizes its text, its prefix, its samples)."""
    tokenizer = _fitted(cls, options)
    first = tokenizer.tokenize(_lines())
    require(first == _fitted(cls, options).tokenize(_lines()),
             "tokenizer_deterministic", "two fits on the same lines tokenize differently")
    for call in range(2, EPOCHS + 1):
        require(tokenizer.tokenize(_lines()) == first, "tokenizer_deterministic",
                 f"call {call} of tokenize on the same lines split them differently from "
                 "the first; tokenize must not change what it learned in fit")


def tokenizer_state_round_trip(cls: type, options: dict[str, Any]) -> None:
    """state_dict is JSON; load_state_dict on a fresh tokenizer restores the same splits."""
    tokenizer = _fitted(cls, options)
    tokenizer.tokenize(_lines())  # as a run does before its first checkpoint
    # Compared on less than it learned from, as a run compares its opening lines: a
    # tokenizer that learns in tokenize and keeps nothing shows itself there.
    problem = tokenizer_state_problem(tokenizer, lambda: cls(**options), _lines(1))
    require(problem is None, "tokenizer_state_round_trip", str(problem))


TOKENIZER_RULES: tuple[Rule, ...] = (
    tokenizer_tokenize, tokenizer_detokenize, tokenizer_deterministic,
    tokenizer_state_round_trip,
)
