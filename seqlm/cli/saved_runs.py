"""Commands on a saved run: ``seqlm generate``, ``seqlm eval`` and ``seqlm config``."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import click

from seqlm.cli.group import DEFAULTS, THREADS_OPTION, main
from seqlm.config import (
    DYNAMIC_DECAY,
    DYNAMIC_LR,
    DYNAMIC_PLAIN_LR,
    DYNAMIC_RMS,
    DYNAMIC_STEPS,
    DYNAMIC_STREAMS,
)
from seqlm.config.bounds import check_finite, check_threads
from seqlm.config.choices import CHECKPOINT_CHOICES
from seqlm.data.text import check_encoding
from seqlm.errors import UsageError
from seqlm.plugins.manager import plugin_prints_to_stderr

_WHICH_HELP = ("best: lowest validation loss (the last one if the run held out no text); "
               "last: where training stopped")


def _asked_checkpoint(ctx: click.Context, param: click.Parameter, value: str) -> str | None:
    """``--checkpoint`` as typed, or None where it was left out: a checkpoint's own file
    is measured as itself unless a --checkpoint it is not was asked for."""
    source = ctx.get_parameter_source(param.name or "")
    return None if source is click.core.ParameterSource.DEFAULT else value


_WHICH = click.option(
    "--checkpoint", "which", type=click.Choice(CHECKPOINT_CHOICES), default="best",
    show_default=True, callback=_asked_checkpoint,
    help=f"{_WHICH_HELP}; both: the two, as two members of an ensemble; "
    "all: those and every epoch that seqlm run --keep-every kept.")
_DEVICE = click.option("--device", default="cpu", show_default=True,
                       help="auto, cpu, cuda, cuda:N or mps.")


@main.command()
@click.argument("run_dirs", metavar="DIR...", nargs=-1, required=True, type=click.Path())
@click.option("--prefix", default=None,
              help="Text to continue [default: the run's own --prefix].")
@click.option("--length", type=click.IntRange(min=0), default=DEFAULTS.predict,
              show_default=True, help="How many tokens to generate (at most 1,000,000).")
@click.option("--temperature", type=float, default=1.0,
              show_default=True, help="Below 1 sharpens the distribution, above 1 flattens it; "
              "from 0.001 to 1000.")
@click.option("--top-k", type=click.IntRange(min=0), default=0, show_default=True,
              help="Draw only from the K most likely tokens; 0 for all.")
@click.option("--greedy", is_flag=True, help="Always take the most likely token (the seed's "
              "argmax); ignores --temperature and --top-k.")
@click.option("--seed", type=int, default=None, help="Random seed, for repeatable samples.")
@_WHICH
@_DEVICE
@THREADS_OPTION
def generate(run_dirs: tuple[str, ...], prefix: str | None, length: int, temperature: float,
             top_k: int, greedy: bool, seed: int | None, which: str | None, device: str,
             threads: int) -> None:
    """Continue --prefix with a trained model from the run folder DIR.

    Several DIRs generate from their ensemble: each token is drawn from the mean of the
    runs' distributions. The runs must share their vocabulary, tokenizer and cleaning.
    """
    from seqlm.runs.build import use_threads
    from seqlm.runs.saved import generate_text

    use_threads(threads)

    with plugin_prints_to_stderr():
        text = generate_text(run_dirs, prefix, length, which=which, device=device,
                             temperature=temperature, top_k=top_k, greedy=greedy, seed=seed,
                             warn=lambda line: click.echo(line, err=True))
    click.echo(text)


@main.command("eval")
@click.argument("run_dirs", metavar="DIR...", nargs=-1, required=True, type=click.Path())
@click.option("--data", type=click.Path(), default=None, metavar="FILE",
              help="Text file to measure the model on.")
@click.option("--held-out", is_flag=True, help="Measure on the text the run held out for "
              "validation (read again from the text it trained on) instead of --data.")
@click.option("--encoding", default=DEFAULTS.encoding, show_default=True)
@_WHICH
@_DEVICE
@THREADS_OPTION
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Measure N members of an ensemble at a time, side by side on the CPU "
              "(each with one torch thread unless --threads says otherwise).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a sentence.")
@click.option("--dynamic", is_flag=True, help="Also measure with dynamic evaluation: the "
              "model adapts to the text as it reads it (the run is not changed).")
@click.option("--dynamic-lr", type=click.FloatRange(min=0), default=None,
              help=f"Step size of the adaptation after each segment.  [default: "
              f"{DYNAMIC_LR:g} with RMS-scaled steps, {DYNAMIC_PLAIN_LR:g} with "
              f"--dynamic-plain]")
@click.option("--dynamic-decay", type=click.FloatRange(min=0, max=1), default=DYNAMIC_DECAY,
              show_default=True, help="How far each step pulls the weights back towards "
              "the trained ones.")
@click.option("--dynamic-steps", type=click.IntRange(min=1), default=DYNAMIC_STEPS,
              show_default=True, help="Tokens per segment (one adaptation step each).")
@click.option("--dynamic-rms/--dynamic-plain", default=DYNAMIC_RMS, show_default=True,
              help="Divide each step by the root mean square of the recent gradients "
              "(RMS-scaled), or take plain gradient steps.")
@click.option("--dynamic-streams", type=click.IntRange(min=1), default=DYNAMIC_STREAMS,
              show_default=True, help="Read the text as up to N streams side by side (each "
              "at least 4,096 tokens): 1 reads it in order, so every segment gains from "
              "all before it; more are faster on a long text.")
def eval_command(run_dirs: tuple[str, ...], data: str | None, held_out: bool, encoding: str,
                 which: str | None, device: str, threads: int, as_json: bool,
                 dynamic: bool,
                 dynamic_lr: float | None, dynamic_decay: float, dynamic_steps: int,
                 dynamic_rms: bool, jobs: int, dynamic_streams: int) -> None:
    """Perplexity and bits per token of a trained model (in DIR) on the text in --data, or
    on the text it held out (--held-out).

    Several DIRs measure their ensemble: each token's probability is the mean of the
    runs' probabilities. The runs must share their vocabulary, tokenizer and cleaning.
    """
    from seqlm.runs.build import use_threads
    from seqlm.runs.saved import evaluate_text
    from seqlm.training.dynamic_eval import DynamicSettings

    check_threads(threads, jobs)
    check_encoding(encoding)  # even with --held-out, which reads no file: a typo is a typo
    # Members side by side, each op on one core: torch's default of a thread per core
    # would have them fight over the cores.
    use_threads(1 if jobs > 1 and threads == 0 else threads)
    if not dynamic:
        ctx = click.get_current_context()
        flags = {"dynamic_lr": "--dynamic-lr", "dynamic_decay": "--dynamic-decay",
                 "dynamic_steps": "--dynamic-steps", "dynamic_streams": "--dynamic-streams",
                 "dynamic_rms": "--dynamic-rms" if dynamic_rms else "--dynamic-plain"}
        given = [flag for name, flag in flags.items()
                 if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT]
        if given:
            # Said rather than ignored: the figure printed would not be what was asked for.
            raise UsageError(f"{given[0]} sets how --dynamic evaluates, and --dynamic is not "
                             "given; add --dynamic, or drop it")
    check_finite("--dynamic-lr", dynamic_lr)
    check_finite("--dynamic-decay", dynamic_decay)
    settings = (DynamicSettings(lr=dynamic_lr, decay=dynamic_decay, steps=dynamic_steps,
                                rms=dynamic_rms, streams=dynamic_streams) if dynamic else None)
    with _segment_progress(dynamic) as progress, plugin_prints_to_stderr():
        result = evaluate_text(run_dirs, data, held_out=held_out, which=which, device=device,
                               encoding=encoding, warn=lambda line: click.echo(line, err=True),
                               dynamic=settings, progress=progress, jobs=jobs)
    if "dynamic" in result and not math.isfinite(result["dynamic"]["perplexity"]):
        # Steps too large for the weights: a figure of inf or nan tells nothing.
        raise UsageError(f"dynamic evaluation diverged (perplexity "
                         f"{result['dynamic']['perplexity']}) with --dynamic-lr "
                         f"{result['dynamic']['lr']:g}; give a smaller --dynamic-lr")
    if as_json:
        from seqlm.runs.strict_json import dumps

        click.echo(dumps(result))  # strict JSON: an infinite figure as a string
        return
    unknown = (f", {result['unknown_tokens']:,} of them unknown to the vocabulary (read as "
               "<unk>)" if result["unknown_tokens"] else "")
    text = " held out" if held_out else ""
    members = result["members"]
    if len(members) == 1:
        which_model = f"checkpoint {result['checkpoint']}, epoch {result['epoch']}"
    else:
        ensemble = (f"{len(members)} runs" if len(members) == len(run_dirs) else
                    f"{len(members)} checkpoints of {len(run_dirs)} run"
                    f"{'s' if len(run_dirs) > 1 else ''}")
        which_model = f"an ensemble of {ensemble}, each token's probability their mean"
    click.echo(f"perplexity {result['perplexity']:.4f}, {result['bits_per_token']:.4f} bits "
               f"per token over {result['tokens']:,}{text} {result['tokenizer']} tokens"
               f"{unknown} ({which_model})")
    if len(members) > 1:
        for member in members:
            dynamic_figure = (f", dynamic {member['dynamic_perplexity']:.4f}"
                              if "dynamic_perplexity" in member else "")
            click.echo(f"  {member['run']}: perplexity {member['perplexity']:.4f}"
                       f"{dynamic_figure} (checkpoint {member['checkpoint']}, epoch "
                       f"{member['epoch']})")
    if "dynamic" in result:
        d = result["dynamic"]
        fewer = f" (read as {d['streams_read']})" if d["streams_read"] != d["streams"] else ""
        click.echo(f"dynamic: perplexity {d['perplexity']:.4f}, {d['bits_per_token']:.4f} "
                   f"bits per token (static {d['static_perplexity']:.4f} read the same way; "
                   f"--dynamic-lr {d['lr']:g}, --dynamic-decay {d['decay']:g}, "
                   f"--dynamic-steps {d['steps']}, --dynamic-streams {d['streams']}{fewer}, "
                   f"{'--dynamic-rms' if d['rms'] else '--dynamic-plain'})")


@contextlib.contextmanager
def _segment_progress(wanted: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on a terminal's stderr for dynamic evaluation's segments, which can
    take minutes on a long text; nothing where stderr is a file or a pipe."""
    from rich.console import Console

    console = Console(stderr=True)
    if not wanted or not console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress("dynamic evaluation", BarColumn(), MofNCompleteColumn(), "segments",
                  TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task("segments", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@main.command("config")
@click.argument("run_dir", metavar="DIR", type=click.Path())
def config_command(run_dir: str) -> None:
    """Print the settings of the run in DIR as a recipe for seqlm run --config."""
    from seqlm.runs.saved import run_recipe

    click.echo(run_recipe(run_dir), nl=False)
