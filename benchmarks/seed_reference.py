"""The seed's training algorithm, step by step, as the baseline for the benchmark.

This is deliberately the naive code the seed post runs, so that the benchmark measures
what seqlm gains over it on the same machine:

* the corpus is a Python list, each epoch's batches are rebuilt with ``torch.tensor``;
* inputs are one-hot vectors; the from-scratch cells multiply them by one weight matrix
  per gate, and compute the output layer inside the time loop;
* every batch reads its loss to the host (``l.item()``);
* the gradient norm is summed in Python and compared on the host (``if norm > theta``);
* the from-scratch models update their parameters with a per-parameter SGD loop; the
  torch-module models use ``torch.optim.SGD`` with its defaults.

The GRU and RNN versions follow the same pattern as the seed's LSTM. The GRU applies
the reset gate to ``H W_hn + b_hn`` as torch does, so every reference cell computes the
same function as the seqlm cell it is compared with.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.nn import functional as F

Params = list[torch.Tensor]
State = tuple[torch.Tensor, ...]


def seq_data_iter_sequential(
    corpus: list[int], batch_size: int, num_steps: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The seed's sequential partitioning, from a Python list of token ids."""
    offset = random.randint(0, num_steps)
    num_tokens = ((len(corpus) - offset - 1) // batch_size) * batch_size
    Xs = torch.tensor(corpus[offset: offset + num_tokens])
    Ys = torch.tensor(corpus[offset + 1: offset + 1 + num_tokens])
    Xs, Ys = Xs.reshape(batch_size, -1), Ys.reshape(batch_size, -1)
    num_batches = Xs.shape[1] // num_steps
    for i in range(0, num_steps * num_batches, num_steps):
        yield Xs[:, i: i + num_steps], Ys[:, i: i + num_steps]


# --- models built on torch's modules (the seed's "concise" version) -------------------

class RNNModel(nn.Module):
    """The seed's ``RNNModel``: one-hot inputs, a torch recurrent layer, a linear head."""

    def __init__(self, rnn_layer: nn.RNNBase, vocab_size: int) -> None:
        super().__init__()
        self.rnn = rnn_layer
        self.vocab_size = vocab_size
        self.num_hiddens = rnn_layer.hidden_size
        self.linear = nn.Linear(self.num_hiddens, vocab_size)

    def forward(self, inputs: torch.Tensor, state):
        X = F.one_hot(inputs.T.long(), self.vocab_size).to(torch.float32)
        Y, state = self.rnn(X, state)
        return self.linear(Y.reshape((-1, Y.shape[-1]))), state

    def begin_state(self, device: torch.device, batch_size: int = 1):
        shape = (self.rnn.num_layers, batch_size, self.num_hiddens)
        if isinstance(self.rnn, nn.LSTM):
            return (torch.zeros(shape, device=device), torch.zeros(shape, device=device))
        return torch.zeros(shape, device=device)


# --- from-scratch models, one weight matrix per gate ----------------------------------

def _normal(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    return torch.randn(size=shape, device=device) * 0.01


def _gate(num_inputs: int, num_hiddens: int, device: torch.device) -> Params:
    return [_normal((num_inputs, num_hiddens), device),
            _normal((num_hiddens, num_hiddens), device),
            torch.zeros(num_hiddens, device=device)]


def get_params(kind: str, vocab_size: int, num_hiddens: int, device: torch.device) -> Params:
    """Per-gate weights and the output layer, as the seed's ``get_lstm_params``."""
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[kind]
    params: Params = []
    for _ in range(gates):
        params += _gate(vocab_size, num_hiddens, device)
    if kind == "gru":  # torch's GRU keeps a separate bias inside the reset product
        params.append(torch.zeros(num_hiddens, device=device))
    params += [_normal((num_hiddens, vocab_size), device),
               torch.zeros(vocab_size, device=device)]
    for param in params:
        param.requires_grad_(True)
    return params


def lstm(inputs: torch.Tensor, state: State, params: Params):
    """The seed's LSTM, gate by gate (gate order input, forget, cell, output)."""
    [W_xi, W_hi, b_i, W_xf, W_hf, b_f, W_xc, W_hc, b_c, W_xo, W_ho, b_o, W_hq, b_q] = params
    H, C = state
    outputs = []
    for X in inputs:
        I = torch.sigmoid((X @ W_xi) + (H @ W_hi) + b_i)  # noqa: E741 - the seed's name
        F_ = torch.sigmoid((X @ W_xf) + (H @ W_hf) + b_f)
        O = torch.sigmoid((X @ W_xo) + (H @ W_ho) + b_o)  # noqa: E741
        C_tilda = torch.tanh((X @ W_xc) + (H @ W_hc) + b_c)
        C = F_ * C + I * C_tilda
        H = O * torch.tanh(C)
        outputs.append((H @ W_hq) + b_q)
    return torch.cat(outputs, dim=0), (H, C)


def gru(inputs: torch.Tensor, state: State, params: Params):
    """A GRU in the seed's style (reset, update, new), torch's reset convention."""
    [W_xr, W_hr, b_r, W_xz, W_hz, b_z, W_xn, W_hn, b_n, b_hn, W_hq, b_q] = params
    (H,) = state
    outputs = []
    for X in inputs:
        R = torch.sigmoid((X @ W_xr) + (H @ W_hr) + b_r)
        Z = torch.sigmoid((X @ W_xz) + (H @ W_hz) + b_z)
        H_tilda = torch.tanh((X @ W_xn) + b_n + R * ((H @ W_hn) + b_hn))
        H = Z * H + (1 - Z) * H_tilda
        outputs.append((H @ W_hq) + b_q)
    return torch.cat(outputs, dim=0), (H,)


def rnn(inputs: torch.Tensor, state: State, params: Params):
    """An Elman RNN in the seed's style."""
    [W_xh, W_hh, b_h, W_hq, b_q] = params
    (H,) = state
    outputs = []
    for X in inputs:
        H = torch.tanh((X @ W_xh) + (H @ W_hh) + b_h)
        outputs.append((H @ W_hq) + b_q)
    return torch.cat(outputs, dim=0), (H,)


FORWARD: dict[str, Callable] = {"lstm": lstm, "gru": gru, "rnn": rnn}


class RNNModelScratch:
    """The seed's ``RNNModelScratch``: parameters in a list, a forward function."""

    def __init__(self, kind: str, vocab_size: int, num_hiddens: int, device: torch.device):
        self.vocab_size, self.num_hiddens = vocab_size, num_hiddens
        self.params = get_params(kind, vocab_size, num_hiddens, device)
        self.forward_fn = FORWARD[kind]
        self.num_states = 2 if kind == "lstm" else 1

    def __call__(self, X: torch.Tensor, state: State):
        X = F.one_hot(X.T, self.vocab_size).type(torch.float32)
        return self.forward_fn(X, state, self.params)

    def begin_state(self, batch_size: int, device: torch.device) -> State:
        return tuple(torch.zeros((batch_size, self.num_hiddens), device=device)
                     for _ in range(self.num_states))


# --- the seed's training loop ---------------------------------------------------------

def grad_clipping(net, theta: float) -> None:
    """The seed's clipping: a Python sum of squares, compared on the host."""
    if isinstance(net, nn.Module):
        params = [p for p in net.parameters() if p.requires_grad]
    else:
        params = net.params
    norm = torch.sqrt(sum(torch.sum(p.grad ** 2) for p in params))
    if norm > theta:
        for param in params:
            param.grad[:] *= theta / norm


def sgd(params: Params, lr: float, batch_size: int) -> None:
    """The seed's per-parameter SGD step."""
    with torch.no_grad():
        for param in params:
            param -= lr * param.grad / batch_size
            param.grad.zero_()


def train_epoch(net, corpus: list[int], batch_size: int, num_steps: int, loss, updater,
                device: torch.device) -> tuple[float, int]:
    """One epoch of the seed's loop; returns (mean loss, tokens)."""
    state = None
    total_loss = 0.0
    total_tokens = 0
    for X, Y in seq_data_iter_sequential(corpus, batch_size, num_steps):
        if state is None:
            state = net.begin_state(batch_size=X.shape[0], device=device)
        else:
            if isinstance(net, nn.Module) and not isinstance(state, tuple):
                state.detach_()
            else:
                for s in state:
                    s.detach_()
        y = Y.T.reshape(-1)
        X, y = X.to(device), y.to(device)
        y_hat, state = net(X, state)
        l = loss(y_hat, y.long()).mean()  # noqa: E741 - the seed's name
        if isinstance(updater, torch.optim.Optimizer):
            updater.zero_grad()
            l.backward()
            grad_clipping(net, 1)
            updater.step()
        else:
            l.backward()
            grad_clipping(net, 1)
            updater(batch_size=1)
        total_loss += l.item() * y.numel()
        total_tokens += y.numel()
    return total_loss / total_tokens, total_tokens


def build(cell: str, vocab_size: int, hidden: int, lr: float, device: torch.device):
    """The seed's network and updater for a seqlm cell name (``lstm``, ``gru-scratch``...)."""
    kind, _, scratch = cell.partition("-")
    if scratch:
        net = RNNModelScratch(kind, vocab_size, hidden, device)
        return net, (lambda batch_size: sgd(net.params, lr, batch_size))
    layer = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[kind](vocab_size, hidden)
    net = RNNModel(layer, vocab_size).to(device)
    return net, torch.optim.SGD(net.parameters(), lr)


def perplexity(mean_loss: float) -> float:
    """exp of the mean cross-entropy."""
    return math.exp(mean_loss)
