"""The benchmark compares like with like, and runs.

``benchmarks/seed_reference.py`` is the seed's algorithm, written the seed's way; the
speed ratios only mean something if each reference model computes the same function as
the seqlm model it is timed against. These tests load one side's weights into the other
and compare the logits and final states, then run the benchmark itself on a tiny job.
"""

import argparse
import json
import math
import sys
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import seed_reference as ref
from benchmarks import throughput
from seqlm.cells.scratch import ScratchGRU, ScratchLSTM, ScratchRNN
from seqlm.cells.torch_cells import TorchGRU, TorchLSTM, TorchRNN
from seqlm.errors import TrainingError
from seqlm.model.rnn import RNNModel

VOCAB, HIDDEN = 7, 5
SCRATCH = {"lstm": (ScratchLSTM, 4), "gru": (ScratchGRU, 3), "rnn": (ScratchRNN, 1)}
MODULES = {"lstm": TorchLSTM, "gru": TorchGRU, "rnn": TorchRNN}


def _as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_reference_scratch_models_compute_seqlms_function(kind):
    torch.manual_seed(0)
    net = ref.RNNModelScratch(kind, VOCAB, HIDDEN, torch.device("cpu"))
    params = net.params
    with torch.no_grad():  # the seed's zero biases would hide a bias mix-up
        for p in params:
            p.copy_(torch.randn_like(p) * 0.5)
    cell_cls, gates = SCRATCH[kind]
    cell = cell_cls(input_size=VOCAB, hidden_size=HIDDEN)
    with torch.no_grad():
        # The reference keeps (W_x, W_h, b) per gate; seqlm keeps the gates side by side.
        cell.W_x[0].copy_(torch.cat([params[3 * g] for g in range(gates)], 1))
        cell.W_h[0].copy_(torch.cat([params[3 * g + 1] for g in range(gates)], 1))
        cell.b_x[0].copy_(torch.cat([params[3 * g + 2] for g in range(gates)]))
        b_h = torch.zeros(gates * HIDDEN)
        if kind == "gru":  # the bias inside the reset product
            b_h[2 * HIDDEN:] = params[3 * gates]
        cell.b_h[0].copy_(b_h)
    W_q, b_q = params[-2], params[-1]
    tokens = torch.randint(0, VOCAB, (3, 6))
    start = tuple(torch.randn(3, HIDDEN) for _ in range(net.num_states))
    expected, expected_state = net(tokens, start)
    outputs, state = cell(F.one_hot(tokens.T, VOCAB).float(),
                          tuple(s[None] for s in start) if len(start) > 1 else start[0][None])
    logits = outputs.reshape(-1, HIDDEN) @ W_q + b_q
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    for got, want in zip(_as_tuple(state), expected_state, strict=True):
        torch.testing.assert_close(got[0], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_reference_module_models_compute_seqlms_function(kind):
    torch.manual_seed(0)
    reference, _ = ref.build(kind, VOCAB, HIDDEN, lr=1.0, device=torch.device("cpu"))
    model = RNNModel(MODULES[kind](input_size=VOCAB, hidden_size=HIDDEN), VOCAB)
    model.cell.rnn.load_state_dict(reference.rnn.state_dict())
    model.head.load_state_dict(reference.linear.state_dict())
    tokens = torch.randint(0, VOCAB, (3, 6))
    state = reference.begin_state(torch.device("cpu"), batch_size=3)
    expected, expected_state = reference(tokens, state)
    logits, new_state = model(tokens, state)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    for got, want in zip(_as_tuple(new_state), _as_tuple(expected_state), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_the_benchmark_runs_and_writes_its_table(small_text, tmp_path, capsys):
    out = tmp_path / "results.json"
    throughput.main(["--cells", "lstm,gru-scratch", "--devices", "cpu", "--repeats", "2",
                     "--chunk", "1", "--hidden", "16", "--batch-size", "4", "--num-steps", "8",
                     "--max-tokens", "0", "--data", str(small_text), "--no-startup",
                     "--memory-epochs", "0", "--json", str(out)])
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert [r["cell"] for r in rows] == ["lstm", "gru-scratch"]
    for row in rows:
        assert row["device"] == "cpu" and row["epochs"] == 3 and not row["cuda_graph"]
        assert row["seed_tokens_per_s"] > 0 and row["seqlm_tokens_per_s"] > 0
        assert row["ratio"] == pytest.approx(row["seqlm_tokens_per_s"] / row["seed_tokens_per_s"])
        assert math.isfinite(row["seed_ppl"]) and math.isfinite(row["seqlm_ppl"])
    assert report["settings"]["hidden"] == 16
    assert "gru-scratch" in capsys.readouterr().out


def test_a_cell_whose_step_cannot_be_recorded_is_measured_without_the_graph(capsys):
    calls = []

    def measure(cell, corpus, args, device):
        calls.append(args.no_cuda_graph)
        if not args.no_cuda_graph:
            raise TrainingError("the training step could not be recorded as a CUDA graph (x)")
        return "row"

    args = argparse.Namespace(no_cuda_graph=False, hidden=8)
    assert throughput._measured(measure, "lstm", None, args, torch.device("cpu")) == "row"
    assert calls == [False, True] and args.no_cuda_graph is False
    assert "lstm: the training step could not be recorded" in capsys.readouterr().out
