"""Training throughput of seqlm against the seed's algorithm, cell by cell.

For every built-in cell this trains, in one process and on the same data, seqlm's
model with its default trainer and a plain reference that follows the seed's code step
by step (:mod:`benchmarks.seed_reference`). Timed chunks of epochs alternate between
the two, so that a change in the machine's load hits both alike; the table reports the
median over the chunks (and the best chunk) in tokens per second, the ratio, the ratio
of all timed tokens over all timed seconds (``overall``), and each
side's final training perplexity. On a CUDA machine the same runs repeat on the GPU,
followed by the compute-bound size (batch 256, hidden 1024, 2 layers, whole book)
where ``lstm-scratch`` is compared with ``lstm``. It also reports how long
``seqlm --help`` and ``seqlm plugins`` take to start and the peak memory of the
default ``seqlm run``.

Run from the repository root::

    SEQLM_DATA_DIR=/path/to/folder/with/timemachine.txt \\
        python benchmarks/throughput.py --json benchmarks/results.json

This is a measurement, not a unit test; see ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import seed_reference as ref  # noqa: E402
from seqlm.data.corpus import build_corpus, load_text  # noqa: E402
from seqlm.data.samplers import SequentialSampler  # noqa: E402
from seqlm.errors import TrainingError  # noqa: E402
from seqlm.interfaces import Callback  # noqa: E402
from seqlm.model.rnn import RNNModel  # noqa: E402
from seqlm.plugins.manager import get_plugins  # noqa: E402
from seqlm.training.trainer import DefaultTrainer  # noqa: E402

CELLS = ["lstm", "lstm-scratch", "gru", "gru-scratch", "rnn", "rnn-scratch"]


@dataclass
class Row:
    """One line of the table."""

    device: str
    cell: str
    size: str
    precision: str
    cuda_graph: bool  # seqlm's step recorded and replayed as a CUDA graph
    seed_tokens_per_s: float | None
    seqlm_tokens_per_s: float
    seed_best: float | None
    seqlm_best: float
    seed_overall: float | None  # all timed tokens over all timed seconds
    seqlm_overall: float
    ratio: float | None
    seed_ppl: float | None
    seqlm_ppl: float
    epochs: int


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class SeedRun:
    """The seed's network and loop, trained a few epochs at a time."""

    def __init__(self, cell: str, ids: list[int], vocab: int, args, device: torch.device):
        self.ids, self.args, self.device = ids, args, device
        self.net, self.updater = ref.build(cell, vocab, args.hidden, args.lr, device)
        self.loss = nn.CrossEntropyLoss()
        self.last_loss = math.nan

    def epochs(self, count: int) -> int:
        tokens = 0
        for _ in range(count):
            self.last_loss, n = ref.train_epoch(
                self.net, self.ids, self.args.batch_size, self.args.num_steps, self.loss,
                self.updater, self.device)
            tokens += n
        return tokens


class SeqlmRun:
    """seqlm's model and default trainer, trained a few epochs at a time."""

    def __init__(self, cell: str, corpus: torch.Tensor, vocab: int, args, device: torch.device,
                 hidden: int | None = None, num_layers: int = 1, batch_size: int | None = None):
        cell_cls = get_plugins().get("cell", cell)
        self.model = RNNModel(cell_cls(input_size=vocab, hidden_size=hidden or args.hidden,
                                       num_layers=num_layers), vocab)
        self.corpus = corpus
        self.sampler = SequentialSampler(batch_size or args.batch_size, args.num_steps)
        # The default (auto): recorded as a CUDA graph on CUDA where the step allows it.
        self.trainer = DefaultTrainer(lr=args.lr, clip=1.0, epochs=1, device=device,
                                      precision=args.precision,
                                      cuda_graph=False if args.no_cuda_graph else "auto")
        self.last_loss = math.nan

    def epochs(self, count: int) -> int:
        self.trainer.epochs = count
        history = self.trainer.fit(self.model, self.corpus, self.sampler)
        self.last_loss = history[-1].train_loss
        return sum(m.tokens for m in history)

    def chunks(self, chunk: int, repeats: int, device: torch.device,
               between: Callable[[], None] = lambda: None) -> list[tuple[int, float]]:
        """One warm-up epoch, then ``repeats`` timed chunks of ``chunk`` epochs, all in one
        :meth:`~DefaultTrainer.fit` as a user's run trains (one recording of the step,
        one optimizer); ``between()`` runs untimed after the warm-up and every chunk."""
        timer = _ChunkTimer(chunk, device, between)
        self.trainer.epochs = 1 + chunk * repeats
        history = self.trainer.fit(self.model, self.corpus, self.sampler, [timer])
        self.last_loss = history[-1].train_loss
        return timer.chunks

    @property
    def recorded(self) -> bool:
        """Whether the step ran as a recorded CUDA graph."""
        report = self.trainer.graph_report
        return bool(report and report.recorded)


class _ChunkTimer(Callback):
    """Times chunks of epochs inside one fit, running ``between()`` outside the timing."""

    def __init__(self, chunk: int, device: torch.device, between: Callable[[], None]) -> None:
        self.chunk, self.device, self.between = chunk, device, between
        self.chunks: list[tuple[int, float]] = []
        self._tokens, self._started = 0, 0.0

    def on_epoch_end(self, trainer, metrics) -> None:
        if metrics.epoch > 1:
            self._tokens += metrics.tokens
            if (metrics.epoch - 1) % self.chunk:
                return
            _sync(self.device)
            self.chunks.append((self._tokens, time.perf_counter() - self._started))
        self.between()
        self._tokens = 0
        _sync(self.device)
        self._started = time.perf_counter()


def timed(run, epochs: int, device: torch.device) -> tuple[int, float]:
    """Tokens trained and seconds taken by ``epochs`` epochs of ``run``."""
    _sync(device)
    started = time.perf_counter()
    tokens = run.epochs(epochs)
    _sync(device)
    return tokens, time.perf_counter() - started


def _speeds(chunks: list[tuple[int, float]]) -> tuple[list[float], float]:
    """Tokens per second of each chunk, and of all chunks together."""
    overall = sum(t for t, _ in chunks) / sum(s for _, s in chunks)
    return [t / s for t, s in chunks], overall


def compare(cell: str, corpus, args, device: torch.device) -> Row:
    """Alternate timed chunks of the seed's loop and seqlm's on one cell."""
    vocab = len(corpus.vocab)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    seed_run = SeedRun(cell, corpus.ids.tolist(), vocab, args, device)
    torch.manual_seed(args.seed)
    seqlm_run = SeqlmRun(cell, corpus.ids, vocab, args, device)
    seed_run.epochs(1)  # warm-up: allocator, kernels, lazy initialisation
    seed_chunks: list[tuple[int, float]] = []

    def seed_chunk() -> None:
        # Between seqlm's chunks (and after its warm-up epoch), so the two alternate.
        if len(seed_chunks) < args.repeats:
            seed_chunks.append(timed(seed_run, args.chunk, device))

    seqlm_chunks = seqlm_run.chunks(args.chunk, args.repeats, device, seed_chunk)
    seed_speeds, seed_overall = _speeds(seed_chunks)
    seqlm_speeds, seqlm_overall = _speeds(seqlm_chunks)
    seed_median = statistics.median(seed_speeds)
    seqlm_median = statistics.median(seqlm_speeds)
    return Row(
        device=device.type, cell=cell, size="seed", precision=args.precision,
        cuda_graph=seqlm_run.recorded,
        seed_tokens_per_s=seed_median, seqlm_tokens_per_s=seqlm_median,
        seed_best=max(seed_speeds), seqlm_best=max(seqlm_speeds),
        seed_overall=seed_overall, seqlm_overall=seqlm_overall,
        ratio=seqlm_median / seed_median,
        seed_ppl=math.exp(seed_run.last_loss), seqlm_ppl=math.exp(seqlm_run.last_loss),
        epochs=1 + args.repeats * args.chunk,
    )


def compute_bound(cell: str, corpus, args, device: torch.device) -> Row:
    """seqlm alone at batch 256, hidden 1024, 2 layers, on the whole corpus."""
    torch.manual_seed(args.seed)
    run = SeqlmRun(cell, corpus.ids, len(corpus.vocab), args, device,
                   hidden=1024, num_layers=2, batch_size=256)
    speeds, overall = _speeds(run.chunks(1, args.repeats, device))
    return Row(device=device.type, cell=cell, size="b256-h1024-l2-book", precision=args.precision,
               cuda_graph=run.recorded, seed_tokens_per_s=None,
               seqlm_tokens_per_s=statistics.median(speeds),
               seed_best=None, seqlm_best=max(speeds), seed_overall=None,
               seqlm_overall=overall, ratio=None, seed_ppl=None,
               seqlm_ppl=math.exp(run.last_loss), epochs=1 + args.repeats)


def _measured(measure, cell: str, corpus, args, device: torch.device) -> Row:
    """``measure(cell, ...)``; where CUDA cannot record seqlm's step as a graph, say why
    and measure again without the graph, so one run on a GPU gives every row."""
    try:
        return measure(cell, corpus, args, device)
    except TrainingError as error:
        if args.no_cuda_graph:
            raise
        print(f"{cell}: {error}; measuring it without the CUDA graph")
        return measure(cell, corpus, argparse.Namespace(**{**vars(args), "no_cuda_graph": True}),
                       device)


def startup_seconds(command: list[str], repeats: int = 5) -> float:
    """Median wall time of a CLI command in a fresh interpreter."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "seqlm", *command], check=True,
                       capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def peak_memory(epochs: int, device: str) -> dict:
    """Peak memory of the default ``seqlm run`` (``epochs`` epochs) in a child process."""
    out = Path(os.environ.get("TMPDIR", "/tmp")) / "seqlm-bench-peak"
    result = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("peak_memory.py")), str(epochs),
         device, str(out)],
        check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(result.stdout.strip().splitlines()[-1])


def print_table(rows: list[Row]) -> None:
    def fmt(x: float | None, spec: str = ",.0f") -> str:
        return "-" if x is None else format(x, spec)

    header = (f"{'device':6} {'cell':13} {'size':19} {'seqlm dtype':11} {'seed tok/s':>11} "
              f"{'seqlm tok/s':>12} "
              f"{'ratio':>6} {'seed best':>10} {'seqlm best':>11} {'overall':>7} {'seed ppl':>9} "
              f"{'seqlm ppl':>9}")
    print(header)
    print("-" * len(header))
    for r in rows:
        overall = r.seqlm_overall / r.seed_overall if r.seed_overall else None
        dtype = r.precision + (" graph" if r.cuda_graph else "")
        print(f"{r.device:6} {r.cell:13} {r.size:19} {dtype:11} "
              f"{fmt(r.seed_tokens_per_s):>11} "
              f"{fmt(r.seqlm_tokens_per_s):>12} {fmt(r.ratio, '.2f'):>6} "
              f"{fmt(r.seed_best):>10} {fmt(r.seqlm_best):>11} {fmt(overall, '.2f'):>7} "
              f"{fmt(r.seed_ppl, '.2f'):>9} "
              f"{fmt(r.seqlm_ppl, '.2f'):>9}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", default=",".join(CELLS), help="comma-separated cell names")
    parser.add_argument("--devices", default="cpu,cuda",
                        help="devices to try; cuda is skipped where absent")
    parser.add_argument("--repeats", type=int, default=5, help="timed chunks per side")
    parser.add_argument("--chunk", type=int, default=4, help="epochs per timed chunk")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads for both sides (0: torch's default)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-steps", type=int, default=35)
    parser.add_argument("--max-tokens", type=int, default=10000)
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32",
                        help="seqlm's --precision (the seed's side always runs in float32)")
    parser.add_argument("--no-cuda-graph", action="store_true",
                        help="on CUDA, run seqlm's step eagerly instead of replaying a CUDA graph")
    parser.add_argument("--data", default=None, help="text file (default: The Time Machine)")
    parser.add_argument("--memory-epochs", type=int, default=5,
                        help="epochs of the default seqlm run for peak memory (0: skip)")
    parser.add_argument("--no-startup", action="store_true", help="skip the CLI start-up timing")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    report: dict = {
        "machine": {
            "platform": platform.platform(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "load_average_before": os.getloadavg(),
        },
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    if not args.no_startup:
        report["startup_seconds"] = {
            "seqlm --help": startup_seconds(["--help"]),
            "seqlm plugins": startup_seconds(["plugins"]),
        }
        print("start-up:", {k: round(v, 3) for k, v in report["startup_seconds"].items()})
    if args.memory_epochs > 0:
        report["peak_memory_default_run"] = peak_memory(args.memory_epochs, "auto")
        print("peak memory of the default run:", report["peak_memory_default_run"])

    text = load_text(args.data)
    tokenizer = get_plugins().get("tokenizer", "char")()
    corpus = build_corpus(text, tokenizer, max_tokens=args.max_tokens)
    book = build_corpus(text, get_plugins().get("tokenizer", "char")(), max_tokens=0)
    rows: list[Row] = []
    for name in args.devices.split(","):
        if name == "cuda" and not torch.cuda.is_available():
            continue
        device = torch.device(name)
        for cell in args.cells.split(","):
            rows.append(_measured(compare, cell, corpus, args, device))
            print_table(rows[-1:])
        if device.type == "cuda":
            for cell in ("lstm", "lstm-scratch"):
                rows.append(_measured(compute_bound, cell, book, args, device))
                print_table(rows[-1:])
    print()
    print_table(rows)
    report["load_average_after"] = os.getloadavg()
    report["rows"] = [asdict(r) for r in rows]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
