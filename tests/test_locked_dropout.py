"""``--locked-dropout``: dropout masks drawn once per sequence (variational dropout)."""

import json

import pytest
import torch
from click.testing import CliRunner
from torch.nn import functional as F

import seqlm
import seqlm.cells.dropout as dropout_module
import seqlm.cells.torch_cells as torch_cells_module
from seqlm.cells.dropout import SequenceDropout, sequence_dropout
from seqlm.cells.scratch import ScratchGRU, ScratchLSTM, ScratchRNN
from seqlm.cells.torch_cells import TorchGRU, TorchLSTM, TorchRNN
from seqlm.cli import main
from seqlm.errors import UsageError
from seqlm.model.rnn import RNNModel
from seqlm.testing import check_cell

TORCH_CELLS = [TorchLSTM, TorchGRU, TorchRNN]
CELLS = [*TORCH_CELLS, ScratchLSTM, ScratchGRU, ScratchRNN]


def _flat(state):
    return list(state) if isinstance(state, tuple) else [state]


def _locked(dropped: torch.Tensor) -> bool:
    """Whether every step of (steps, batch, features) has the same zeros."""
    zeros = dropped == 0
    return bool((zeros == zeros[:1]).all())


def test_locked_masks_are_the_same_at_every_step_and_keep_the_scale():
    torch.manual_seed(0)
    x = torch.rand(50, 4, 30) + 0.5  # no zeros of its own
    dropped = sequence_dropout(x, 0.4, training=True, locked=True)
    assert _locked(dropped)
    assert 0.25 < (dropped[0] == 0).float().mean() < 0.55
    kept = dropped != 0
    assert torch.allclose(dropped[kept], x[kept] / 0.6)
    # The masks differ between sequences of the batch, and standard dropout is not locked.
    assert not torch.equal(dropped[0, 0] == 0, dropped[0, 1] == 0)
    assert not _locked(sequence_dropout(x, 0.4, training=True, locked=False))


def test_outside_training_or_at_zero_nothing_is_dropped_and_standard_is_torchs():
    x = torch.randn(6, 3, 5)
    assert torch.equal(sequence_dropout(x, 0.5, training=False, locked=True), x)
    assert torch.equal(sequence_dropout(x, 0.0, training=True, locked=True), x)
    torch.manual_seed(4)
    standard = sequence_dropout(x, 0.5, training=True, locked=False)
    torch.manual_seed(4)
    assert torch.equal(standard, F.dropout(x, 0.5, True))


def test_the_model_locks_the_dropout_of_its_embeddings_and_outputs():
    model = RNNModel(TorchLSTM(8, 16), vocab_size=11, embedding_dim=8, dropout=0.5,
                     locked_dropout=True)
    assert isinstance(model.dropout, SequenceDropout) and model.dropout.locked
    assert _locked(model.cell_inputs(torch.randint(0, 11, (40, 3))))
    plain = RNNModel(TorchLSTM(8, 16), vocab_size=11, embedding_dim=8, dropout=0.5)
    assert not _locked(plain.cell_inputs(torch.randint(0, 11, (40, 3))))


@pytest.fixture
def between_layers(monkeypatch):
    """What every cell module's dropout between layers returned, call by call."""
    seen = []

    def spy(inputs, p, training, locked):
        result = sequence_dropout(inputs, p, training, locked)
        seen.append((inputs, result))
        return result

    # The torch cells call the function; the scratch cells' module looks it up in its own.
    monkeypatch.setattr(torch_cells_module, "sequence_dropout", spy)
    monkeypatch.setattr(dropout_module, "sequence_dropout", spy)
    return seen


@pytest.mark.parametrize("cls", CELLS)
def test_every_built_in_cell_locks_the_dropout_between_its_layers(cls, between_layers):
    cell = cls(5, 12, num_layers=3, dropout=0.5, locked_dropout=True)
    x = torch.randn(30, 4, 5)
    out, state = cell(x, cell.begin_state(4, "cpu"))
    assert len(between_layers) == 2  # before the second and the third layer
    for inputs, result in between_layers:
        assert (inputs != 0).all() and _locked(result)
        assert (result == 0).any()
    (out.sum() + sum(s.sum() for s in _flat(state))).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in cell.parameters())


@pytest.mark.parametrize("cls", TORCH_CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_layer_by_layer_computes_what_the_stacked_module_does(cls, bidirectional):
    """With nothing dropped, the torch module run one layer at a time (the path locked
    dropout takes) gives the stacked module's outputs, state and gradients."""
    cell = cls(5, 8, num_layers=3, bidirectional=bidirectional, dropout=0.3,
               locked_dropout=True)
    x = torch.randn(7, 2, 5)
    state = cell.begin_state(2, "cpu")
    cell.rnn.dropout = 0.0
    stacked, stacked_state = cell._module(x, state, {})
    cell.rnn.dropout = 1e-30  # takes the layer-by-layer path, drops nothing
    by_layer, by_layer_state = cell._module(x, state, {})
    assert torch.allclose(by_layer, stacked, atol=1e-6)
    for got, want in zip(_flat(by_layer_state), _flat(stacked_state), strict=True):
        assert got.shape == want.shape and torch.allclose(got, want, atol=1e-6)
    grads = torch.autograd.grad(by_layer.square().sum(), list(cell.parameters()))
    cell.rnn.dropout = 0.0
    want_grads = torch.autograd.grad(cell._module(x, state, {})[0].square().sum(),
                                     list(cell.parameters()))
    for got, want in zip(grads, want_grads, strict=True):
        assert torch.allclose(got, want, atol=1e-5)


def test_locked_dropout_with_weight_dropout_drops_both():
    cell = TorchLSTM(5, 8, num_layers=2, dropout=0.3, locked_dropout=True, weight_dropout=0.5)
    x = torch.randn(6, 3, 5)
    out, _ = cell(x, cell.begin_state(3, "cpu"))
    out.sum().backward()
    assert (cell.rnn.weight_hh_l1.grad == 0).float().mean() > 0.3
    cell.eval()
    plain = TorchLSTM(5, 8, num_layers=2)
    plain.load_state_dict(cell.state_dict())
    assert torch.equal(cell(x, cell.begin_state(3, "cpu"))[0],
                       plain.eval()(x, plain.begin_state(3, "cpu"))[0])


@pytest.mark.parametrize("cls", CELLS)
def test_cells_with_locked_dropout_keep_the_contract(cls):
    check_cell(cls, num_layers=2, dropout=0.3, locked_dropout=True)


def test_locked_dropout_must_be_true_or_false():
    with pytest.raises(UsageError, match="locked_dropout must be true or false"):
        TorchLSTM(4, 4, locked_dropout="yes")


def test_the_cli_flag_reaches_the_model_and_the_recipe(book_path, tmp_path):
    out = tmp_path / "r"
    args = ["run", "--data", str(book_path), "--max-tokens", "2000", "--epochs", "1",
            "--hidden", "8", "--num-layers", "2", "--embedding-dim", "4", "--batch-size", "4",
            "--num-steps", "8", "--predict", "0", "--dropout", "0.3", "--locked-dropout",
            "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["locked_dropout"] is True
    printed = CliRunner().invoke(main, ["config", str(out)])
    assert "locked-dropout = true" in printed.output

    from seqlm.runs.saved import load_trained

    model = load_trained(out).model
    assert model.dropout.locked and model.cell.locked_dropout


def test_locked_dropout_without_dropout_is_a_usage_error(small_text, tmp_path):
    result = CliRunner().invoke(main, ["run", "--data", str(small_text), "--locked-dropout",
                                       "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "--locked-dropout changes how --dropout draws its masks" in result.output
    assert not (tmp_path / "o").exists()


def test_no_locked_dropout_on_the_command_line_overrides_a_recipe(book_path, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text("dropout = 0.3\nlocked-dropout = true\nhidden = 8\nmax-tokens = 2000\n"
                      "batch-size = 4\nnum-steps = 8\nepochs = 1\npredict = 0\n")
    for flag, want in (([], True), (["--no-locked-dropout"], False)):
        out = tmp_path / f"run{want}"
        result = CliRunner().invoke(main, ["run", "--config", str(recipe), "--data",
                                           str(book_path), "--out", str(out), *flag])
        assert result.exit_code == 0, result.output
        summary = json.loads((out / "summary.json").read_text())
        assert summary["config"]["locked_dropout"] is want


class PerStepLSTM(TorchLSTM):
    """A plugin's cell that takes dropout between its layers but no locked_dropout."""

    def __init__(self, input_size, hidden_size, num_layers=1, dropout=0.0):
        super().__init__(input_size, hidden_size, num_layers, dropout=dropout)


class PerStepPlugin:
    @seqlm.hookimpl
    def register_cells(self, register):
        register("per-step", PerStepLSTM)


@pytest.mark.parametrize("cell, cell_opts, noted", [
    ("per-step", [], True),
    ("per-step", ["--cell-opt", "dropout=0"], False),  # nothing dropped between layers
    ("lstm", [], False),  # built in: it locks its layers' masks too
])
def test_a_cell_that_cannot_lock_its_layers_masks_is_named(book_path, tmp_path, cell,
                                                           cell_opts, noted):
    plugins = seqlm.get_plugins()
    plugins.add(PerStepPlugin(), "per-step", distribution="seqlm-per-step", version="0.2.0")
    try:
        result = CliRunner().invoke(main, [
            "run", "--data", str(book_path), "--max-tokens", "2000", "--epochs", "1",
            "--hidden", "8", "--num-layers", "2", "--batch-size", "4", "--num-steps", "8",
            "--predict", "0", "--dropout", "0.3", "--locked-dropout", "--cell", cell,
            *cell_opts, "--out", str(tmp_path / "r")])
    finally:
        plugins.remove("per-step")
    assert result.exit_code == 0, result.output
    note = ("note: cell 'per-step' from seqlm-per-step 0.2.0 takes no locked_dropout option, "
            "so its dropout between layers draws a new mask at every step; --locked-dropout "
            "applies to the embeddings and before the head")
    assert (note in " ".join(result.output.split())) is noted
    assert ("takes no locked_dropout option" in result.output) is noted
