"""The vocabulary: a two-way map between tokens and integer ids."""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence
from typing import Any, overload

UNK = "<unk>"


def count_tokens(tokens: Iterable[str] | Iterable[Sequence[str]]) -> collections.Counter[str]:
    """Count tokens given as a flat sequence or as a list of token lines."""
    items = list(tokens)
    if items and isinstance(items[0], (list, tuple)):
        return collections.Counter(t for line in items for t in line)
    return collections.Counter(items)  # type: ignore[arg-type]


class Vocab:
    """Token <-> id map: ``<unk>`` is id 0, then reserved tokens, then by falling frequency.

    Tokens seen fewer than ``min_freq`` times are left out and map to ``<unk>``. Ties in
    frequency keep the order of first appearance.
    """

    def __init__(
        self,
        tokens: Iterable[str] | Iterable[Sequence[str]] = (),
        min_freq: int = 0,
        reserved_tokens: Sequence[str] = (),
    ) -> None:
        counter = count_tokens(tokens)
        self.token_freqs: list[tuple[str, int]] = sorted(
            counter.items(), key=lambda item: item[1], reverse=True
        )
        self.idx_to_token: list[str] = [UNK]
        for token in reserved_tokens:
            if token not in self.idx_to_token:
                self.idx_to_token.append(token)
        self.token_to_idx: dict[str, int] = {t: i for i, t in enumerate(self.idx_to_token)}
        for token, freq in self.token_freqs:
            if freq < min_freq:
                break
            if token not in self.token_to_idx:
                self.token_to_idx[token] = len(self.idx_to_token)
                self.idx_to_token.append(token)

    @property
    def unk(self) -> int:
        """The id of ``<unk>``, which unknown tokens map to."""
        return 0

    def __len__(self) -> int:
        return len(self.idx_to_token)

    def __contains__(self, token: object) -> bool:
        return token in self.token_to_idx

    @overload
    def __getitem__(self, tokens: str) -> int: ...
    @overload
    def __getitem__(self, tokens: list[str] | tuple[str, ...]) -> list[int]: ...

    def __getitem__(self, tokens: str | list[str] | tuple[str, ...]) -> int | list[int]:
        """The id of one token, or the ids of a list of tokens (``<unk>`` if unknown)."""
        if isinstance(tokens, (list, tuple)):
            return [self.token_to_idx.get(t, self.unk) for t in tokens]
        return self.token_to_idx.get(tokens, self.unk)

    @overload
    def to_tokens(self, indices: int) -> str: ...
    @overload
    def to_tokens(self, indices: Sequence[int]) -> list[str]: ...

    def to_tokens(self, indices: int | Sequence[int]) -> str | list[str]:
        """The token of one id, or the tokens of a sequence of ids."""
        if isinstance(indices, int):
            return self.idx_to_token[indices]
        return [self.idx_to_token[int(i)] for i in indices]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form that :meth:`from_dict` restores exactly."""
        return {"idx_to_token": list(self.idx_to_token)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vocab:
        """Rebuild a vocabulary written by :meth:`to_dict`."""
        tokens = data.get("idx_to_token")
        if (
            not isinstance(tokens, list) or not tokens or tokens[0] != UNK
            or not all(isinstance(t, str) for t in tokens) or len(set(tokens)) != len(tokens)
        ):
            raise ValueError("not a seqlm vocabulary: idx_to_token must list unique strings "
                             "starting with '<unk>'")
        vocab = cls()
        vocab.idx_to_token = list(tokens)
        vocab.token_to_idx = {t: i for i, t in enumerate(tokens)}
        return vocab
