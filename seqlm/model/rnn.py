"""The language model: token input, a recurrent cell, a linear head over the vocabulary."""

from __future__ import annotations

from typing import Literal, overload

import torch
from torch import nn
from torch.nn import functional as F

from seqlm.cells.dropout import SequenceDropout
from seqlm.interfaces import RecurrentCell, State


class RNNModel(nn.Module):
    """The seed's ``RNNModel``: one-hot (or embedded) tokens -> cell -> linear head.

    ``forward(X, state)`` takes token ids shaped ``(batch, num_steps)`` and returns
    logits shaped ``(num_steps * batch, vocab_size)`` in time-major order (row
    ``t * batch + b`` is step ``t`` of sequence ``b``) together with the new state.

    ``activation_reg`` and ``temporal_reg`` (AR and TAR of AWD-LSTM) penalise, during
    training, the mean square of the cell's outputs (after dropout) and of their change
    from one step to the next (before dropout); ``forward(X, state, with_penalty=True)``
    returns that penalty as a third value, for the trainer to add to the loss (None when
    not training or when both are 0).

    ``tie_weights`` shares the embedding matrix with the head's weight (as AWD-LSTM
    does); it needs ``embedding_dim`` equal to the cell's output size.

    ``locked_dropout`` draws ``dropout``'s masks once per sequence instead of at every
    step (:func:`seqlm.cells.dropout.sequence_dropout`); between stacked layers that is
    the cell's business (the built-in cells take a ``locked_dropout`` option).
    """

    def __init__(
        self,
        cell: RecurrentCell,
        vocab_size: int,
        embedding_dim: int = 0,
        dropout: float = 0.0,
        activation_reg: float = 0.0,
        temporal_reg: float = 0.0,
        tie_weights: bool = False,
        locked_dropout: bool = False,
    ) -> None:
        super().__init__()
        self.cell = cell
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, embedding_dim) if embedding_dim > 0 else None
        self.dropout = (SequenceDropout(dropout, locked=locked_dropout) if dropout > 0
                        else nn.Identity())
        self.head = nn.Linear(cell.output_size, vocab_size)
        if tie_weights:
            if self.embedding is None or embedding_dim != cell.output_size:
                raise ValueError("tie_weights needs embedding_dim equal to the cell's "
                                 f"output_size ({cell.output_size}), got {embedding_dim}")
            # One matrix both reads tokens in and scores them out: fewer parameters,
            # and each token's row learns from both uses.
            self.head.weight = self.embedding.weight
        self.activation_reg = activation_reg
        self.temporal_reg = temporal_reg

    @property
    def input_size(self) -> int:
        """What the cell receives per token: the vocabulary size, or the embedding size."""
        return self.embedding.embedding_dim if self.embedding is not None else self.vocab_size

    @overload
    def forward(self, tokens: torch.Tensor, state: State,
                with_penalty: Literal[False] = False) -> tuple[torch.Tensor, State]: ...
    @overload
    def forward(self, tokens: torch.Tensor, state: State, with_penalty: Literal[True]
                ) -> tuple[torch.Tensor, State, torch.Tensor | None]: ...

    def forward(
        self, tokens: torch.Tensor, state: State, with_penalty: bool = False
    ) -> tuple[torch.Tensor, State] | tuple[torch.Tensor, State, torch.Tensor | None]:
        """Logits for the token after each input token, and the cell's new state.

        With ``with_penalty`` the activation penalty comes third: a 0-d tensor while
        training with ``activation_reg`` or ``temporal_reg``, else None.
        """
        outputs, state = self.cell(self.cell_inputs(tokens.T), state)
        dropped = self.dropout(outputs)
        logits = self.head(dropped.reshape(-1, outputs.shape[-1]))
        if not with_penalty:
            return logits, state
        penalty = None
        if self.training and (self.activation_reg or self.temporal_reg):
            penalty = self.activation_penalty(outputs, dropped)
        return logits, state, penalty

    def cell_inputs(self, steps_first: torch.Tensor) -> torch.Tensor:
        """What the cell receives for token ids shaped ``(num_steps, batch)``: one-hot
        vectors, embeddings, or the ids themselves for a cell that accepts them."""
        if self.embedding is None and self.cell.accepts_token_ids:
            # The cell looks up the rows of its input weights that the one-hot vectors
            # would select: the same maths without the one-hot products.
            return steps_first
        if self.embedding is None:
            return F.one_hot(steps_first, self.vocab_size).to(self.head.weight.dtype)
        return self.dropout(self.embedding(steps_first))

    def activation_penalty(self, outputs: torch.Tensor, dropped: torch.Tensor) -> torch.Tensor:
        """``activation_reg * mean(dropped^2) + temporal_reg * mean((h[t+1] - h[t])^2)``.

        Large activations and abrupt changes between steps are what a model uses to
        memorise its training text; penalising them regularises the recurrence.
        """
        penalty = self.activation_reg * dropped.float().square().mean()
        if self.temporal_reg and outputs.shape[0] > 1:
            steps = outputs.float().diff(dim=0)
            penalty = penalty + self.temporal_reg * steps.square().mean()
        return penalty

    def begin_state(self, batch_size: int, device: torch.device | str) -> State:
        """The cell's initial state."""
        return self.cell.begin_state(batch_size, device)
