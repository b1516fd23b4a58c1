"""On the CPU the ``gru`` and ``rnn`` cells run the fused pass over the module's weights.

It must compute what torch's own kernel computes (``fused=False``): outputs, final
state and every gradient, with several layers, dropout between them, DropConnect on the
recurrent weights, token ids in place of one-hot vectors, and under bf16 autocast.
"""

import pytest
import torch
from torch.nn import functional as F

from seqlm.cells import fused
from seqlm.cells.torch_cells import TorchGRU, TorchLSTM, TorchRNN
from seqlm.errors import UsageError
from seqlm.model.rnn import RNNModel

CELLS = [TorchGRU, TorchRNN]


def twins(cls, dtype=torch.float64, **options):
    """The same cell twice: fused pass and torch's kernel, same (non-trivial) weights."""
    torch.manual_seed(0)
    fast = cls(input_size=6, hidden_size=8, **options).to(dtype)
    with torch.no_grad():
        for p in fast.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    plain = cls(input_size=6, hidden_size=8, fused=False, **options).to(dtype)
    plain.load_state_dict(fast.state_dict())
    return fast, plain


def run(cell, inputs, state, seed=3, autocast=False):
    cell.zero_grad()
    torch.manual_seed(seed)  # the same dropout masks on both sides
    # As torch recommends, only the forward pass runs under autocast.
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        outputs, final = cell(inputs, state)
    weights = torch.linspace(-1, 1, outputs.numel(), dtype=outputs.dtype)
    ((outputs.flatten() * weights).sum() + final.square().sum()).backward()
    return outputs, final, {n: p.grad.clone() for n, p in cell.named_parameters()}


def assert_same(a, b, **tol):
    for x, y in zip(a[:2], b[:2], strict=True):
        torch.testing.assert_close(x, y, **tol)
    for name in b[2]:
        torch.testing.assert_close(a[2][name], b[2][name], msg=name, **tol)


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("num_layers", [1, 3])
def test_fused_pass_matches_torch_kernel(cls, num_layers):
    fast, plain = twins(cls, num_layers=num_layers)
    inputs = torch.randn(7, 4, 6, dtype=torch.float64)
    state = torch.randn(num_layers, 4, 8, dtype=torch.float64)
    assert_same(run(fast, inputs, state), run(plain, inputs, state), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("cls", CELLS)
def test_dropout_and_weight_dropout_draw_the_same_masks(cls):
    fast, plain = twins(cls, num_layers=2, dropout=0.4, weight_dropout=0.3)
    inputs = torch.randn(5, 3, 6, dtype=torch.float64)
    state = torch.zeros(2, 3, 8, dtype=torch.float64)
    dropped = run(fast, inputs, state)
    assert_same(dropped, run(plain, inputs, state), rtol=1e-10, atol=1e-10)
    fast.eval()
    plain.eval()
    assert_same(run(fast, inputs, state), run(plain, inputs, state), rtol=1e-10, atol=1e-10)
    assert not torch.allclose(dropped[0], run(fast, inputs, state)[0])


@pytest.mark.parametrize("cls", CELLS)
def test_token_ids_equal_one_hot_inputs_on_both_paths(cls):
    fast, plain = twins(cls)
    ids = torch.randint(0, 6, (5, 3))
    one_hot = F.one_hot(ids, 6).double()
    state = torch.randn(1, 3, 8, dtype=torch.float64)
    reference = run(plain, one_hot, state)
    for cell, inputs in ((fast, ids), (fast, one_hot), (plain, ids)):
        assert_same(run(cell, inputs, state), reference, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("cls", CELLS)
def test_the_model_hands_token_ids_to_the_cell(cls):
    torch.manual_seed(0)
    model = RNNModel(cls(input_size=6, hidden_size=8), vocab_size=6)
    plain = RNNModel(cls(input_size=6, hidden_size=8, fused=False), vocab_size=6)
    plain.load_state_dict(model.state_dict())
    tokens = torch.randint(0, 6, (3, 5))
    got, _ = model(tokens, model.begin_state(3, "cpu"))
    expected, _ = plain(tokens, plain.begin_state(3, "cpu"))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", CELLS)
def test_the_cpu_uses_the_fused_pass_and_fused_false_the_kernel(cls, monkeypatch):
    calls = []
    for function in (fused.GRULayer, fused.RNNLayer):
        original = function.apply
        monkeypatch.setattr(function, "apply",
                            lambda *a, _o=original: calls.append(1) or _o(*a))
    kernel = {TorchGRU: "gru", TorchRNN: "rnn_tanh"}[cls]
    original_kernel = getattr(torch._VF, kernel)
    monkeypatch.setattr(torch._VF, kernel,
                        lambda *a, **k: calls.append(0) or original_kernel(*a, **k))
    fast, plain = twins(cls, dtype=torch.float32, num_layers=2)
    inputs = torch.randn(4, 2, 6)
    fast(inputs, fast.begin_state(2, "cpu"))
    assert calls == [1, 1]
    calls.clear()
    plain(inputs, plain.begin_state(2, "cpu"))
    assert calls == [0]
    calls.clear()
    both_ways = cls(input_size=6, hidden_size=8, bidirectional=True)
    both_ways(inputs, both_ways.begin_state(2, "cpu"))
    assert calls == [0]  # the pass runs one direction; the module does both


@pytest.mark.parametrize("cls", CELLS)
def test_under_bf16_autocast_only_the_products_are_bf16(cls, monkeypatch):
    monkeypatch.setattr(fused, "MIN_LOW_PRECISION_WORK", 0)  # these cells are tiny
    fast, _ = twins(cls, dtype=torch.float32)
    inputs = torch.randn(5, 3, 6).bfloat16().float()
    state = torch.randn(1, 3, 8)
    full = run(fast, inputs, state)
    got = run(fast, inputs.bfloat16(), state, autocast=True)
    assert got[0].dtype == got[1].dtype == torch.float32
    direct = run(_Direct(fast), inputs, state)
    assert_same(got, direct, rtol=0, atol=0)
    assert_same(got, full, rtol=0.05, atol=0.05)
    assert not torch.equal(got[0], full[0])


class _Direct(torch.nn.Module):
    """The cell's fused pass with bfloat16 products, called without autocast."""

    def __init__(self, cell):
        super().__init__()
        self.cell = cell

    def forward(self, inputs, state):
        return self.cell._fused_forward(inputs, state, {}, torch.bfloat16)

    def named_parameters(self, *args, **kwargs):
        return self.cell.named_parameters(*args, **kwargs)


def test_fused_must_be_a_bool():
    with pytest.raises(UsageError, match="fused must be true or false"):
        TorchGRU(input_size=3, hidden_size=4, fused="no")


def test_lstm_keeps_its_own_kernel():
    assert TorchLSTM.fused_layer is None
    assert not getattr(TorchLSTM, "accepts_token_ids", False)
