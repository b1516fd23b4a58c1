"""Activation and temporal activation regularisation (``--activation-reg``, ``--temporal-reg``)."""

import copy

import pytest
import torch
from torch.nn import functional as F

import seqlm
from seqlm.cells.torch_cells import TorchLSTM, TorchRNN
from seqlm.errors import UsageError
from seqlm.interfaces import Sampler
from seqlm.model.rnn import RNNModel
from seqlm.training.trainer import DefaultTrainer


class OneBatch(Sampler):
    """Always the same single batch: the corpus's first rows, for an exact check."""

    contiguous = False

    def __call__(self, corpus):
        n = self.batch_size * self.num_steps
        yield (corpus[:n].reshape(self.batch_size, self.num_steps),
               corpus[1:n + 1].reshape(self.batch_size, self.num_steps))


def test_penalty_is_the_mean_squares_of_outputs_and_their_steps():
    model = RNNModel(TorchRNN(6, 5), vocab_size=6, activation_reg=2.0, temporal_reg=0.5)
    X = torch.randint(0, 6, (3, 7))
    state = model.begin_state(3, "cpu")
    _, _, penalty = model(X, state, with_penalty=True)
    outputs, _ = model.cell(F.one_hot(X.T, 6).float(), state)
    want = 2.0 * outputs.square().mean() + 0.5 * (outputs[1:] - outputs[:-1]).square().mean()
    assert penalty is not None
    assert torch.allclose(penalty, want, atol=1e-6)
    assert len(model(X, state)) == 2  # without asking, only logits and state
    model.eval()
    assert model(X, state, with_penalty=True)[2] is None  # evaluation is never penalised
    plain = RNNModel(TorchRNN(6, 5), vocab_size=6)
    assert plain(X, state, with_penalty=True)[2] is None
    assert not hasattr(model, "penalty")  # nothing travels on the model


def test_trainer_descends_the_penalised_loss_but_reports_cross_entropy():
    torch.manual_seed(1)
    model = RNNModel(TorchLSTM(6, 8), vocab_size=6, activation_reg=3.0, temporal_reg=2.0)
    before = copy.deepcopy(model)
    corpus = torch.randint(0, 6, (50,))
    sampler = OneBatch(batch_size=4, num_steps=5)
    X, Y = next(sampler(corpus))

    logits, _, penalty = before(X, before.begin_state(4, "cpu"), with_penalty=True)
    cross_entropy = F.cross_entropy(logits, Y.T.reshape(-1))
    (cross_entropy + penalty).backward()

    lr = 0.5
    history = DefaultTrainer(lr=lr, clip=0.0, epochs=1).fit(model, corpus, sampler)
    assert history[0].train_loss == pytest.approx(cross_entropy.item(), abs=1e-6)
    for (name, after), old in zip(model.named_parameters(), before.parameters(), strict=True):
        assert torch.allclose(after, old - lr * old.grad, atol=1e-6), name
    assert penalty.item() > 0.01  # large enough that leaving it out would show
    # No batch's graph stays on the model: it copies and saves as usual.
    copy.deepcopy(model)


@pytest.mark.parametrize("setting, flag", [
    ({"activation_reg": -1.0}, "--activation-reg"),
    ({"temporal_reg": float("nan")}, "--temporal-reg"),
])
def test_negative_or_nan_regularisation_is_a_usage_error(setting, flag):
    with pytest.raises(UsageError, match=flag):
        seqlm.run(**setting)
