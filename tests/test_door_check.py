"""Plugin mistakes are refused before training, with the plugin named: the check at the
door (first batch, first forward pass) and exceptions raised inside plugin code."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import seqlm
from seqlm.cli import main
from seqlm.data.samplers import SequentialSampler
from seqlm.errors import UsageError
from seqlm.interfaces import RecurrentCell, Sampler, Tokenizer
from seqlm.training.trainer import DefaultTrainer

ORIGIN = "from seqlm-mistakes 0.1.0"
TINY = ["--epochs", "2", "--hidden", "8", "--batch-size", "4", "--num-steps", "5",
        "--max-tokens", "400", "--predict", "5", "--device", "cpu", "--val-fraction", "0"]


def one_layer(num_layers):
    if num_layers != 1:
        raise UsageError(f"this cell has one layer; drop --num-layers {num_layers}")


class Tanh(RecurrentCell):
    """A correct one-layer tanh RNN, the base of the faulty cells below."""

    def __init__(self, input_size, hidden_size, num_layers=1):
        super().__init__(input_size, hidden_size, num_layers)
        one_layer(num_layers)
        self.W_x = nn.Parameter(torch.randn(input_size, hidden_size) * 0.1)
        self.W_h = nn.Parameter(torch.randn(hidden_size, hidden_size) * 0.1)

    def begin_state(self, batch_size, device):
        return torch.zeros(batch_size, self.hidden_size, device=device)

    def steps(self, inputs, state):
        outputs = []
        for x in inputs:
            state = torch.tanh(x @ self.W_x + state @ self.W_h)
            outputs.append(state)
        return torch.stack(outputs), state

    def forward(self, inputs, state):
        return self.steps(inputs, state)


class TorchWay(Tanh):
    """Written as every torch module is: super().__init__() with no arguments."""

    def __init__(self, input_size, hidden_size, num_layers=1):
        RecurrentCell.__init__(self)
        one_layer(num_layers)
        self.W_x = nn.Parameter(torch.randn(input_size, hidden_size) * 0.1)
        self.W_h = nn.Parameter(torch.randn(hidden_size, hidden_size) * 0.1)


class BatchMajor(Tanh):
    def forward(self, inputs, state):
        outputs, state = self.steps(inputs, state)
        return outputs.transpose(0, 1), state


class OneArgument(Tanh):
    def forward(self, inputs):  # the state is missing
        return self.steps(inputs, self.begin_state(inputs.shape[1], inputs.device))


class OutputsOnly(Tanh):
    def forward(self, inputs, state):
        return self.steps(inputs, state)[0]


class Doubled(Tanh):
    def forward(self, inputs, state):
        outputs, state = self.steps(inputs, state)
        return torch.cat([outputs, outputs], dim=-1), state


class LastStep(Tanh):
    def forward(self, inputs, state):
        outputs, state = self.steps(inputs, state)
        return outputs[-1], state


class NoSuper(Tanh):
    def __init__(self, input_size, hidden_size, num_layers=1):
        self.W_x = nn.Parameter(torch.randn(input_size, hidden_size))


class NaNOutputs(Tanh):
    def forward(self, inputs, state):
        outputs, state = self.steps(inputs, state)
        return outputs * float("nan"), state


class Float64Outputs(Tanh):
    def forward(self, inputs, state):
        outputs, state = self.steps(inputs, state)
        return outputs.double(), state


class ModuleInit(Tanh):
    """Skips RecurrentCell's __init__, so it declares no sizes."""

    def __init__(self, input_size, hidden_size, num_layers=1):
        nn.Module.__init__(self)
        self.W_x = nn.Parameter(torch.randn(input_size, hidden_size) * 0.1)
        self.W_h = nn.Parameter(torch.randn(hidden_size, hidden_size) * 0.1)


class Required(Tanh):
    def __init__(self, input_size, hidden_size, num_layers=1, *, alpha: float):
        super().__init__(input_size, hidden_size, num_layers)


class LaterFailure(Tanh):
    """Fails on the tenth forward pass, deep in training."""

    calls = 0

    def forward(self, inputs, state):
        LaterFailure.calls += 1
        if LaterFailure.calls == 10:
            raise RuntimeError("the cell ran out of ideas")
        return self.steps(inputs, state)


class ExitsLater(Tanh):
    """A stray sys.exit() on the tenth forward pass, deep in training."""

    calls = 0

    def forward(self, inputs, state):
        ExitsLater.calls += 1
        if ExitsLater.calls == 10:
            sys.exit(0)
        return self.steps(inputs, state)


class MakesFloat64(Tanh):
    """Sets torch's default dtype as it builds, which every later model would follow."""

    def __init__(self, input_size, hidden_size, num_layers=1):
        torch.set_default_dtype(torch.float64)
        super().__init__(input_size, hidden_size, num_layers)


class BadDefault(Tanh):
    """An option whose default contradicts its annotation."""

    def __init__(self, input_size, hidden_size, num_layers=1, scale: float = "big"):
        super().__init__(input_size, hidden_size, num_layers)
        self.scale = scale


class Forever(SequentialSampler):
    """Never ends an epoch (right at the door: its first batch is fine)."""

    def __call__(self, corpus):
        while True:
            yield from super().__call__(corpus)


def _sampler(make):
    class Faulty(SequentialSampler):
        def __call__(self, corpus):
            for X, Y in super().__call__(corpus):
                yield make(X, Y)
    return Faulty


class ShortLater(SequentialSampler):
    """Right at the door (its first batch), one row short from the second batch on."""

    def __call__(self, corpus):
        for number, (X, Y) in enumerate(super().__call__(corpus), start=1):
            yield (X, Y) if number == 1 else (X[1:], Y[1:])


class ShortLaterShuffled(ShortLater):
    contiguous = False  # no state to carry over: nothing else would notice


class NoSuperSampler(SequentialSampler):
    def __init__(self, batch_size, num_steps):
        self.rows = batch_size  # Sampler.__init__ never ran: no self.batch_size


class Counting(SequentialSampler):
    """Counts its epochs, as a sampler that changes with each epoch would."""

    seen: list[int] = []

    def __init__(self, batch_size, num_steps):
        super().__init__(batch_size, num_steps)
        self.epoch = 0

    def __call__(self, corpus):
        self.epoch += 1
        Counting.seen.append(self.epoch)
        yield from super().__call__(corpus)


class Nothing(SequentialSampler):
    def __call__(self, corpus):
        return iter(())


class Raises(Sampler):
    contiguous = False

    def __call__(self, corpus):
        raise ValueError("cannot cut this corpus")


class BadTokenizer(Tokenizer):
    def tokenize(self, lines):
        return [line.split(",")[5] for line in lines]


class FlatTokenizer(Tokenizer):
    """Gives one string per line instead of a list of tokens."""

    def tokenize(self, lines):
        return [line for line in lines]


class NoneTokenizer(Tokenizer):
    def tokenize(self, lines):
        return None


class PairTokenizer(Tokenizer):
    """Learns in fit to split lines into pairs of characters."""

    def __init__(self):
        self.width = 1

    def fit(self, lines):
        self.width = 2

    def tokenize(self, lines):
        return [[line[i:i + self.width] for i in range(0, len(line), self.width)]
                for line in lines]


class ForgetsWhatItLearned(PairTokenizer):
    pass  # keeps the default state_dict: nothing, so a saved run would split by one


class SetState(PairTokenizer):
    def state_dict(self):
        return {"widths": {self.width}}


class Shuffling(Tokenizer):
    """Splits each line in pieces of another width at every call, as one that draws the
    widths at random would: the same lines come out differently."""

    calls = 0

    def tokenize(self, lines):
        Shuffling.calls += 1
        cuts = 1 + Shuffling.calls % 3
        return [[line[i:i + cuts] for i in range(0, len(line), cuts)] for line in lines]


class NumberTokenizer(Tokenizer):
    def tokenize(self, lines):
        return [[ord(c) for c in line] for line in lines]


CELLS = {"torch-way": TorchWay, "batch-major": BatchMajor, "one-argument": OneArgument,
         "outputs-only": OutputsOnly, "doubled": Doubled, "last-step": LastStep,
         "no-super": NoSuper, "required": Required, "module-init": ModuleInit,
         "nan-outputs": NaNOutputs, "float64-outputs": Float64Outputs,
         "later-failure": LaterFailure, "exits-later": ExitsLater,
         "makes-float64": MakesFloat64, "bad-default": BadDefault}
SAMPLERS = {"transposed": _sampler(lambda X, Y: (X.T, Y.T)),
            "fewer-rows": _sampler(lambda X, Y: (X[:-1], Y[:-1])),
            "floats": _sampler(lambda X, Y: (X.float(), Y.float())),
            "flat": _sampler(lambda X, Y: (X.reshape(-1), Y.reshape(-1))),
            "triple": _sampler(lambda X, Y: (X, Y, X)),
            "unshifted": _sampler(lambda X, Y: (X, X)),
            "nothing": Nothing, "counting": Counting, "raises": Raises, "short-later": ShortLater,
            "short-later-shuffled": ShortLaterShuffled, "no-super": NoSuperSampler,
            "forever": Forever}


class ListOptimizer(DefaultTrainer):
    """Returns its parameters where DefaultTrainer's code wants an optimizer."""

    def make_optimizer(self, model):
        return list(model.parameters())


class Subclassed(DefaultTrainer):
    """DefaultTrainer as it is, under a plugin's name."""


class FunctionInState(DefaultTrainer):
    """Keeps a function in its state, which no checkpoint can hold."""

    def state_dict(self):
        return {**super().state_dict(), "hook": lambda: None}


class Mistakes:
    @seqlm.hookimpl
    def register_cells(self, register):
        for name, cls in CELLS.items():
            register(name, cls)

    @seqlm.hookimpl
    def register_samplers(self, register):
        for name, cls in SAMPLERS.items():
            register(name, cls)

    @seqlm.hookimpl
    def register_trainers(self, register):
        register("list-optimizer", ListOptimizer)
        register("function-in-state", FunctionInState)
        register("subclassed", Subclassed)

    @seqlm.hookimpl
    def register_tokenizers(self, register):
        register("bad-tokens", BadTokenizer)
        register("flat-tokens", FlatTokenizer)
        register("number-tokens", NumberTokenizer)
        register("none-tokens", NoneTokenizer)
        register("forgets-state", ForgetsWhatItLearned)
        register("set-state", SetState)
        register("shuffling", Shuffling)


@pytest.fixture(scope="module", autouse=True)
def mistakes():
    plugins = seqlm.get_plugins()
    info = plugins.add(Mistakes(), "mistakes", distribution="seqlm-mistakes", version="0.1.0")
    assert info.status == "ok", info.status
    yield
    plugins.remove("mistakes")


def _run(tmp_path, small_text, *args):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "--data", str(small_text), "--out", str(out),
                                       *TINY, *args])
    return result, out


@pytest.mark.parametrize("args, exit_code, expected", [
    (["--cell", "batch-major"], 2, "cell 'batch-major' from seqlm-mistakes 0.1.0 broke its "
     "contract: expected outputs shaped (num_steps, batch, output_size) = (5, 4, 8), got "
     "(4, 5, 8) (batch-major: outputs must be time-major); see "
     "docs/plugins/contracts.md#recurrentcell"),
    (["--cell", "outputs-only"], 2, "expected forward to return (outputs, state), got a Tensor"),
    (["--cell", "doubled"], 2, "got (5, 4, 16) (set self.output_size"),
    (["--cell", "last-step"], 2, "got (4, 8) (the last step only"),
    (["--cell", "one-argument"], 1, f"cell 'one-argument' {ORIGIN} raised TypeError: "),
    (["--cell", "no-super"], 1, f"cell 'no-super' {ORIGIN} raised AttributeError: cannot "
     "assign parameters before Module.__init__() call (call super().__init__() first in "
     "__init__). This is a fault of that plugin"),
    (["--sampler", "no-super"], 1, f"sampler 'no-super' {ORIGIN} raised AttributeError: "
     "'NoSuperSampler' object has no attribute 'batch_size' (call super().__init__(batch_size, "
     "num_steps) first in __init__)"),
    (["--cell", "nan-outputs"], 2, f"cell 'nan-outputs' {ORIGIN} broke its contract: expected "
     "finite outputs, got nan or infinity in 160 of 160 values; see "
     "docs/plugins/contracts.md#recurrentcell"),
    (["--cell", "float64-outputs"], 2, f"cell 'float64-outputs' {ORIGIN} broke its contract: "
     "expected outputs of dtype torch.float32 (the model's), got torch.float64"),
    (["--cell", "required"], 2, f"cell 'required' {ORIGIN} requires option 'alpha'"),
    (["--cell", "module-init"], 2, f"cell 'module-init' {ORIGIN} broke its contract: expected "
     "self.input_size to be a positive int, got nothing; call super().__init__() first"),
    (["--sampler", "transposed"], 2, f"sampler 'transposed' {ORIGIN} broke its contract: "
     "expected X shaped (batch_size, num_steps) = (4, 5), got (5, 4) (transposed"),
    (["--sampler", "fewer-rows"], 2, "expected X shaped (batch_size, num_steps) = (4, 5), "
     "got (3, 5)"),
    (["--sampler", "floats"], 2, "expected X of dtype torch.int64 (token ids), got "
     "torch.float32"),
    (["--sampler", "flat"], 2, "got (20,)"),
    (["--sampler", "triple"], 2, "expected a pair (X, Y), got a tuple of 3 items"),
    (["--sampler", "unshifted"], 2, "expected Y to be X shifted by one token"),
    (["--sampler", "nothing"], 2, f"sampler 'nothing' {ORIGIN} broke its contract: it "
     "yielded no batch from a corpus of 400 tokens"),
    (["--sampler", "raises"], 1, f"sampler 'raises' {ORIGIN} raised ValueError: cannot cut "
     "this corpus. This is a fault of that plugin, not of seqlm: see "
     "docs/plugins/contracts.md#sampler"),
    (["--tokenizer", "forgets-state"], 2, f"tokenizer 'forgets-state' {ORIGIN} broke its "
     "contract: a tokenizer restored from state_dict() splits the lines differently (the "
     "fitted one: ['th', 'e ', 'ti', 'me', ' t', 'ra', ...]; the restored one: ['t', 'h', "
     "'e', ' ', 't', 'i', ...]); state_dict() must keep what fit (or tokenize) learned, as "
     "JSON; see docs/plugins/contracts.md#tokenizer"),
    (["--tokenizer", "set-state"], 2, f"tokenizer 'set-state' {ORIGIN} broke its contract: "
     "state_dict() is not JSON-serialisable: Object of type set is not JSON serializable"),
    (["--tokenizer", "bad-tokens"], 1, f"tokenizer 'bad-tokens' {ORIGIN} raised IndexError"),
    (["--tokenizer", "flat-tokens"], 2, f"tokenizer 'flat-tokens' {ORIGIN} broke its contract: "
     "expected each line's tokens as a list of str, got a str; see "
     "docs/plugins/contracts.md#tokenizer"),
    (["--tokenizer", "number-tokens"], 2, "expected tokens to be non-empty str, got 116"),
    (["--tokenizer", "none-tokens"], 2, "expected tokenize to give a list of 12 lists (one per "
     "line), got a NoneType"),
    (["--tokenizer", "shuffling"], 2, f"tokenizer 'shuffling' {ORIGIN} broke its contract: it "
     "splits the same lines differently from one call to the next"),
    (["--cell", "makes-float64"], 2, f"cell 'makes-float64' {ORIGIN} broke its contract: it "
     "changed torch's default dtype to torch.float64 (seqlm set it back to torch.float32); a "
     "plugin must leave torch's global settings as it found them; see "
     "docs/plugins/contracts.md#recurrentcell"),
    (["--cell", "bad-default"], 2, f"cell 'bad-default' {ORIGIN} broke its contract: option "
     "'scale' defaults to 'big', which is not a finite number (such as 0.5) as its "
     "annotation says; see "
     "docs/plugins/contracts.md#recurrentcell"),
])
def test_a_mistake_is_refused_before_training_with_the_plugin_named(
        tmp_path, small_text, args, exit_code, expected):
    result, out = _run(tmp_path, small_text, *args)
    assert result.exit_code == exit_code, result.output
    [line] = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert expected in line
    assert "unexpected" not in line and "Traceback" not in result.output
    assert not out.exists()  # no run folder is left


def test_an_exception_in_training_is_put_on_the_plugin(tmp_path, small_text):
    LaterFailure.calls = 0
    result, _ = _run(tmp_path, small_text, "--cell", "later-failure")
    assert result.exit_code == 1
    assert (f"Error: cell 'later-failure' {ORIGIN} raised RuntimeError: the cell ran out of "
            "ideas. This is a fault of that plugin") in result.output


def test_a_stray_exit_in_training_is_put_on_the_plugin_and_fails_the_run(tmp_path,
                                                                          small_text):
    ExitsLater.calls = 0
    result, out = _run(tmp_path, small_text, "--cell", "exits-later")
    assert result.exit_code == 1, result.output
    assert (f"Error: cell 'exits-later' {ORIGIN} raised SystemExit: 0 (a component must not "
            "end the process; raise an exception instead). This is a fault of that "
            "plugin") in result.output
    assert json.loads((out / "status.json").read_text())["status"] == "failed"


def test_a_sampler_whose_epoch_never_ends_is_refused_instead_of_hanging(tmp_path,
                                                                         small_text):
    result, _ = _run(tmp_path, small_text, "--sampler", "forever")
    assert result.exit_code == 2, result.output
    assert (f"sampler 'forever' {ORIGIN} broke its contract: more than ") in result.output
    assert "an epoch must end" in result.output
    assert torch.get_default_dtype() == torch.float32


def test_an_exception_in_code_a_plugin_inherits_is_put_on_the_plugin(tmp_path, small_text):
    result, _ = _run(tmp_path, small_text, "--trainer", "list-optimizer")
    assert result.exit_code == 1
    line = " ".join(result.output.split())
    assert (f"Error: trainer 'list-optimizer' {ORIGIN} raised AttributeError in "
            "DefaultTrainer.") in line
    assert ("which it inherits from seqlm: 'list' object has no attribute 'param_groups'. "
            "Check what it overrides (make_optimizer) against "
            "docs/plugins/contracts.md#trainer") in line
    assert "unexpected" not in line


@pytest.mark.parametrize("error, says", [
    (MemoryError("CUDA out of memory"), "Error: out of memory; try a smaller --hidden"),
    (OSError(28, "No space left on device"), "Error: cannot access: No space left on device"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate "
                  "memory: you tried to allocate 1099511627776 bytes"),
     "Error: out of memory; try a smaller --hidden"),
])
def test_what_the_machine_raises_is_no_plugins_fault(tmp_path, small_text, monkeypatch,
                                                     error, says):
    from unittest import mock

    # Raised from the standard library's frames, as from torch's: seqlm's own code (the
    # plugin's inherited fit) is innermost.
    monkeypatch.setattr(DefaultTrainer, "_train_epoch", mock.Mock(side_effect=error))
    result, _ = _run(tmp_path, small_text, "--trainer", "subclassed")
    assert result.exit_code == 1
    assert says in result.output and "subclassed" not in result.output


def test_a_trainer_state_no_checkpoint_can_hold_is_the_trainers(tmp_path, small_text):
    result, _ = _run(tmp_path, small_text, "--trainer", "function-in-state")
    assert result.exit_code == 2, result.output
    assert (f"Error: trainer 'function-in-state' {ORIGIN} broke its contract: state_dict() "
            "holds a function at hook, which a checkpoint cannot store; keep tensors, "
            "numbers, strings, None, and lists and dicts of them; see "
            "docs/plugins/contracts.md#trainer") in " ".join(result.output.split())


@pytest.mark.parametrize("sampler", ["short-later", "short-later-shuffled"])
def test_a_batch_that_goes_wrong_after_the_door_is_the_samplers(tmp_path, small_text,
                                                                 sampler):
    # Checked at the door the first batch is right; every later one is checked as drawn,
    # before the cell (or seqlm) could fail on it or train on it silently.
    result, out = _run(tmp_path, small_text, "--sampler", sampler)
    assert result.exit_code == 2, result.output
    assert (f"Error: sampler {sampler!r} {ORIGIN} broke its contract: batch 2: expected X "
            "shaped (batch_size, num_steps) = (4, 5), got (3, 5); see "
            "docs/plugins/contracts.md#sampler") in " ".join(result.output.split())
    assert "unexpected" not in result.output and "Traceback" not in result.output


def test_a_trainer_that_returns_no_history_is_named(tmp_path, small_text):
    from seqlm.training.trainer import DefaultTrainer

    class Forgets(DefaultTrainer):
        def fit(self, model, corpus, sampler, callbacks=(), val_corpus=None):
            super().fit(model, corpus, sampler, callbacks, val_corpus)

    class Plugin:
        @seqlm.hookimpl
        def register_trainers(self, register):
            register("forgets", Forgets)

    plugins = seqlm.get_plugins()
    plugins.add(Plugin(), "forgets", distribution="seqlm-mistakes", version="0.1.0")
    try:
        result, out = _run(tmp_path, small_text, "--trainer", "forgets")
    finally:
        plugins.remove("forgets")
    assert result.exit_code == 2
    assert (f"Error: trainer 'forgets' {ORIGIN} broke its contract: expected fit to return a "
            "list of EpochMetrics, one per epoch, got NoneType") in result.output
    assert (out / "checkpoint.json").is_file()  # what was trained is kept


def test_a_cell_written_the_torch_way_trains(tmp_path, small_text):
    result, out = _run(tmp_path, small_text, "--cell", "torch-way")
    assert result.exit_code == 0, result.output
    assert (out / "checkpoint.json").is_file()


def test_the_check_leaves_the_random_generators_as_they_were():
    import random

    from seqlm.plugins.door import rng_kept

    torch.manual_seed(3)
    random.seed(3)
    before = torch.get_rng_state(), random.getstate()
    with rng_kept():
        torch.rand(5)
        random.random()
    assert torch.equal(before[0], torch.get_rng_state()) and before[1] == random.getstate()
    # And when the block raises (a logger that fails, which the run turns off and goes on).
    with pytest.raises(ValueError), rng_kept():
        torch.rand(5)
        random.random()
        raise ValueError("a logger's own error")
    assert torch.equal(before[0], torch.get_rng_state()) and before[1] == random.getstate()


def test_the_run_samples_its_first_epoch_as_without_the_check(tmp_path, small_text):
    Counting.seen.clear()
    result, _ = _run(tmp_path, small_text, "--sampler", "counting")
    assert result.exit_code == 0, result.output
    # The check drew from a copy: the run's own sampler saw epochs 1, 2, ... from its start.
    assert Counting.seen[-2:] == [1, 2]
    assert Counting.seen.count(1) == 2


def test_seqlms_own_bugs_stay_unexpected(tmp_path, small_text, monkeypatch):
    import math

    # A bug in seqlm's own code, with a plugin loaded: a call with the wrong arguments.
    monkeypatch.setattr("seqlm.runs.stages.summarize", math.sqrt)
    result, _ = _run(tmp_path, small_text, "--epochs", "1")
    assert result.exit_code == 1
    assert "Error: unexpected TypeError: " in result.output
    assert "please report" in result.output or "--debug" in result.output


def test_the_benchmark_of_the_check_runs(small_text):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks import door_check

    result = door_check.measure(repeats=1, data=str(small_text), threads=1)
    assert 0 < result["check_seconds"] and 0 < result["epoch_seconds"]
    assert result["check_per_run_in_epochs"] == result["check_seconds"] / result["epoch_seconds"]


def test_an_installed_package_is_blamed_through_its_helpers_and_commands(tmp_path, small_text):
    from plugin_dists import CELL_SOURCE, TINY_RUN, make_dist, run_seqlm, unique

    package = unique("seqlm_extras")
    make_dist(tmp_path, "seqlm-extras", {
        f"{package}.__init__": "",
        f"{package}.helpers": """
            def mix(x):
                raise ValueError("mix() cannot mix this")
        """,
        f"{package}.cells": CELL_SOURCE + f"""
from {package}.helpers import mix


class Mixing(TanhCell):
    def forward(self, inputs, state):
        return mix(inputs)
""",
        f"{package}.plugin": f"""
            import click
            import seqlm

            @seqlm.hookimpl
            def register_cells(register):
                register("mixing", "{package}.cells:Mixing")

            @seqlm.hookimpl
            def register_tokenizers(register):
                register("extras-chars", "seqlm.data.tokenizers:CharTokenizer")

            @seqlm.hookimpl
            def register_commands(cli):
                @cli.command()
                def boom():
                    {{}}["missing"]
        """,
    }, {"extras": f"{package}.plugin"}, version="0.1.0")
    run = run_seqlm(["run", "--cell", "mixing", "--data", str(small_text),
                     "--out", str(tmp_path / "r"), *TINY_RUN], tmp_path)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1].startswith(
        "Error: cell 'mixing' from seqlm-extras 0.1.0 raised ValueError: mix() cannot mix this")
    assert not (tmp_path / "r").exists()
    boom = run_seqlm(["boom"], tmp_path)
    assert boom.returncode == 1
    assert boom.stderr.strip().startswith(
        "Error: command 'boom' from seqlm-extras 0.1.0 raised KeyError: 'missing'. This is a "
        "fault of that plugin, not of seqlm: see docs/plugins/contracts.md#commands")


def test_the_super_init_hint_is_for_a_plugins_object_not_seqlms():
    from seqlm.plugins.culprit import cause_hint

    for obj, hint in ((SequentialSampler.__new__(SequentialSampler), ""),
                      (NoSuperSampler.__new__(NoSuperSampler),
                       " (call super().__init__(batch_size, num_steps) first in __init__)")):
        with pytest.raises(AttributeError) as missing:
            obj.batch_size  # noqa: B018 - the attribute read is the test
        assert cause_hint(missing.value) == hint


def test_a_plugin_added_in_code_is_named_without_a_package(tmp_path, small_text):
    class Plugin:
        @seqlm.hookimpl
        def register_cells(self, register):
            register("inline-batch-major", BatchMajor)
            register("inline-raises", OneArgument)

    plugins = seqlm.get_plugins()
    plugins.add(Plugin(), "inline")
    try:
        shape, _ = _run(tmp_path, small_text, "--cell", "inline-batch-major")
        raised, _ = _run(tmp_path / "b", small_text, "--cell", "inline-raises")
    finally:
        plugins.remove("inline")
    one = " ".join(shape.output.split())
    assert ("Error: cell 'inline-batch-major' from plugin 'inline' (registered in code) "
            "broke its contract:") in one
    two = " ".join(raised.output.split())
    assert "Error: cell 'inline-raises' from " in two and "from  " not in two
    assert two.rstrip().endswith("or run with --debug for the traceback and fix it where it "
                                 "was registered")


@pytest.mark.parametrize("fixed_length, shape, message", [
    (False, (3, 11), "expected X shaped (batch_size, 1 to 2 x num_steps) = (4, 1..20), got "
                     "(3, 11)"),
    (False, (4, 0), "expected X shaped (batch_size, 1 to 2 x num_steps) = (4, 1..20), got "
                    "(4, 0)"),
    (True, (4, 9), "expected X shaped (batch_size, num_steps) = (4, 10), got (4, 9) (a "
                   "sampler that varies the length sets fixed_length = False)"),
])
def test_a_batch_of_the_wrong_length_says_what_lengths_would_do(fixed_length, shape, message):
    from seqlm.plugins.door import batch_shape_problem

    X = torch.zeros(shape, dtype=torch.long)
    assert batch_shape_problem((X, X), 4, 10, fixed_length) == message
