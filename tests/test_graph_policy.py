"""``cuda_graph`` is auto, demanded or off: the decision, and the fallback of ``auto``.

The recording itself needs a GPU (tests/test_static_step.py covers it there). Here the
decision is checked as the pure function it is, and a failed recording is simulated on
the CPU: the trainer is told to record, and the recorder raises what CUDA raises when a
step cannot be captured. An ``auto`` run then continues eagerly and must train exactly
as an eager run does; a demanded recording must stop with a clear error.
"""

import json

import pytest
import torch

from seqlm.cells.torch_cells import TorchLSTM
from seqlm.config.choices import check_graph_setting
from seqlm.data.samplers import RandomSampler, SequentialSampler
from seqlm.errors import TrainingError, UsageError
from seqlm.model.rnn import RNNModel
from seqlm.training.graph_policy import (
    GraphDecision,
    GraphRecordingError,
    decide,
    fallback_note,
)
from seqlm.training.graphs import StaticStep
from seqlm.training.trainer import DefaultTrainer

CORPUS = (torch.arange(2400) * 7 % 19).long()
CAPTURE_ERROR = ("CUDA error: operation not permitted when stream is capturing\n"
                 "CUDA kernel errors might be asynchronously reported at some other API call")


@pytest.mark.parametrize(("setting", "device", "record", "reason"), [
    ("auto", "cuda", True, "auto on CUDA"),
    (True, "cuda", True, "asked for (--cuda-graph)"),
    (False, "cuda", False, "turned off (--no-cuda-graph)"),
    ("auto", "cpu", False, "CUDA graphs apply to CUDA only, not cpu"),
    ("auto", "mps", False, "CUDA graphs apply to CUDA only, not mps"),
    (True, "cpu", False, "CUDA graphs apply to CUDA only, not cpu"),
    (False, "cpu", False, "turned off (--no-cuda-graph)"),
])
def test_decision_for_one_process(setting, device, record, reason):
    assert decide(setting, device) == GraphDecision(record, reason)


@pytest.mark.parametrize(("backend", "nccl", "record"), [
    ("nccl", (2, 21, 5), True), ("nccl", (2, 9, 6), True), ("nccl", (2, 9, 5), False),
    ("nccl", None, False), ("gloo", None, False),
])
def test_decision_for_a_distributed_run_on_cuda(backend, nccl, record):
    assert decide("auto", "cuda", backend=backend, nccl_version=nccl).record is record


def test_a_distributed_run_off_cuda_is_eager_for_the_device_first():
    decision = decide("auto", "cpu", backend="gloo")
    assert decision == GraphDecision(False, "CUDA graphs apply to CUDA only, not cpu")


@pytest.mark.parametrize("value", ["yes", "on", 1, 0, None])
def test_a_setting_is_auto_true_or_false(value):
    with pytest.raises(UsageError, match="cuda_graph must be 'auto', true or false"):
        check_graph_setting(value)
    with pytest.raises(UsageError, match="cuda_graph must be 'auto', true or false"):
        DefaultTrainer(lr=1, clip=1, epochs=1, cuda_graph=value)


def test_the_trainer_defaults_to_auto_and_is_silently_eager_off_cuda(capsys):
    trainer = DefaultTrainer(lr=1, clip=1, epochs=1)
    assert trainer.cuda_graph == "auto" and not trainer.use_static_step()
    trainer.fit(_lstm(), CORPUS, SequentialSampler(8, 10))
    assert trainer.graph_report.to_dict() == {
        "setting": "auto", "recorded": False, "fell_back": False,
        "reason": "CUDA graphs apply to CUDA only, not cpu"}
    assert capsys.readouterr().err == ""


def test_a_failed_recording_error_keeps_the_first_line_of_the_reason():
    error = GraphRecordingError.from_runtime_error(RuntimeError(CAPTURE_ERROR))
    assert error.reason == "CUDA error: operation not permitted when stream is capturing"
    assert isinstance(error, TrainingError)
    assert fallback_note(error.reason).count("\n") == 0


def test_the_reason_is_the_first_error_when_ending_the_recording_fails_too():
    """``torch.cuda.graph`` ends a failed capture on its way out, which raises again with
    the first error as its context."""
    ending = RuntimeError("CUDA error: operation failed due to a previous error during "
                          "capture")
    ending.__context__ = RuntimeError(CAPTURE_ERROR)
    assert GraphRecordingError.from_runtime_error(ending).reason == (
        "CUDA error: operation not permitted when stream is capturing")


# -- the fallback, simulated on the CPU ---------------------------------------------------

def _lstm():
    return RNNModel(TorchLSTM(input_size=19, hidden_size=24), vocab_size=19)


class _RefusingCapture:
    """Stands for ``torch.cuda.graph``: entering it raises what a refused capture raises."""

    entered = 0

    def __init__(self, graph, *args, **kwargs):
        pass

    def __enter__(self):
        type(self).entered += 1
        raise RuntimeError(CAPTURE_ERROR)

    def __exit__(self, *args):
        return False


@pytest.fixture
def refused_recording(monkeypatch):
    """The trainer decides to record (as on CUDA), and CUDA refuses the recording."""
    monkeypatch.setattr(DefaultTrainer, "graph_decision",
                        lambda self: decide(self.cuda_graph, "cuda"))
    original = StaticStep.__init__

    def capturing(self, *args, **kwargs):
        original(self, *args, **{**kwargs, "capture": True})

    monkeypatch.setattr(StaticStep, "__init__", capturing)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", lambda: object())
    _RefusingCapture.entered = 0
    monkeypatch.setattr(torch.cuda, "graph", _RefusingCapture)
    return _RefusingCapture


def _train(cuda_graph, sampler, notes=None, **options):
    torch.manual_seed(0)
    model = _lstm()
    options = {"lr": 1.0, **options}
    trainer = DefaultTrainer(clip=1.0, epochs=3, cuda_graph=cuda_graph, **options)
    if notes is not None:
        trainer.notify = notes.append
    torch.manual_seed(1)
    history = trainer.fit(model, CORPUS, sampler)
    return trainer, [m.train_loss for m in history], model.state_dict()


def _eager(sampler, **options):
    with pytest.MonkeyPatch.context() as patch:
        # The plain loop, untouched by the simulation.
        patch.setattr(DefaultTrainer, "use_static_step", lambda self: False)
        return _train(False, sampler, **options)


@pytest.mark.parametrize("sampler", [SequentialSampler(8, 10), RandomSampler(8, 10)],
                         ids=["sequential", "random"])
@pytest.mark.parametrize("options", [{}, {"optimizer": "adamw", "lr": 0.01,
                                          "schedule": "cosine"}], ids=["sgd", "adamw"])
def test_auto_falls_back_to_the_eager_step_and_trains_exactly_as_it(
        refused_recording, sampler, options):
    _, eager_losses, eager_weights = _eager(sampler, **dict(options))
    notes: list[str] = []
    trainer, losses, weights = _train("auto", sampler, notes, **dict(options))

    assert refused_recording.entered == 1  # tried once, then never again
    assert losses == eager_losses
    for name, value in eager_weights.items():
        torch.testing.assert_close(weights[name], value, rtol=0, atol=0, msg=name)
    assert notes == [fallback_note(
        "CUDA error: operation not permitted when stream is capturing")]
    assert trainer.graph_report.to_dict() == {
        "setting": "auto", "recorded": False, "fell_back": True,
        "reason": "CUDA error: operation not permitted when stream is capturing"}


def test_a_demanded_recording_that_fails_is_an_error(refused_recording):
    with pytest.raises(GraphRecordingError, match="run without --cuda-graph"):
        _train(True, SequentialSampler(8, 10), notes=[])


def test_the_run_reports_the_fallback_in_its_summary(refused_recording, small_text, tmp_path,
                                                     capsys):
    from seqlm.runs.stages import run

    result = run(data=small_text, device="cpu", epochs=2, hidden=8, batch_size=4,
                 num_steps=8, predict=2, out=tmp_path / "run")
    said = capsys.readouterr()
    # A note: on stderr, apart from the results on stdout.
    assert "could not be recorded as a CUDA graph (CUDA error: operation not permitted " \
           "when stream is capturing); training continues without it" in said.err
    assert "could not be recorded" not in said.out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["cuda_graph"]["fell_back"] is True
    assert result.summary["cuda_graph"] == summary["cuda_graph"]
    assert len(result.history) == 2


@pytest.mark.parametrize(("flag", "setting", "reason"), [
    ([], "auto", "CUDA graphs apply to CUDA only, not cpu"),
    (["--no-cuda-graph"], False, "turned off (--no-cuda-graph)"),
    (["--cuda-graph"], True, "CUDA graphs apply to CUDA only, not cpu"),
])
def test_the_command_line_setting_reaches_the_summary(flag, setting, reason, small_text,
                                                      tmp_path):
    from click.testing import CliRunner

    from seqlm.cli import main

    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "run", "--data", str(small_text), "--device", "cpu", "--epochs", "1", "--hidden", "8",
        "--batch-size", "4", "--num-steps", "8", "--predict", "2", "--out", str(out), *flag])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["cuda_graph"] == setting
    assert summary["cuda_graph"] == {"setting": setting, "recorded": False,
                                     "fell_back": False, "reason": reason}
    # Only a demand says that it does not apply here.
    assert ("--cuda-graph applies to CUDA only" in result.output) is (setting is True)


# -- on a GPU: the real recording and the real fallback -------------------------------------

class _HostReadingLSTM(TorchLSTM):
    """Like a plugin cell that reads a value back to the host in every step."""

    def forward(self, inputs, state):
        outputs, state = super().forward(inputs, state)
        if float(outputs.detach().abs().max()) < 0:  # never true; the read is the point
            raise AssertionError("unreachable")
        return outputs, state


def _cuda_training(cuda_graph, make_cell, notes):
    torch.manual_seed(0)
    model = RNNModel(make_cell(), vocab_size=19)
    trainer = DefaultTrainer(lr=1.0, clip=1.0, epochs=3, device="cuda", cuda_graph=cuda_graph)
    trainer.notify = notes.append
    torch.manual_seed(1)
    history = trainer.fit(model, CORPUS, SequentialSampler(8, 10))
    return trainer, [m.train_loss for m in history]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="records CUDA graphs: needs a GPU")
def test_on_cuda_auto_records_the_step():
    notes: list[str] = []
    trainer, _ = _cuda_training("auto", lambda: TorchLSTM(input_size=19, hidden_size=24),
                                notes)
    assert trainer.graph_report.recorded and notes == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="records CUDA graphs: needs a GPU")
def test_on_cuda_a_cell_that_reads_the_host_falls_back_and_trains_as_eagerly():
    def make_cell():
        return _HostReadingLSTM(input_size=19, hidden_size=24)

    notes: list[str] = []
    trainer, losses = _cuda_training("auto", make_cell, notes)
    assert not trainer.graph_report.recorded and trainer.graph_report.fallback
    assert len(notes) == 1 and "training continues without it" in notes[0]
    _, eager = _cuda_training(False, make_cell, [])
    assert losses == pytest.approx(eager, rel=1e-5)
    with pytest.raises(GraphRecordingError):
        _cuda_training(True, make_cell, [])
