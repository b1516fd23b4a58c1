"""The ``ddp`` trainer: two CPU processes with gloo train as one process with the whole batch.

The multi-process tests start real processes (torchrun, or two plain ``python``
processes with the variables torchrun would set) on a tiny model, each under a timeout.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from seqlm.errors import UsageError
from seqlm.runs.stages import run
from seqlm.training.ddp import DDPTrainer, collective_timeout, launch_info, rank_rows

TINY = {"hidden": 32, "max_tokens": 3000, "batch_size": 8, "num_steps": 10, "predict": 10}
LAUNCH_TIMEOUT_S = 150

# Run by each rank: trains with TINY settings given as JSON, each rank writing (if it
# writes at all) to its own folder, so a file from rank 1 could not hide among rank 0's.
WORKER = r"""
import json, os, sys, time
from seqlm.interfaces import Callback
from seqlm.runs.stages import run

settings = json.loads(sys.argv[1])
stall_rank = settings.pop("stall_rank", None)
stop_rank = settings.pop("stop_rank", None)
log_dir = settings.pop("log_batches", None)

if log_dir is not None:
    from seqlm.hookspecs import hookimpl
    from seqlm.plugins.manager import get_plugins
    from seqlm.data.samplers import SequentialSampler

    class Logged(SequentialSampler):
        # Writes the first token of every row of each global batch this rank draws.
        def __call__(self, corpus):
            path = os.path.join(log_dir, "batches" + os.environ["RANK"] + ".txt")
            with open(path, "a") as log:
                for X, Y in super().__call__(corpus):
                    log.write(" ".join(map(str, X[:, 0].tolist())) + "\n")
                    yield X, Y

    class LoggedPlugin:
        @hookimpl
        def register_samplers(self, register):
            register("logged", Logged)

    get_plugins().add(LoggedPlugin(), "logged-sampler")

class Stall(Callback):
    def on_epoch_end(self, trainer, metrics):
        if trainer.launch.rank == stall_rank:
            time.sleep(120)

class StopAtTwo(Callback):
    def on_epoch_end(self, trainer, metrics):
        if trainer.launch.rank == stop_rank and metrics.epoch == 2:
            trainer.request_stop("rank " + os.environ["RANK"] + " had enough")

if settings.get("resume") is None:
    settings["out"] = os.path.join(settings["out"], "rank" + os.environ["RANK"])
run(**settings, callbacks=[Stall(), StopAtTwo()])
"""


def _cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "WORLD_SIZE",
                                                                     "LOCAL_", "MASTER_"))}
    env["OMP_NUM_THREADS"] = "1"
    return env


def _torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # torchrun keeps its agent's logs in a folder it makes and leaves in the system's
    # temporary directory unless told where: here, beside the test's own folder (the
    # tests check that nothing but the run lands in it).
    logs = cwd.parent / f"{cwd.name}-torchrun-logs"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "--log-dir", str(logs), *args]
    done = subprocess.run(command, cwd=cwd, env=_cli_env(), capture_output=True, text=True,
                          timeout=LAUNCH_TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _assert_same_losses(rows: list[dict], history: list) -> None:
    assert [r["epoch"] for r in rows] == [m.epoch for m in history]
    for row, m in zip(rows, history, strict=True):
        assert row["train_loss"] == pytest.approx(m.train_loss, abs=1e-5), row["epoch"]
        if m.val_loss is not None:
            assert row["val_loss"] == pytest.approx(m.val_loss, abs=1e-5), row["epoch"]
        # Every rank's tokens count: the epoch covers the whole global batch.
        assert row["tokens"] == m.tokens


# -- launch settings and row split (no processes) -------------------------------------

LAUNCHED = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": "29500"}


def test_launch_info_reads_torchrun_variables():
    info = launch_info({**LAUNCHED, "LOCAL_WORLD_SIZE": "2"})
    assert (info.rank, info.world_size, info.local_rank, info.local_world_size) == (1, 2, 1, 2)


@pytest.mark.parametrize("env, words", [
    ({}, ["torchrun --nproc_per_node", "missing RANK"]),
    ({**LAUNCHED, "RANK": "one"}, ["whole numbers"]),
    ({**LAUNCHED, "RANK": "2"}, ["outside WORLD_SIZE=2"]),
])
def test_launch_info_explains_a_bad_launch(env, words):
    with pytest.raises(UsageError) as caught:
        launch_info(env)
    for word in words:
        assert word in str(caught.value)


def test_timeout_comes_from_the_environment():
    assert collective_timeout({}).total_seconds() == 300
    assert collective_timeout({"SEQLM_DDP_TIMEOUT": "7.5"}).total_seconds() == 7.5
    with pytest.raises(UsageError, match="SEQLM_DDP_TIMEOUT='soon'"):
        collective_timeout({"SEQLM_DDP_TIMEOUT": "soon"})
    with pytest.raises(UsageError, match="above 0"):
        collective_timeout({"SEQLM_DDP_TIMEOUT": "0"})


@pytest.mark.parametrize("batch_size, world_size", [(8, 1), (8, 2), (12, 4), (6, 6)])
def test_ranks_take_disjoint_blocks_covering_the_batch(batch_size, world_size):
    rows = list(range(batch_size))
    blocks = [rows[rank_rows(batch_size, r, world_size)] for r in range(world_size)]
    assert [i for block in blocks for i in block] == rows
    assert {len(block) for block in blocks} == {batch_size // world_size}


def test_batch_must_split_evenly_over_ranks():
    with pytest.raises(UsageError, match="--batch-size 10 .* 4 processes; use a multiple of 4"):
        rank_rows(10, 0, 4)


def test_ddp_trainer_outside_torchrun_is_a_usage_error(small_text, tmp_path, monkeypatch):
    for name in LAUNCHED:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UsageError, match="start it with torchrun"):
        run(trainer="ddp", data=small_text, epochs=1, device="cpu", out=tmp_path / "o", **TINY)
    assert not (tmp_path / "o").exists()


def test_uneven_batch_is_refused_before_the_run_folder_is_made(small_text, tmp_path,
                                                               monkeypatch):
    for name, value in {**LAUNCHED, "RANK": "0", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(UsageError, match="--batch-size 7 cannot be split evenly over 2"):
        run(trainer="ddp", data=small_text, epochs=1, device="cpu", out=tmp_path / "o",
            **{**TINY, "batch_size": 7})
    assert not (tmp_path / "o").exists()


def test_ddp_trainer_refuses_apple_mps(monkeypatch):
    from seqlm.training.ddp import DDPTrainer

    for name, value in LAUNCHED.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(UsageError, match="--device cpu"):
        DDPTrainer(lr=1.0, clip=1.0, epochs=1, device="mps")


# -- two processes ---------------------------------------------------------------------

# The regularisers that act on whole batches must not change the equivalence: every rank
# draws the same recurrent-weight mask (their random generators are shared, as one process
# draws one mask per batch), and DDP's mean of per-rank mean penalties is the batch's.
REGULARISED = {"cell_options": {"weight_dropout": 0.3}, "activation_reg": 2.0,
               "temporal_reg": 1.0}


@pytest.mark.slow
@pytest.mark.parametrize("extra", [{}, REGULARISED], ids=["plain", "regularised"])
def test_torchrun_two_ranks_match_one_process_with_the_whole_batch(book_path, tmp_path, extra):
    epochs = 4
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    for key, value in extra.items():
        if key == "cell_options":
            flags += [f"--cell-opt={k}={v}" for k, v in value.items()]
        else:
            flags.append(f"--{key.replace('_', '-')}={value}")
    done = _torchrun(["-m", "seqlm", "run", "--trainer", "ddp", "--data", str(book_path),
                      "--epochs", str(epochs), "--device", "cpu", "--out", "ddp", *flags],
                     cwd=tmp_path)
    single = run(data=book_path, epochs=epochs, device="cpu", out=tmp_path / "single", **TINY,
                 **extra)

    _assert_same_losses(_metrics(tmp_path / "ddp" / "metrics.jsonl"), single.history)
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["sample"] == single.sample
    assert summary["config"]["trainer"] == "ddp"
    # The default (auto) decided for the eager step: gloo on the CPU records nothing.
    assert summary["cuda_graph"] == {"setting": "auto", "recorded": False, "fell_back": False,
                                     "reason": "CUDA graphs apply to CUDA only, not cpu"}
    # Rank 0 alone printed, and nothing was written outside --out (no runs/ from rank 1).
    assert done.stdout.count("final perplexity") == 1, done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp", "single"]
    assert (tmp_path / "ddp" / "checkpoint.json").is_file()


@pytest.mark.slow
def test_random_sampling_checkpoints_from_rank_0_alone_and_resumes(book_path, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    settings = {**TINY, "sampler": "random", "data": str(book_path), "device": "cpu",
                "trainer": "ddp", "checkpoint_every": 1}
    first = {**settings, "epochs": 2, "out": str(tmp_path)}
    _torchrun([str(script), json.dumps(first)], cwd=tmp_path)

    assert not (tmp_path / "rank1").exists()
    saved = tmp_path / "rank0"
    assert (saved / "checkpoint.json").is_file()
    assert len(list(saved.glob("checkpoint-*.safetensors"))) == 1

    # Every rank resumes from rank 0's checkpoint and carries on to epoch 4.
    _torchrun([str(script), json.dumps({**settings, "epochs": 4, "resume": str(saved)})],
              cwd=tmp_path)
    assert not (tmp_path / "rank1").exists()
    single = run(**{**settings, "trainer": "default"}, epochs=4, out=tmp_path / "single")
    _assert_same_losses(_metrics(saved / "metrics.jsonl"), single.history)


@pytest.mark.slow
def test_a_stop_asked_on_one_rank_stops_every_rank_after_that_epoch(book_path, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    settings = {**TINY, "data": str(book_path), "device": "cpu", "trainer": "ddp",
                "epochs": 6, "out": str(tmp_path), "stop_rank": 1}
    _torchrun([str(script), json.dumps(settings)], cwd=tmp_path)  # both ranks end
    summary = json.loads((tmp_path / "rank0" / "summary.json").read_text())
    assert summary["epochs"] == 2
    assert summary["stop_reason"] == ("stopped after epoch 2, as asked: a callback of "
                                      "another process asked")


@pytest.mark.slow
def test_ranks_draw_the_same_global_batches_without_a_seed(book_path, tmp_path):
    # Unseeded, each rank's generator starts apart; rank 0's state is shared. Dropout
    # draws from the samplers' generator too, during training.
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    settings = {**TINY, "sampler": "logged", "dropout": 0.3, "seed": None,
                "data": str(book_path), "device": "cpu", "trainer": "ddp", "epochs": 3,
                "out": str(tmp_path), "log_batches": str(tmp_path)}
    _torchrun([str(script), json.dumps(settings)], cwd=tmp_path)
    rank0 = (tmp_path / "batches0.txt").read_text().splitlines()
    rank1 = (tmp_path / "batches1.txt").read_text().splitlines()
    # Each rank's first line is the batch of the check before training, drawn from its
    # own generator before the ranks share rank 0's random state; the generator is put
    # back after it, so rank 0's first training batch repeats it. The training batches
    # are what must agree.
    assert rank0[0] == rank0[1]
    assert len(rank0) > 3 * 2 and rank0[1:] == rank1[1:]


@pytest.mark.slow
def test_a_stalled_rank_ends_the_others_with_a_clear_message(book_path, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = {**TINY, "data": str(book_path), "device": "cpu", "trainer": "ddp",
                "epochs": 50, "out": str(tmp_path), "stall_rank": 1}
    env = {**_cli_env(), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port), "SEQLM_DDP_TIMEOUT": "5"}
    # Plain processes, without torchrun's agent, which would kill the survivor itself:
    # here the survivor must notice on its own, within the timeout.
    procs = [
        subprocess.Popen([sys.executable, str(script), json.dumps(settings)], cwd=tmp_path,
                         env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for r in range(2)
    ]
    try:
        started = time.monotonic()
        _, err = procs[0].communicate(timeout=LAUNCH_TIMEOUT_S)
        waited = time.monotonic() - started
    finally:
        for proc in procs:
            proc.kill()
            proc.communicate()
    assert procs[0].returncode != 0
    last = err.strip().splitlines()[-1]
    assert "TrainingError: rank 0 of 2 lost contact with the other processes" in last, err
    assert "SEQLM_DDP_TIMEOUT" in last
    assert waited < 90


@pytest.mark.parametrize("setting", ["auto", True, False])
def test_ddp_on_the_cpu_decides_for_the_eager_step(setting, monkeypatch):
    """gloo on the CPU: nothing to record, whatever the setting (no error for a demand)."""
    for name, value in LAUNCHED.items():
        monkeypatch.setenv(name, value)
    trainer = DDPTrainer(lr=1, clip=1, epochs=1, device="cpu", cuda_graph=setting)
    decision = trainer.graph_decision()
    assert not decision.record and not trainer.use_static_step()
    assert decision.reason == ("turned off (--no-cuda-graph)" if setting is False
                               else "CUDA graphs apply to CUDA only, not cpu")


@pytest.mark.parametrize(("nccl", "record"), [((2, 21, 5), True), ((2, 9, 6), True),
                                              ((2, 8, 4), False), (None, False)])
def test_ddp_on_cuda_records_where_nccl_can_capture(nccl, record, monkeypatch):
    """The decision a CUDA run would take, for the NCCL that torch was built with."""
    for name, value in LAUNCHED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("seqlm.training.ddp._nccl_version", lambda: nccl)
    trainer = DDPTrainer(lr=1, clip=1, epochs=1, device="cpu")
    trainer.device, trainer.backend = torch.device("cuda", 1), "nccl"  # as on a GPU
    decision = trainer.graph_decision()
    assert decision.record is record
    assert trainer.graph_warmup == 11
    if not record:
        assert "cannot record collectives" in decision.reason
