"""Training through fixed buffers (what a CUDA graph records) equals the ordinary loop.

On CUDA, ``DefaultTrainer(cuda_graph=True)`` records the step once and replays it. The
buffer handling around the step (inputs, targets, state carried over or restarted, the
summed loss, re-recording when the learning rate or the shapes change) is the same code
with or without recording, so these tests run it eagerly on the CPU and compare it with
the ordinary loop: every loss and every weight must match exactly.
"""

from collections.abc import Iterator

import pytest
import torch

from seqlm.cells.scratch import ScratchGRU
from seqlm.cells.torch_cells import TorchLSTM
from seqlm.data.samplers import RandomSampler, SequentialSampler
from seqlm.errors import TrainingError, UsageError
from seqlm.model.rnn import RNNModel
from seqlm.training.graphs import StaticStep, restructure, state_tensors
from seqlm.training.trainer import DefaultTrainer

CORPUS = (torch.arange(2400) * 7 % 19).long()


def _fit(static: bool, monkeypatch, make_model, sampler, **options):
    monkeypatch.setattr(DefaultTrainer, "use_static_step", lambda self: static)
    torch.manual_seed(0)
    model = make_model()
    trainer = DefaultTrainer(lr=options.pop("lr", 1.0), clip=1.0,
                             epochs=options.pop("epochs", 3), **options)
    torch.manual_seed(1)
    history = trainer.fit(model, CORPUS, sampler)
    return [m.train_loss for m in history], model.state_dict()


def _same_training(monkeypatch, make_model, sampler, **options):
    plain = _fit(False, monkeypatch, make_model, sampler, **dict(options))
    static = _fit(True, monkeypatch, make_model, sampler, **dict(options))
    assert static[0] == plain[0]
    for name, value in plain[1].items():
        torch.testing.assert_close(static[1][name], value, rtol=0, atol=0, msg=name)
    return plain[0]


def _lstm():
    return RNNModel(TorchLSTM(input_size=19, hidden_size=24), vocab_size=19)


def _regularised_gru():
    cell = ScratchGRU(input_size=8, hidden_size=16, num_layers=2, dropout=0.2,
                      weight_dropout=0.3)
    return RNNModel(cell, vocab_size=19, embedding_dim=8, dropout=0.2,
                    activation_reg=1.0, temporal_reg=1.0)


def test_sequential_batches_carry_the_state_as_the_loop_does(monkeypatch):
    losses = _same_training(monkeypatch, _lstm, SequentialSampler(8, 10))
    assert losses[-1] < losses[0]


def test_random_batches_restart_the_state_as_the_loop_does(monkeypatch):
    _same_training(monkeypatch, _lstm, RandomSampler(8, 10))


def test_dropout_penalties_adamw_and_a_schedule_match_the_loop(monkeypatch):
    """Random masks, AR/TAR, Adam's state and a learning rate that changes each epoch."""
    _same_training(monkeypatch, _regularised_gru, SequentialSampler(6, 12), lr=0.01,
                   optimizer="adamw", schedule="cosine", warmup_epochs=1, epochs=4)


def test_bf16_autocast_matches_the_loop(monkeypatch):
    _same_training(monkeypatch, _lstm, SequentialSampler(8, 10), precision="bf16")


class _AlternatingSampler(SequentialSampler):
    """Contiguous rows whose batches alternate between two lengths."""

    def __call__(self, corpus: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        position, width = 0, 0
        while position + 12 < len(corpus) // self.batch_size:
            width = 9 if width == 5 else 5
            rows = torch.arange(self.batch_size)[:, None] * (len(corpus) // self.batch_size)
            cols = position + torch.arange(width)
            yield corpus[rows + cols], corpus[rows + cols + 1]
            position += width


def test_new_shapes_record_a_new_step_and_keep_the_state(monkeypatch):
    built = []
    original = StaticStep.__init__

    def spy(self, *args, **kwargs):
        built.append(args[1].shape)
        original(self, *args, **kwargs)

    monkeypatch.setattr(StaticStep, "__init__", spy)
    _same_training(monkeypatch, _lstm, _AlternatingSampler(4, 5), epochs=1)
    assert len(built) > 10 and {tuple(s) for s in built} == {(4, 5), (4, 9)}


def test_one_recording_serves_a_constant_rate_and_one_per_epoch_a_schedule(monkeypatch):
    built = []
    original = StaticStep.__init__

    def spy(self, *args, **kwargs):
        built.append(kwargs["warmup"])
        original(self, *args, **kwargs)

    monkeypatch.setattr(StaticStep, "__init__", spy)
    _fit(True, monkeypatch, _lstm, SequentialSampler(8, 10), epochs=3)
    assert built == [3]
    built.clear()
    _fit(True, monkeypatch, _lstm, SequentialSampler(8, 10), epochs=3, schedule="cosine")
    assert built == [3, 1, 1]


def test_state_tensors_round_trip():
    h, c = torch.ones(2), torch.zeros(2)
    assert state_tensors(h) == (h,)
    assert restructure((h, c), state_tensors((h, c))) == (h, c)
    nested = (h, (c, h))
    rebuilt = restructure(nested, tuple(t + 1 for t in state_tensors(nested)))
    assert isinstance(rebuilt[1], tuple) and torch.equal(rebuilt[1][0], c + 1)


def test_cuda_graph_must_be_auto_or_a_bool():
    with pytest.raises(UsageError, match="cuda_graph must be 'auto', true or false"):
        DefaultTrainer(lr=1, clip=1, epochs=1, cuda_graph="yes")


def test_cuda_graph_is_ignored_off_cuda():
    assert not DefaultTrainer(lr=1, clip=1, epochs=1, cuda_graph=True).use_static_step()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="records CUDA graphs: needs a GPU")
@pytest.mark.parametrize("make_model", [_lstm, _regularised_gru])
def test_cuda_graph_replays_train_like_the_loop(make_model):
    """On a GPU: the recorded and replayed step trains as the eager loop does."""
    results = []
    for graph in (False, True):
        torch.manual_seed(0)
        model = make_model()
        trainer = DefaultTrainer(lr=1.0, clip=1.0, epochs=4, device="cuda",
                                 cuda_graph=graph)
        torch.manual_seed(1)
        history = trainer.fit(model, CORPUS, SequentialSampler(8, 10))
        results.append(([m.train_loss for m in history], model.state_dict()))
    (plain_losses, plain_weights), (graph_losses, graph_weights) = results
    assert graph_losses == pytest.approx(plain_losses, rel=1e-4)
    for name, value in plain_weights.items():
        torch.testing.assert_close(graph_weights[name], value, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("make_model", [_lstm, _regularised_gru])
def test_the_recorded_step_never_reads_a_tensor_on_the_host(make_model, monkeypatch):
    """A CUDA graph cannot record a read-back to the host (``.item()``, ``if tensor``):
    run the step with every such read turned into an error."""
    original_run = StaticStep._run
    running = []

    def forbid(name):
        original = getattr(torch.Tensor, name)

        def guarded(self, *args, **kwargs):
            if running:
                raise AssertionError(f"Tensor.{name} inside the step")
            return original(self, *args, **kwargs)
        return guarded

    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, forbid(name))

    def run(self):
        running.append(True)
        try:
            original_run(self)
        finally:
            running.clear()

    monkeypatch.setattr(StaticStep, "_run", run)
    losses, _ = _fit(True, monkeypatch, make_model, SequentialSampler(8, 10), epochs=2)
    assert all(loss > 0 for loss in losses)


def test_a_step_that_cannot_be_recorded_is_a_clear_training_error(monkeypatch):
    """What CUDA refuses to record ends the run with a one-line reason and the fix."""
    class Refusing:
        def __init__(self, graph):
            pass

        def __enter__(self):
            raise RuntimeError("operation not permitted when stream is capturing\nmore")

        def __exit__(self, *args):
            return False

    monkeypatch.setattr(torch.cuda, "CUDAGraph", lambda: object())
    monkeypatch.setattr(torch.cuda, "graph", Refusing)
    inputs = torch.zeros(2, 3, dtype=torch.long)
    step = StaticStep(lambda x, y, s: (torch.zeros(()), s), inputs, inputs,
                      torch.zeros(1, 2, 4), [1.0], capture=True, warmup=0)
    with pytest.raises(TrainingError) as caught:
        step(inputs, inputs)
    assert str(caught.value) == (
        "the training step could not be recorded as a CUDA graph (operation not permitted "
        "when stream is capturing); run without --cuda-graph")


def test_cuda_graph_off_cuda_says_it_does_not_apply(small_text, tmp_path, capsys):
    from seqlm.runs.stages import run

    result = run(data=small_text, cuda_graph=True, device="cpu", epochs=1, hidden=8,
                 batch_size=4, num_steps=8, predict=2, out=tmp_path / "run")
    # A note: on stderr, apart from the results.
    assert "--cuda-graph applies to CUDA only; on cpu the steps run as usual" in \
        capsys.readouterr().err
    assert result.history and result.config.cuda_graph
