"""What every rule shares: the sizes it builds with, its small texts, and how it fails."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

#: Sizes the cell rules build with: unlike each other, so that a swapped axis shows.
INPUT_SIZE, HIDDEN_SIZE, STEPS, BATCH = 7, 6, 5, 3
#: A corpus for the sampler and trainer rules: token ``i`` is ``i % VOCAB``.
VOCAB = 11
LINES = ("the time traveller for so it will be convenient to speak of him",
         "was expounding a recondite matter to us his grey eyes shone and",
         "twinkled and his usually pale face was flushed and animated")

Rule = Callable[[type, dict[str, Any]], None]


#: How many epochs the sampler rules draw from one sampler, and how many times the
#: tokenizer rules tokenize: a component may change with each call (a schedule, a
#: counter), and a run calls it once per epoch.
EPOCHS = 3


def fail(rule: str, message: str) -> AssertionError:
    """The error of a rule that failed: ``rule NAME failed: MESSAGE``."""
    return AssertionError(f"rule {rule} failed: {message}")


def require(condition: bool, rule: str, message: str) -> None:
    """Fail ``rule`` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise fail(rule, message)


def token_corpus(length: int = 400) -> torch.Tensor:
    """A corpus of ``length`` tokens for the sampler and trainer rules: token ``i`` is
    ``i % VOCAB``."""
    return torch.arange(length, dtype=torch.long) % VOCAB
