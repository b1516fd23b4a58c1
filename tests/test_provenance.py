"""A run records which distribution provided each component; using the run without it
names the package to install, and another installed version is a warning."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import seqlm
from seqlm.cli import main
from seqlm.errors import UsageError
from seqlm.interfaces import RecurrentCell

TINY = ["--epochs", "2", "--hidden", "8", "--batch-size", "4", "--num-steps", "5",
        "--max-tokens", "400", "--predict", "5", "--device", "cpu", "--checkpoint-every", "1"]


class Peephole(RecurrentCell):
    """A tanh RNN standing in for a peephole LSTM."""

    def __init__(self, input_size, hidden_size, num_layers=1):
        super().__init__()
        self.W_x = nn.Parameter(torch.randn(input_size, hidden_size) * 0.1)
        self.W_h = nn.Parameter(torch.randn(hidden_size, hidden_size) * 0.1)

    def begin_state(self, batch_size, device):
        return torch.zeros(batch_size, self.hidden_size, device=device)

    def forward(self, inputs, state):
        outputs = []
        for x in inputs:
            state = torch.tanh(x @ self.W_x + state @ self.W_h)
            outputs.append(state)
        return torch.stack(outputs), state


class Extras:
    @seqlm.hookimpl
    def register_cells(self, register):
        register("peephole-lstm", Peephole)


@pytest.fixture
def installed():
    """Install (in-process) seqlm-extras at a version; uninstalled after the test."""
    plugins = seqlm.get_plugins()
    names = []

    def install(version: str | None, dist: str = "seqlm-extras"):
        for name in names:
            plugins.remove(name)
        names.clear()
        if version is not None:
            plugins.add(Extras(), f"extras-{version}", distribution=dist, version=version,
                        display="extras")
            names.append(f"extras-{version}")

    yield install
    install(None)


def test_a_run_without_its_plugin_names_the_package(installed, tmp_path, small_text):
    installed("0.1.0")
    out = tmp_path / "run"
    trained = CliRunner().invoke(main, ["run", "--cell", "peephole-lstm", "--data",
                                        str(small_text), "--out", str(out), *TINY])
    assert trained.exit_code == 0, trained.output
    saved = json.loads((out / "checkpoint.json").read_text())["state"]["components"]
    assert saved["cell"] == {"name": "peephole-lstm", "distribution": "seqlm-extras",
                             "version": "0.1.0"}
    assert saved["sampler"]["distribution"] == "seqlm"

    installed(None)
    expected = ("Error: cell 'peephole-lstm' came from seqlm-extras 0.1.0: "
                "pip install seqlm-extras")
    for args in (["generate", str(out)], ["eval", str(out), "--data", str(small_text)],
                 ["run", "--resume", str(out), "--epochs", "3"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, result.output
        assert result.output.strip().splitlines()[-1] == expected

    installed("0.2.0")
    result = CliRunner().invoke(main, ["generate", str(out), "--length", "3"])
    assert result.exit_code == 0, result.output
    assert ("warning: cell 'peephole-lstm' was trained with seqlm-extras 0.1.0; 0.2.0 is "
            "installed") in result.output

    installed("0.1.0", dist="seqlm-other")
    result = CliRunner().invoke(main, ["generate", str(out), "--length", "3"])
    assert result.exit_code == 0, result.output
    assert ("warning: cell 'peephole-lstm' was trained from seqlm-extras 0.1.0, but "
            "seqlm-other 0.1.0 provides it now") in result.output


def test_a_missing_built_in_asks_for_the_seqlm_that_had_it():
    from seqlm.plugins import get_plugins
    from seqlm.plugins.provenance import resolve

    with pytest.raises(UsageError) as caught:
        resolve(get_plugins(), "cell", "lstm-from-the-future",
                {"name": "lstm-from-the-future", "distribution": "seqlm", "version": "9.0"})
    assert str(caught.value) == ("cell 'lstm-from-the-future' came from seqlm 9.0, which this "
                                 "seqlm does not have: pip install seqlm==9.0 to use the run")


def test_a_built_in_this_very_seqlm_lacks_is_a_damaged_checkpoint_not_an_install():
    from importlib import metadata

    from seqlm.plugins import get_plugins
    from seqlm.plugins.provenance import resolve

    version = metadata.version("seqlm")
    with pytest.raises(UsageError) as caught:
        resolve(get_plugins(), "cell", "nocell",
                {"name": "nocell", "distribution": "seqlm", "version": version})
    assert str(caught.value) == (f"cell 'nocell' came from seqlm {version}, which does not "
                                 "have it: the checkpoint was edited or damaged; use another "
                                 "checkpoint (best/last) or train again")


def test_an_installed_plugin_that_is_not_loaded_is_not_told_to_install_itself():
    from seqlm.plugins import get_plugins
    from seqlm.plugins.provenance import resolve

    # pluggy is installed (seqlm needs it) but registers no seqlm plugin.
    with pytest.raises(UsageError) as caught:
        resolve(get_plugins(), "cell", "gone", {"name": "gone", "distribution": "pluggy",
                                                "version": "0.1"})
    message = str(caught.value)
    assert message.startswith("cell 'gone' came from pluggy 0.1; pluggy ")
    assert message.endswith("is installed but its plugin is not loaded (SEQLM_LOAD_PLUGINS "
                            "leaves it out, or it failed to load): see seqlm plugins")


class PeepholeWithGain(Peephole):
    """The same cell in a later release, with one more parameter."""

    def __init__(self, input_size, hidden_size, num_layers=1):
        super().__init__(input_size, hidden_size, num_layers)
        self.gain = nn.Parameter(torch.ones(hidden_size))


class LaterExtras:
    @seqlm.hookimpl
    def register_cells(self, register):
        register("peephole-lstm", PeepholeWithGain)


def test_weights_that_another_plugin_version_cannot_take_blame_the_version(
    installed, tmp_path, small_text
):
    installed("0.1.0")
    out = tmp_path / "run"
    trained = CliRunner().invoke(main, ["run", "--cell", "peephole-lstm", "--data",
                                        str(small_text), "--out", str(out), *TINY])
    assert trained.exit_code == 0, trained.output
    installed(None)
    plugins = seqlm.get_plugins()
    plugins.add(LaterExtras(), "extras-later", distribution="seqlm-extras", version="0.2.0",
                display="extras")
    try:
        for args in (["generate", str(out)], ["eval", str(out), "--data", str(small_text)],
                     ["run", "--resume", str(out), "--epochs", "3"]):
            result = CliRunner().invoke(main, args)
            assert result.exit_code == 1, result.output
            line = result.output.strip().splitlines()[-1]
            assert 'do not fit the model its settings describe (Missing key(s) in ' \
                   'state_dict: "cell.gain"); the cell \'peephole-lstm\' was trained with ' \
                   'seqlm-extras 0.1.0; 0.2.0 is installed (pip install ' \
                   'seqlm-extras==0.1.0 for the same)' in line, line
            assert "edited or damaged" not in line
    finally:
        plugins.remove("extras-later")


def test_a_run_without_two_of_its_plugins_names_both_packages(installed, tmp_path,
                                                              small_text):
    from seqlm.data.tokenizers import CharTokenizer

    class Letters(CharTokenizer):
        """The char tokenizer, under a plugin's name."""

    class Words:
        @seqlm.hookimpl
        def register_tokenizers(self, register):
            register("letters", Letters)

    plugins = seqlm.get_plugins()
    installed("0.1.0")
    plugins.add(Words(), "words", distribution="seqlm-words", version="1.2")
    try:
        out = tmp_path / "run"
        trained = CliRunner().invoke(main, ["run", "--cell", "peephole-lstm", "--tokenizer",
                                            "letters", "--data", str(small_text), "--out",
                                            str(out), *TINY])
        assert trained.exit_code == 0, trained.output
    finally:
        plugins.remove("words")
    installed(None)
    for args in (["generate", str(out)], ["run", "--resume", str(out), "--epochs", "3"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, result.output
        assert result.output.strip().splitlines()[-1] == (
            "Error: tokenizer 'letters' came from seqlm-words 1.2: pip install seqlm-words; "
            "and cell 'peephole-lstm' came from seqlm-extras 0.1.0: pip install seqlm-extras")
