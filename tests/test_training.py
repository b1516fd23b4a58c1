"""Training with the library API: perplexity falls, state handling follows the sampler."""

import math

import torch

import seqlm
from seqlm.cells.scratch import ScratchLSTM
from seqlm.data.samplers import RandomSampler, SequentialSampler
from seqlm.interfaces import Callback
from seqlm.model.rnn import RNNModel
from seqlm.training.trainer import DefaultTrainer


def test_library_run_perplexity_falls(book_path, tmp_path):
    result = seqlm.run(data=book_path, out=tmp_path / "r", epochs=40, hidden=64,
                       max_tokens=3000, batch_size=16, num_steps=20, predict=5)
    ppl = [m.train_ppl for m in result.history]
    assert len(ppl) == 40
    assert ppl[-1] < 0.75 * ppl[0]
    assert ppl[-1] < 14  # a unigram model of this text sits near 17
    assert result.summary["final_train_ppl"] == ppl[-1]
    assert result.sample.startswith("time traveller")


def _record_states(sampler):
    """Run one epoch and record, for each batch, whether the state came in as zeros."""
    torch.manual_seed(0)
    model = RNNModel(ScratchLSTM(input_size=10, hidden_size=8), vocab_size=10)
    starts = []
    original = model.forward

    def forward(tokens, state, with_penalty=False):
        starts.append(bool(torch.count_nonzero(state[0]) == 0))
        return original(tokens, state, with_penalty)

    model.forward = forward
    corpus = torch.randint(0, 10, (400,))
    DefaultTrainer(lr=0.5, clip=1.0, epochs=1).fit(model, corpus, sampler)
    return starts


def test_contiguous_sampler_carries_state_and_random_sampler_starts_fresh():
    sequential = _record_states(SequentialSampler(batch_size=4, num_steps=5))
    assert sequential[0] and not any(sequential[1:])
    random_ = _record_states(RandomSampler(batch_size=4, num_steps=5))
    assert all(random_)


def test_callbacks_see_every_epoch_and_the_end():
    events = []

    class Recorder(Callback):
        def on_train_start(self, trainer):
            events.append("start")

        def on_epoch_end(self, trainer, metrics):
            events.append(metrics.epoch)
            assert math.isfinite(metrics.train_ppl) and metrics.tokens > 0

        def on_train_end(self, trainer, history):
            events.append("end")

    model = RNNModel(ScratchLSTM(input_size=6, hidden_size=4), vocab_size=6)
    DefaultTrainer(lr=1, clip=1, epochs=3).fit(
        model, torch.randint(0, 6, (300,)), SequentialSampler(4, 5), [Recorder()]
    )
    assert events == ["start", 1, 2, 3, "end"]
