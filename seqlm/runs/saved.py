"""Using a trained run: load its checkpoint, generate text, measure it on a text.

This is the library behind ``seqlm generate`` and ``seqlm eval``. Everything needed to
rebuild the model (settings, vocabulary, tokenizer state, component names) comes from
the checkpoint's JSON, and the weights from its safetensors file.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from seqlm.checkpoints.format import (
    BEST,
    LAST,
    checkpoint_path,
    kept_epoch_of,
    kept_epochs,
    kept_name,
    load_weights,
)
from seqlm.checkpoints.runstate import load_run_checkpoint, read_saved_run
from seqlm.config import RunConfig
from seqlm.config.bounds import check_device_name, check_seed
from seqlm.config.choices import ALL, BOTH, CHECKPOINT_CHOICES, CHECKPOINTS
from seqlm.config.recipes import recipe_text
from seqlm.data.preflight import check_prefix
from seqlm.data.vocab import UNK, Vocab
from seqlm.errors import CheckpointError, DataError, UsageError
from seqlm.interfaces import Tokenizer
from seqlm.metrics import bits_per_token, perplexity
from seqlm.model.limits import check_generate_length, check_temperature
from seqlm.model.rnn import RNNModel
from seqlm.plugins.manager import check_options, get_plugins
from seqlm.plugins.provenance import plugin_change, resolve_all
from seqlm.runs.build import build_model, build_tokenizer, resolve_device
from seqlm.runs.heldout import held_out_ids
from seqlm.training.dynamic_eval import DynamicSettings, dynamic_token_losses
from seqlm.training.evaluation import ensemble_loss, split_streams, token_losses


@dataclass
class TrainedModel:
    """A model rebuilt from a checkpoint, with what it needs to read and write text."""

    model: RNNModel
    vocab: Vocab
    tokenizer: Tokenizer
    config: RunConfig
    epoch: int
    name: str  # "best", "checkpoint" or a kept epoch's "epoch-N"
    #: The fitted tokenizer's saved state, and the checksum of the --data file the run
    #: trained on (None for the downloaded book): what tells whether runs read a text alike.
    tokenizer_state: dict[str, Any] = field(default_factory=dict)
    data_sha256: str | None = None


def check_run_path(run_dir: object) -> None:
    """A run folder (or a checkpoint's file) is given as a str or a path."""
    if isinstance(run_dir, bool) or not isinstance(run_dir, (str, os.PathLike)):
        raise UsageError(f"a run folder must be a str or a Path, got "
                         f"{type(run_dir).__name__} {run_dir!r}")


def load_trained(
    run_dir: str | Path, which: str | None = None, device: str | torch.device = "cpu",
    warn: Callable[[str], None] | None = None,
) -> TrainedModel:
    """Rebuild the model saved in ``run_dir``: ``which`` is ``best`` (None: the default),
    ``last``, or ``epoch-N`` for an epoch that ``--keep-every`` kept.

    ``best`` falls back to the last checkpoint when the run kept no best one (it held
    out no text). ``run_dir`` may be a checkpoint's own file (``best.json``, ...): it is
    that checkpoint, and a ``which`` that names another is an error. Weights load on the
    CPU first, whatever device wrote them, then move to ``device``. A component whose
    plugin is missing is an error naming the package to install; ``warn`` hears of a
    different installed version.
    """
    check_run_path(run_dir)
    if isinstance(device, torch.device):  # from Python, as torch names devices
        device = str(device)
    check_device_name(device)
    if which is not None and not (which in CHECKPOINTS or kept_epoch_of(str(which))):
        raise UsageError(f"checkpoint {which!r} is not one of best, last or epoch-N (an "
                         "epoch that --keep-every kept)")
    name = {"last": LAST, "best": BEST, None: BEST}.get(which, which)  # or epoch-N
    if Path(run_dir).is_file():
        # A checkpoint's own file (a run's checkpoint.json, best.json or epoch-N.json) is
        # the checkpoint, whatever it is called; which one is chosen within a run folder.
        stem = Path(run_dir).stem
        if which is not None and name != stem:
            raise UsageError(f"{run_dir} is one checkpoint's file; give its run folder to "
                             f"choose --checkpoint {which}")
        name = stem
    elif name == BEST and not checkpoint_path(run_dir, BEST).is_file():
        name = LAST
    saved = read_saved_run(load_run_checkpoint(run_dir, name), run_dir)
    placed = resolve_device(device)  # the user's choice: its errors are the user's
    plugins = get_plugins()
    classes = resolve_all(plugins, {"tokenizer": saved.tokenizer_name, "cell": saved.cell_name},
                          saved.components, warn)
    tokenizer_cls, cell_cls = classes["tokenizer"], classes["cell"]
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
    load_weights(model, saved.weights, run_dir,
                 plugin_change(plugins, "cell", saved.components.get("cell")))
    model.to(placed).eval()
    return TrainedModel(model, saved.vocab, tokenizer, saved.config, saved.epoch, name,
                        saved.tokenizer_state, saved.data_sha256)


def generate_text(
    run_dir: str | Path | Sequence[str | Path],
    prefix: str | None,
    length: int,
    *,
    which: str | None = None,
    device: str | torch.device = "cpu",
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

    Several run folders, or ``which="both"`` or ``"all"`` (see :func:`evaluate_text`),
    generate from their ensemble (:class:`~seqlm.model.ensemble.Ensemble`): each token is
    drawn from the mean of the members' distributions. The runs must read text alike;
    ``prefix=None`` takes the first run's.
    """
    from seqlm.model.ensemble import Ensemble
    from seqlm.model.generation import generate

    # Checked before the model loads: each would otherwise fail midway, in torch.
    if prefix is not None and not isinstance(prefix, str):
        raise UsageError(f"prefix must be a str (or None for the run's own), got "
                         f"{type(prefix).__name__} {prefix!r}")
    check_generate_length("--length", length)
    if not greedy:
        check_temperature(temperature)
    check_seed(seed)
    members = [trained for _, trained in _members(run_dir, which, device, warn, "generate from")]
    first = members[0]
    model = first.model if len(members) == 1 else Ensemble([m.model for m in members])
    if prefix is None:
        prefix = first.config.prefix
    # As seqlm run checks its --prefix: none of its tokens known is an error (the text
    # would be noise), some unknown a note, with the cleaning's hint where it applies.
    note = check_prefix(prefix, first.tokenizer, first.vocab, first.config.clean)
    if note and warn is not None:
        warn(f"warning: {note}")
    # Drawn on the model's device, so no token travels to the host until the end; a
    # seed gives the same text on the same kind of device.
    device_of_model = next(model.parameters()).device
    generator = (torch.Generator(device=device_of_model).manual_seed(seed)
                 if seed is not None else None)
    return generate(model, first.vocab, first.tokenizer, prefix, length,
                    greedy=greedy, temperature=temperature, top_k=top_k, generator=generator)


def evaluate_text(
    run_dir: str | Path | Sequence[str | Path],
    data: str | Path | None = None,
    *,
    held_out: bool = False,
    which: str | None = None,
    device: str | torch.device = "cpu",
    encoding: str = "utf-8",
    warn: Callable[[str], None] | None = None,
    dynamic: DynamicSettings | bool | None = None,
    progress: Callable[[int, int], None] | None = None,
    jobs: int = 1,
) -> dict[str, Any]:
    """Perplexity and bits per token of the model in ``run_dir`` on the text in ``data``,
    or, with ``held_out=True``, on the text the run held out for validation (rebuilt by
    :func:`seqlm.runs.heldout.held_out_ids`: the very tokens its validation figures came
    from).

    The text is cleaned and tokenized as the run's training text was; tokens the
    vocabulary lacks count as ``<unk>`` (and are reported). With ``dynamic`` the result
    also has a ``dynamic`` entry: the same figures under dynamic evaluation
    (:mod:`seqlm.training.dynamic_eval`), which adapts a copy of the model, never the saved
    run (``progress`` follows it: see :func:`~seqlm.training.dynamic_eval.dynamic_loss`),
    with the static figures of the text read as the same streams beside them
    (``static_perplexity``, ``static_loss``; reading a text as fewer, longer streams gives
    a few tokens more context, so these can differ slightly from the top-level figures).

    Several run folders make an ensemble: each token's probability is the mean of the
    runs' probabilities (under ``dynamic``, each run adapts on its own), and ``members``
    gives each run's own figures. The runs must read text alike: the same vocabulary,
    tokenizer and cleaning (with ``held_out``, the same held-out text too). The text is
    read as the first run's validation reads it. ``which="both"`` makes the best and the
    last checkpoint of every run two members (a checkpoint ensemble: the last weights
    have trained further than the best and err elsewhere, so their mean gains a little),
    and ``which="all"`` adds the epochs that ``--keep-every`` kept. ``jobs`` members are
    measured at a time, each in a thread of its own (see :func:`_per_member`); the figures
    are those of one at a time.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise UsageError(f"--jobs must be a whole number of at least 1, got {jobs!r}")
    if isinstance(dynamic, bool):  # from Python: True for the defaults
        dynamic = DynamicSettings() if dynamic else None
    if dynamic is not None and not isinstance(dynamic, DynamicSettings):
        raise UsageError(f"dynamic must be a DynamicSettings, True for its defaults, or None; "
                         f"got {type(dynamic).__name__}")
    if not isinstance(held_out, bool):
        raise UsageError(f"held_out must be True or False, got {held_out!r}")
    if held_out == (data is not None):
        raise UsageError("give either --data FILE (a text to measure on) or --held-out (the "
                         "text the run held out), not both" if held_out else
                         "give --data FILE (a text to measure on) or --held-out (the text "
                         "the run held out for validation)")
    members = _members(run_dir, which, device, warn, "evaluate")
    first = members[0][1]
    if held_out:
        ids = _held_out_of_all(members)
        unknown = 0
    else:
        ids, unknown = _text_ids(first, data, encoding)
    streams = first.config.batch_size
    losses = _per_member([t for _, t in members], jobs, lambda i, trained, check: token_losses(
        trained.model, ids, streams, between=check))
    loss = ensemble_loss(losses).mean().item()
    figures = [{"run": str(d), **_figures(member.mean().item()),
                "checkpoint": _label(trained.name), "epoch": trained.epoch}
               for (d, trained), member in zip(members, losses, strict=True)]
    result: dict[str, Any] = {
        **_figures(loss),
        "tokens": len(losses[0]),
        "unknown_tokens": unknown,
        "tokenizer": first.config.tokenizer,
        # Which checkpoint a lone model came from (best falls back to last where a run
        # held out nothing); an ensemble's members say so each.
        "checkpoint": figures[0]["checkpoint"] if len(members) == 1 else which or "best",
        "epoch": first.epoch if len(members) == 1 else None,
        "held_out": held_out,
        "members": figures,
    }
    if dynamic is not None:
        result["dynamic"] = _dynamic_figures([t for _, t in members], ids, dynamic, progress,
                                             figures, jobs)
    return result


def _members(
    run_dir: str | Path | Sequence[str | Path], which: str | None,
    device: str | torch.device, warn: Callable[[str], None] | None, verb: str,
) -> list[tuple[str | Path, TrainedModel]]:
    """Every model ``which`` names in each of the run folders, with its folder: the
    members of an ensemble, each distinct model once, refused unless they read text alike
    or when two folders hold one model (``verb``: what the caller does with them, for the
    error of no folder at all)."""
    if isinstance(run_dir, (str, os.PathLike)):
        dirs: list[str | Path] = [run_dir]
    elif isinstance(run_dir, Iterable) and not isinstance(run_dir, bytes):
        dirs = list(run_dir)
    else:
        raise UsageError(f"give a run folder (a str or a Path), or a list of them; got "
                         f"{type(run_dir).__name__}")
    for d in dirs:
        check_run_path(d)
    if not dirs:
        raise UsageError(f"give at least one run folder to {verb}")
    resolved = [Path(d).resolve() for d in dirs]
    if len(set(resolved)) < len(resolved):
        # Counted twice, a run would weigh double in the mean, unasked.
        twice = next(d for d, r in zip(dirs, resolved, strict=True) if resolved.count(r) > 1)
        raise UsageError(f"the same run is given twice ({twice}); give different run folders")
    if which is not None and which not in CHECKPOINT_CHOICES:
        raise UsageError(f"checkpoint {which!r} is not one of {', '.join(CHECKPOINT_CHOICES)}")
    members: list[tuple[str | Path, TrainedModel]] = []
    for d in dirs:
        for trained in _checkpoints(d, which, device, warn):
            if members:
                problem = _reads_text_otherwise(trained, members[0][1])
                if problem:
                    raise UsageError(f"{d} {problem} {members[0][0]}; an ensemble averages "
                                     "the runs' probabilities of the same tokens, so give runs "
                                     "trained with the same --tokenizer and --clean on the "
                                     "same text")
            twin = next(((od, o) for od, o in members if _same_weights(trained, o)), None)
            if twin is None:
                members.append((d, trained))
            elif twin[0] != d:
                # A checkpoint's file beside its run, or a copy of a run: the same model
                # by another path, which would weigh double as the same folder twice would.
                raise UsageError(f"{d} holds the same weights as {twin[0]} "
                                 f"({_label(twin[1].name)}); an ensemble would count them "
                                 "twice, so give each model once")
            # Else one run's checkpoint again (its best is often its last epoch or a kept
            # one): one member. Weights, not epochs, are compared: under --average the best
            # holds the average of an epoch whose own weights the last checkpoint holds.
        if which == BOTH and sum(od == d for od, _ in members) == 1 and warn is not None:
            warn(f"note: {d}'s best checkpoint is its last (epoch "
                 f"{members[-1][1].epoch}), so --checkpoint both takes it once")
    return members


def _held_out_of_all(members: list[tuple[str | Path, TrainedModel]]) -> torch.Tensor:
    """The held-out text of the first member, refused unless every member held out the
    same. The members already read text alike, so the text is read and cut once for each
    distinct source and split (a run's checkpoints, or runs of one recipe, share it)."""
    cut: dict[tuple[Any, ...], torch.Tensor] = {}
    first_dir, ids = members[0][0], None
    for run_dir, trained in members:
        config = trained.config
        source = (config.data, config.encoding, config.max_tokens, config.val_fraction,
                  trained.data_sha256)
        if source not in cut:
            cut[source] = held_out_ids(run_dir, config, trained.tokenizer, trained.vocab,
                                       trained.data_sha256)
        if ids is None:
            ids = cut[source]
        elif not torch.equal(cut[source], ids):
            raise UsageError(f"{run_dir} held out other text than {first_dir}; give runs that "
                             "trained on the same text with the same --max-tokens and "
                             "--val-fraction, or measure them on one text with --data FILE")
    assert ids is not None
    return ids


def _label(name: str) -> str:
    return {BEST: "best", LAST: "last"}.get(name, name)


def _checkpoints(
    run_dir: str | Path, which: str | None, device: str | torch.device,
    warn: Callable[[str], None] | None,
) -> list[TrainedModel]:
    """The run's model at ``which`` checkpoint; for ``both``, at its best and its last,
    and for ``all`` at those and every epoch ``--keep-every`` kept (the same weights may
    come twice: :func:`_members` keeps them once)."""
    if which not in (BOTH, ALL):
        return [load_trained(run_dir, which, device, warn)]
    if Path(run_dir).is_file():
        raise UsageError(f"{run_dir} is one checkpoint's file; give its run folder to choose "
                         f"--checkpoint {which}")
    kept = kept_epochs(run_dir) if which == ALL else []
    if which == ALL and not kept and warn is not None:
        warn(f"note: {run_dir} kept no epochs (seqlm run --keep-every N keeps them), so "
             "--checkpoint all takes its best and last checkpoints only")
    return [load_trained(run_dir, name, device, warn)
            for name in ["best", *(kept_name(e) for e in kept), "last"]]


def _same_weights(a: TrainedModel, b: TrainedModel) -> bool:
    first, second = a.model.state_dict(), b.model.state_dict()
    return first.keys() == second.keys() and all(
        torch.equal(first[key], second[key]) for key in first)


def _figures(loss: float) -> dict[str, float]:
    return {"perplexity": perplexity(loss), "bits_per_token": bits_per_token(loss),
            "loss": loss}


def _reads_text_otherwise(trained: TrainedModel, first: TrainedModel) -> str | None:
    """How ``trained`` reads text unlike ``first`` (the end of a sentence naming ``first``'s
    run), or None where they read it alike."""
    if trained.config.tokenizer != first.config.tokenizer:
        return (f"uses --tokenizer {trained.config.tokenizer}, not --tokenizer "
                f"{first.config.tokenizer} as")
    if trained.config.clean != first.config.clean:
        return f"uses --clean {trained.config.clean}, not --clean {first.config.clean} as"
    if (trained.tokenizer_state != first.tokenizer_state
            or trained.vocab.idx_to_token != first.vocab.idx_to_token):
        return "has another vocabulary than"
    return None


def _text_ids(trained: TrainedModel, data: str | Path, encoding: str) -> tuple[torch.Tensor, int]:
    """Token ids of the text in ``data`` as the run reads it, and how many of the tokens
    measured (each after the first) are unknown: missing from the vocabulary, or read as
    ``<unk>`` by the tokenizer itself."""
    from seqlm.data.corpus import text_tokens
    from seqlm.data.text import read_text

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
    unknown = sum(1 for t in tokens[1:] if t == UNK or t not in trained.vocab)
    return torch.tensor(trained.vocab[tokens], dtype=torch.long), unknown


def _dynamic_figures(
    members: list[TrainedModel], ids: torch.Tensor, settings: DynamicSettings,
    progress: Callable[[int, int], None] | None, figures: list[dict[str, Any]], jobs: int,
) -> dict[str, Any]:
    """Dynamic evaluation of each member, and of their ensemble, beside the static figures
    of the text read the same way (one pass without gradients, little beside the adapting
    pass), so that the two compare token for token. Each member's entry in ``figures``
    gains its own ``dynamic_perplexity``."""
    # One bar for all members: the segments every member has read so far.
    read = [0] * len(members)
    lock = threading.Lock()

    def measure(member: int, trained: TrainedModel,
                check: Callable[[], None]) -> tuple[torch.Tensor, torch.Tensor]:
        def report(done: int, total: int) -> None:
            check()
            with lock:
                read[member] = done
                if progress is not None:
                    progress(sum(read), len(members) * total)

        return (token_losses(trained.model, ids, settings.streams, between=check),
                dynamic_token_losses(trained.model, ids, settings, report))

    static, adapted = zip(*_per_member(members, jobs, measure), strict=True)
    for figure, losses in zip(figures, adapted, strict=True):
        figure["dynamic_perplexity"] = perplexity(losses.mean().item())
    static_loss = ensemble_loss(list(static)).mean().item()
    adapted_loss = ensemble_loss(list(adapted)).mean().item()
    return {
        **_figures(adapted_loss),
        "static_perplexity": perplexity(static_loss),
        "static_loss": static_loss,
        "tokens": len(adapted[0]),
        **asdict(settings),
        # At most settings.streams: a short text is read as fewer (see split_streams).
        "streams_read": split_streams(ids, settings.streams)[0].shape[0],
    }


class _Stopped(Exception):
    """Ends a member's reading early, because another failed or the user stopped."""


def _per_member(
    members: list[TrainedModel], jobs: int,
    work: Callable[[int, TrainedModel, Callable[[], None]], Any],
) -> list[Any]:
    """``work(index, member, check)`` for every member, in order, ``jobs`` at a time.

    Threads, not processes: torch's kernels release the interpreter's lock, and each
    member's model is its own, so on a CPU two members read side by side, each op on one
    core, take little more than one alone (a model of one stream is too small to keep two
    cores busy with one op). The results are those of one at a time, member by member.
    ``work`` calls ``check()`` between steps: once one member fails, or Ctrl-C comes, it
    raises there, so that the others end at once rather than read on. On a GPU the
    members take turns: its kernels already run beside the host, and dynamic evaluation
    switches cuDNN off and on around each member's reading, a setting of the whole
    process that threads would trip over.
    """
    stop = threading.Event()

    def check() -> None:
        if stop.is_set():
            raise _Stopped

    on_cpu = all(next(m.model.parameters()).device.type == "cpu" for m in members)
    if jobs == 1 or len(members) == 1 or not on_cpu:
        return [work(i, member, check) for i, member in enumerate(members)]
    pool = ThreadPoolExecutor(min(jobs, len(members)), thread_name_prefix="seqlm-eval")
    try:
        return list(pool.map(lambda i, member: work(i, member, check), range(len(members)),
                             members))
    except BaseException:
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_recipe(run_dir: str | Path) -> str:
    """The settings of the run in ``run_dir`` as a recipe (from its last checkpoint)."""
    state = load_run_checkpoint(run_dir, LAST)  # its fields checked, as for a resume
    settings = RunConfig.from_dict(state["config"]).to_dict()
    return recipe_text(settings, title=f"seqlm run --config FILE: the settings of {run_dir} "
                       f"(epoch {state.get('epoch', '?')}, seqlm "
                       f"{state.get('seqlm_version', '?')})")
