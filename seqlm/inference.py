"""Using a trained run: load its checkpoint, generate text, measure it on a text.

This is the library behind ``seqlm generate`` and ``seqlm eval``. Everything needed to
rebuild the model (settings, vocabulary, tokenizer state, component names) comes from
the checkpoint's JSON, and the weights from its safetensors file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from seqlm.blame import calling
from seqlm.bounds import (
    check_device_name,
    check_generate_length,
    check_seed,
    check_temperature,
)
from seqlm.checkpoint import CheckpointError, checkpoint_path, load_weights
from seqlm.checkpointing import BEST, LAST
from seqlm.config import RunConfig
from seqlm.dynamic_eval import DynamicSettings, dynamic_loss
from seqlm.errors import DataError, UsageError
from seqlm.evaluation import evaluate_loss
from seqlm.interfaces import Tokenizer
from seqlm.metrics import bits_per_token, perplexity
from seqlm.model import RNNModel
from seqlm.plugins import check_options, get_plugins
from seqlm.provenance import resolve
from seqlm.runstate import load_run_checkpoint
from seqlm.vocab import UNK, Vocab


@dataclass
class TrainedModel:
    """A model rebuilt from a checkpoint, with what it needs to read and write text."""

    model: RNNModel
    vocab: Vocab
    tokenizer: Tokenizer
    config: RunConfig
    epoch: int
    name: str  # "best" or "checkpoint"


def load_trained(
    run_dir: str | Path, which: str = "best", device: str = "cpu",
    warn: Callable[[str], None] | None = None,
) -> TrainedModel:
    """Rebuild the model saved in ``run_dir``: ``which`` is ``best`` or ``last``.

    ``best`` falls back to the last checkpoint when the run kept no best one (it held
    out no text). Weights load on the CPU first, whatever device wrote them, then move
    to ``device``. A component whose plugin is missing is an error naming the package to
    install; ``warn`` hears of a different installed version.
    """
    from seqlm.runner import build_model, resolve_device

    check_device_name(device)
    name = LAST if which == "last" else BEST
    if name == BEST and not checkpoint_path(run_dir, BEST).is_file():
        name = LAST
    state = load_run_checkpoint(run_dir, name)
    try:
        config = RunConfig.from_dict(state["config"])
        vocab = Vocab.from_dict(state["vocab"])
        tokenizer_info = state["tokenizer"]
        weights = state["model"]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"the checkpoint in {run_dir} lacks what a model needs ({exc}); "
                              "it is damaged") from None
    plugins = get_plugins()
    recorded = state.get("components") if isinstance(state.get("components"), dict) else {}
    tokenizer_name = tokenizer_info["name"]
    cell_name = state.get("cell", config.cell)
    tokenizer_cls = resolve(plugins, "tokenizer", tokenizer_name, recorded.get("tokenizer"), warn)
    cell_cls = resolve(plugins, "cell", cell_name, recorded.get("cell"), warn)
    try:
        # The options come from the checkpoint: a bad one is the file's fault.
        check_options("tokenizer", tokenizer_name, tokenizer_cls, config.tokenizer_options)
        with calling("tokenizer", tokenizer_name, plugins):
            tokenizer = tokenizer_cls(**config.tokenizer_options)
            tokenizer.load_state_dict(tokenizer_info.get("state") or {})
        with calling("cell", cell_name, plugins):
            model = build_model(cell_cls, config, len(vocab))
    except UsageError as error:
        raise CheckpointError(f"{checkpoint_path(run_dir, name)}: {error}; the file was "
                              "edited or damaged") from None
    load_weights(model, weights, run_dir)
    model.to(resolve_device(device)).eval()
    return TrainedModel(model, vocab, tokenizer, config, int(state.get("epoch", 0)), name)


def generate_text(
    run_dir: str | Path,
    prefix: str | None,
    length: int,
    *,
    which: str = "best",
    device: str = "cpu",
    temperature: float = 1.0,
    top_k: int = 0,
    greedy: bool = False,
    seed: int | None = None,
    warn: Callable[[str], None] | None = None,
) -> str:
    """Continue ``prefix`` with ``length`` tokens from the model in ``run_dir``.

    ``prefix=None`` continues the prefix the run itself continued (its ``--prefix``, or
    the text's opening where the text lacked the default's tokens). Sampling draws from
    a generator seeded with ``seed`` on the model's device, so a seed gives the same
    text every time on that kind of device (CUDA draws other numbers than the CPU). Prefix
    tokens missing from the vocabulary read as ``<unk>``; ``warn`` hears about them.
    """
    from seqlm.generation import generate

    # Checked before the model loads: each would otherwise fail midway, in torch.
    check_generate_length("--length", length)
    if not greedy:
        check_temperature(temperature)
    check_seed(seed)
    trained = load_trained(run_dir, which, device, warn)
    if prefix is None:
        prefix = trained.config.prefix
    tokens = trained.tokenizer.tokenize([prefix])[0] if prefix else []
    unknown = sorted({t for t in tokens if t not in trained.vocab})
    if unknown and warn is not None:
        shown = ", ".join(repr(t) for t in unknown[:10])
        warn(f"note: the prefix has tokens the model never saw, read as {UNK}: {shown}")
    # Drawn on the model's device, so no token travels to the host until the end; a
    # seed gives the same text on the same kind of device.
    device_of_model = next(trained.model.parameters()).device
    generator = (torch.Generator(device=device_of_model).manual_seed(seed)
                 if seed is not None else None)
    return generate(trained.model, trained.vocab, trained.tokenizer, prefix, length,
                    greedy=greedy, temperature=temperature, top_k=top_k, generator=generator)


def evaluate_text(
    run_dir: str | Path,
    data: str | Path,
    *,
    which: str = "best",
    device: str = "cpu",
    encoding: str = "utf-8",
    warn: Callable[[str], None] | None = None,
    dynamic: DynamicSettings | None = None,
) -> dict[str, Any]:
    """Perplexity and bits per token of the model in ``run_dir`` on the text in ``data``.

    The text is cleaned and tokenized as the run's training text was; tokens the
    vocabulary lacks count as ``<unk>`` (and are reported). With ``dynamic`` the result
    also has a ``dynamic`` entry: the same figures under dynamic evaluation
    (:mod:`seqlm.dynamic_eval`), which adapts a copy of the model, never the saved run.
    """
    from seqlm.corpus import text_tokens
    from seqlm.text import read_text

    trained = load_trained(run_dir, which, device, warn)
    text = read_text(data, encoding=encoding)
    try:
        tokens = text_tokens(text, trained.tokenizer, trained.config.clean)
    except DataError:
        # The cleaning is the run's (it cannot change here), so say so.
        raise DataError(f"--data {data}: nothing is left after the run's cleaning "
                        f"(--clean {trained.config.clean}); give a text with letters") from None
    if len(tokens) < 2:
        raise DataError(f"--data {data}: fewer than two tokens after --clean "
                        f"{trained.config.clean}; give a longer text")
    ids = torch.tensor(trained.vocab[tokens], dtype=torch.long)
    unknown = sum(1 for t in tokens if t not in trained.vocab)
    loss_sum, count = evaluate_loss(trained.model, ids, trained.config.batch_size)
    loss = loss_sum.item() / count
    result: dict[str, Any] = {
        "perplexity": perplexity(loss),
        "bits_per_token": bits_per_token(loss),
        "loss": loss,
        "tokens": count,
        "unknown_tokens": unknown,
        "tokenizer": trained.config.tokenizer,
        "checkpoint": "best" if trained.name == BEST else "last",
        "epoch": trained.epoch,
    }
    if dynamic is not None:
        dynamic_sum, _ = dynamic_loss(trained.model, ids, dynamic, trained.config.batch_size)
        adapted = dynamic_sum / count
        result["dynamic"] = {
            "perplexity": perplexity(adapted),
            "bits_per_token": bits_per_token(adapted),
            "loss": adapted,
            **asdict(dynamic),
        }
    return result
