"""``seqlm run``: train a model, every setting a flag (or a recipe's key)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from seqlm.cli.group import DEFAULTS, THREADS_OPTION, main
from seqlm.config import RunConfig
from seqlm.config.choices import CLEANINGS, OPTIMIZERS, PRECISIONS, SCHEDULES
from seqlm.errors import UsageError
from seqlm.plugins.manager import get_plugins


def _choices(kind: str) -> str:
    return ", ".join(get_plugins().choices(kind))


def _parse_option(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]):
    # Values stay text here: the run converts them to the types the component's
    # constructor declares (seqlm.plugins.options), before anything is built.
    options: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE (for example dropout=0.2)")
        name = key.replace("-", "_")
        if options.get(name, raw) != raw:  # which one was meant? The last would win unseen.
            raise click.BadParameter(f"{key} is given twice ({options[name]!r} and {raw!r}); "
                                     "give it once")
        options[name] = raw
    return options


@contextlib.contextmanager
def _recipe_named_where_it_gave(
    recipe: str | None, from_recipe: dict[str, Any], typed: dict[str, Any]
) -> Iterator[None]:
    """A bad setting that came from the recipe is named as the recipe's key, not as a
    flag the user never typed (see :func:`seqlm.config.recipes.name_the_recipe`)."""
    try:
        yield
    except UsageError as error:
        if recipe is not None:
            from seqlm.config.recipes import name_the_recipe

            name_the_recipe(error, recipe, from_recipe, typed)
        raise


@main.command()
@click.option("--cell", default=DEFAULTS.cell, show_default=True,
              help=f"Recurrent cell: {_choices('cell')}.")
@click.option("--sampler", default=DEFAULTS.sampler, show_default=True,
              help=f"Minibatch sampler: {_choices('sampler')}.")
@click.option("--tokenizer", default=DEFAULTS.tokenizer, show_default=True,
              help=f"Tokenizer: {_choices('tokenizer')}.")
@click.option("--trainer", default=DEFAULTS.trainer, show_default=True,
              help=f"Trainer: {_choices('trainer')}.")
@click.option("--data", type=click.Path(dir_okay=True), default=None,
              help="UTF-8 text file to train on [default: The Time Machine, downloaded once].")
@click.option("--encoding", default=DEFAULTS.encoding, show_default=True,
              help="Encoding of the --data file.")
@click.option("--clean", type=click.Choice(CLEANINGS), default=DEFAULTS.clean,
              show_default=True, help="letters: letters only, lower case (the seed's); "
              "none: the raw text.")
@click.option("--max-tokens", type=int, default=DEFAULTS.max_tokens, show_default=True,
              help="Train on the first N tokens; 0 for the whole text.")
@click.option("--batch-size", type=int, default=DEFAULTS.batch_size, show_default=True)
@click.option("--num-steps", type=int, default=DEFAULTS.num_steps, show_default=True,
              help="Time steps per subsequence.")
@click.option("--hidden", type=int, default=DEFAULTS.hidden, show_default=True,
              help="Hidden units per layer.")
@click.option("--num-layers", type=int, default=DEFAULTS.num_layers, show_default=True)
@click.option("--bidirectional", is_flag=True, help="Bidirectional layers (torch cells only).")
@click.option("--cell-opt", "cell_options", multiple=True, callback=_parse_option,
              metavar="KEY=VALUE", help="Extra option for the cell's constructor; repeatable. "
              "Values are converted to the types the constructor declares.")
@click.option("--tokenizer-opt", "tokenizer_options", multiple=True, callback=_parse_option,
              metavar="KEY=VALUE",
              help="Extra option for the tokenizer's constructor (for example "
              "vocab_size=2000 with --tokenizer bpe); repeatable.")
@click.option("--sampler-opt", "sampler_options", multiple=True, callback=_parse_option,
              metavar="KEY=VALUE", help="Extra option for the sampler's constructor; "
              "repeatable.")
@click.option("--trainer-opt", "trainer_options", multiple=True, callback=_parse_option,
              metavar="KEY=VALUE", help="Extra option for the trainer's constructor; "
              "repeatable.")
@click.option("--embedding-dim", type=int, default=DEFAULTS.embedding_dim, show_default=True,
              help="Learn token embeddings of this size; 0 feeds one-hot vectors (the seed's).")
@click.option("--tie-weights", is_flag=True,
              help="Share the embedding with the output layer; needs --embedding-dim equal "
              "to the top layer's output size.")
@click.option("--dropout", type=float, default=DEFAULTS.dropout, show_default=True,
              help="Dropout on the embeddings, between stacked layers and before the head.")
@click.option("--locked-dropout/--no-locked-dropout", default=DEFAULTS.locked_dropout,
              show_default=True,
              help="Draw --dropout's masks once per sequence, the same at every step "
              "(variational dropout, as AWD-LSTM), or a new mask at every step.")
@click.option("--activation-reg", type=float, default=DEFAULTS.activation_reg,
              show_default=True, metavar="ALPHA",
              help="Add ALPHA times the mean square of the last layer's outputs to the "
              "training loss (AR).")
@click.option("--temporal-reg", type=float, default=DEFAULTS.temporal_reg, show_default=True,
              metavar="BETA", help="Add BETA times the mean square of the outputs' change "
              "between steps to the training loss (TAR).")
@click.option("--val-fraction", type=float, default=DEFAULTS.val_fraction, show_default=True,
              help="Hold out this fraction at the end of the text for validation; 0 for none.")
@click.option("--epochs", type=int, default=DEFAULTS.epochs, show_default=True)
@click.option("--lr", type=float, default=None,
              help="Learning rate [default: 1 for sgd, 0.002 for adam and adamw].")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS),
              default=DEFAULTS.optimizer, show_default=True)
@click.option("--weight-decay", type=float, default=None,
              help="Weight decay [default: the optimizer's own, 0.01 for adamw, else 0].")
@click.option("--schedule", type=click.Choice(SCHEDULES),
              default=DEFAULTS.schedule, show_default=True,
              help="Learning rate over the epochs: constant, or cosine decay to 5%.")
@click.option("--warmup-epochs", type=int, default=DEFAULTS.warmup_epochs, show_default=True,
              help="Raise the learning rate linearly over this many first epochs.")
@click.option("--precision", type=click.Choice(PRECISIONS),
              default=DEFAULTS.precision, show_default=True,
              help="bf16: compute the forward pass in bfloat16 (autocast; weights stay "
              "float32), faster on CPUs and GPUs with bf16 units. tf32: on CUDA, float32 "
              "products on TensorFloat-32 tensor cores (elsewhere as fp32).")
@click.option("--cuda-graph/--no-cuda-graph", default=None,
              help="On CUDA, record the training step once as a CUDA graph and replay it "
              "for every batch, saving the launch cost of its many small kernels. "
              "[default: auto: record on CUDA where the step allows it, else run it "
              "eagerly with a note; --cuda-graph demands it, --no-cuda-graph turns it off]")
@click.option("--clip", type=float, default=DEFAULTS.clip, show_default=True,
              help="Clip the global gradient norm to this; 0 turns clipping off.")
@click.option("--average", is_flag=True,
              help="Also validate an average of the weights (from when validation stops "
              "improving, or the last quarter of the epochs) and keep it as the best "
              "checkpoint where it is better.")
@click.option("--patience", type=int, default=DEFAULTS.patience, show_default=True,
              help="Stop after N epochs without a better validation loss; 0 never stops "
              "early.")
@click.option("--device", default=DEFAULTS.device, show_default=True,
              help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")
@THREADS_OPTION
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True,
              help="Random seed, for repeatable runs.")
@click.option("--prefix", default=DEFAULTS.prefix, show_default=True,
              help="Text to continue after training. Where the text has none of the "
              "default's tokens, its own opening is continued instead.")
@click.option("--predict", type=int, default=DEFAULTS.predict, show_default=True,
              help="How many tokens to generate after the prefix (at most 1,000,000).")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for the outputs [default: a new runs/TIMESTAMP].")
@click.option("--force", is_flag=True, help="Write into a non-empty --out folder, replacing "
              "only the files an earlier seqlm run wrote there.")
@click.option("--checkpoint-every", type=int, default=DEFAULTS.checkpoint_every,
              show_default=True, help="Save a checkpoint every N epochs (also at the end and "
              "on Ctrl-C, SIGTERM or SIGHUP); 0 for only those.")
@click.option("--keep-every", type=int, default=DEFAULTS.keep_every, show_default=True,
              metavar="N", help="Also keep the model of every Nth epoch, as epoch-N, for "
              "seqlm eval --checkpoint all (an ensemble of snapshots); 0 keeps none.")
@click.option("--resume", type=click.Path(), default=None, metavar="DIR",
              help="Continue the run saved in DIR where it stopped (--epochs may raise its "
              "length).")
@click.option("--log", multiple=True, metavar="NAME",
              help=f"Turn on a logger that a plugin registered: "
              f"{_choices('callback') or '(none installed)'}; repeatable. Kept for --resume; "
              "none: no logger.")
@click.option("--log-every", type=int, default=DEFAULTS.log_every, show_default=True,
              metavar="N", help="Show a progress row, and let loggers write samples, every "
              "N epochs; 0 for about ten per run (and, written to a log or pipe, a row "
              "at least every minute).")
@click.option("--config", "recipe", type=click.Path(dir_okay=False), default=None,
              metavar="FILE", help="Read the settings from a TOML recipe (see seqlm config); "
              "options given here override it.")
def run(recipe: str | None, **options: Any) -> None:
    """Train a language model, plot its perplexity, and generate text."""
    from seqlm.runs.progress import pipe_aware_console
    from seqlm.runs.stages import run as run_training
    from seqlm.training.stopping import stop_on_signals

    options["log"] = list(options["log"])
    if "none" in options["log"]:
        # --log none: no logger, also where a resumed run recorded some.
        if len(options["log"]) > 1:
            raise UsageError("--log none turns every logger off; give it alone")
        options["log"] = []
    console = pipe_aware_console()
    ctx = click.get_current_context()
    typed = {k: v for k, v in options.items()
             if ctx.get_parameter_source(k) is not click.core.ParameterSource.DEFAULT}
    if options["cuda_graph"] is None:
        options["cuda_graph"] = DEFAULTS.cuda_graph  # neither flag typed: auto
    if options["resume"] is not None and recipe is not None:
        raise UsageError("--config cannot be used with --resume: the checkpoint fixes "
                         "the settings; drop --config")
    from_recipe: dict[str, Any] = {}
    if recipe is not None:
        from seqlm.config.recipes import load_recipe, with_recipe

        from_recipe = load_recipe(recipe)
        options = with_recipe(options, from_recipe, typed)
    # SIGTERM (kill, systemd, Slurm) and SIGHUP stop the run as Ctrl-C does: with a
    # checkpoint to resume from.
    started = time.time() - 2  # a file system may keep times to the second or two
    with stop_on_signals(), _recipe_named_where_it_gave(recipe, from_recipe, typed):
        if options["resume"] is not None:
            # Only what was typed counts: the checkpoint supplies every other setting.
            result = run_training(console=console, **typed)
        else:
            result = run_training(RunConfig(**options), console=console)
    if result.out_dir is None:
        return
    s = result.summary
    val = ""
    if s["final_val_ppl"] is not None:
        val = (f", validation perplexity {s['final_val_ppl']:.4f} (best "
               f"{s['best_val_ppl']:.4f} at epoch {s['best_epoch']})")
    def say(line: str) -> None:
        # soft_wrap: a line written to a log or a pipe stays one line, whatever its width.
        console.print(line, highlight=False, markup=False, soft_wrap=True)

    say(f"final perplexity {s['final_train_ppl']:.4f}{val}, {s['tokens_per_s']:,.0f} "
        f"tokens/s on {s['device']}")
    # Why it stopped early is already the progress's last line (the live table's caption).
    if s.get("best_is_average"):
        say("the best checkpoint holds the averaged weights")
    say(f"sample: {result.sample}")
    say(f"outputs in {result.out_dir}/ ({', '.join(_outputs(result.out_dir))})")
    logged = _logger_folders(result.out_dir, started) if s["config"].get("log") else []
    if logged:
        say(f"loggers ({', '.join(s['config']['log'])}) wrote to {', '.join(logged)}")


def _logger_folders(out_dir: Path, since: float) -> list[str]:
    """The folders of the run folder written to since ``since``: the loggers' own (seqlm
    writes files only), named so that the user knows where to point TensorBoard and
    the like. A folder of the user's that the run did not touch is left out."""
    found = []
    for entry in sorted(out_dir.iterdir()):
        try:
            if entry.is_dir() and not entry.is_symlink() and _written_since(entry, since):
                found.append(f"{entry.name}/")
        except OSError:
            continue  # gone or unreadable: nothing to point at
    return found


def _written_since(folder: Path, since: float, budget: int = 10_000) -> bool:
    """Whether ``folder`` or anything in it changed since ``since``: a logger that adds
    to a file it made before (a resumed run's CSV, say) changes no folder's time. At
    most ``budget`` entries are looked at, so a huge folder of the user's costs little."""
    pending = [folder]
    while pending and budget > 0:
        current = pending.pop()
        if current.stat().st_mtime >= since:
            return True
        for entry in current.iterdir():
            budget -= 1
            if budget <= 0:
                break
            if entry.is_symlink():
                continue
            if entry.is_dir():
                pending.append(entry)
            elif entry.stat().st_mtime >= since:
                return True
    return False


def _outputs(out_dir: Path) -> list[str]:
    """The files a finished run left in ``out_dir``, as its last line names them: the
    fixed names, then the epochs ``--keep-every`` kept (a long list cut to its ends)."""
    from seqlm.checkpoints.format import kept_epochs, kept_name
    from seqlm.storage.runfiles import OUTPUT_NAMES

    written = [name for name in OUTPUT_NAMES if (out_dir / name).is_file()]
    kept = [f"{kept_name(epoch)}.json" for epoch in kept_epochs(out_dir)]
    if len(kept) > 3:
        kept = [f"{kept[0]} to {kept[-1]} ({len(kept)} kept epochs)"]
    return written + kept
