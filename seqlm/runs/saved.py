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

from seqlm.checkpoints.format import BEST, LAST, checkpoint_path, load_weights
from seqlm.checkpoints.runstate import load_run_checkpoint, read_saved_run
from seqlm.config import RunConfig
from seqlm.config.bounds import check_device_name, check_seed
from seqlm.config.recipes import recipe_text
from seqlm.data.preflight import check_prefix
from seqlm.data.vocab import Vocab
from seqlm.errors import CheckpointError, DataError, UsageError
from seqlm.interfaces import Tokenizer
from seqlm.metrics import bits_per_token, perplexity
from seqlm.model.limits import check_generate_length, check_temperature
from seqlm.model.rnn import RNNModel
from seqlm.plugins.manager import check_options, get_plugins
from seqlm.plugins.provenance import resolve
from seqlm.runs.build import build_model, build_tokenizer, resolve_device
from seqlm.training.dynamic_eval import DynamicSettings, dynamic_loss
from seqlm.training.evaluation import evaluate_loss


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
    check_device_name(device)
    name = LAST if which == "last" else BEST
    if name == BEST and not checkpoint_path(run_dir, BEST).is_file():
        name = LAST
    saved = read_saved_run(load_run_checkpoint(run_dir, name), run_dir)
    placed = resolve_device(device)  # the user's choice: its errors are the user's
    plugins = get_plugins()
    tokenizer_cls = resolve(plugins, "tokenizer", saved.tokenizer_name,
                            saved.components.get("tokenizer"), warn)
    cell_cls = resolve(plugins, "cell", saved.cell_name, saved.components.get("cell"), warn)
    try:
        # The options come from the checkpoint: a bad one is the file's fault.
        check_options("tokenizer", saved.tokenizer_name, tokenizer_cls,
                      saved.config.tokenizer_options)
        tokenizer = build_tokenizer(tokenizer_cls, saved.tokenizer_name,
                                    saved.config.tokenizer_options, saved.tokenizer_state)
        model = build_model(cell_cls, saved.config, len(saved.vocab))
    except UsageError as error:
        raise CheckpointError(f"{checkpoint_path(run_dir, name)}: {error}; the file was "
                              "edited or damaged") from None
    load_weights(model, saved.weights, run_dir)
    model.to(placed).eval()
    return TrainedModel(model, saved.vocab, tokenizer, saved.config, saved.epoch, name)


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
    from seqlm.model.generation import generate

    # Checked before the model loads: each would otherwise fail midway, in torch.
    check_generate_length("--length", length)
    if not greedy:
        check_temperature(temperature)
    check_seed(seed)
    trained = load_trained(run_dir, which, device, warn)
    if prefix is None:
        prefix = trained.config.prefix
    # As seqlm run checks its --prefix: none of its tokens known is an error (the text
    # would be noise), some unknown a note, with the cleaning's hint where it applies.
    note = check_prefix(prefix, trained.tokenizer, trained.vocab,
                        trained.config.clean) if prefix else None
    if note and warn is not None:
        warn(f"warning: {note}")
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
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Perplexity and bits per token of the model in ``run_dir`` on the text in ``data``.

    The text is cleaned and tokenized as the run's training text was; tokens the
    vocabulary lacks count as ``<unk>`` (and are reported). With ``dynamic`` the result
    also has a ``dynamic`` entry: the same figures under dynamic evaluation
    (:mod:`seqlm.training.dynamic_eval`), which adapts a copy of the model, never the saved
    run (``progress`` follows it: see :func:`~seqlm.training.dynamic_eval.dynamic_loss`),
    with the static figures of the text read as the same streams beside them
    (``static_perplexity``, ``static_loss``; reading a text as fewer, longer streams gives
    a few tokens more context, so these can differ slightly from the top-level figures).
    """
    from seqlm.data.corpus import text_tokens
    from seqlm.data.text import read_text

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
        # The static figure again, read as the dynamic one reads the text (one pass without
        # gradients, little beside the adapting pass), so that the two compare token for token.
        static_sum, dynamic_count = evaluate_loss(trained.model, ids, dynamic.streams)
        static = static_sum.item() / dynamic_count
        dynamic_sum, _ = dynamic_loss(trained.model, ids, dynamic, progress)
        adapted = dynamic_sum / dynamic_count
        result["dynamic"] = {
            "perplexity": perplexity(adapted),
            "bits_per_token": bits_per_token(adapted),
            "loss": adapted,
            "static_perplexity": perplexity(static),
            "static_loss": static,
            "tokens": dynamic_count,
            **asdict(dynamic),
        }
    return result


def run_recipe(run_dir: str | Path) -> str:
    """The settings of the run in ``run_dir`` as a recipe (from its last checkpoint)."""
    state = load_run_checkpoint(run_dir, LAST)  # its fields checked, as for a resume
    settings = RunConfig.from_dict(state["config"]).to_dict()
    return recipe_text(settings, title=f"seqlm run --config FILE: the settings of {run_dir} "
                       f"(epoch {state.get('epoch', '?')}, seqlm "
                       f"{state.get('seqlm_version', '?')})")
