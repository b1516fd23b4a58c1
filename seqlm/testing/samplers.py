"""The rules of the Sampler contract."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from seqlm.interfaces import Sampler
from seqlm.plugins.door import batch_problem, endless_epoch_problem
from seqlm.testing.basics import BATCH, EPOCHS, STEPS, Rule, require, token_corpus


def _sampler(cls: type, options: dict[str, Any], batch_size: int = BATCH,
             num_steps: int = STEPS) -> Sampler:
    return cls(batch_size=batch_size, num_steps=num_steps, **options)


def _epoch(sampler: Sampler, corpus: torch.Tensor, rule: str) -> Iterator[Any]:
    """The sampler's batches of one epoch of ``corpus``, failing ``rule`` where the epoch
    does not end (every batch takes at least one token of each row, so an epoch of a
    corpus of N tokens has fewer than N batches) or where the sampler changes the corpus
    it was given (the run's training text)."""
    before = corpus.clone()
    for count, batch in enumerate(sampler(corpus), start=1):
        endless = endless_epoch_problem(count, len(corpus))
        require(endless is None, rule, str(endless))
        yield batch
    require(torch.equal(corpus, before), rule,
             "the sampler changed the corpus it was given (the run's training text); "
             "copy it before changing anything")


def sampler_builds(cls: type, options: dict[str, Any]) -> None:
    """Built with keywords, the sampler keeps batch_size and num_steps."""
    sampler = _sampler(cls, options)
    require(isinstance(sampler, Sampler), "sampler_builds",
             f"{cls.__qualname__} does not subclass seqlm.interfaces.Sampler")
    require((sampler.batch_size, sampler.num_steps) == (BATCH, STEPS), "sampler_builds",
             f"batch_size, num_steps are {sampler.batch_size}, {sampler.num_steps}; expected "
             f"{BATCH}, {STEPS}: call super().__init__(batch_size, num_steps)")
    require(isinstance(cls.contiguous, bool), "sampler_builds",
             "the class attribute contiguous must be True or False")
    require(isinstance(cls.fixed_length, bool), "sampler_builds",
             "the class attribute fixed_length must be True or False")


#: Corpus lengths the batch rule draws from besides 400: one of each remainder by
#: batch_size x num_steps, so that a batch that comes out short (or long) only at some
#: lengths shows.
OTHER_LENGTHS = tuple(range(401, 401 + BATCH * STEPS))


def sampler_batches(cls: type, options: dict[str, Any]) -> None:
    """Every batch of every epoch is a pair of int64 tensors (batch_size, num_steps), Y
    one token on, from a corpus of any length.

    A sampler whose ``fixed_length`` is false may vary the length, from 1 to twice
    ``num_steps``.
    """
    sampler = _sampler(cls, options)
    draws = [(epoch, 400) for epoch in range(1, EPOCHS + 1)]
    draws += [(1, length) for length in OTHER_LENGTHS]
    for epoch, length in draws:
        if length != 400 and epoch == 1:
            sampler = _sampler(cls, options)  # a fresh one, as a run of that text has
        corpus = torch.arange(length, dtype=torch.long)
        where = "" if length == 400 else f" of a corpus of {length} tokens"
        count = 0
        for count, batch in enumerate(_epoch(sampler, corpus, "sampler_batches"), start=1):
            problem = batch_problem(batch, BATCH, STEPS, len(corpus),
                                    fixed_length=cls.fixed_length)
            # Counted from 1, as the run counts them.
            require(problem is None, "sampler_batches",
                     f"epoch {epoch}, batch {count}{where}: {problem}")
        require(count > 0, "sampler_batches",
                 f"epoch {epoch}: no batch from a corpus of {length} tokens")


def sampler_min_tokens(cls: type, options: dict[str, Any]) -> None:
    """A corpus of min_tokens() tokens gives at least one batch, whatever the seed."""
    for batch_size, num_steps in ((1, 1), (2, 3), (4, 2)):
        sampler = _sampler(cls, options, batch_size, num_steps)
        need = sampler.min_tokens()
        require(isinstance(need, int) and need > 0, "sampler_min_tokens",
                 f"min_tokens() must be a positive int, got {need!r}")
        for seed in range(5):
            torch.manual_seed(seed)
            batches = list(_epoch(sampler, token_corpus(need), "sampler_min_tokens"))
            require(len(batches) > 0, "sampler_min_tokens",
                     f"min_tokens() is {need} for batches of {batch_size} x {num_steps}, but "
                     f"{need} tokens gave no batch (seed {seed})")


def sampler_deterministic_under_a_seed(cls: type, options: dict[str, Any]) -> None:
    """The same seed gives the same batches."""
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        runs.append([X.tolist() for X, _ in _epoch(_sampler(cls, options), token_corpus(),
                                                    "sampler_deterministic_under_a_seed")])
    require(runs[0] == runs[1], "sampler_deterministic_under_a_seed",
             "the same seed gave other batches; draw random numbers from torch's generator")


def sampler_contiguous_as_declared(cls: type, options: dict[str, Any]) -> None:
    """With contiguous true, row i of each batch continues row i of the one before."""
    if not cls.contiguous:
        return
    corpus = torch.arange(400, dtype=torch.long)
    previous = None
    for X, _ in _epoch(_sampler(cls, options), corpus, "sampler_contiguous_as_declared"):
        if previous is not None:
            require(torch.equal(X[:, 0], previous[:, -1] + 1), "sampler_contiguous_as_declared",
                     "contiguous is true, but a batch's rows do not continue the rows of "
                     "the batch before")
        previous = X


SAMPLER_RULES: tuple[Rule, ...] = (
    sampler_builds, sampler_batches, sampler_min_tokens, sampler_deterministic_under_a_seed,
    sampler_contiguous_as_declared,
)
