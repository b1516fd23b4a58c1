"""One test per hook: a plugin object registered in-process, used by a run, removed."""

from __future__ import annotations

from collections.abc import Sequence

import click
import pytest
import torch
from click.testing import CliRunner
from torch import nn

import seqlm
from seqlm.data.samplers import RandomSampler
from seqlm.interfaces import RecurrentCell, Tokenizer
from seqlm.training.trainer import DefaultTrainer

TINY = dict(epochs=2, hidden=8, batch_size=4, num_steps=5, max_tokens=400, predict=6,
            device="cpu", force=True)


@pytest.fixture
def register():
    """Add plugin objects to the process-wide manager; remove them after the test."""
    plugins = seqlm.get_plugins()
    added: list[str] = []

    def add(plugin: object, name: str):
        info = plugins.add(plugin, name)
        added.append(name)
        assert info.status == "ok", info.status
        return info

    try:
        yield add
    finally:
        for name in added:
            plugins.remove(name)


class PairTokenizer(Tokenizer):
    """Two characters per token (the last may be one)."""

    def __init__(self, size: int = 2) -> None:
        self.size = size

    def tokenize(self, lines: Sequence[str]) -> list[list[str]]:
        return [[line[i:i + self.size] for i in range(0, len(line), self.size)]
                for line in lines]


def test_hook_register_tokenizers(register, small_text, tmp_path):
    class Plugin:
        @seqlm.hookimpl
        def register_tokenizers(self, register):
            register("pairs", PairTokenizer)

    info = register(Plugin(), "pairs-plugin")
    assert info.registered == {"tokenizer": ["pairs"]}
    # Three-character tokens line up with the text from its start, so the prefix is known.
    result = seqlm.run(tokenizer="pairs", tokenizer_options={"size": 3}, data=small_text,
                       prefix="the time traveller", out=tmp_path, **TINY)
    assert isinstance(result.tokenizer, PairTokenizer) and result.tokenizer.size == 3
    assert all(len(t) <= 3 for t in result.vocab.idx_to_token[1:])
    assert result.sample.startswith("the time traveller")


def test_hook_register_samplers(register, small_text, tmp_path):
    calls = []

    class CountingSampler(RandomSampler):
        """Random batches, counting the epochs."""

        def __call__(self, corpus):
            calls.append(len(corpus))
            return super().__call__(corpus)

    class Plugin:
        @seqlm.hookimpl
        def register_samplers(self, register):
            register("counting", CountingSampler)

    register(Plugin(), "counting-plugin")
    result = seqlm.run(sampler="counting", data=small_text, out=tmp_path, **TINY)
    # Once for the check before training, then once per epoch.
    assert len(calls) == 3 and len(result.history) == 2


class TanhCell(RecurrentCell):
    """A one-layer tanh RNN."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1) -> None:
        super().__init__(input_size, hidden_size, num_layers)
        self.linear = nn.Linear(input_size + hidden_size, hidden_size)

    def begin_state(self, batch_size, device):
        return torch.zeros(batch_size, self.hidden_size, device=device)

    def forward(self, inputs, state):
        outputs = []
        for x in inputs:
            state = torch.tanh(self.linear(torch.cat([x, state], dim=-1)))
            outputs.append(state)
        return torch.stack(outputs), state


def test_hook_register_cells(register, small_text, tmp_path):
    class Plugin:
        @seqlm.hookimpl
        def register_cells(self, register):
            register("tanh-hook-test", TanhCell)

    register(Plugin(), "tanh-plugin")
    assert "tanh-hook-test" in seqlm.get_plugins().choices("cell")
    result = seqlm.run(cell="tanh-hook-test", data=small_text, out=tmp_path, **TINY)
    assert isinstance(result.model.cell, TanhCell)
    assert result.history[-1].train_loss < result.history[0].train_loss * 1.2
    seqlm.get_plugins().remove("tanh-plugin")
    assert "tanh-hook-test" not in seqlm.get_plugins().choices("cell")


def test_hook_register_trainers(register, small_text, tmp_path):
    seen = []

    class RecordingTrainer(DefaultTrainer):
        """The default trainer, remembering the model it trained."""

        def fit(self, model, corpus, sampler, callbacks=(), val_corpus=None):
            seen.append(model)
            return super().fit(model, corpus, sampler, callbacks, val_corpus)

    class Plugin:
        @seqlm.hookimpl
        def register_trainers(self, register):
            register("recording", RecordingTrainer)

    register(Plugin(), "recording-plugin")
    result = seqlm.run(trainer="recording", data=small_text, out=tmp_path, **TINY)
    assert seen == [result.model]


def test_hook_register_commands(register):
    class Plugin:
        @seqlm.hookimpl
        def register_commands(self, cli):
            @cli.command()
            @click.argument("name")
            def greet(name):
                """Greet NAME."""
                click.echo(f"hello {name}")

    register(Plugin(), "greet-plugin")
    group = click.Group("seqlm")
    seqlm.get_plugins().add_commands(group)
    result = CliRunner().invoke(group, ["greet", "world"])
    assert result.exit_code == 0 and result.output == "hello world\n"


def test_a_command_hook_that_raises_is_left_out(register, capsys):
    class Plugin:
        @seqlm.hookimpl
        def register_cells(self, register):
            register("never-used", TanhCell)

        @seqlm.hookimpl
        def register_commands(self, cli):
            @cli.command()
            def half():
                """Added before the hook fails."""

            raise RuntimeError("no config file")

    register(Plugin(), "half-plugin")
    group = click.Group("seqlm")
    seqlm.get_plugins().add_commands(group)
    assert "half" not in group.commands
    assert "never-used" not in seqlm.get_plugins().choices("cell")
    assert ("seqlm: plugin half-plugin (registered in code) failed: register_commands raised "
            "RuntimeError: no config file") in capsys.readouterr().err


def test_hook_register_callbacks(register, small_text, tmp_path):
    from seqlm.interfaces import Callback

    seen = []

    class Recorder(Callback):
        """Remembers what it was built with and the epochs it saw."""

        def __init__(self, run):
            self.run = run
            seen.append(self)
            self.epochs = []

        def on_epoch_end(self, trainer, metrics):
            self.epochs.append(metrics.epoch)
            (self.run.out_dir / "recorder.txt").write_text(self.run.sample(4))

    class Plugin:
        @seqlm.hookimpl
        def register_callbacks(self, register):
            register("recorder", Recorder)

    info = register(Plugin(), "recorder-plugin")
    assert info.registered == {"callback": ["recorder"]}
    seqlm.run(log=["recorder"], data=small_text, out=tmp_path, **TINY)
    (logger,) = seen
    assert logger.epochs == [1, 2]
    assert logger.run.out_dir == tmp_path and logger.run.config["log"] == ["recorder"]
    assert (tmp_path / "recorder.txt").read_text().startswith("time traveller")
    # The run records the logger, so resuming turns it on again without --log.
    seqlm.run(resume=tmp_path, epochs=3)
    assert seen[1].epochs == [3]
