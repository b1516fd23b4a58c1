"""The ``seqlm`` command line: a thin layer over the library.

Nothing here imports torch or matplotlib at start-up; the ``run`` command imports the
training code when it runs, so ``seqlm --help`` answers at once.
"""

from __future__ import annotations

import json
import os
import sys
from types import SimpleNamespace
from typing import Any

import click

from seqlm.config import RunConfig
from seqlm.errors import SeqlmError, UsageError
from seqlm.plugins import KINDS, get_plugins

DEFAULTS = RunConfig()
#: The dynamic evaluation defaults, repeated so that ``seqlm --help`` needs no torch.
DYNAMIC = SimpleNamespace(lr=0.1, decay=0.001, steps=20)


def _debug_requested(ctx: click.Context) -> bool:
    return bool(ctx.params.get("debug")) or os.environ.get("SEQLM_DEBUG", "") not in ("", "0")


def _one_line(text: str, limit: int = 500) -> str:
    """Squeeze a message onto one line, so that an error never spreads over the screen."""
    line = " ".join(part.strip() for part in text.splitlines() if part.strip())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def describe_unexpected(error: BaseException) -> str:
    """A one-line message for an error seqlm did not foresee, with what to try."""
    text = str(error)
    if isinstance(error, MemoryError) or "out of memory" in text.lower() or (
        "can't allocate memory" in text
    ):
        return ("out of memory; try a smaller --hidden, --batch-size, --num-steps or "
                "--num-layers, or another --device")
    if isinstance(error, OSError) and error.strerror:
        where = f" {error.filename}" if error.filename else ""
        return (f"cannot access{where}: {error.strerror}; check the path, its permissions "
                "and the free disk space")
    return (f"unexpected {type(error).__name__}: {_one_line(text, 300)} "
            "(run with --debug for the traceback)")


class SeqlmGroup(click.Group):
    """A click group that turns seqlm's errors into one line and an exit status.

    :class:`SeqlmError` exits with its ``exit_code`` (2 for usage errors), Ctrl-C with
    130, a stop signal N during ``seqlm run`` (SIGTERM, SIGHUP, ...) with 128 + N, and
    anything else with 1; ``--debug`` or ``SEQLM_DEBUG=1`` shows the traceback
    instead.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Also accept ``--debug`` after the command (``seqlm run ... --debug``)."""
        return super().parse_args(ctx, self._hoist_debug(ctx, args))

    def _hoist_debug(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or args[0].startswith("-"):
            return args
        command = self.get_command(ctx, args[0])
        if command is None or any("--debug" in p.opts for p in command.params):
            return args  # unknown, or a command with a --debug of its own
        # Options that take a value: "--prefix --debug" is a prefix, not the flag.
        takes_value = {
            opt for param in command.params if isinstance(param, click.Option)
            and not param.is_flag and not param.count for opt in param.opts
        }
        rest: list[str] = []
        found = False
        for i, arg in enumerate(args[1:], start=1):
            if arg == "--":
                rest.extend(args[i:])
                break
            if arg == "--debug" and args[i - 1] not in takes_value:
                found = True
                continue
            rest.append(arg)
        return (["--debug"] if found else []) + [args[0], *rest]

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command, turning its errors into one line on stderr."""
        try:
            return super().invoke(ctx)
        except SeqlmError as error:
            if _debug_requested(ctx):
                raise
            click.echo(f"Error: {_one_line(str(error), 2000)}", err=True)
            sys.exit(error.exit_code)
        except KeyboardInterrupt as interrupt:
            if _debug_requested(ctx):
                raise
            from seqlm.stopping import exit_code_of

            signum = getattr(interrupt, "signum", None)
            click.echo(f"Stopped by {interrupt}." if signum else "Interrupted.", err=True)
            sys.exit(exit_code_of(interrupt))
        except BrokenPipeError:
            if _debug_requested(ctx):
                raise
            # The reader went away (``seqlm run | head``): say so where it can still be
            # read, and stop Python from failing again when it flushes stdout at exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            click.echo("Stopped: the output pipe was closed.", err=True)
            sys.exit(141)  # as a shell reports a process ended by SIGPIPE
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except Exception as error:
            if _debug_requested(ctx):
                raise
            # Code of a plugin (a command, or a component used by a built-in command)
            # is the plugin's fault, not seqlm's.
            from seqlm.blame import find_culprit

            culprit = find_culprit(error, get_plugins(), command=ctx.invoked_subcommand)
            message = describe_unexpected(error) if culprit is None else culprit.message(error)
            click.echo(f"Error: {message}", err=True)
            sys.exit(1)


@click.group(cls=SeqlmGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="seqlm")
@click.option("--debug", is_flag=True, help="Show full tracebacks (or set SEQLM_DEBUG=1).")
def main(debug: bool) -> None:
    """Train recurrent language models (RNN, GRU, LSTM) on any text.

    Start with `seqlm run`, which trains the default character-level LSTM on
    The Time Machine and generates text from "time traveller".
    """


def _choices(kind: str) -> str:
    return ", ".join(get_plugins().choices(kind))


def _parse_option(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]):
    # Values stay text here: the runner converts them to the types the component's
    # constructor declares (seqlm.options), before anything is built.
    options: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE (for example dropout=0.2)")
        options[key.replace("-", "_")] = raw
    return options


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
@click.option("--clean", type=click.Choice(["letters", "none"]), default=DEFAULTS.clean,
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
@click.option("--optimizer", type=click.Choice(["sgd", "adam", "adamw"]),
              default=DEFAULTS.optimizer, show_default=True)
@click.option("--weight-decay", type=float, default=None,
              help="Weight decay [default: the optimizer's own, 0.01 for adamw, else 0].")
@click.option("--schedule", type=click.Choice(["constant", "cosine"]),
              default=DEFAULTS.schedule, show_default=True,
              help="Learning rate over the epochs: constant, or cosine decay to 5%.")
@click.option("--warmup-epochs", type=int, default=DEFAULTS.warmup_epochs, show_default=True,
              help="Raise the learning rate linearly over this many first epochs.")
@click.option("--precision", type=click.Choice(["fp32", "tf32", "bf16"]),
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
@click.option("--threads", type=int, default=DEFAULTS.threads, show_default=True,
              help="CPU threads for torch; 0 keeps torch's default (one per core), at most 4 "
              "per core. Use 1 on a machine busy with other jobs.")
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
@click.option("--resume", type=click.Path(), default=None, metavar="DIR",
              help="Continue the run saved in DIR where it stopped (--epochs may raise its "
              "length).")
@click.option("--log", multiple=True, metavar="NAME",
              help=f"Turn on a logger that a plugin registered: "
              f"{_choices('callback') or '(none installed)'}; repeatable. Kept for --resume.")
@click.option("--log-every", type=int, default=DEFAULTS.log_every, show_default=True,
              metavar="N", help="Show a progress row, and let loggers write samples, every "
              "N epochs; 0 for about ten per run.")
@click.option("--config", "recipe", type=click.Path(dir_okay=False), default=None,
              metavar="FILE", help="Read the settings from a TOML recipe (see seqlm config); "
              "options given here override it.")
def run(recipe: str | None, **options: Any) -> None:
    """Train a language model, plot its perplexity, and generate text."""
    from seqlm.runner import run as run_training
    from seqlm.stopping import pipe_aware_console, stop_on_signals

    options["log"] = list(options["log"])
    console = pipe_aware_console()
    ctx = click.get_current_context()
    typed = {k: v for k, v in options.items()
             if ctx.get_parameter_source(k) is not click.core.ParameterSource.DEFAULT}
    if options["cuda_graph"] is None:
        options["cuda_graph"] = DEFAULTS.cuda_graph  # neither flag typed: auto
    if options["resume"] is not None and recipe is not None:
        raise UsageError("--config cannot be used with --resume: the checkpoint fixes "
                         "the settings; drop --config")
    if recipe is not None:
        from seqlm.recipes import load_recipe

        options = {**options, **load_recipe(recipe), **typed}
    # SIGTERM (kill, systemd, Slurm) and SIGHUP stop the run as Ctrl-C does: with a
    # checkpoint to resume from.
    with stop_on_signals():
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
    console.print(
        f"final perplexity {s['final_train_ppl']:.4f}{val}, {s['tokens_per_s']:,.0f} tokens/s "
        f"on {s['device']}", highlight=False, markup=False,
    )
    if s.get("stopped_early"):
        console.print(s["stop_reason"], highlight=False, markup=False)
    if s.get("best_is_average"):
        console.print("the best checkpoint holds the averaged weights", highlight=False)
    console.print(f"sample: {result.sample}", highlight=False, markup=False)
    console.print(f"outputs in {result.out_dir}/ (summary.json, metrics.jsonl, "
                  "perplexity.png, checkpoint.json, status.json)", highlight=False,
                  markup=False)


_WHICH = click.option(
    "--checkpoint", "which", type=click.Choice(["best", "last"]), default="best",
    show_default=True, help="best: lowest validation loss (the last one if the run held out "
    "no text); last: where training stopped.")
_DEVICE = click.option("--device", default="cpu", show_default=True,
                       help="auto, cpu, cuda, cuda:N or mps.")


@main.command()
@click.argument("run_dir", metavar="DIR", type=click.Path())
@click.option("--prefix", default=None,
              help="Text to continue [default: the run's own --prefix].")
@click.option("--length", type=click.IntRange(min=0), default=DEFAULTS.predict,
              show_default=True, help="How many tokens to generate (at most 1,000,000).")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, help="Below 1 sharpens the distribution, above 1 flattens it; "
              "from 0.001 to 1000.")
@click.option("--top-k", type=click.IntRange(min=0), default=0, show_default=True,
              help="Draw only from the K most likely tokens; 0 for all.")
@click.option("--greedy", is_flag=True, help="Always take the most likely token (the seed's "
              "argmax); ignores --temperature and --top-k.")
@click.option("--seed", type=int, default=None, help="Random seed, for repeatable samples.")
@_WHICH
@_DEVICE
def generate(run_dir: str, prefix: str | None, length: int, temperature: float, top_k: int,
             greedy: bool, seed: int | None, which: str, device: str) -> None:
    """Continue --prefix with a trained model from the run folder DIR."""
    from seqlm.inference import generate_text

    text = generate_text(run_dir, prefix, length, which=which, device=device,
                         temperature=temperature, top_k=top_k, greedy=greedy, seed=seed,
                         warn=lambda line: click.echo(line, err=True))
    click.echo(text)


@main.command("eval")
@click.argument("run_dir", metavar="DIR", type=click.Path())
@click.option("--data", type=click.Path(dir_okay=False), required=True,
              help="Text file to measure the model on.")
@click.option("--encoding", default=DEFAULTS.encoding, show_default=True)
@_WHICH
@_DEVICE
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a sentence.")
@click.option("--dynamic", is_flag=True, help="Also measure with dynamic evaluation: the "
              "model adapts to the text as it reads it (the run is not changed).")
@click.option("--dynamic-lr", type=click.FloatRange(min=0), default=DYNAMIC.lr,
              show_default=True, help="Step size of the adaptation after each segment.")
@click.option("--dynamic-decay", type=click.FloatRange(min=0, max=1), default=DYNAMIC.decay,
              show_default=True, help="How far each step pulls the weights back towards "
              "the trained ones.")
@click.option("--dynamic-steps", type=click.IntRange(min=1), default=DYNAMIC.steps,
              show_default=True, help="Tokens per segment (one adaptation step each).")
@click.option("--dynamic-rms", is_flag=True, help="Divide the steps by the root mean square "
              "of the recent gradients (use a smaller --dynamic-lr, such as 0.0003).")
def eval_command(run_dir: str, data: str, encoding: str, which: str, device: str,
                 as_json: bool, dynamic: bool, dynamic_lr: float, dynamic_decay: float,
                 dynamic_steps: int, dynamic_rms: bool) -> None:
    """Perplexity and bits per token of a trained model (in DIR) on the text in --data."""
    from seqlm.dynamic_eval import DynamicSettings
    from seqlm.inference import evaluate_text

    settings = (DynamicSettings(lr=dynamic_lr, decay=dynamic_decay, steps=dynamic_steps,
                                rms=dynamic_rms) if dynamic else None)
    result = evaluate_text(run_dir, data, which=which, device=device, encoding=encoding,
                           warn=lambda line: click.echo(line, err=True), dynamic=settings)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    unknown = (f", {result['unknown_tokens']:,} of them unknown to the vocabulary (read as "
               "<unk>)" if result["unknown_tokens"] else "")
    click.echo(f"perplexity {result['perplexity']:.4f}, {result['bits_per_token']:.4f} bits "
               f"per token over {result['tokens']:,} {result['tokenizer']} tokens{unknown} "
               f"(checkpoint {result['checkpoint']}, epoch {result['epoch']})")
    if "dynamic" in result:
        d = result["dynamic"]
        click.echo(f"dynamic: perplexity {d['perplexity']:.4f}, {d['bits_per_token']:.4f} "
                   f"bits per token (static {result['perplexity']:.4f}; --dynamic-lr "
                   f"{d['lr']:g}, --dynamic-decay {d['decay']:g}, --dynamic-steps "
                   f"{d['steps']}{', --dynamic-rms' if d['rms'] else ''})")


@main.command("config")
@click.argument("run_dir", metavar="DIR", type=click.Path())
def config_command(run_dir: str) -> None:
    """Print the settings of the run in DIR as a recipe for seqlm run --config."""
    from seqlm.recipes import run_recipe

    click.echo(run_recipe(run_dir), nl=False)


def _escape(text: str) -> str:
    """Escape rich markup in text that comes from plugins (names, messages)."""
    from rich.markup import escape

    return escape(text)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins(as_json: bool) -> None:
    """List the plugins: where each comes from, what it registered (commands included),
    what was refused, and its status."""
    if not get_plugins().commands_added:  # plugins loaded afresh in this process
        get_plugins().add_commands(main, BUILTIN_COMMANDS)
    rows = [info.to_dict() for info in get_plugins().info.values()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="seqlm plugins", title_justify="left")
    for column in ("Plugin", "Distribution", "Version", "Registered", "Status"):
        table.add_column(column, overflow="fold")  # a failure's reason is shown whole
    for row in rows:
        registered = "; ".join(
            f"{kind}s: {', '.join(names)}" for kind, names in row["registered"].items()
        )
        if not registered and row["hooks"]:
            registered = ", ".join(row["hooks"])
        status = "ok" if row["status"] == "ok" else f"[red]{_escape(row['status'])}[/red]"
        if row["refused"]:
            status += "".join(f"\n[yellow]{_escape(line)}[/yellow]" for line in row["refused"])
        table.add_row(_escape(row["name"]), _escape(row["distribution"]), _escape(row["version"]),
                      _escape(registered), status)
    Console().print(table)


@main.command()
@click.argument("folder", metavar="[DIR]", type=click.Path(), default="runs")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def runs(folder: str, as_json: bool) -> None:
    """List the runs in runs/ (or DIR) with their figures and status.

    Status: finished, running, stopped (by Ctrl-C; resume it) or failed, as the run
    folder's status.json records it.
    """
    from pathlib import Path

    from seqlm.run_listing import find_runs, runs_table

    path = Path(folder)
    if folder == "runs" and not path.exists():  # the default before any run: no error
        records, empty = [], "No runs yet: runs/ does not exist here (seqlm run creates it)."
    else:
        records = find_runs(path)
        empty = f"No runs in {folder} (a run folder holds status.json or metrics.jsonl)."
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in records], indent=2))
    elif not records:
        click.echo(empty, err=True)
    else:
        from rich.console import Console

        Console().print(runs_table(records, f"seqlm runs in {folder}"))
    _notes(records)


def _notes(records: list[Any]) -> None:
    """One line on stderr for each run folder with something to remark (an older run)."""
    for record in records:
        if record.note:
            click.echo(f"note: {record.name}: {record.note}", err=True)


@main.command()
@click.argument("run_dirs", metavar="RUN RUN...", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", default="compare.png", show_default=True, type=click.Path(),
              help="Picture of the runs' curves (.png, .svg or .pdf); only an existing "
              "picture is ever replaced.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def compare(run_dirs: tuple[str, ...], output: str, as_json: bool) -> None:
    """Compare runs: their curves in one picture, their figures in a table.

    Each run is labelled by the settings in which the runs differ.
    """
    from pathlib import Path

    from seqlm.compare import check_output, comparison, comparison_table, load_runs, plot_runs

    path = Path(output)
    check_output(path)
    records = load_runs(run_dirs)
    result = comparison(records)
    plot_runs(records, [row["label"] for row in result["runs"]], path)
    result["plot"] = str(path)
    _notes(records)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    from rich.console import Console

    Console().print(comparison_table(result))
    if not result["differing_settings"]:
        click.echo("The runs have the same settings.")
    click.echo(f"plot: {path}")


@main.command("new-plugin")
@click.argument("name")
@click.option("--dir", "parent", type=click.Path(file_okay=False), default=".",
              show_default=True, help="Folder to write the package folder NAME in.")
def new_plugin(name: str, parent: str) -> None:
    """Write a ready plugin package ./NAME/: an example cell, sampler, tokenizer and
    command, their entry point, tests using seqlm.testing, and a README."""
    from pathlib import Path

    from seqlm.newplugin import plugin_names, write_plugin

    root = write_plugin(name, Path(parent))
    names = plugin_names(name)
    click.echo(f"wrote {root}/ with cell {names['cell']}, sampler {names['sampler']}, "
               f"tokenizer {names['tokenizer']} and command {names['command']}.\n"
               f"Next: pip install -e {root} && seqlm plugins && "
               f"python -m pytest {root}/tests")


@main.command("list")
@click.argument("kind", type=click.Choice([f"{k}s" for k in KINDS]))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_components(kind: str, as_json: bool) -> None:
    """List the available cells, samplers, tokenizers, trainers or callbacks.

    Each name comes with its class, the plugin that registered it and the first line of
    its docstring. Listing imports the classes (and so torch).
    """
    plugins_ = get_plugins()
    rows = []
    for name, impls in sorted(plugins_.implementations(kind[:-1]).items()):
        for impl in impls:
            try:
                doc = (impl.load().__doc__ or "").strip().splitlines()
                description, status = (doc[0] if doc else ""), "ok"
            except SeqlmError as error:
                description, status = "", f"failed: {error}"
            rows.append({"name": name, "class": impl.qualified_name,
                         "plugin": plugins_.info[impl.plugin].describe(),
                         "description": description, "status": status})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"seqlm {kind}", title_justify="left")
    for column in ("Name", "Class", "Plugin", "Description"):
        table.add_column(column, overflow="fold")
    for row in rows:
        description = (_escape(row["description"]) if row["status"] == "ok"
                       else f"[red]{_escape(row['status'])}[/red]")
        table.add_row(_escape(row["name"]), _escape(row["class"]), _escape(row["plugin"]),
                      description)
    Console().print(table)


#: seqlm's own commands, which no plugin may replace.
BUILTIN_COMMANDS = frozenset(main.commands)
get_plugins().add_commands(main, BUILTIN_COMMANDS)
