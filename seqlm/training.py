"""The default trainer: the seed's loop of minibatch SGD with gradient clipping."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from seqlm.callbacks import Callback, CallbackList
from seqlm.errors import DataError, TrainingError
from seqlm.interfaces import Sampler, Trainer, detach_state
from seqlm.metrics import EpochMetrics


class DefaultTrainer(Trainer):
    """Minibatch SGD, global-norm gradient clipping, perplexity per epoch.

    With a contiguous sampler the hidden state carries over from batch to batch
    (detached, i.e. truncated backpropagation through time); otherwise each batch starts
    from a fresh state, as the seed does with random sampling. The loss is summed on the
    device and read once per epoch, so the loop never waits for the host.
    """

    def __init__(
        self, lr: float, clip: float, epochs: int, device: torch.device | str = "cpu"
    ) -> None:
        super().__init__(lr=lr, clip=clip, epochs=epochs, device=device)
        self.history: list[EpochMetrics] = []

    def make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """Plain SGD over all trainable parameters, as in the seed."""
        return torch.optim.SGD(
            [p for p in model.parameters() if p.requires_grad], lr=self.lr, foreach=True
        )

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """The module that runs the training steps; ``model`` itself here.

        Must keep ``model``'s parameters and its ``begin_state``. A distributed trainer
        returns a wrapper that synchronises gradients; checkpoints still save ``model``.
        """
        return model

    def local_batch(
        self, X: torch.Tensor, Y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows of a sampled batch that this process trains on; all of them here."""
        return X, Y

    def reduce_epoch_totals(self, loss_sum: torch.Tensor, tokens: int) -> tuple[float, int]:
        """The epoch's summed loss and token count over all processes; this one's here."""
        return loss_sum.item(), tokens

    def fit(
        self,
        model: nn.Module,
        corpus: torch.Tensor,
        sampler: Sampler,
        callbacks: Sequence[Callback] = (),
    ) -> list[EpochMetrics]:
        """Train for ``self.epochs`` epochs; see :meth:`Trainer.fit`."""
        model.to(self.device)
        corpus = corpus.to(self.device)
        optimizer = self.make_optimizer(model)
        params = [p for p in model.parameters() if p.requires_grad]
        net = self.wrap_model(model)
        hooks = CallbackList(callbacks)
        self.history = []
        hooks.on_train_start(self)
        try:
            for epoch in range(1, self.epochs + 1):
                metrics = self._train_epoch(epoch, net, corpus, sampler, optimizer, params)
                self.history.append(metrics)
                hooks.on_epoch_end(self, metrics)
        except BaseException as error:
            hooks.on_exception(self, error)
            raise
        hooks.on_train_end(self, self.history)
        return self.history

    def _train_epoch(
        self,
        epoch: int,
        model: nn.Module,
        corpus: torch.Tensor,
        sampler: Sampler,
        optimizer: torch.optim.Optimizer,
        params: list[nn.Parameter],
    ) -> EpochMetrics:
        model.train()
        started = time.perf_counter()
        loss_sum = torch.zeros((), device=self.device)
        tokens = 0
        state = None
        for batch in sampler(corpus):
            X, Y = self.local_batch(*batch)
            if state is None or not sampler.contiguous:
                state = model.begin_state(X.shape[0], self.device)
            else:
                state = detach_state(state)
            logits, state = model(X, state)
            targets = Y.T.reshape(-1)
            loss = F.cross_entropy(logits, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.clip > 0:
                nn.utils.clip_grad_norm_(params, self.clip, foreach=True)
            optimizer.step()
            loss_sum += loss.detach() * targets.numel()
            tokens += targets.numel()
        if tokens == 0:
            raise DataError(
                f"the corpus ({len(corpus)} tokens) gives no batch of {sampler.batch_size} x "
                f"{sampler.num_steps}; use more text or smaller --batch-size/--num-steps"
            )
        total_loss, tokens = self.reduce_epoch_totals(loss_sum, tokens)
        mean_loss = total_loss / tokens  # the only host sync of the epoch
        if not math.isfinite(mean_loss):
            raise TrainingError(
                f"the loss became {mean_loss} at epoch {epoch}; "
                "try a smaller --lr or a smaller --clip"
            )
        return EpochMetrics(
            epoch=epoch, train_loss=mean_loss, tokens=tokens,
            seconds=time.perf_counter() - started,
        )
