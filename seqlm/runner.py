"""One training run from settings to outputs: the library behind ``seqlm run``."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from seqlm.callbacks import Callback
from seqlm.config import RunConfig
from seqlm.corpus import build_corpus, load_text
from seqlm.errors import UsageError
from seqlm.generate import generate
from seqlm.interfaces import RecurrentCell, Tokenizer
from seqlm.metrics import EpochMetrics
from seqlm.model import RNNModel
from seqlm.outputs import MetricsWriter, prepare_run_dir, write_json_atomic
from seqlm.plot import plot_perplexity
from seqlm.plugins import check_options, get_plugins
from seqlm.preflight import check_corpus_fits, check_prefix
from seqlm.progress import make_progress
from seqlm.vocab import Vocab


@dataclass
class RunResult:
    """What a run produced: its metrics, the trained model and where files went."""

    config: RunConfig
    out_dir: Path | None  # None on the non-main processes of a distributed run
    device: torch.device
    history: list[EpochMetrics]
    sample: str
    summary: dict[str, Any]
    model: RNNModel
    vocab: Vocab
    tokenizer: Tokenizer


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; a missing device is an error."""
    mps = getattr(torch.backends, "mps", None)
    mps_ok = mps is not None and mps.is_available()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_ok else torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: CUDA is not available on this machine; "
                             "use --device cpu or --device auto")
        index = torch.device(name).index
        if index is not None and index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    if name == "mps" and not mps_ok:
        raise UsageError("--device mps: Apple MPS is not available; use --device cpu or auto")
    return torch.device(name)


def build_cell(cls: type, name: str, input_size: int, config: RunConfig) -> RecurrentCell:
    """Build the cell with the size settings and any options the user passed."""
    options: dict[str, Any] = dict(config.cell_options)
    if config.bidirectional:
        options["bidirectional"] = True
    check_options("cell", name, cls, options,
                  fixed=("input_size", "hidden_size", "num_layers"),
                  flags={"bidirectional": "--bidirectional"})
    return cls(input_size=input_size, hidden_size=config.hidden,
               num_layers=config.num_layers, **options)


def run(
    config: RunConfig | None = None,
    *,
    console: Console | None = None,
    callbacks: Sequence[Callback] = (),
    **overrides: Any,
) -> RunResult:
    """Train a language model as ``seqlm run`` does and return the result.

    ``run(epochs=20, cell="gru")`` overrides the defaults of :class:`RunConfig`.
    """
    config = replace(config or RunConfig(), **overrides).validate()
    console = console or Console()
    plugins = get_plugins()
    tokenizer_cls = plugins.get("tokenizer", config.tokenizer)
    sampler_cls = plugins.get("sampler", config.sampler)
    cell_cls = plugins.get("cell", config.cell)
    trainer_cls = plugins.get("trainer", config.trainer)
    device = resolve_device(config.device)
    if config.seed is not None:
        random.seed(config.seed)
        torch.manual_seed(config.seed)

    check_options("tokenizer", config.tokenizer, tokenizer_cls, config.tokenizer_options)
    tokenizer = tokenizer_cls(**config.tokenizer_options)
    corpus = build_corpus(load_text(config.data, config.encoding), tokenizer,
                          clean=config.clean, max_tokens=config.max_tokens)
    check_corpus_fits(sampler_cls, config.batch_size, config.num_steps, len(corpus),
                      sampler_name=config.sampler,
                      truncated=0 < config.max_tokens <= len(corpus))
    prefix_warning = check_prefix(config.prefix, tokenizer, corpus.vocab, config.clean)
    if prefix_warning:
        console.print(f"warning: {prefix_warning}", highlight=False, markup=False)
    sampler = sampler_cls(batch_size=config.batch_size, num_steps=config.num_steps)
    model = RNNModel(build_cell(cell_cls, config.cell, len(corpus.vocab), config),
                     len(corpus.vocab))
    trainer = trainer_cls(lr=config.lr, clip=config.clip, epochs=config.epochs, device=device)
    # In a distributed run, rank 0 alone prints, generates and writes files.
    main = trainer.is_main_process
    if not main:
        console.quiet = True
    out_dir = prepare_run_dir(config.out, config.force) if main else None

    title = (f"seqlm: {config.cell} on {device.type}, {len(corpus):,} {config.tokenizer} "
             f"tokens, vocabulary {len(corpus.vocab)}")
    history = trainer.fit(
        model, corpus.ids, sampler,
        [make_progress(console, title), MetricsWriter(out_dir / "metrics.jsonl"), *callbacks]
        if out_dir is not None else list(callbacks),
    )
    sample = generate(model, corpus.vocab, tokenizer, config.prefix, config.predict) if main else ""
    seconds = sum(m.seconds for m in history)
    summary = {
        "cell": config.cell,
        "sampler": config.sampler,
        "tokenizer": config.tokenizer,
        "trainer": config.trainer,
        "device": str(device),
        "epochs": len(history),
        "final_train_loss": history[-1].train_loss,
        "final_train_ppl": history[-1].train_ppl,
        "tokens_per_s": sum(m.tokens for m in history) / seconds if seconds else None,
        "train_seconds": seconds,
        "corpus_tokens": len(corpus),
        "vocab_size": len(corpus.vocab),
        "parameters": sum(p.numel() for p in model.parameters()),
        "sample": sample,
        "config": config.to_dict(),
    }
    if out_dir is not None:
        write_json_atomic(out_dir / "summary.json", summary)
        plot_perplexity(history, out_dir / "perplexity.png",
                        title=f"{config.cell}, {config.sampler} sampling")
    return RunResult(config, out_dir, device, history, sample, summary, model,
                     corpus.vocab, tokenizer)
