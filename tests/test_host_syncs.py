"""No read back to the host per batch: training, validation and generation.

On a GPU every read of a tensor's value on the host (``.item()``, ``float(t)``,
``if t``, ``.tolist()``) waits for all queued work to finish, so one per batch stalls
the device once per batch. These tests turn every such read into an error while the
per-batch work runs: the whole epoch loop (the sampler's batches, the step, the loss
sum), validation and generation. Each of them may read once at its end.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch

from seqlm.cells.scratch import ScratchGRU
from seqlm.cells.torch_cells import TorchLSTM
from seqlm.data.samplers import RandomSampler, SequentialSampler
from seqlm.data.tokenizers import CharTokenizer
from seqlm.data.vocab import Vocab
from seqlm.model.generation import generate
from seqlm.model.rnn import RNNModel
from seqlm.training.evaluation import evaluate_loss
from seqlm.training.trainer import DefaultTrainer

CORPUS = (torch.arange(1300) * 7 % 19).long()
READS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "numpy")


class HostReads:
    """Counts reads of tensor values on the host; raises for those made while guarded."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.guarded = False
        self.reads: list[str] = []
        for name in READS:
            monkeypatch.setattr(torch.Tensor, name, self._wrap(name, getattr(torch.Tensor, name)))

    def _wrap(self, name, original):
        def read(tensor, *args, **kwargs):
            self.reads.append(name)
            if self.guarded:
                raise AssertionError(f"Tensor.{name} read a value on the host per batch")
            return original(tensor, *args, **kwargs)
        return read

    @contextlib.contextmanager
    def forbidden(self) -> Iterator[None]:
        self.guarded = True
        try:
            yield
        finally:
            self.guarded = False


class Guarded:
    """A sampler whose batches, from the first one handed out to the end of the epoch's
    loop, run with host reads forbidden."""

    def __init__(self, sampler, reads: HostReads) -> None:
        self.sampler, self.reads = sampler, reads
        self.batch_size, self.num_steps = sampler.batch_size, sampler.num_steps
        self.contiguous = sampler.contiguous
        self.fixed_length = sampler.fixed_length
        self.batches = 0

    def __call__(self, corpus: torch.Tensor):
        batches = self.sampler(corpus)
        first = next(batches)  # the sampler's own set-up reads are once per epoch
        with self.reads.forbidden():
            yield first
            for batch in batches:
                self.batches += 1
                yield batch


def _regularised_gru():
    cell = ScratchGRU(input_size=8, hidden_size=16, num_layers=2, dropout=0.2,
                      weight_dropout=0.3)
    return RNNModel(cell, vocab_size=19, embedding_dim=8, dropout=0.2,
                    activation_reg=1.0, temporal_reg=1.0)


def _lstm():
    return RNNModel(TorchLSTM(input_size=19, hidden_size=24), vocab_size=19)


@pytest.mark.parametrize("static", [False, True], ids=["eager", "static-step"])
@pytest.mark.parametrize("make_model", [_lstm, _regularised_gru])
@pytest.mark.parametrize("make_sampler", [SequentialSampler, RandomSampler])
def test_the_epoch_loop_reads_nothing_on_the_host_per_batch(static, make_model,
                                                            make_sampler, monkeypatch):
    monkeypatch.setattr(DefaultTrainer, "use_static_step", lambda self: static)
    reads = HostReads(monkeypatch)
    sampler = Guarded(make_sampler(8, 10), reads)
    # (Adam and AdamW outside a recording keep their step count on the host by torch's
    # design, which reads it without waiting for the device; SGD reads nothing.)
    trainer = DefaultTrainer(lr=1.0, clip=1.0, epochs=2, schedule="cosine", warmup_epochs=1)
    history = trainer.fit(make_model(), CORPUS, sampler, val_corpus=CORPUS[:300])
    assert len(history) == 2 and all(m.val_loss > 0 for m in history)
    assert sampler.batches > 2 * 10
    # What is read happens once per epoch (the losses, the sampler's offset), never
    # once per batch.
    assert len(reads.reads) <= 2 * 6


def test_validation_leaves_its_sum_on_the_device(monkeypatch):
    reads = HostReads(monkeypatch)
    model = _lstm()
    with reads.forbidden():
        loss_sum, tokens = evaluate_loss(model, CORPUS, batch_size=4, num_steps=16)
    assert tokens > 0 and loss_sum.ndim == 0
    assert reads.reads == []


@pytest.mark.parametrize("greedy", [True, False])
def test_generation_reads_the_tokens_once_at_the_end(greedy, monkeypatch):
    tokenizer = CharTokenizer()
    vocab = Vocab(tokenizer.tokenize(["the time traveller said so"]))
    model = RNNModel(TorchLSTM(input_size=len(vocab), hidden_size=16), len(vocab))
    reads = HostReads(monkeypatch)
    generator = torch.Generator().manual_seed(0)
    text = generate(model, vocab, tokenizer, "the", 40, greedy=greedy, top_k=5,
                    generator=generator)
    assert len(tokenizer.tokenize([text])[0]) == 3 + 40
    # One read of the generated ids for the whole text, however long.
    assert reads.reads == ["tolist"]


def _host_loop_generate(model, vocab, tokenizer, prefix, length, temperature, top_k, seed):
    """The per-token loop that reads each token on the host: the reference to match."""
    generator = torch.Generator().manual_seed(seed)
    tokens = tokenizer.tokenize([prefix])[0]
    logits, state = model(torch.tensor([vocab[list(tokens)]]), model.begin_state(1, "cpu"))
    picked = []
    for _ in range(length):
        scores = logits[-1].clone()
        scores[vocab.unk] = float("-inf")
        scores = scores.float() / temperature
        if top_k:
            scores = scores.masked_fill(scores < torch.topk(scores, top_k).values[-1],
                                        float("-inf"))
        picked.append(int(torch.multinomial(torch.softmax(scores, -1), 1,
                                            generator=generator)))
        logits, state = model(torch.tensor([[picked[-1]]]), state)
    return tokenizer.detokenize(list(tokens) + vocab.to_tokens(picked))


@pytest.mark.parametrize(("temperature", "top_k", "seed"), [(1.0, 0, 0), (0.7, 5, 1),
                                                            (1.3, 3, 2)])
@torch.no_grad()
def test_sampling_on_the_device_draws_what_the_host_loop_draws(temperature, top_k, seed):
    """On the CPU a seed gives the same text as reading every token back did."""
    tokenizer = CharTokenizer()
    vocab = Vocab(tokenizer.tokenize(["the time traveller said so, and we all listened"]))
    torch.manual_seed(seed)
    model = RNNModel(TorchLSTM(input_size=len(vocab), hidden_size=16), len(vocab)).eval()
    expected = _host_loop_generate(model, vocab, tokenizer, "the", 60, temperature, top_k,
                                   seed)
    assert generate(model, vocab, tokenizer, "the", 60, greedy=False, temperature=temperature,
                    top_k=top_k, generator=torch.Generator().manual_seed(seed)) == expected
