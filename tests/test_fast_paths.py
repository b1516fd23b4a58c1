"""The scratch cells' fast paths give the results of their plain autograd loops."""

import pytest
import torch
from torch.nn import functional as F

from seqlm.cells import fused
from seqlm.cells.scratch import ScratchGRU, ScratchLSTM, ScratchRNN
from seqlm.data.samplers import SequentialSampler
from seqlm.errors import UsageError
from seqlm.model.rnn import RNNModel
from seqlm.training.trainer import DefaultTrainer

CELLS = [ScratchLSTM, ScratchGRU, ScratchRNN]


def flat(state):
    return list(state) if isinstance(state, tuple) else [state]


def twin_cells(cls, dtype=torch.float32, **options):
    """The same cell twice, fused and plain, with the same (non-trivial) weights."""
    torch.manual_seed(0)
    fast = cls(input_size=5, hidden_size=8, fused=True, **options).to(dtype)
    with torch.no_grad():  # the seed's zero biases would hide bias mistakes
        for p in fast.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    plain = cls(input_size=5, hidden_size=8, fused=False, **options).to(dtype)
    plain.load_state_dict(fast.state_dict())
    return fast, plain


def random_state(cell, batch, dtype=torch.float32):
    parts = [torch.randn(s.shape, dtype=dtype, requires_grad=True)
             for s in flat(cell.begin_state(batch, "cpu"))]
    return tuple(parts) if len(parts) > 1 else parts[0]


def run_and_backprop(cell, inputs, state, weights, forward=None, autocast=False):
    """Outputs, final state, and the gradients of a loss touching all of them.

    ``forward`` replaces ``cell``'s call; ``autocast`` runs the forward pass (only, as
    torch recommends) under bfloat16 autocast.
    """
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        outputs, final = (forward or cell)(inputs, state)
    loss = (outputs * weights).sum() + sum((s * s).sum() for s in flat(final))
    grads = torch.autograd.grad(loss, [*cell.parameters(), *flat(state)], allow_unused=True)
    return outputs, flat(final), grads


@pytest.mark.parametrize("cls", CELLS)
def test_fused_layer_gradients_pass_gradcheck(cls):
    """The hand-written backward against finite differences, in float64."""
    torch.manual_seed(0)
    T, B, H = 4, 2, 3
    gates = {ScratchLSTM: 4, ScratchGRU: 3, ScratchRNN: 1}[cls] * H
    x = torch.randn(T, B, gates, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
    W_h = torch.randn(H, gates, dtype=torch.float64, requires_grad=True)
    if cls is ScratchLSTM:
        c0 = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
        inputs, function = (x, h0, c0, W_h), fused.LSTMLayer.apply
    elif cls is ScratchGRU:
        b_h = torch.randn(gates, dtype=torch.float64, requires_grad=True)
        inputs, function = (x, h0, W_h, b_h), fused.GRULayer.apply
    else:
        inputs, function = (x, h0, W_h), fused.RNNLayer.apply
    assert torch.autograd.gradcheck(function, inputs)


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_fused_matches_plain_outputs_and_gradients(cls, num_layers, dtype, tolerance):
    """Large weights (saturating gates) and deep stacks; float32 within rounding."""
    fast, plain = twin_cells(cls, dtype, num_layers=num_layers)
    inputs = torch.randn(7, 4, 5, dtype=dtype)
    state = random_state(fast, 4, dtype)
    weights = torch.randn(7, 4, 8, dtype=dtype)
    got = run_and_backprop(fast, inputs, state, weights)
    expected = run_and_backprop(plain, inputs, state, weights)
    for a, b in zip([got[0], *got[1], *got[2]], [expected[0], *expected[1], *expected[2]],
                    strict=True):
        torch.testing.assert_close(a, b, atol=tolerance, rtol=tolerance)


@pytest.mark.parametrize("cls", CELLS)
def test_fused_matches_plain_with_dropout_between_layers(cls):
    """Dropout stays outside the fused pass, so the same seed draws the same masks."""
    fast, plain = twin_cells(cls, num_layers=2, dropout=0.5)
    inputs, state = torch.randn(6, 3, 5), random_state(fast, 3)
    weights = torch.randn(6, 3, 8)
    torch.manual_seed(1)
    got = run_and_backprop(fast, inputs, state, weights)
    torch.manual_seed(1)
    expected = run_and_backprop(plain, inputs, state, weights)
    for a, b in zip([got[0], *got[1], *got[2]], [expected[0], *expected[1], *expected[2]],
                    strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cls", CELLS)
def test_state_carries_over_between_chunks(cls):
    """Two chunks with the state passed on (detached) equal the plain path's."""
    fast, plain = twin_cells(cls, num_layers=2)
    chunks = torch.randn(2, 5, 3, 5)
    results = []
    for cell in (fast, plain):
        state = cell.begin_state(3, "cpu")
        outs = []
        for chunk in chunks:
            out, state = cell(chunk, state)
            out.sum().backward()
            state = tuple(s.detach() for s in flat(state))
            state = state if len(state) > 1 else state[0]
            outs.append(out.detach())
        results.append((outs, [p.grad.clone() for p in cell.parameters()]))
    (outs_a, grads_a), (outs_b, grads_b) = results
    for a, b in zip(outs_a + grads_a, outs_b + grads_b, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("use_fused", [True, False])
def test_token_ids_equal_one_hot_inputs(cls, use_fused):
    """Looking up rows of W_x is the one-hot product, gradients included."""
    fast, _ = twin_cells(cls, num_layers=2)
    fast.fused = use_fused
    ids = torch.randint(0, 5, (6, 3))
    state = random_state(fast, 3)
    weights = torch.randn(6, 3, 8)
    by_ids = run_and_backprop(fast, ids, state, weights)
    by_one_hot = run_and_backprop(fast, F.one_hot(ids, 5).float(), state, weights)
    for a, b in zip([by_ids[0], *by_ids[1], *by_ids[2]],
                    [by_one_hot[0], *by_one_hot[1], *by_one_hot[2]], strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_model_passes_token_ids_only_to_cells_that_accept_them(monkeypatch):
    torch.manual_seed(0)
    model = RNNModel(ScratchLSTM(input_size=6, hidden_size=4), vocab_size=6)
    seen = []
    original = ScratchLSTM.forward

    def spy(self, inputs, state):
        seen.append(inputs.dtype)
        return original(self, inputs, state)

    monkeypatch.setattr(ScratchLSTM, "forward", spy)
    tokens = torch.randint(0, 6, (2, 5))
    logits, _ = model(tokens, model.begin_state(2, "cpu"))
    assert seen == [torch.int64]
    monkeypatch.setattr(ScratchLSTM, "accepts_token_ids", False)
    logits_one_hot, _ = model(tokens, model.begin_state(2, "cpu"))
    assert seen[-1] == torch.float32
    torch.testing.assert_close(logits, logits_one_hot, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("cls", CELLS)
def test_plain_path_runs_when_fused_is_off(cls, monkeypatch):
    def forbidden(*args):
        raise AssertionError("the fused pass ran")

    for function in (fused.LSTMLayer, fused.GRULayer, fused.RNNLayer):
        monkeypatch.setattr(function, "apply", forbidden)
    fast, plain = twin_cells(cls)
    inputs = torch.randn(3, 2, 5)
    outputs, _ = plain(inputs, plain.begin_state(2, "cpu"))
    assert outputs.shape == (3, 2, 8)
    with pytest.raises(AssertionError, match="fused pass ran"):
        fast(inputs, fast.begin_state(2, "cpu"))


@pytest.mark.parametrize("cls", CELLS)
def test_under_autocast_the_fused_pass_takes_only_its_products_in_bf16(cls, monkeypatch):
    """bf16 autocast keeps the fused pass, with float32 buffers, state and elementwise
    work, and bfloat16 recurrent products."""
    monkeypatch.setattr(fused, "MIN_LOW_PRECISION_WORK", 0)  # these cells are tiny
    fast, _ = twin_cells(cls)
    inputs = torch.randn(6, 2, 5)
    state = random_state(fast, 2)
    weights = torch.randn(6, 2, 8)
    full = run_and_backprop(fast, inputs, state, weights)
    mixed = run_and_backprop(fast, inputs, state, weights, autocast=True)
    assert mixed[0].dtype == torch.float32 and all(s.dtype == torch.float32 for s in mixed[1])
    # Exactly the pass with bfloat16 products, called directly without autocast.
    direct = run_and_backprop(fast, inputs, state, weights,
                              forward=lambda x, s: fast._forward(x, s, torch.bfloat16))
    for got, expected in zip(flatten(mixed), flatten(direct), strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    # Close to float32 throughout, and not float32: the products really were bfloat16.
    for got, expected in zip(flatten(mixed), flatten(full), strict=True):
        torch.testing.assert_close(got, expected, rtol=0.05, atol=0.05)
    assert not torch.equal(mixed[0], full[0])


@pytest.mark.parametrize("cls", CELLS)
def test_products_too_small_to_gain_stay_float32_under_autocast(cls):
    fast, _ = twin_cells(cls)
    inputs, state, weights = torch.randn(4, 2, 5), random_state(fast, 2), torch.randn(4, 2, 8)
    full = run_and_backprop(fast, inputs, state, weights)
    mixed = run_and_backprop(fast, inputs, state, weights, autocast=True)
    for got, expected in zip(flatten(mixed), flatten(full), strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def flatten(result):
    outputs, final, grads = result
    return [outputs, *final, *(g for g in grads if g is not None)]


def test_plain_path_gives_gradients_of_gradients():
    """Code that needs double backward builds the cell with fused=False."""
    _, plain = twin_cells(ScratchLSTM)
    inputs = torch.randn(3, 2, 5, requires_grad=True)
    outputs, _ = plain(inputs, plain.begin_state(2, "cpu"))
    (grad,) = torch.autograd.grad(outputs.sum(), inputs, create_graph=True)
    grad.pow(2).sum().backward()
    assert plain.W_h[0].grad is not None and plain.W_h[0].grad.abs().sum() > 0


@pytest.mark.parametrize("cls", CELLS)
def test_training_fused_and_plain_give_the_same_losses(cls):
    """A few epochs of the default trainer: the loss curves agree."""
    torch.set_num_threads(1)
    corpus = torch.randint(0, 7, (600,))
    histories = []
    for use_fused in (True, False):
        torch.manual_seed(3)
        model = RNNModel(cls(input_size=7, hidden_size=16, fused=use_fused), vocab_size=7)
        trainer = DefaultTrainer(lr=1.0, clip=1.0, epochs=3)
        histories.append([m.train_loss for m in trainer.fit(model, corpus,
                                                            SequentialSampler(4, 10))])
    assert histories[0] == pytest.approx(histories[1], rel=1e-4)


def test_fused_option_must_be_a_boolean():
    with pytest.raises(UsageError, match="fused must be true or false"):
        ScratchLSTM(input_size=3, hidden_size=2, fused="no")
