"""Built-in samplers: random and sequential partitioning, with the seed's semantics.

Both start from a random offset so that each epoch sees different subsequence
boundaries. They work on a corpus tensor on any device and build each batch with one
gather, without Python loops over rows.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from seqlm.interfaces import Sampler


def _randint(low: int, high: int) -> int:
    """A uniform integer in [low, high], both ends included, from torch's generator."""
    return int(torch.randint(low, high + 1, ()).item())


class RandomSampler(Sampler):
    """Shuffled, non-overlapping subsequences; neighbouring batches are unrelated.

    The corpus is cut into ``num_steps``-long pieces after a random offset in
    ``[0, num_steps - 1]``; the pieces are shuffled and grouped ``batch_size`` at a time.
    """

    contiguous = False

    def __call__(self, corpus: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield one epoch of shuffled batches."""
        offset = _randint(0, self.num_steps - 1)
        num_subseqs = (len(corpus) - offset - 1) // self.num_steps
        num_batches = num_subseqs // self.batch_size
        starts = offset + torch.arange(num_subseqs, device=corpus.device) * self.num_steps
        starts = starts[torch.randperm(num_subseqs).to(corpus.device)]
        steps = torch.arange(self.num_steps, device=corpus.device)
        for b in range(num_batches):
            rows = starts[b * self.batch_size:(b + 1) * self.batch_size, None] + steps
            yield corpus[rows], corpus[rows + 1]

    def num_batches(self, num_tokens: int) -> int:
        """Batches per epoch for a corpus of ``num_tokens`` (the worst-case offset)."""
        return ((num_tokens - self.num_steps) // self.num_steps) // self.batch_size

    def min_tokens(self) -> int:
        """The fewest tokens that give one batch whatever the random offset."""
        return self.batch_size * self.num_steps + self.num_steps


class SequentialSampler(Sampler):
    """Each batch row continues the same row of the previous batch.

    After a random offset in ``[0, num_steps]`` the corpus is split into ``batch_size``
    equal streams, one per row, read ``num_steps`` tokens at a time.
    """

    contiguous = True

    def __call__(self, corpus: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield one epoch of batches whose rows continue from batch to batch."""
        offset = _randint(0, self.num_steps)
        num_tokens = ((len(corpus) - offset - 1) // self.batch_size) * self.batch_size
        xs = corpus[offset:offset + num_tokens].reshape(self.batch_size, -1)
        ys = corpus[offset + 1:offset + 1 + num_tokens].reshape(self.batch_size, -1)
        num_batches = xs.shape[1] // self.num_steps
        for b in range(num_batches):
            cols = slice(b * self.num_steps, (b + 1) * self.num_steps)
            yield xs[:, cols], ys[:, cols]

    def num_batches(self, num_tokens: int) -> int:
        """Batches per epoch for a corpus of ``num_tokens`` (the worst-case offset)."""
        return ((num_tokens - self.num_steps - 1) // self.batch_size) // self.num_steps

    def min_tokens(self) -> int:
        """The fewest tokens that give one batch whatever the random offset."""
        return self.batch_size * self.num_steps + self.num_steps + 1


class VariableLengthSampler(Sampler):
    """Sequential batches whose length varies around ``num_steps``, as AWD-LSTM's do.

    Rows continue from batch to batch as with the sequential sampler, but each batch's
    length is drawn afresh: usually around ``num_steps``, one time in twenty around half
    of it, with a standard deviation of 5 tokens and at least 5, so that the cut points
    move from epoch to epoch and every token is trained on at varied depths of
    backpropagation. The trainer scales each batch's learning rate by its length over
    ``num_steps``.
    """

    contiguous = True
    fixed_length = False

    #: How often a batch is drawn around half of ``num_steps``.
    HALF_CHANCE = 0.05
    #: The spread of the lengths, in tokens.
    SPREAD = 5.0
    #: The shortest batch, in tokens.
    SHORTEST = 5

    def draw_length(self) -> int:
        """One batch length, from torch's global generator."""
        centre = float(self.num_steps)
        if torch.rand(()).item() < self.HALF_CHANCE:
            centre /= 2
        drawn = int(torch.normal(torch.tensor(centre), torch.tensor(self.SPREAD)).item())
        # Never more than twice num_steps, so memory stays that of a known batch shape.
        return max(min(self.SHORTEST, self.num_steps), min(drawn, 2 * self.num_steps))

    def __call__(self, corpus: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield one epoch of contiguous batches of varying length."""
        num_tokens = ((len(corpus) - 1) // self.batch_size) * self.batch_size
        xs = corpus[:num_tokens].reshape(self.batch_size, -1)
        ys = corpus[1:1 + num_tokens].reshape(self.batch_size, -1)
        start = 0
        while start < xs.shape[1]:
            end = min(start + self.draw_length(), xs.shape[1])
            yield xs[:, start:end], ys[:, start:end]
            start = end

    def num_batches(self, num_tokens: int) -> int:
        """About how many batches an epoch of ``num_tokens`` gives (lengths are drawn)."""
        return max(1, ((num_tokens - 1) // self.batch_size) // self.num_steps)

    def min_tokens(self) -> int:
        """The fewest tokens that give one batch of ``num_steps``."""
        return self.batch_size * self.num_steps + 1
