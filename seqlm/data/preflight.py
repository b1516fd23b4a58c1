"""Checks made once the text is read and before training, so no time is spent on a run
that cannot give a batch or a sample."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from seqlm.data.text import check_prefix_text, clean_letters
from seqlm.data.vocab import UNK, Vocab
from seqlm.errors import DataError, UsageError
from seqlm.interfaces import Sampler, Tokenizer


def check_corpus_fits(
    sampler_cls: Callable[..., Sampler],
    batch_size: int,
    num_steps: int,
    train_tokens: int,
    held_out: int = 0,
    truncated: bool = False,
    sampler_name: str = "",
) -> None:
    """Raise :class:`DataError` if ``train_tokens`` cannot give one batch of the sampler.

    The message says how many tokens there are, how many are needed, and the nearest
    settings that would fit. ``truncated`` means ``--max-tokens`` cut the text short.
    """
    needed = sampler_cls(batch_size=batch_size, num_steps=num_steps).min_tokens()
    if train_tokens >= needed:
        return
    fixes = []
    if truncated:
        fixes.append("a larger --max-tokens (0 for the whole text)")
    else:
        fixes.append("a longer text")
    fitting_batch = _largest_fitting(
        lambda b: sampler_cls(batch_size=b, num_steps=num_steps).min_tokens(),
        batch_size - 1, train_tokens)
    if fitting_batch:
        fixes.append(f"--batch-size {fitting_batch}")
    else:
        fitting_steps = _largest_fitting(
            lambda n: sampler_cls(batch_size=1, num_steps=n).min_tokens(),
            num_steps - 1, train_tokens)
        if fitting_steps:
            fixes.append(f"--batch-size 1 --num-steps {fitting_steps}")
    if held_out:
        fixes.append("a smaller --val-fraction")
    held = f" ({held_out} more are held out by --val-fraction)" if held_out else ""
    sampler = f" with the {sampler_name} sampler" if sampler_name else ""
    raise DataError(
        f"the training text has {train_tokens} tokens{held} but batches of {batch_size} x "
        f"{num_steps}{sampler} need at least {needed}; use {' or '.join(fixes)}"
    )


def _largest_fitting(min_tokens, upper: int, available: int) -> int:
    """The largest ``n`` in [1, upper] with ``min_tokens(n) <= available``, or 0."""
    low, high = 0, max(upper, 0)
    while low < high:  # min_tokens grows with n, so bisect
        mid = (low + high + 1) // 2
        if min_tokens(mid) <= available:
            low = mid
        else:
            high = mid - 1
    return low


def opening_prefix(prefix: str, tokenizer: Tokenizer, vocab: Vocab, ids: Sequence[int]) -> str:
    """The training text's first tokens, as many as ``prefix`` has: a prefix that the
    model knows, for a text where the default one does not occur."""
    count = max(1, len(tokenizer.tokenize([prefix])[0]))
    return tokenizer.detokenize(vocab.to_tokens(list(ids[:count])))


def check_prefix(prefix: str, tokenizer: Tokenizer, vocab: Vocab, clean: str) -> str | None:
    """Check that generation can start from ``prefix``; return a warning or None.

    No tokens at all, or none the vocabulary knows, is a :class:`UsageError`: the sample
    would be noise. Some unknown tokens (read as ``<unk>``) only give a warning.
    """
    check_prefix_text(prefix)
    tokens = tokenizer.tokenize([prefix])[0]
    if not tokens:
        raise UsageError(f"--prefix {prefix!r} gives no tokens; give some text to continue")
    # A tokenizer may give <unk> itself (one that learned its units, for text it cannot
    # split): that part of the prefix is as unknown as a token missing from the vocabulary.
    unknown = sorted({t for t in tokens if t not in vocab or t == UNK})
    if not unknown:
        return None
    named = [t for t in unknown if t != UNK]
    shown = ", ".join(repr(t) for t in named[:8]) + (" ..." if len(named) > 8 else "")
    hint = ""
    if clean == "letters" and clean_letters(prefix) not in (prefix, ""):
        hint = (f"; the text was cleaned to lower-case letters and spaces (--clean letters), "
                f"so try --prefix {clean_letters(prefix)!r}")
    if len(unknown) == len(set(tokens)):
        what = shown if named else f"the tokenizer reads all of it as {UNK}"
        raise UsageError(f"--prefix {prefix!r}: none of its tokens occurs in the training "
                         f"text ({what}){hint or '; use words or characters from the text'}")
    parts = [f"{shown} not in the training text, read as {UNK}"] if named else []
    if UNK in unknown:
        parts.append(f"the tokenizer reads part of it as {UNK}")
    return f"--prefix {prefix!r}: {' and '.join(parts)}{hint}"
