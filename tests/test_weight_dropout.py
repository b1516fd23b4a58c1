"""DropConnect on the recurrent weights (``--cell-opt weight_dropout=P``)."""

import pytest
import torch
from click.testing import CliRunner
from torch.nn import functional as F

from seqlm.cells.scratch import ScratchGRU, ScratchLSTM, ScratchRNN
from seqlm.cells.torch_cells import TorchGRU, TorchLSTM, TorchRNN
from seqlm.cli import main

TORCH_CELLS = [TorchLSTM, TorchGRU, TorchRNN]
SCRATCH_CELLS = [ScratchLSTM, ScratchGRU, ScratchRNN]


def _flat(state):
    return list(state) if isinstance(state, tuple) else [state]


@pytest.mark.parametrize("cls", TORCH_CELLS)
def test_torch_cell_drops_recurrent_weights_with_one_mask_per_call(cls):
    cell = cls(5, 8, num_layers=2, weight_dropout=0.4)
    x = torch.randn(6, 3, 5)
    state = cell.begin_state(3, "cpu")
    torch.manual_seed(7)
    out, _ = cell(x, state)

    # The same masks, drawn in the same order, applied to a plain copy of the module.
    plain = cls(5, 8, num_layers=2)
    plain.load_state_dict(cell.state_dict())
    torch.manual_seed(7)
    with torch.no_grad():
        for layer in range(2):
            weight = getattr(plain.rnn, f"weight_hh_l{layer}")
            weight.copy_(F.dropout(weight, 0.4))
    want, _ = plain(x, state)
    assert torch.allclose(out, want, atol=1e-6)
    assert not torch.allclose(out, cell.eval()(x, state)[0], atol=1e-3)


@pytest.mark.parametrize("cls", TORCH_CELLS)
def test_torch_cell_dropped_weights_get_no_gradient_and_eval_is_untouched(cls):
    cell = cls(4, 6, weight_dropout=0.5)
    x = torch.randn(5, 2, 4)
    out, _ = cell(x, cell.begin_state(2, "cpu"))
    out.sum().backward()
    grad = cell.rnn.weight_hh_l0.grad
    assert (grad == 0).float().mean() > 0.3  # about half the entries were dropped
    assert grad.abs().sum() > 0
    cell.eval()
    plain = cls(4, 6)
    plain.load_state_dict(cell.state_dict())
    plain.eval()
    state = cell.begin_state(2, "cpu")
    for got, want in zip(_flat(cell(x, state)[1]), _flat(plain(x, state)[1]), strict=True):
        assert torch.equal(got, want)


@pytest.mark.parametrize("cls", SCRATCH_CELLS)
def test_scratch_cell_fused_and_plain_paths_drop_the_same_weights(cls):
    fused = cls(5, 8, num_layers=2, weight_dropout=0.3)
    plain = cls(5, 8, num_layers=2, weight_dropout=0.3, fused=False)
    plain.load_state_dict(fused.state_dict())
    x = torch.randn(7, 3, 5)
    results = []
    for cell in (fused, plain):
        torch.manual_seed(3)
        out, state = cell(x, cell.begin_state(3, "cpu"))
        (out.square().sum() + sum(s.sum() for s in _flat(state))).backward()
        results.append((out, [p.grad for p in cell.parameters()]))
    (out_f, grads_f), (out_p, grads_p) = results
    assert torch.allclose(out_f, out_p, atol=1e-5)
    for got, want in zip(grads_f, grads_p, strict=True):
        assert torch.allclose(got, want, atol=1e-5)
    assert (fused.W_h[0].grad == 0).float().mean() > 0.1  # about 0.3 were dropped
    fused.eval()
    no_drop = cls(5, 8, num_layers=2)
    no_drop.load_state_dict(fused.state_dict())
    assert torch.equal(fused(x, fused.begin_state(3, "cpu"))[0],
                       no_drop(x, no_drop.begin_state(3, "cpu"))[0])


@pytest.mark.parametrize("value, message", [
    ("1.5", "weight_dropout must be at least 0 and below 1"),
    ("-0.1", "weight_dropout must be at least 0 and below 1"),
    ("true", "option 'weight_dropout' of cell 'lstm' expects a finite number"),
])
def test_bad_weight_dropout_is_a_one_line_error(value, message, small_text, tmp_path):
    result = CliRunner().invoke(main, [
        "run", "--data", str(small_text), "--epochs", "1", "--out", str(tmp_path / "o"),
        "--cell-opt", f"weight_dropout={value}"])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
