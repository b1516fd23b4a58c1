"""Each scratch cell computes what its torch counterpart computes, given the same weights."""

import pytest
import torch

from seqlm.cells.scratch import ScratchGRU, ScratchLSTM, ScratchRNN
from seqlm.cells.torch_cells import TorchGRU, TorchLSTM, TorchRNN
from seqlm.interfaces import RecurrentCell

PAIRS = [(ScratchLSTM, TorchLSTM), (ScratchGRU, TorchGRU), (ScratchRNN, TorchRNN)]


def copy_torch_weights(scratch: RecurrentCell, torch_cell: RecurrentCell) -> None:
    """Load an nn.LSTM/GRU/RNN's weights into the scratch cell's fused matrices."""
    rnn = torch_cell.rnn
    with torch.no_grad():
        for layer in range(scratch.num_layers):
            scratch.W_x[layer].copy_(getattr(rnn, f"weight_ih_l{layer}").T)
            scratch.W_h[layer].copy_(getattr(rnn, f"weight_hh_l{layer}").T)
            scratch.b_x[layer].copy_(getattr(rnn, f"bias_ih_l{layer}"))
            scratch.b_h[layer].copy_(getattr(rnn, f"bias_hh_l{layer}"))


def grads_by_torch_name(scratch, torch_cell):
    rnn = torch_cell.rnn
    pairs = []
    for layer in range(scratch.num_layers):
        pairs += [
            (scratch.W_x[layer].grad, getattr(rnn, f"weight_ih_l{layer}").grad.T),
            (scratch.W_h[layer].grad, getattr(rnn, f"weight_hh_l{layer}").grad.T),
            (scratch.b_x[layer].grad, getattr(rnn, f"bias_ih_l{layer}").grad),
            (scratch.b_h[layer].grad, getattr(rnn, f"bias_hh_l{layer}").grad),
        ]
    return pairs


def flat(state):
    return list(state) if isinstance(state, tuple) else [state]


@pytest.mark.parametrize("scratch_cls,torch_cls", PAIRS)
@pytest.mark.parametrize("num_layers", [1, 2])
def test_scratch_matches_torch_outputs_and_gradients(scratch_cls, torch_cls, num_layers):
    torch.manual_seed(0)
    # fused=False: torch's own kernel, not the pass the scratch cells share.
    reference = torch_cls(input_size=7, hidden_size=16, num_layers=num_layers, fused=False)
    scratch = scratch_cls(input_size=7, hidden_size=16, num_layers=num_layers)
    copy_torch_weights(scratch, reference)
    inputs = torch.randn(9, 3, 7)
    # A non-zero starting state checks the state is used, not just zeros.
    start = [torch.randn_like(s) for s in flat(reference.begin_state(3, "cpu"))]
    start_state = tuple(start) if len(start) > 1 else start[0]

    out_ref, state_ref = reference(inputs, start_state)
    out_scr, state_scr = scratch(inputs, start_state)
    assert out_scr.shape == out_ref.shape == (9, 3, scratch.output_size)
    torch.testing.assert_close(out_scr, out_ref, atol=1e-5, rtol=1e-5)
    for a, b in zip(flat(state_scr), flat(state_ref), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)

    weights = torch.randn_like(out_ref)
    ((out_ref * weights).sum() + sum(s.sum() for s in flat(state_ref))).backward()
    ((out_scr * weights).sum() + sum(s.sum() for s in flat(state_scr))).backward()
    for got, expected in grads_by_torch_name(scratch, reference):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("scratch_cls", [c for c, _ in PAIRS])
def test_scratch_initialisation_is_the_seeds(scratch_cls):
    torch.manual_seed(0)
    cell = scratch_cls(input_size=200, hidden_size=256, num_layers=2)
    weights = torch.cat([p.detach().reshape(-1) for p in [*cell.W_x, *cell.W_h]])
    assert abs(weights.std().item() - 0.01) < 5e-4
    assert abs(weights.mean().item()) < 5e-4
    assert all(torch.count_nonzero(b) == 0 for b in [*cell.b_x, *cell.b_h])


@pytest.mark.parametrize("scratch_cls", [c for c, _ in PAIRS])
def test_scratch_cells_never_call_torch_recurrent_kernels(scratch_cls, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a torch recurrent kernel was called")

    for name in ("lstm", "gru", "rnn_tanh", "rnn_relu", "lstm_cell", "gru_cell",
                 "rnn_tanh_cell", "rnn_relu_cell"):
        monkeypatch.setattr(torch._VF, name, forbidden, raising=False)
    cell = scratch_cls(input_size=5, hidden_size=8, num_layers=2)
    assert not any(isinstance(m, torch.nn.RNNBase) for m in cell.modules())
    out, _ = cell(torch.randn(4, 2, 5), cell.begin_state(2, "cpu"))
    out.sum().backward()


@pytest.mark.parametrize("cls", [TorchLSTM, TorchGRU, TorchRNN])
def test_torch_cells_bidirectional_output_size(cls):
    cell = cls(input_size=5, hidden_size=8, num_layers=2, bidirectional=True)
    assert cell.output_size == 16
    out, _ = cell(torch.randn(4, 3, 5), cell.begin_state(3, "cpu"))
    assert out.shape == (4, 3, 16)


@pytest.mark.parametrize("cls", [TorchLSTM, TorchGRU, TorchRNN, ScratchLSTM, ScratchGRU,
                                 ScratchRNN])
def test_a_cell_moved_to_float64_begins_in_float64_and_runs(cls):
    cell = cls(4, 6).to(torch.float64)
    state = cell.begin_state(2, "cpu")
    for tensor in state if isinstance(state, tuple) else (state,):
        assert tensor.dtype == torch.float64
    outputs, _ = cell(torch.randn(3, 2, 4, dtype=torch.float64), state)
    assert outputs.dtype == torch.float64
