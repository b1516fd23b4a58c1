"""One training run from settings to outputs: the library behind ``seqlm run``.

:func:`run` goes through named stages, each a function of its own:

1. :func:`~seqlm.runs.settle.settle`: the settings, a resumed run's from its checkpoint;
2. :func:`resolve_components`: the classes the settings name, their options typed;
3. :func:`set_up_process`: the device, the thread count and the seed;
4. :func:`prepare_data`: the text read, tokenized, held out and checked;
5. :func:`build`: the sampler, the model, the trainer, checked at the door;
6. :func:`train_in_folder`: training, with the run folder held and written;
7. :func:`finish`: the summary, the plot and the sample.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from seqlm.checkpoints.format import LAST, checkpoint_path
from seqlm.checkpoints.runstate import describe_run, restore_run
from seqlm.checkpoints.saver import CheckpointCallback, CheckpointWriter
from seqlm.config import DEFAULT_PREFIX, RunConfig
from seqlm.data.corpus import Corpus, build_corpus, load_text
from seqlm.data.preflight import check_corpus_fits, check_prefix, opening_prefix
from seqlm.data.text import clean_lines
from seqlm.data.textsum import text_checksum
from seqlm.data.vocab import Vocab
from seqlm.errors import (
    CheckpointError,
    DataError,
    OutputError,
    SeqlmError,
    TrainingError,
    UsageError,
    refuse,
)
from seqlm.interfaces import Callback, RunInfo, Sampler, Tokenizer, Trainer
from seqlm.metrics import EpochMetrics
from seqlm.model.generation import generate
from seqlm.model.rnn import RNNModel
from seqlm.plugins.blame import blaming_plugins, calling
from seqlm.plugins.door import (
    CheckedSampler,
    check_before_training,
    check_tokenizer_output,
    component_label,
    history_problem,
    rng_kept,
    tokenizer_state_problem,
)
from seqlm.plugins.loggers import build_loggers, resolve_loggers
from seqlm.plugins.manager import check_options, get_plugins
from seqlm.plugins.options import convert_options
from seqlm.plugins.provenance import record, resolve_all
from seqlm.runs.build import (
    SAMPLER_ARGUMENTS,
    TRAINER_ARGUMENTS,
    build_model,
    build_tokenizer,
    cell_options,
    describe_device,
    process_kept,
    resolve_device,
    unlocked_layers_note,
    use_threads,
)
from seqlm.runs.outputs import (
    MetricsWriter,
    prepare_run_dir,
    start_run_files,
    write_json_atomic,
    write_text_atomic,
)
from seqlm.runs.plot import PlotInBackground, start_imports
from seqlm.runs.progress import (
    PipeAwareConsole,
    generation_progress,
    log_every,
    make_progress,
    notes_console,
    pipe_aware_console,
)
from seqlm.runs.settle import settle
from seqlm.runs.status import StatusRecorder
from seqlm.runs.summary import summarize
from seqlm.storage.runfiles import check_names_are_files, record_written
from seqlm.storage.runlock import hold_run_folder
from seqlm.training.evaluation import hold_out
from seqlm.training.trainer import TrainerStateError

#: Settings passed to the trainer as options, only where they differ from the default
#: (so that a third-party trainer that lacks them still works with the defaults).
TRAINER_SETTINGS = ("optimizer", "weight_decay", "schedule", "warmup_epochs", "precision",
                    "cuda_graph", "average", "patience")

KINDS = ("tokenizer", "sampler", "cell", "trainer")


@dataclass
class RunResult:
    """What a run produced: its metrics, the trained model (in evaluation mode, as a
    loaded run's is) and where files went."""

    config: RunConfig
    out_dir: Path | None  # None on the non-main processes of a distributed run
    device: torch.device
    history: list[EpochMetrics]
    sample: str
    summary: dict[str, Any]
    model: RNNModel
    vocab: Vocab
    tokenizer: Tokenizer


@dataclass
class Components:
    """The classes that implement the run's tokenizer, sampler, cell and trainer."""

    tokenizer: type
    sampler: type
    cell: type
    trainer: type
    #: What the trainer is built with besides the arguments every trainer takes.
    trainer_options: dict[str, Any]
    #: The loggers ``--log`` turns on, as (name, class) pairs.
    loggers: list[Any]


@dataclass
class PreparedData:
    """The text as the run trains on it."""

    tokenizer: Tokenizer
    corpus: Corpus
    train_ids: torch.Tensor
    val_ids: torch.Tensor


@dataclass
class Built:
    """The run's parts, ready to train."""

    model: RNNModel
    device: torch.device
    sampler: Sampler
    trainer: Trainer


def run(
    config: RunConfig | None = None,
    *,
    quiet: bool = False,
    console: Console | None = None,
    callbacks: Iterable[Callback] = (),
    **overrides: Any,
) -> RunResult:
    """Train a language model as ``seqlm run`` does and return the result.

    ``run(epochs=20, cell="gru")`` overrides the defaults of :class:`RunConfig`.
    ``run(resume="runs/x")`` continues the run saved in that folder exactly where its
    last checkpoint left it (``epochs=`` may raise the number of epochs). Progress and
    notes go to ``console`` (a :class:`rich.console.Console`); by default progress goes
    to stdout, and notes too on a terminal, else to stderr. ``quiet=True`` prints
    nothing. ``callbacks`` (instances of
    :class:`~seqlm.interfaces.Callback`) hear the run as the built-in ones do. An
    exception raised in a plugin's code comes out as a
    :class:`~seqlm.errors.PluginError` that names the component and its plugin.

    ``seed`` and ``threads`` hold for the run only: however it ends, torch's thread count
    and default dtype are given back as they were, and so are the random generators
    (Python's, torch's on the CPU, and on the GPUs CUDA was already using) that a seed
    set; with ``seed=None`` the run draws from them and leaves them moved on.
    """
    callbacks = _callbacks_list(callbacks)
    if not isinstance(quiet, bool):
        raise UsageError(f"quiet must be True or False, got {quiet!r}")
    if console is not None and not isinstance(console, Console):
        raise UsageError(f"console must be a rich.console.Console, got "
                         f"{type(console).__name__}; or leave it out for one on stdout")
    with blaming_plugins(get_plugins()), process_kept() as kept:
        # quiet wins over a console of the caller's too: it asks for nothing printed.
        console = Console(quiet=True) if quiet else console or pipe_aware_console()
        config, resumed = settle(config, overrides)
        config, components = resolve_components(config, resumed, console)
        if config.seed is not None:
            # Seeded for the run alone; with seed=None the run draws from the caller's
            # generators and leaves them moved on, as any other draw would.
            kept.enter_context(rng_kept())
        device = set_up_process(config)
        config, data = prepare_data(config, components, resumed, console)
        built = build(config, components, data, device, resumed, console)
        return train_in_folder(config, components, data, built, resumed, console, callbacks)


def _callbacks_list(callbacks: Any) -> list[Callback]:
    """``callbacks`` as a list, read once (a generator is taken, not used up by a check),
    each a :class:`Callback`; anything else is a usage error that says what to give."""
    wanted = "callbacks must be a list of seqlm.interfaces.Callback instances, got"
    if isinstance(callbacks, Callback):
        raise UsageError(f"{wanted} one {type(callbacks).__name__}; give callbacks=[it]")
    if isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, Iterable):
        raise UsageError(f"{wanted} {type(callbacks).__name__}")
    given = list(callbacks)
    wrong = [c for c in given if not isinstance(c, Callback)]
    if wrong:
        raise UsageError(f"{wanted} {type(wrong[0]).__name__}")
    return given


def _say(console: Console, line: str) -> None:
    console.print(line, highlight=False, markup=False, soft_wrap=True)


def _warn(console: Console, line: str) -> None:
    """A warning or note, where :func:`~seqlm.runs.progress.notes_console` says (stderr,
    for ``seqlm run ... > log`` and pipes); a quiet console keeps it quiet."""
    if not console.quiet:
        _say(notes_console(console), line)


def resolve_components(
    config: RunConfig, resumed: dict[str, Any] | None, console: Console
) -> tuple[RunConfig, Components]:
    """The classes the settings name (a resumed run's from the plugins that made it),
    with the components' options converted to their declared types."""
    plugins = get_plugins()
    recorded = (resumed or {}).get("components") or {}
    classes = resolve_all(plugins, {kind: getattr(config, kind) for kind in KINDS}, recorded,
                          partial(_warn, console))
    tokenizer, sampler, cell, trainer = (classes[kind] for kind in KINDS)
    config = replace(
        config,
        cell_options=cell_options(cell, config.cell, config.cell_options),
        tokenizer_options=convert_options(
            "tokenizer", config.tokenizer, tokenizer, config.tokenizer_options,
            origin=plugins.origin("tokenizer", config.tokenizer)),
        sampler_options=convert_options(
            "sampler", config.sampler, sampler, config.sampler_options,
            fixed=SAMPLER_ARGUMENTS, origin=plugins.origin("sampler", config.sampler)),
    )
    try:
        loggers = resolve_loggers(config.log, plugins)  # an unknown --log is refused here
    except UsageError as error:
        if resumed is None or "not recognized" not in str(error):
            raise
        # Recorded by the run, not typed now: its plugin is gone from this environment.
        raise UsageError(f"the run logs with --log {' --log '.join(config.log)}, which no "
                         "installed plugin registers: install its plugin, or resume with "
                         "--log none") from None
    return config, Components(tokenizer, sampler, cell, trainer,
                              _trainer_options(trainer, config), loggers)


def set_up_process(config: RunConfig) -> torch.device:
    """The device the run trains on (checked to exist), torch's thread count and the
    seed, set before anything draws a random number."""
    device = resolve_device(config.device)
    use_threads(config.threads)
    if config.seed is not None:
        random.seed(config.seed)
        torch.manual_seed(config.seed)
    return device


def prepare_data(
    config: RunConfig, components: Components, resumed: dict[str, Any] | None,
    console: Console,
) -> tuple[RunConfig, PreparedData]:
    """Read, tokenize and hold out the text, and check that it suits the run.

    The settings come back with the prefix replaced where the default one has none of
    the text's tokens.
    """
    plugins = get_plugins()
    if resumed is not None and config.data is not None and not Path(config.data).exists():
        raise DataError(f"the text this run trained on, {config.data}, is no longer there; "
                        f"if it moved, resume with --resume {config.resume} --data NEW_PATH")
    text = load_text(config.data, config.encoding,
                     log=lambda line: _warn(console, f"seqlm: {line}"))
    tokenizer_label = component_label("tokenizer", config.tokenizer, plugins)
    tokenizer = build_tokenizer(components.tokenizer, config.tokenizer,
                                config.tokenizer_options)
    with calling("tokenizer", config.tokenizer, plugins):
        corpus = build_corpus(text, tokenizer, clean=config.clean, max_tokens=config.max_tokens,
                              label=tokenizer_label)
    # The opening lines are enough to see that detokenize keeps its contract too.
    opening = clean_lines(text[:2000], config.clean)[:3]
    guard = partial(calling, "tokenizer", config.tokenizer, plugins)
    check_tokenizer_output(tokenizer, opening, tokenizer_label, guard=guard)
    # A checkpoint keeps the fitted tokenizer as its state_dict: check now, before
    # training, that it is JSON and rebuilds the same splits, not when the first
    # checkpoint is written or when a saved run reads a prefix with other tokens.
    problem = tokenizer_state_problem(
        tokenizer, partial(components.tokenizer, **config.tokenizer_options), opening, guard)
    if problem:
        raise refuse(tokenizer_label, "tokenizer", problem)
    if resumed is not None and corpus.vocab.to_dict() != resumed["vocab"]:
        raise DataError(f"--data {config.data}: the text no longer gives the vocabulary "
                        "the checkpoint was trained with; resume on the same text")
    train_ids, val_ids = hold_out(corpus.ids, config.val_fraction)
    with calling("sampler", config.sampler, plugins):
        check_corpus_fits(partial(components.sampler, **config.sampler_options),
                          config.batch_size, config.num_steps, len(train_ids),
                          held_out=len(val_ids), sampler_name=config.sampler,
                          truncated=0 < config.max_tokens <= len(corpus))
    config = _settle_prefix(config, tokenizer, corpus, train_ids, console)
    return config, PreparedData(tokenizer, corpus, train_ids, val_ids)


def _settle_prefix(
    config: RunConfig, tokenizer: Tokenizer, corpus: Corpus, train_ids: torch.Tensor,
    console: Console,
) -> RunConfig:
    try:
        warning = check_prefix(config.prefix, tokenizer, corpus.vocab, config.clean)
    except UsageError:
        if config.prefix != DEFAULT_PREFIX:
            raise  # the user's own choice: say what is wrong with it
        # The default suits the book; another text (word tokens, another language) may
        # have none of its tokens, so continue the text's own opening instead.
        # A prefix has no more tokens than characters: that many ids are enough.
        opening = opening_prefix(config.prefix, tokenizer, corpus.vocab,
                                 train_ids[:len(config.prefix)].tolist())
        warning = (f"none of the default --prefix {config.prefix!r} occurs in this "
                   f"text; continuing {opening!r} instead (choose with --prefix)")
        config = replace(config, prefix=opening)
    if warning:
        _warn(console, f"warning: {warning}")
    return config


def _trainer_options(trainer_cls: type, config: RunConfig) -> dict[str, Any]:
    origin = get_plugins().origin("trainer", config.trainer)
    defaults = RunConfig()
    options = convert_options(
        "trainer", config.trainer, trainer_cls, config.trainer_options,
        fixed=TRAINER_ARGUMENTS,
        flags={k: f"--{k.replace('_', '-')}" for k in TRAINER_SETTINGS}, origin=origin)
    options.update({k: getattr(config, k) for k in TRAINER_SETTINGS
                    if getattr(config, k) != getattr(defaults, k)})
    check_options("trainer", config.trainer, trainer_cls, options, fixed=TRAINER_ARGUMENTS,
                  origin=origin)
    return options


def build(
    config: RunConfig, components: Components, data: PreparedData, device: torch.device,
    resumed: dict[str, Any] | None, console: Console,
) -> Built:
    """The sampler, the model (its weights on the CPU; the trainer moves it to
    ``device``) and the trainer, checked at the door; a resumed run's weights and
    trainer state put back."""
    plugins = get_plugins()
    vocab_size = len(data.corpus.vocab)
    with calling("sampler", config.sampler, plugins):
        sampler = components.sampler(batch_size=config.batch_size,
                                     num_steps=config.num_steps, **config.sampler_options)
    model = build_model(components.cell, config, vocab_size)
    unlocked = unlocked_layers_note(components.cell,
                                    component_label("cell", config.cell, plugins), config)
    if unlocked:
        _warn(console, unlocked)
    with calling("trainer", config.trainer, plugins):
        trainer = components.trainer(lr=config.learning_rate, clip=config.clip,
                                     epochs=config.epochs, device=device,
                                     **components.trainer_options)
        trainer.check(sampler)
    check_before_training(model, sampler, data.train_ids, vocab_size,
                          {"sampler": config.sampler, "cell": config.cell}, plugins)
    # The door read the first batch; every batch is checked as training draws it.
    sampler = CheckedSampler(sampler, component_label("sampler", config.sampler, plugins))
    if config.cuda_graph is True and device.type != "cuda":
        _warn(console, f"note: --cuda-graph applies to CUDA only; on {device.type} the steps "
                      "run as usual")
    if hasattr(trainer, "notify"):
        trainer.notify = partial(_warn, console)
    if config.keep_every > config.epochs:
        _warn(console, f"note: --keep-every {config.keep_every} keeps no epoch of "
                      f"{config.epochs}; only the best and last checkpoints are kept")
    if config.warmup_epochs >= config.epochs:
        _warn(console, f"note: --warmup-epochs {config.warmup_epochs} is not shorter than "
                      f"--epochs {config.epochs}, so the learning rate never reaches --lr")
    if len(data.val_ids) and not trainer.validates:
        _warn(console, f"note: trainer {config.trainer!r} does not validate; the last "
                      f"{len(data.val_ids)} tokens are held out unused")
    if resumed is not None:
        with calling("trainer", config.trainer, plugins):
            restore_run(model, trainer, resumed, config)
    return Built(model, device, sampler, trainer)


def _run_folder(config: RunConfig, resumed: dict[str, Any] | None, main: bool) -> Path | None:
    """The run folder, made (or, resuming, checked); None on a process that writes none."""
    if not main:
        return None
    if resumed is not None:
        out_dir = Path(config.out)
        check_names_are_files(out_dir, "--resume")
        return out_dir
    return prepare_run_dir(config.out, config.force)


def train_in_folder(
    config: RunConfig, components: Components, data: PreparedData, built: Built,
    resumed: dict[str, Any] | None, console: Console, callbacks: Sequence[Callback] = (),
) -> RunResult:
    """Train, with the run folder held (no other run may write it meanwhile), then
    :func:`finish` in it."""
    # In a distributed run, rank 0 alone prints, generates and writes files.
    main = built.trainer.is_main_process
    if not main:
        console.quiet = True
    out_dir = _run_folder(config, resumed, main)
    with hold_run_folder(out_dir) if out_dir is not None else contextlib.nullcontext():
        if out_dir is not None:
            start_run_files(out_dir, config.force, resumed=resumed is not None)
        saver = status = None
        run_callbacks: list[Callback] = list(callbacks)
        if out_dir is not None:
            saver, status = _savers(config, data, built, out_dir, resumed)
        try:
            _say(console, describe_device(built.device, config.device))
            if out_dir is not None:
                run_callbacks = _folder_callbacks(config, components, data, built, out_dir,
                                                  resumed, console, saver, status, callbacks)
            with calling("trainer", config.trainer, get_plugins(), watch_dtype=False):
                history = built.trainer.fit(
                    built.model, data.train_ids, built.sampler, run_callbacks,
                    val_corpus=data.val_ids if len(data.val_ids) else None)
        except TrainerStateError as error:
            raise TrainerStateError(f"{checkpoint_path(config.out, LAST)}: {error}") from None
        except (OutputError, TrainingError, CheckpointError) as error:
            raise _saying_what_is_kept(error, saver, out_dir) from error
        except (KeyboardInterrupt, BrokenPipeError) as error:
            # Ctrl-C, a stop signal under the CLI, or a closed output pipe: say truly what
            # is kept (on stderr, which may still be open). A stop during the last save
            # comes after the callbacks heard the end of training, so status.json is
            # written here too (twice does no harm).
            if status is not None:
                status.ended_by(error)
            # A caller who asked for quiet hears nothing; seqlm's own console is quiet
            # only once its pipe closed, and the message then goes to stderr.
            asked_quiet = console.quiet and not isinstance(console, PipeAwareConsole)
            if saver is not None and not asked_quiet:
                _say(pipe_aware_console(stderr=True), saver.stop_message())
            raise
        try:
            problem = history_problem(history)
            if problem:
                raise refuse(component_label("trainer", config.trainer, get_plugins()),
                             "trainer", problem)
            return finish(config, data, built, history, out_dir, saver, status, console)
        except BaseException as error:
            if status is not None:  # training ended, so no callback hears of this error
                status.ended_by(error)
            raise


def _savers(
    config: RunConfig, data: PreparedData, built: Built, out_dir: Path,
    resumed: dict[str, Any] | None,
) -> tuple[CheckpointCallback, StatusRecorder]:
    """The callback that writes checkpoints and the one that keeps ``status.json``."""
    components = record(get_plugins(), {kind: getattr(config, kind) for kind in KINDS})
    text_sha256 = text_checksum(config.data) if config.data is not None else None
    fixed = describe_run(config, data.corpus.vocab, data.tokenizer, components, text_sha256)
    saver = CheckpointCallback(out_dir, built.model, lambda: dict(fixed),
                               every=config.checkpoint_every, keep_every=config.keep_every,
                               trainer_label=component_label("trainer", config.trainer,
                                                             get_plugins()))
    if resumed is not None:  # until an epoch ends, the checkpoint resumed from stands
        saver.saved_epoch = int(resumed["epoch"]) or None
    return saver, StatusRecorder(out_dir, fixed["config"])


def _folder_callbacks(
    config: RunConfig, components: Components, data: PreparedData, built: Built, out_dir: Path,
    resumed: dict[str, Any] | None, console: Console, saver: Callback,
    status: StatusRecorder, callbacks: Sequence[Callback],
) -> list[Callback]:
    """The checkpoint's snapshot, the live table, ``metrics.jsonl``, the loggers, the
    caller's callbacks, ``status.json`` and the checkpoint's files, in that order: the
    epoch is in hand to save before anything shows it, so that a stop that comes between
    never names an earlier epoch "the last finished" after this one was shown; and the
    files are written once everything has seen the epoch, so that a stop during the save
    leaves ``metrics.jsonl`` as far as the checkpoint."""
    metrics_path = out_dir / "metrics.jsonl"
    # A resumed run's metrics restart from its checkpoint's, dropping later rows.
    write_text_atomic(metrics_path, "".join(
        f"{json.dumps(m.to_dict())}\n" for m in built.trainer.history
    ) if resumed is not None else "")
    vocab = data.corpus.vocab
    title = (f"seqlm: {config.cell} on {built.device.type}, {len(data.train_ids):,} "
             f"training + {len(data.val_ids):,} held-out {config.tokenizer} tokens, "
             f"vocabulary {len(vocab)}")
    every = config.log_every or log_every(config.epochs)
    info = RunInfo(out_dir, status.config, every,
                   lambda length: generate(built.model, vocab, data.tokenizer, config.prefix,
                                           length))
    start_imports()  # matplotlib loads while the run trains
    # The metrics row before the progress row: a closed output pipe (the progress row's
    # write fails) must not leave metrics.jsonl short of the epoch the checkpoint saves.
    return [saver, MetricsWriter(metrics_path), make_progress(console, title, config.log_every),
            *build_loggers(components.loggers, info, warn=partial(_warn, console)),
            *callbacks, status,
            CheckpointWriter(saver)]


def _saying_what_is_kept(
    error: OutputError | TrainingError | CheckpointError, saver: CheckpointCallback | None,
    out_dir: Path | None,
) -> SeqlmError:
    """``error``, with the checkpoint the run keeps named where one was saved."""
    kept = saver.saved_epoch if saver is not None else None
    if not kept:
        return error
    if isinstance(error, TrainingError):
        return TrainingError(f"{error}. The last good checkpoint, of epoch {kept}, is in "
                             f"{out_dir}")
    # A full disk while writing metrics or a checkpoint (best.json after checkpoint.json,
    # say): the same kind of error, with what is on disk to resume from.
    return type(error)(f"{error}. The checkpoint of epoch {kept} is kept in {out_dir}")


def _diverged_note(history: Sequence[EpochMetrics], vocab_size: int) -> str | None:
    """A note where the last epoch's training loss is more than twice a uniform guess's
    (ln of the vocabulary's size): the run diverged (its perplexity may read inf), which
    no exception stopped, since the loss stayed a finite number."""
    if not history or vocab_size < 2:
        return None
    loss, uniform = history[-1].train_loss, math.log(vocab_size)
    if not loss > 2 * uniform:
        return None
    return (f"note: the last epoch's training loss, {loss:.4g} nats per token, is more than "
            f"twice a uniform guess's ({uniform:.3g}): the run diverged; lower --lr, or "
            "keep --clip on")


def finish(
    config: RunConfig, data: PreparedData, built: Built, history: list[EpochMetrics],
    out_dir: Path | None, saver: CheckpointCallback | None, status: StatusRecorder | None,
    console: Console,
) -> RunResult:
    """Write ``summary.json``, draw the plot and generate the sample.

    The summary is written before generating and the plot draws meanwhile, so that a
    long generation, if stopped, loses neither.
    """
    vocab = data.corpus.vocab
    diverged = _diverged_note(history, len(vocab))
    if diverged:
        _warn(console, diverged)  # quiet on the other processes of a distributed run

    def summary_with(sample: str | None) -> dict[str, Any]:
        return summarize(config, built.device, history, sample, built.model,
                         train_tokens=len(data.train_ids), val_tokens=len(data.val_ids),
                         vocab_size=len(vocab),
                         cuda_graph=getattr(built.trainer, "graph_report", None),
                         stop_reason=built.trainer.stop_reason)

    plot = (PlotInBackground(history, out_dir / "perplexity.png",
                             title=f"{config.cell}, {config.sampler} sampling")
            if out_dir is not None else None)
    try:
        if out_dir is not None:
            write_json_atomic(out_dir / "summary.json", summary_with(None))
        sample = ""
        if built.trainer.is_main_process:
            sample = _generate_sample(config, data, built, out_dir, plot, console)
        summary = summary_with(sample)
        if out_dir is not None:
            write_json_atomic(out_dir / "summary.json", summary)
        if plot is not None:
            _finish_plot(plot, out_dir)
    except OutputError as error:
        raise _saying_what_is_kept(error, saver, out_dir) from None
    finally:
        if plot is not None:
            plot.join()  # no thread writes the folder once the run has returned
    if status is not None:
        status.finish()
    # Handed over for use, as a loaded run is: dropout off, so that scoring a text with
    # it gives the same figures every time.
    built.model.eval()
    return RunResult(config, out_dir, built.device, history, sample, summary, built.model,
                     vocab, data.tokenizer)


def _finish_plot(plot: PlotInBackground, out_dir: Path) -> None:
    plot.wait()
    record_written(out_dir, out_dir / "perplexity.png")


def _generate_sample(
    config: RunConfig, data: PreparedData, built: Built, out_dir: Path | None,
    plot: PlotInBackground | None, console: Console,
) -> str:
    """The sample that continues ``--prefix``; a Ctrl-C while generating says which files
    are kept."""
    try:
        return generate(built.model, data.corpus.vocab, data.tokenizer, config.prefix,
                        config.predict,
                        on_progress=generation_progress(console, config.predict))
    except KeyboardInterrupt:
        if out_dir is not None:
            files = "the checkpoint and summary.json are"
            if plot is not None:
                with contextlib.suppress(Exception):
                    _finish_plot(plot, out_dir)
                    files = "the checkpoint, summary.json and perplexity.png are"
            _say(pipe_aware_console(stderr=True),
                 f"Stopped while generating; {files} in {out_dir}.")
        raise
