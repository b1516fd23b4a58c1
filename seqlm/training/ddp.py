"""Data-parallel training with ``torch.distributed`` and ``DistributedDataParallel``.

``torchrun`` starts one process per device (``--nproc_per_node``) on one or several
machines and tells each its rank through environment variables. Every process runs the
same ``seqlm run``: with the same ``--seed`` every rank builds the same model and draws
the same global batch, then trains on its own rows of it. DDP averages the gradients
over the ranks during ``backward``, which equals the gradient of the full batch's mean
loss, so the run follows the same path as one process with the whole batch.
"""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from seqlm.errors import TrainingError, UsageError
from seqlm.interfaces import Callback, Sampler, State, Trainer
from seqlm.metrics import EpochMetrics
from seqlm.training.graph_policy import GraphDecision, decide
from seqlm.training.trainer import DefaultTrainer

#: Environment variable: seconds a rank waits for the others before giving up.
TIMEOUT_ENV = "SEQLM_DDP_TIMEOUT"
DEFAULT_TIMEOUT_S = 300.0

_LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
_HOW_TO_LAUNCH = ("start it with torchrun, e.g. "
                  "`torchrun --nproc_per_node 2 -m seqlm run --trainer ddp ...`")


@dataclass(frozen=True)
class LaunchInfo:
    """Where this process stands in the job, as set by torchrun."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int


def launch_info(environ: Mapping[str, str] | None = None) -> LaunchInfo:
    """Read the rank and world size that torchrun put in the environment.

    Raises :class:`UsageError` when the process was not started by torchrun (or a
    launcher that sets the same variables).
    """
    env = os.environ if environ is None else environ
    missing = [name for name in _LAUNCH_VARS if name not in env]
    if missing:
        raise UsageError(f"--trainer ddp runs one process per device; {_HOW_TO_LAUNCH} "
                         f"(missing {', '.join(missing)})")
    try:
        info = LaunchInfo(
            rank=int(env["RANK"]), world_size=int(env["WORLD_SIZE"]),
            local_rank=int(env["LOCAL_RANK"]),
            local_world_size=int(env.get("LOCAL_WORLD_SIZE", env["WORLD_SIZE"])),
        )
    except ValueError:
        values = ", ".join(f"{n}={env[n]!r}" for n in _LAUNCH_VARS[:3])
        raise UsageError(f"--trainer ddp: {values} must be whole numbers; "
                         f"{_HOW_TO_LAUNCH}") from None
    if not 0 <= info.rank < info.world_size:
        raise UsageError(f"--trainer ddp: RANK={info.rank} is outside WORLD_SIZE="
                         f"{info.world_size}; {_HOW_TO_LAUNCH}")
    return info


def collective_timeout(environ: Mapping[str, str] | None = None) -> timedelta:
    """How long a rank waits for the others, from ``SEQLM_DDP_TIMEOUT`` (seconds)."""
    env = os.environ if environ is None else environ
    raw = env.get(TIMEOUT_ENV, "")
    try:
        seconds = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise UsageError(f"{TIMEOUT_ENV}={raw!r} must be a number of seconds above 0")
    return timedelta(seconds=seconds)


def rank_rows(batch_size: int, rank: int, world_size: int) -> slice:
    """The rows of a global batch that ``rank`` trains on: one contiguous block.

    Row ``i`` of a sequential batch continues row ``i`` of the previous one, so a fixed
    block per rank keeps each rank's streams contiguous; with random sampling the blocks
    are disjoint subsequences.
    """
    if batch_size % world_size:
        raise UsageError(
            f"--batch-size {batch_size} cannot be split evenly over {world_size} processes; "
            f"use a multiple of {world_size} (the batch size is the global one)"
        )
    per_rank = batch_size // world_size
    return slice(rank * per_rank, (rank + 1) * per_rank)


def _is_communication_error(error: RuntimeError) -> bool:
    """Whether ``error`` says that the ranks could not talk to each other."""
    if isinstance(error, dist.DistError):
        return True
    # DDP's gradient all-reduce raises plain RuntimeErrors from the backend's code.
    text = str(error).lower()
    return any(word in text for word in ("gloo", "nccl", "c10d", "timed out"))


class RecurrentDDP(DistributedDataParallel):
    """DDP that also offers the wrapped language model's ``begin_state``."""

    def begin_state(self, batch_size: int, device: torch.device | str) -> State:
        """The wrapped model's initial state."""
        return self.module.begin_state(batch_size, device)


class _ShareRandomState(Callback):
    """Gives every rank rank 0's random state before each epoch.

    The samplers draw from torch's global generator, so equal states mean equal global
    batches, even without ``--seed``. Training draws from it too (dropout); the ranks
    draw alike since they hold equally many rows, but sharing the state every epoch
    (a few kilobytes) keeps them together whatever a cell or plugin draws.
    """

    def __init__(self, trainer: DDPTrainer) -> None:
        self.device = trainer.device

    def on_train_start(self, trainer: Trainer) -> None:
        self._share()

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        self._share()

    def _share(self) -> None:
        state = torch.get_rng_state().to(self.device)
        dist.broadcast(state, src=0)
        torch.set_rng_state(state.cpu())


class DDPTrainer(DefaultTrainer):
    """Data-parallel training over the processes started by torchrun.

    The backend is ``nccl`` on CUDA (each process on GPU ``LOCAL_RANK``) and ``gloo`` on
    the CPU. ``--batch-size`` is the global batch: each rank trains on its share of the
    rows. Losses and token counts are summed over the ranks once per epoch, so every
    rank reports the metrics of the whole batch; rank 0 alone writes the outputs.
    Options (optimizer, schedule, ...) are those of :class:`DefaultTrainer`.
    """

    def __init__(
        self,
        lr: float,
        clip: float,
        epochs: int,
        device: torch.device | str = "cpu",
        **options: Any,
    ) -> None:
        self.launch = launch_info()
        self.timeout = collective_timeout()
        device = torch.device(device)
        if device.type == "cuda":
            if self.launch.local_rank >= torch.cuda.device_count():
                raise UsageError(
                    f"--trainer ddp: LOCAL_RANK {self.launch.local_rank} has no GPU (this "
                    f"machine has {torch.cuda.device_count()}); start at most that many "
                    "processes per node with --nproc_per_node"
                )
            device = torch.device("cuda", self.launch.local_rank)
        elif device.type != "cpu":
            raise UsageError(f"--trainer ddp runs on CUDA or the CPU, not {device.type}; "
                             "pass --device cpu or --device cuda")
        super().__init__(lr=lr, clip=clip, epochs=epochs, device=device, **options)
        self.backend = "nccl" if device.type == "cuda" else "gloo"
        self.is_main_process = self.launch.rank == 0
        # DDP builds its gradient buckets over its first steps; a recording made before
        # then would miss them (torch asks for 11 eager steps with DDP).
        self.graph_warmup = 11

    def graph_decision(self) -> GraphDecision:
        """Record on CUDA with the gradient all-reduce inside the graph where NCCL can."""
        return decide(self.cuda_graph, self.device.type, backend=self.backend,
                      nccl_version=_nccl_version() if self.backend == "nccl" else None)

    def check(self, sampler: Sampler) -> None:
        """The global batch must split evenly over the processes."""
        rank_rows(sampler.batch_size, self.launch.rank, self.launch.world_size)

    def fit(
        self,
        model: nn.Module,
        corpus: torch.Tensor,
        sampler: Sampler,
        callbacks: Sequence[Callback] = (),
        val_corpus: torch.Tensor | None = None,
    ) -> list[EpochMetrics]:
        """Join the process group, train as :class:`DefaultTrainer` does, then leave it."""
        self.check(sampler)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        elif "OMP_NUM_THREADS" not in os.environ:
            # Ranks on one machine share its cores; torchrun sets OMP_NUM_THREADS itself.
            cores = os.cpu_count() or 1
            torch.set_num_threads(max(1, cores // self.launch.local_world_size))
        owns_group = not dist.is_initialized()
        if self.graph_decision().record:
            # A recorded collective must not be watched by NCCL's asynchronous error
            # handling; torch's own guidance for DDP under CUDA graphs.
            os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "0")
        try:
            if owns_group:
                dist.init_process_group(
                    self.backend, timeout=self.timeout, rank=self.launch.rank,
                    world_size=self.launch.world_size,
                )
            history = super().fit(model, corpus, sampler, [*callbacks, _ShareRandomState(self)],
                                  val_corpus)
            if owns_group:
                # The DDP wrapper's reducer holds the process group; collect it (it sits in
                # reference cycles) while the group is alive, then leave together, so that
                # no rank tears gloo down under another one.
                gc.collect()
                dist.barrier()
            return history
        except RuntimeError as error:
            if _is_communication_error(error):
                raise self._lost_contact(error) from error
            raise
        finally:
            if owns_group and dist.is_initialized():
                dist.destroy_process_group()

    def stop_asked(self) -> str | None:
        """A stop asked on any rank stops every rank after the same epoch (one small
        all-reduce per epoch): a rank that trained on alone would wait for the others
        forever."""
        asked = torch.tensor([self.stop_requested is not None], dtype=torch.int32,
                             device=self.device)
        dist.all_reduce(asked, op=dist.ReduceOp.MAX)
        if not asked.item():
            return None
        return self.stop_requested or "a callback of another process asked"

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """Wrap ``model`` in DDP, which copies rank 0's parameters to every rank."""
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        if not self.use_static_step():
            return RecurrentDDP(model, device_ids=device_ids)
        # DDP set up on a side stream, so that what it builds may be recorded later.
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            wrapped = RecurrentDDP(model, device_ids=device_ids)
        torch.cuda.current_stream(self.device).wait_stream(side)
        return wrapped

    def local_batch(
        self, X: torch.Tensor, Y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's block of rows of the global batch."""
        rows = rank_rows(X.shape[0], self.launch.rank, self.launch.world_size)
        return X[rows], Y[rows]

    def reduce_epoch_totals(self, loss_sum: torch.Tensor, tokens: int) -> tuple[float, int]:
        """Sum the epoch's loss and token count over all ranks (one collective)."""
        totals = torch.stack([
            loss_sum.to(torch.float64),
            torch.tensor(float(tokens), dtype=torch.float64, device=loss_sum.device),
        ])
        dist.all_reduce(totals)
        total_loss, total_tokens = totals.tolist()
        return total_loss, int(total_tokens)

    def _lost_contact(self, error: RuntimeError) -> TrainingError:
        return TrainingError(
            f"rank {self.launch.rank} of {self.launch.world_size} lost contact with the other "
            f"processes ({_first_sentence(error)}); another rank failed or stalled, see its "
            f"output. Ranks wait {self.timeout.total_seconds():g} s for each other "
            f"({TIMEOUT_ENV} sets it)"
        )


def _nccl_version() -> tuple[int, ...] | None:
    """torch's NCCL version, or None where torch was built without NCCL."""
    try:
        version = torch.cuda.nccl.version()
    except (AttributeError, RuntimeError):
        return None
    return tuple(version) if isinstance(version, tuple) else None


def _first_sentence(error: BaseException) -> str:
    """The gist of a backend error, without its source location and boilerplate."""
    lines = str(error).strip().splitlines()
    text = re.sub(r"^\[[^\]]*\]\s*", "", lines[0] if lines else "")
    return text.split(". ")[0].rstrip(".") or type(error).__name__
