"""The run's ``summary.json``: what was trained, how well, and how fast."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from seqlm.config import RunConfig
from seqlm.graph_policy import GraphReport
from seqlm.metrics import EpochMetrics


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
) -> dict[str, Any]:
    """The summary of a finished run; validation figures are None without held-out text.

    ``cuda_graph`` is the trainer's report of whether its step ran as a recorded CUDA
    graph (None for a trainer that has none).
    """
    seconds = sum(m.seconds for m in history)
    last = history[-1]
    validated = [m for m in history if m.val_loss is not None]
    best = min(validated, key=lambda m: m.val_loss) if validated else None
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
        "best_val_ppl": best.val_ppl if best else None,
        "best_val_bits_per_token": best.val_bits if best else None,
        "best_epoch": best.epoch if best else None,
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
