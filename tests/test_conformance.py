"""seqlm.testing: every built-in passes the conformance kit, and each rule catches the
mistake it is about, naming the rule."""

from __future__ import annotations

import pytest
import torch
from test_door_check import (
    BatchMajor,
    Doubled,
    Float64Outputs,
    FunctionInState,
    ModuleInit,
    NaNOutputs,
    NoSuper,
    Tanh,
    TorchWay,
)
from test_loggers import AppendingLogger

import seqlm
from seqlm.data.samplers import SequentialSampler
from seqlm.interfaces import RecurrentCell
from seqlm.testing import (
    cell_state_carries_over_detached,
    check_cell,
    check_logger,
    check_sampler,
    check_tokenizer,
    check_trainer,
    parametrize_checks,
)


def builtin(kind: str) -> list[type]:
    plugins = seqlm.get_plugins()
    return [impls[0].load() for name, impls in sorted(plugins.implementations(kind).items())
            if plugins.info[impls[0].plugin].builtin and name != "ddp"]


BUILTINS = [*builtin("cell"), *builtin("sampler"), *builtin("tokenizer"), *builtin("trainer")]


def test_every_builtin_is_checked():
    names = {cls.__name__ for cls in BUILTINS}
    assert {"TorchLSTM", "ScratchGRU", "RandomSampler", "SequentialSampler", "CharTokenizer",
            "WordTokenizer", "DefaultTrainer"} <= names


@parametrize_checks(BUILTINS)
def test_builtins_conform(check):
    check()


def test_the_ddp_trainer_conforms_in_a_one_process_group(monkeypatch):
    from seqlm.training.ddp import DDPTrainer

    for key, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0",
                       "LOCAL_WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": "29517"}.items():
        monkeypatch.setenv(key, value)
    check_trainer(DDPTrainer)


def test_good_plugin_classes_pass():
    check_cell(Tanh)
    check_cell(TorchWay)


@pytest.mark.parametrize("cls, rule", [
    (BatchMajor, "rule cell_shapes failed: expected outputs shaped (num_steps, batch, "
     "output_size) = (5, 3, 6), got (3, 5, 6) (batch-major"),
    (Doubled, "rule cell_shapes failed"),
    # Before the rules that compare outputs, which nan would fail for another reason.
    (NaNOutputs, "rule cell_shapes failed: expected finite outputs, got nan or infinity in "
     "90 of 90 values"),
    (Float64Outputs, "rule cell_shapes failed: expected outputs of dtype torch.float32 (the "
     "model's), got torch.float64"),
    (ModuleInit, "rule cell_builds failed: self.input_size is None, expected 7; call "
     "super().__init__() first in __init__"),
    (NoSuper, "rule cell_builds failed: NoSuper raised AttributeError: cannot assign "
     "parameters before Module.__init__() call (call super().__init__() first in __init__)"),
])
def test_a_broken_cell_fails_the_rule_it_breaks(cls, rule):
    with pytest.raises(AssertionError) as error:
        check_cell(cls)
    assert str(error.value).startswith(rule)


class Unused(Tanh):
    """Has a parameter that forward never uses."""

    def __init__(self, input_size, hidden_size, num_layers=1):
        super().__init__(input_size, hidden_size, num_layers)
        self.spare = torch.nn.Parameter(torch.zeros(3))


class IgnoresState(Tanh):
    def forward(self, inputs, state):
        return self.steps(inputs, self.begin_state(inputs.shape[1], inputs.device))


class Unseeded(Tanh):
    def __init__(self, input_size, hidden_size, num_layers=1):
        super().__init__(input_size, hidden_size, num_layers)
        import random

        self.scale = random.random()

    def forward(self, inputs, state):
        outputs, state = self.steps(inputs, state)
        return outputs * self.scale, state


class ClaimsIds(Tanh):
    accepts_token_ids = True

    def forward(self, inputs, state):
        return self.steps(inputs.float() if inputs.dtype == torch.long else inputs, state)


class IgnoresLayers(Tanh):
    """Takes num_layers, says so, and builds one layer whatever it says."""

    def __init__(self, input_size, hidden_size, num_layers=1):
        RecurrentCell.__init__(self, input_size, hidden_size, num_layers)
        self.W_x = torch.nn.Parameter(torch.randn(input_size, hidden_size) * 0.1)
        self.W_h = torch.nn.Parameter(torch.randn(hidden_size, hidden_size) * 0.1)


class DropsLayers(Tanh):
    """Takes num_layers and never passes it on."""

    def __init__(self, input_size, hidden_size, num_layers=1):
        super().__init__(input_size, hidden_size)


class ForgetsState(Tanh):
    """Returns no state, which seqlm's own detach_state could not take."""

    def forward(self, inputs, state):
        return self.steps(inputs, state)[0], None


@pytest.mark.parametrize("cls, rule", [
    (Unused, "rule cell_gradients_reach_every_parameter failed: parameter spare got no "
     "gradient"),
    (IgnoresState, "rule cell_state_carries_over_detached failed"),
    (Unseeded, "rule cell_deterministic_under_a_seed failed"),
    (IgnoresLayers, "rule cell_stacks_num_layers failed: built with num_layers=2 the cell "
     "has the parameters and outputs it has with 1: it ignores num_layers"),
    (DropsLayers, "rule cell_stacks_num_layers failed: built with num_layers=2, "
     "self.num_layers is 1"),
    (ClaimsIds, "rule cell_token_ids_as_declared failed"),
])
def test_each_cell_rule_names_itself(cls, rule):
    with pytest.raises(AssertionError, match=rule.replace("(", r"\(").replace(")", r"\)")):
        check_cell(cls)


def test_a_state_seqlm_cannot_detach_is_the_cells_fault_in_its_own_case():
    # Run as its own case (parametrize_checks), the rule names the cell's mistake rather
    # than failing inside seqlm's detach_state.
    with pytest.raises(AssertionError) as error:
        cell_state_carries_over_detached(ForgetsState, {})
    assert str(error.value) == ("rule cell_state_carries_over_detached failed: expected a "
                                "state structured like begin_state's tensor (3, 6), got NoneType")


class Transposed(SequentialSampler):
    def __call__(self, corpus):
        for X, Y in super().__call__(corpus):
            yield X.T, Y.T


class Greedy(SequentialSampler):
    def min_tokens(self):
        return 2


class NotContiguous(SequentialSampler):
    def __call__(self, corpus):
        batches = list(super().__call__(corpus))
        yield from reversed(batches)


class Int32Later(SequentialSampler):
    """Right in its first epoch, int32 from its second call on."""

    calls = 0

    def __call__(self, corpus):
        self.calls += 1
        for X, Y in super().__call__(corpus):
            yield (X, Y) if self.calls == 1 else (X.int(), Y.int())


class ShortTailAtSomeLengths(SequentialSampler):
    """Right at 400 tokens; at lengths with a remainder of 2 by 5 it adds a short last
    batch, as a sampler that chunks without dropping the rest does."""

    def __call__(self, corpus):
        yield from super().__call__(corpus)
        if len(corpus) % 5 == 2:
            yield corpus[:6].view(3, 2), corpus[1:7].view(3, 2)


@pytest.mark.parametrize("cls, rule", [
    (Transposed, "rule sampler_batches failed: epoch 1, batch 1: expected X shaped"),
    (ShortTailAtSomeLengths, "rule sampler_batches failed: epoch 1, batch [0-9]+ of a "
     "corpus of 402 tokens: expected X shaped"),
    (Int32Later, "rule sampler_batches failed: epoch 2, batch 1: expected X of dtype "
     "torch.int64"),
    (Greedy, "rule sampler_min_tokens failed"),
    (NotContiguous, "rule sampler_contiguous_as_declared failed"),
])
def test_each_sampler_rule_names_itself(cls, rule):
    with pytest.raises(AssertionError, match=rule):
        check_sampler(cls)


class Forgetful(seqlm.Tokenizer):
    """Learns its units in fit but keeps no state."""

    def fit(self, lines):
        self.units = sorted({c for line in lines for c in line})

    def tokenize(self, lines):
        units = getattr(self, "units", [" "])
        return [[c if c in units else "?" for c in line] for line in lines]


class LearnsInTokenize(seqlm.Tokenizer):
    """Learns its units (the letters it has seen, by frequency) in its first tokenize,
    keeps none."""

    #: Whether it counts again on every call, not only the first.
    every_call = False

    def __init__(self):
        self.seen = {}

    def tokenize(self, lines):
        if self.every_call or not self.seen:
            for line in lines:
                for c in line:
                    self.seen[c] = self.seen.get(c, 0) + 1
        common = {c for c, n in self.seen.items() if n > 3}
        return [[c if c in common else "?" for c in line] for line in lines]


def test_a_tokenizer_that_learns_in_tokenize_and_keeps_nothing_fails_the_round_trip():
    with pytest.raises(AssertionError, match="rule tokenizer_state_round_trip failed: a "
                       r"tokenizer restored from state_dict\(\) splits the lines differently"):
        check_tokenizer(LearnsInTokenize)


class LearnsOnEveryCall(LearnsInTokenize):
    """Counts again on every call: the same lines split otherwise the next time."""

    every_call = True


def test_a_tokenizer_whose_splits_change_from_call_to_call_fails():
    with pytest.raises(AssertionError, match="rule tokenizer_deterministic failed: call 2 of "
                       "tokenize on the same lines split them differently from the first"):
        check_tokenizer(LearnsOnEveryCall)


def test_a_tokenizer_that_keeps_no_state_fails_the_round_trip():
    with pytest.raises(AssertionError, match="rule tokenizer_state_round_trip failed"):
        check_tokenizer(Forgetful)


def test_a_trainer_that_skips_callbacks_fails():
    from seqlm.training.trainer import DefaultTrainer

    class Silent(DefaultTrainer):
        def fit(self, model, corpus, sampler, callbacks=(), val_corpus=None):
            return super().fit(model, corpus, sampler, (), val_corpus)

    with pytest.raises(AssertionError, match="rule trainer_fit failed: callbacks were called"):
        check_trainer(Silent)


def test_a_trainer_that_ignores_a_stop_request_fails():
    from seqlm.training.trainer import DefaultTrainer

    class Deaf(DefaultTrainer):
        def stop_asked(self):
            return None

    with pytest.raises(AssertionError, match=r"rule trainer_stops_when_asked failed: a "
                       r"callback called trainer.request_stop at epoch 1 of 3, yet fit "
                       r"returned epochs \[1, 2, 3\]"):
        check_trainer(Deaf)


class Forever(SequentialSampler):
    """Never ends an epoch."""

    def __call__(self, corpus):
        while True:
            yield from super().__call__(corpus)


class ZeroesTheText(SequentialSampler):
    def __call__(self, corpus):
        corpus[:10] = 0
        yield from super().__call__(corpus)


class UpperCases(seqlm.Tokenizer):
    """Keeps the lines it fits on and rewrites them in place."""

    def fit(self, lines):
        lines[:] = [line.upper() for line in lines]

    def tokenize(self, lines):
        return [list(line) for line in lines]

    def detokenize(self, tokens):
        return "".join(tokens)


class MakesFloat64(Tanh):
    """Sets torch's default dtype as it builds: every model after it would change."""

    def __init__(self, input_size, hidden_size, num_layers=1):
        torch.set_default_dtype(torch.float64)
        super().__init__(input_size, hidden_size, num_layers)


class Exits(Tanh):
    def forward(self, inputs, state):
        raise SystemExit(0)


def test_a_sampler_that_never_ends_an_epoch_fails_instead_of_hanging():
    with pytest.raises(AssertionError, match="rule sampler_batches failed: more than 400 "
                       "batches from a corpus of 400 tokens: an epoch must end"):
        check_sampler(Forever)


def test_a_sampler_that_changes_the_text_fails():
    with pytest.raises(AssertionError, match="rule sampler_batches failed: the sampler "
                       "changed the corpus it was given"):
        check_sampler(ZeroesTheText)


def test_a_tokenizer_that_changes_the_lines_fails():
    with pytest.raises(AssertionError, match="rule tokenizer_tokenize failed: fit changed "
                       "the lines it was given"):
        check_tokenizer(UpperCases)


def test_a_cell_that_changes_the_default_dtype_fails_and_leaves_it_as_it_was():
    with pytest.raises(AssertionError, match=r"rule cell_builds failed: MakesFloat64 changed "
                       r"torch's default dtype to torch.float64"):
        check_cell(MakesFloat64)
    assert torch.get_default_dtype() == torch.float32
    check_cell(Tanh)  # the next class is checked as if the other had not been


def test_a_cell_that_ends_the_process_fails_its_rule():
    with pytest.raises(AssertionError, match="rule cell_shapes failed: Exits raised "
                       "SystemExit"):
        check_cell(Exits)


def test_a_trainer_whose_fit_returns_no_history_is_told_so():
    from seqlm.training.trainer import DefaultTrainer

    class NoHistory(DefaultTrainer):
        def fit(self, *args, **kwargs):
            super().fit(*args, **kwargs)

    with pytest.raises(AssertionError, match="^rule trainer_fit failed: expected fit to "
                       "return a list of EpochMetrics, one per epoch, got NoneType$"):
        check_trainer(NoHistory)


def test_a_trainer_state_no_checkpoint_can_hold_fails_the_round_trip():
    with pytest.raises(AssertionError, match="rule trainer_state_round_trip failed: "
                       "state_dict\\(\\) holds a function at hook, which a checkpoint "
                       "cannot store"):
        check_trainer(FunctionInState)


def test_check_refuses_a_class_of_another_interface():
    with pytest.raises(AssertionError, match="^rule interface failed: Tanh does not subclass "
                       "seqlm.interfaces.Sampler$"):
        check_sampler(Tanh)


def test_check_names_the_abstract_methods_a_class_leaves_out():
    from seqlm.interfaces import RecurrentCell

    class Unfinished(RecurrentCell):
        def begin_state(self, batch_size, device):
            return None

    with pytest.raises(AssertionError, match="^rule interface failed: .*Unfinished leaves "
                       "abstract methods unimplemented: forward$"):
        check_cell(Unfinished)
    # As a case of its own too, the first of the class's cases under parametrize_checks.
    from seqlm.testing import all_checks

    first_id, first = all_checks([Unfinished])[0]
    assert first_id.endswith("Unfinished-interface")  # a local class: its qualified name
    with pytest.raises(AssertionError, match="^rule interface failed: .*Unfinished leaves"):
        first()


def test_case_ids_name_the_options_so_two_sets_of_one_class_differ():
    from seqlm.cells.torch_cells import TorchLSTM
    from seqlm.testing import all_checks

    checks = all_checks([TorchLSTM, (TorchLSTM, {"num_layers": 2})])
    ids = [case_id for case_id, _ in checks]
    assert "TorchLSTM-cell_shapes" in ids
    assert "TorchLSTM[num_layers=2]-cell_shapes" in ids
    assert len(ids) == len(set(ids))
    dict(checks)["TorchLSTM[num_layers=2]-cell_shapes"]()


class WritesHere(AppendingLogger):
    """Writes to a path relative to the working directory, not the run folder."""

    def __init__(self, run):
        from pathlib import Path

        self.file = Path("csvlog") / "metrics.csv"


class FailsOnFailure(AppendingLogger):
    def on_exception(self, trainer, error):
        raise OSError("could not flush")


class TakesNoRun(seqlm.Callback):
    def __init__(self):
        pass


def test_a_logger_that_keeps_to_its_run_folder_passes():
    check_logger(AppendingLogger)  # a row per epoch in a file of its own folder


@pytest.mark.parametrize("cls, rule", [
    (WritesHere, r"rule logger_hears_a_run failed: it wrote \['csvlog'\] into the working "
     r"directory; write only inside run.out_dir"),
    (FailsOnFailure, r"rule logger_hears_a_failure failed: on_exception raised OSError: could "
     r"not flush; it must let the run's error through"),
    (TakesNoRun, r"rule logger_builds failed: TakesNoRun raised TypeError"),
])
def test_each_logger_rule_names_itself(cls, rule):
    with pytest.raises(AssertionError, match=rule):
        check_logger(cls)
