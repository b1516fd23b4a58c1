"""The run's ``summary.json``: what was trained, how well, and how fast."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from seqlm.config import RunConfig
from seqlm.metrics import EpochMetrics, bits_per_token
from seqlm.training.early_stopping import best_epoch
from seqlm.training.graph_policy import GraphReport


def summarize(
    config: RunConfig,
    device: torch.device,
    history: Sequence[EpochMetrics],
    sample: str,
    model: nn.Module,
    *,
    train_tokens: int,
    val_tokens: int,
    vocab_size: int,
    cuda_graph: GraphReport | None = None,
    stop_reason: str | None = None,
) -> dict[str, Any]:
    """The summary of a finished run; validation figures are None without held-out text.

    ``cuda_graph`` is the trainer's report of whether its step ran as a recorded CUDA
    graph (None for a trainer that has none). The best epoch is judged by the lower of
    the weights' and, with ``--average``, their average's validation loss, as the best
    checkpoint is. ``stop_reason`` says why the run stopped before its last epoch (early
    stopping); None means it ran them all.
    """
    seconds = sum(m.seconds for m in history)
    last = history[-1]
    best = best_epoch(history)
    return {
        "cell": config.cell,
        "sampler": config.sampler,
        "tokenizer": config.tokenizer,
        "trainer": config.trainer,
        "device": str(device),
        "epochs": last.epoch,
        "final_train_loss": last.train_loss,
        "final_train_ppl": last.train_ppl,
        "final_val_loss": last.val_loss,
        "final_val_ppl": last.val_ppl,
        "final_val_bits_per_token": last.val_bits,
        "best_val_ppl": best.selected_val_ppl if best else None,
        "best_val_bits_per_token": (bits_per_token(best.selected_val_loss)
                                    if best else None),
        "best_epoch": best.epoch if best else None,
        "best_is_average": best.average_is_better if best else False,
        "stopped_early": stop_reason is not None,
        "stop_reason": stop_reason or f"ran all {config.epochs} epochs",
        "tokens_per_s": sum(m.tokens for m in history) / seconds if seconds else None,
        "train_seconds": seconds,
        "corpus_tokens": train_tokens + val_tokens,
        "train_tokens": train_tokens,
        "val_tokens": val_tokens,
        "vocab_size": vocab_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "cuda_graph": cuda_graph.to_dict() if cuda_graph is not None else None,
        "sample": sample,
        "config": config.to_dict(),
    }
