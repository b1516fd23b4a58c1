"""One training run from settings to outputs: the library behind ``seqlm run``."""

from __future__ import annotations

import contextlib
import inspect
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

import seqlm
from seqlm.blame import blaming_plugins, calling
from seqlm.callbacks import Callback, RunInfo
from seqlm.checkpoint import CheckpointError, checkpoint_path, load_weights
from seqlm.checkpointing import LAST, CheckpointCallback
from seqlm.config import DEFAULT_PREFIX, RunConfig
from seqlm.corpus import build_corpus, load_text
from seqlm.door import (
    cell_attributes_problem,
    check_before_training,
    check_tokenizer_output,
    component_label,
    history_problem,
    refuse,
)
from seqlm.errors import DataError, OutputError, TrainingError, UsageError
from seqlm.evaluation import hold_out
from seqlm.generation import generate
from seqlm.interfaces import RecurrentCell, Tokenizer, Trainer
from seqlm.loggers import build_loggers, resolve_loggers
from seqlm.metrics import EpochMetrics
from seqlm.model import RNNModel
from seqlm.options import convert_options, same_options
from seqlm.outputs import (
    MetricsWriter,
    prepare_run_dir,
    start_run_files,
    write_json_atomic,
    write_text_atomic,
)
from seqlm.plot import PlotInBackground, start_imports
from seqlm.plugins import check_options, get_plugins
from seqlm.preflight import check_corpus_fits, check_prefix, opening_prefix
from seqlm.progress import generation_progress, log_every, make_progress
from seqlm.provenance import record, resolve
from seqlm.run_status import StatusRecorder
from seqlm.runfiles import check_names_are_files, record_written
from seqlm.runlock import hold_run_folder
from seqlm.runstate import load_run_checkpoint
from seqlm.summary import summarize
from seqlm.text import clean_lines
from seqlm.textsum import check_same_text, text_checksum
from seqlm.training import TrainerStateError
from seqlm.vocab import Vocab

#: Settings a resumed run may change; the others must stay as the checkpoint has them.
RESUMABLE = ("epochs", "device", "threads", "cuda_graph", "checkpoint_every", "prefix",
             "predict", "resume", "force", "log", "log_every", "patience")

#: Trainer options and their defaults; only changed ones are passed to the trainer.
TRAINER_OPTIONS = {"optimizer": "sgd", "weight_decay": None, "schedule": "constant",
                   "warmup_epochs": 0, "precision": "fp32", "cuda_graph": "auto",
                   "average": False, "patience": 0}

#: What the framework passes to each kind of component itself (not options).
CELL_ARGUMENTS = ("input_size", "hidden_size", "num_layers")
SAMPLER_ARGUMENTS = ("batch_size", "num_steps")
TRAINER_ARGUMENTS = ("lr", "clip", "epochs", "device")


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


def describe_device(device: torch.device, asked: str) -> str:
    """One line saying which device runs the job and why."""
    what = str(device)
    if device.type == "cuda":
        what += f" ({torch.cuda.get_device_name(device)})"
    if asked == "auto":
        reason = {"cuda": "CUDA is available", "mps": "Apple MPS is available",
                  "cpu": "neither CUDA nor Apple MPS is available"}.get(device.type, "")
        return f"device: {what} (auto: {reason})"
    return f"device: {what}"


def build_cell(cls: type, name: str, input_size: int, config: RunConfig) -> RecurrentCell:
    """Build the cell with the size settings and any options the user passed.

    ``--dropout`` also applies between stacked layers when the cell takes a ``dropout``
    option and the user did not set one with ``--cell-opt``.
    """
    options = convert_options("cell", name, cls, config.cell_options, fixed=CELL_ARGUMENTS,
                              flags={"bidirectional": "--bidirectional"},
                              origin=get_plugins().origin("cell", name))
    if config.bidirectional:
        options["bidirectional"] = True
    if (config.dropout > 0 and config.num_layers > 1 and "dropout" not in options
            and "dropout" in inspect.signature(cls).parameters):
        options["dropout"] = config.dropout
    check_options("cell", name, cls, options, fixed=CELL_ARGUMENTS,
                  flags={"bidirectional": "--bidirectional"},
                  origin=get_plugins().origin("cell", name))
    try:
        cell = cls(input_size=input_size, hidden_size=config.hidden,
                   num_layers=config.num_layers, **options)
    except (TypeError, ValueError) as exc:
        if not config.cell_options:
            raise  # nothing the user passed: a fault of the cell, shown as such
        given = " ".join(f"--cell-opt {k}={v}" for k, v in config.cell_options.items())
        raise UsageError(f"cell {name!r} rejected {given}: {exc}") from exc
    problem = cell_attributes_problem(cell)
    if problem:
        raise refuse(component_label("cell", name, get_plugins()), "cell", problem)
    return cell


def build_model(cell_cls: type, config: RunConfig, vocab_size: int) -> RNNModel:
    """The language model the settings describe, with fresh weights."""
    input_size = config.embedding_dim or vocab_size
    cell = build_cell(cell_cls, config.cell, input_size, config)
    if config.tie_weights and config.embedding_dim != cell.output_size:
        raise UsageError(f"--tie-weights shares the embedding with the output layer, so "
                         f"--embedding-dim must equal the top layer's output size "
                         f"({cell.output_size}), got {config.embedding_dim}; set "
                         f"--embedding-dim {cell.output_size} or drop --tie-weights")
    return RNNModel(cell, vocab_size, embedding_dim=config.embedding_dim,
                    dropout=config.dropout, activation_reg=config.activation_reg,
                    temporal_reg=config.temporal_reg, tie_weights=config.tie_weights)


def _resumed_config(
    checkpoint: dict[str, Any], resume: str | Path, overrides: dict[str, Any]
) -> RunConfig:
    saved = RunConfig.from_dict(checkpoint["config"])
    def same(key: str, value: Any) -> bool:
        old = getattr(saved, key, value)
        if key == "data" and old is not None and value is not None:
            return Path(old).resolve() == Path(value).resolve()
        if key.endswith("_options") and isinstance(old, dict) and isinstance(value, dict):
            return same_options(old, value)  # typed text against the saved values
        return old == value

    moved = overrides.get("data")
    if moved is not None and not same("data", moved):
        check_same_text(checkpoint, moved, resume)  # the text moved: same content, new path
    else:
        moved = None
    changed = [k for k, v in overrides.items()
               if k not in RESUMABLE and not same(k, v) and not (k == "data" and moved)]
    if changed:
        flags = ", ".join(f"--{k.replace('_options', '-opt').replace('_', '-')}"
                          for k in changed)
        raise UsageError(f"{flags} cannot change when resuming (the checkpoint fixes it); "
                         f"drop it, or start a new run with --out")
    allowed = {k: v for k, v in overrides.items() if k in RESUMABLE and k != "resume"}
    done = int(checkpoint.get("epoch", 0))
    if allowed.get("epochs", saved.epochs) < done:
        raise UsageError(f"--epochs {allowed['epochs']} is fewer than the {done} epochs the "
                         f"checkpoint in {resume} has done; give more, or leave it out")
    if moved is not None:
        allowed["data"] = moved
    return replace(saved, **allowed, resume=resume, out=checkpoint_path(resume, LAST).parent)


def _apply_trainer_options(trainer_cls: type, config: RunConfig) -> dict[str, Any]:
    origin = get_plugins().origin("trainer", config.trainer)
    options = convert_options(
        "trainer", config.trainer, trainer_cls, config.trainer_options,
        fixed=TRAINER_ARGUMENTS,
        flags={k: f"--{k.replace('_', '-')}" for k in TRAINER_OPTIONS}, origin=origin)
    options.update({k: getattr(config, k) for k, default in TRAINER_OPTIONS.items()
                    if getattr(config, k) != default})
    check_options("trainer", config.trainer, trainer_cls, options, fixed=TRAINER_ARGUMENTS,
                  origin=origin)
    return options


def _convert_component_options(
    config: RunConfig, tokenizer_cls: type, sampler_cls: type, cell_cls: type
) -> RunConfig:
    """The settings with the components' options in their declared types."""
    plugins = get_plugins()
    return replace(
        config,
        cell_options=convert_options(
            "cell", config.cell, cell_cls, config.cell_options, fixed=CELL_ARGUMENTS,
            flags={"bidirectional": "--bidirectional"},
            origin=plugins.origin("cell", config.cell)),
        tokenizer_options=convert_options(
            "tokenizer", config.tokenizer, tokenizer_cls, config.tokenizer_options,
            origin=plugins.origin("tokenizer", config.tokenizer)),
        sampler_options=convert_options(
            "sampler", config.sampler, sampler_cls, config.sampler_options,
            fixed=SAMPLER_ARGUMENTS, origin=plugins.origin("sampler", config.sampler)),
    )


def run(
    config: RunConfig | None = None,
    *,
    console: Console | None = None,
    callbacks: Sequence[Callback] = (),
    **overrides: Any,
) -> RunResult:
    """Train a language model as ``seqlm run`` does and return the result.

    ``run(epochs=20, cell="gru")`` overrides the defaults of :class:`RunConfig`.
    ``run(resume="runs/x")`` continues the run saved in that folder exactly where its
    last checkpoint left it (``epochs=`` may raise the number of epochs). An exception
    raised in a plugin's code comes out as a :class:`~seqlm.errors.PluginError` that
    names the component and its plugin.
    """
    with blaming_plugins(get_plugins()):
        return _run(config, console, callbacks, overrides)


def _run(
    config: RunConfig | None, console: Console | None, callbacks: Sequence[Callback],
    overrides: dict[str, Any],
) -> RunResult:
    config = replace(config or RunConfig(), **overrides)
    resumed: dict[str, Any] | None = None
    if config.resume is not None:
        resumed = load_run_checkpoint(config.resume, LAST)
        config = _resumed_config(resumed, config.resume, overrides)
    config.validate()
    console = console or Console()
    plugins = get_plugins()
    recorded = (resumed or {}).get("components") or {}

    def warn(line: str) -> None:
        console.print(line, highlight=False, markup=False)

    tokenizer_cls, sampler_cls, cell_cls, trainer_cls = (
        resolve(plugins, kind, getattr(config, kind), recorded.get(kind), warn)
        for kind in ("tokenizer", "sampler", "cell", "trainer"))
    config = _convert_component_options(config, tokenizer_cls, sampler_cls, cell_cls)
    loggers = resolve_loggers(config.log, plugins)
    trainer_options = _apply_trainer_options(trainer_cls, config)
    device = resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)  # for the whole process, as torch has it
    if config.seed is not None:
        random.seed(config.seed)
        torch.manual_seed(config.seed)

    if resumed is not None and config.data is not None and not Path(config.data).exists():
        raise DataError(f"the text this run trained on, {config.data}, is no longer there; "
                        f"if it moved, resume with --resume {config.resume} --data NEW_PATH")
    text = load_text(config.data, config.encoding)
    tokenizer_label = component_label("tokenizer", config.tokenizer, plugins)
    with calling("tokenizer", config.tokenizer, plugins):
        tokenizer = tokenizer_cls(**config.tokenizer_options)
        corpus = build_corpus(text, tokenizer, clean=config.clean, max_tokens=config.max_tokens,
                              label=tokenizer_label)
    # The opening lines are enough to see that detokenize keeps its contract too.
    check_tokenizer_output(tokenizer, clean_lines(text[:2000], config.clean)[:3],
                           tokenizer_label,
                           guard=lambda: calling("tokenizer", config.tokenizer, plugins))
    if resumed is not None and corpus.vocab.to_dict() != resumed["vocab"]:
        raise DataError(f"--data {config.data}: the text no longer gives the vocabulary "
                        "the checkpoint was trained with; resume on the same text")
    train_ids, val_ids = hold_out(corpus.ids, config.val_fraction)
    with calling("sampler", config.sampler, plugins):
        check_corpus_fits(partial(sampler_cls, **config.sampler_options), config.batch_size,
                          config.num_steps, len(train_ids),
                          held_out=len(val_ids), sampler_name=config.sampler,
                          truncated=0 < config.max_tokens <= len(corpus))
    try:
        prefix_warning = check_prefix(config.prefix, tokenizer, corpus.vocab, config.clean)
    except UsageError:
        if config.prefix != DEFAULT_PREFIX:
            raise  # the user's own choice: say what is wrong with it
        # The default suits the book; another text (word tokens, another language) may
        # have none of its tokens, so continue the text's own opening instead.
        # A prefix has no more tokens than characters: that many ids are enough.
        opening = opening_prefix(config.prefix, tokenizer, corpus.vocab,
                                 train_ids[:len(config.prefix)].tolist())
        prefix_warning = (f"none of the default --prefix {config.prefix!r} occurs in this "
                          f"text; continuing {opening!r} instead (choose with --prefix)")
        config = replace(config, prefix=opening)
    if prefix_warning:
        console.print(f"warning: {prefix_warning}", highlight=False, markup=False)
    with calling("sampler", config.sampler, plugins):
        sampler = sampler_cls(batch_size=config.batch_size, num_steps=config.num_steps,
                              **config.sampler_options)
    with calling("cell", config.cell, plugins):
        model = build_model(cell_cls, config, len(corpus.vocab))
    with calling("trainer", config.trainer, plugins):
        trainer = trainer_cls(lr=config.learning_rate, clip=config.clip, epochs=config.epochs,
                              device=device, **trainer_options)
        trainer.check(sampler)
    check_before_training(model, sampler, train_ids, len(corpus.vocab),
                          {"sampler": config.sampler, "cell": config.cell}, plugins)
    if config.cuda_graph is True and device.type != "cuda":
        console.print(f"note: --cuda-graph applies to CUDA only; on {device.type} the steps "
                      "run as usual", highlight=False, markup=False)
    if hasattr(trainer, "notify"):
        trainer.notify = lambda line: console.print(line, highlight=False, markup=False,
                                                    soft_wrap=True)
    if len(val_ids) and not trainer.validates:
        console.print(f"note: trainer {config.trainer!r} does not validate; the last "
                      f"{len(val_ids)} tokens are held out unused", highlight=False,
                      markup=False)
    if resumed is not None:
        with calling("trainer", config.trainer, plugins):
            _restore(model, trainer, resumed, config)
    # In a distributed run, rank 0 alone prints, generates and writes files.
    main = trainer.is_main_process
    if not main:
        console.quiet = True
    out_dir = None
    if main:
        if resumed is not None:
            out_dir = Path(config.out)
            check_names_are_files(out_dir, "--resume")
        else:
            out_dir = prepare_run_dir(config.out, config.force)
    # Held until the run returns: nothing else may write this folder meanwhile.
    with hold_run_folder(out_dir) if out_dir is not None else contextlib.nullcontext():
        if out_dir is not None:
            start_run_files(out_dir, config.force, resumed=resumed is not None)
        run_callbacks: list[Callback] = list(callbacks)
        saver = status = None
        if out_dir is not None:
            components = record(plugins, {kind: getattr(config, kind) for kind in
                                          ("tokenizer", "sampler", "cell", "trainer")})
            text_sha256 = text_checksum(config.data) if config.data is not None else None
            saver = CheckpointCallback(
                out_dir, model,
                lambda: {**_describe(config, corpus.vocab, tokenizer, components),
                         "data_sha256": text_sha256},
                every=config.checkpoint_every,
            )
            if resumed is not None:  # until an epoch ends, the checkpoint resumed from stands
                saver.saved_epoch = int(resumed["epoch"]) or None
            status = StatusRecorder(
                out_dir, _describe(config, corpus.vocab, tokenizer, components)["config"])
        try:
            console.print(describe_device(device, config.device), highlight=False, markup=False)
            if out_dir is not None:
                metrics_path = out_dir / "metrics.jsonl"
                # A resumed run's metrics restart from its checkpoint's, dropping later rows.
                write_text_atomic(metrics_path, "".join(
                    f"{json.dumps(m.to_dict())}\n" for m in trainer.history
                ) if resumed is not None else "")
                title = (f"seqlm: {config.cell} on {device.type}, {len(train_ids):,} training "
                         f"+ {len(val_ids):,} held-out {config.tokenizer} tokens, vocabulary "
                         f"{len(corpus.vocab)}")
                every = config.log_every or log_every(config.epochs)
                info = RunInfo(out_dir, status.config, every,
                               lambda length: generate(model, corpus.vocab, tokenizer,
                                                       config.prefix, length))
                run_callbacks = [make_progress(console, title, every),
                                 MetricsWriter(metrics_path), saver,
                                 *build_loggers(loggers, info), *callbacks, status]
                start_imports()  # matplotlib loads while the run trains
            with calling("trainer", config.trainer, plugins):
                history = trainer.fit(model, train_ids, sampler, run_callbacks,
                                      val_corpus=val_ids if len(val_ids) else None)
        except TrainerStateError as error:
            raise TrainerStateError(f"{checkpoint_path(config.out, LAST)}: {error}") from None
        except OutputError as error:  # a full disk while writing metrics, say
            kept = saver.saved_epoch if saver is not None else None
            if kept:
                raise OutputError(f"{error}. The checkpoint of epoch {kept} is kept in "
                                  f"{out_dir}") from None
            raise
        except TrainingError as error:
            kept = saver.saved_epoch if saver is not None else None
            if kept:
                raise TrainingError(f"{error}. The last good checkpoint, of epoch {kept}, is in "
                                    f"{out_dir}") from error
            raise
        except (KeyboardInterrupt, BrokenPipeError):
            # Ctrl-C, a stop signal under the CLI, or a closed output pipe: say truly what
            # is kept (on stderr, which may still be open).
            if saver is not None:
                Console(stderr=True).print(saver.stop_message(), highlight=False,
                                           markup=False, soft_wrap=True)
            raise
        problem = history_problem(history)
        if problem:
            raise refuse(component_label("trainer", config.trainer, plugins), "trainer", problem)

        def summary_with(sample: str | None) -> dict[str, Any]:
            return summarize(config, device, history, sample, model,
                             train_tokens=len(train_ids), val_tokens=len(val_ids),
                             vocab_size=len(corpus.vocab),
                             cuda_graph=getattr(trainer, "graph_report", None),
                             stop_reason=trainer.stop_reason)

        def with_checkpoint_kept(error: OutputError) -> OutputError:
            return OutputError(f"{error}. The checkpoint of epoch {saver.saved_epoch} is kept "
                               f"in {out_dir}")

        # The plot draws in the background while the sample is generated.
        plot = (PlotInBackground(history, out_dir / "perplexity.png",
                                 title=f"{config.cell}, {config.sampler} sampling")
                if out_dir is not None else None)

        def finish_plot() -> None:
            plot.wait()
            record_written(out_dir, out_dir / "perplexity.png")

        try:
            if out_dir is not None:
                # Written before generating, so that a long generation, if stopped, loses
                # neither the summary nor (once it is drawn) the plot.
                write_json_atomic(out_dir / "summary.json", summary_with(None))
            sample = ""
            if main:
                try:
                    sample = generate(model, corpus.vocab, tokenizer, config.prefix,
                                      config.predict, on_progress=generation_progress(
                                          console, config.predict))
                except KeyboardInterrupt:
                    if out_dir is not None:
                        files = "the checkpoint and summary.json are"
                        with contextlib.suppress(Exception):
                            finish_plot()
                            files = "the checkpoint, summary.json and perplexity.png are"
                        Console(stderr=True).print(
                            f"Stopped while generating; {files} in {out_dir}.",
                            highlight=False, markup=False, soft_wrap=True)
                    raise
            summary = summary_with(sample)
            if out_dir is not None:
                write_json_atomic(out_dir / "summary.json", summary)
        except OutputError as error:
            raise with_checkpoint_kept(error) from None
        finally:
            if plot is not None:
                plot.join()  # no thread writes the folder once the run has returned
        if plot is not None:
            try:
                finish_plot()
            except OutputError as error:
                raise with_checkpoint_kept(error) from None
        if status is not None:
            status.finish()
        return RunResult(config, out_dir, device, history, sample, summary, model,
                         corpus.vocab, tokenizer)


def _describe(
    config: RunConfig, vocab: Vocab, tokenizer: Tokenizer, components: dict[str, Any]
) -> dict[str, Any]:
    """The parts of a checkpoint that stay the same while the run trains."""
    settings = config.to_dict()
    if settings["data"] is not None:
        # Absolute, so that --resume finds the text from any working directory.
        settings["data"] = str(Path(settings["data"]).resolve())
    settings["resume"] = None
    return {
        "seqlm_version": seqlm.__version__,
        "config": settings,
        "vocab": vocab.to_dict(),
        "tokenizer": {"name": config.tokenizer, "state": tokenizer.state_dict()},
        "cell": config.cell,
        "sampler": config.sampler,
        "trainer": config.trainer,
        # Which distribution and version provided each component (seqlm.provenance).
        "components": components,
    }


def _restore(
    model: RNNModel, trainer: Trainer, checkpoint: dict[str, Any], config: RunConfig
) -> None:
    load_weights(model, checkpoint.get("model"), config.out)
    state = checkpoint.get("trainer")
    if state is None:
        raise UsageError(f"trainer {config.trainer!r} cannot resume from {config.out}: it "
                         "keeps no state in checkpoints; start a new run")
    try:
        trainer.load_state_dict(state)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # The state is read from a file that may have been edited: a fault of the file.
        raise CheckpointError(f"{checkpoint_path(config.out, LAST)}: the field 'trainer' does "
                              f"not hold a state trainer {config.trainer!r} can resume from "
                              f"({type(exc).__name__}: {exc}); restore the file, or train "
                              "again") from None
