"""``seqlm new-plugin NAME``: a ready plugin package to start from.

The package holds a working example of each kind a plugin usually adds (a cell, a
sampler, a tokenizer and a command), the entry point that registers them, tests that run
seqlm's conformance kit (:mod:`seqlm.testing`) and test the command, and a README.
"""

from __future__ import annotations

import importlib.util
import re
from importlib import metadata
from pathlib import Path

from seqlm.errors import UsageError

_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


#: Folder names many projects have, which an installed top-level package would shadow.
_GENERIC = frozenset({"test", "tests", "testing", "doc", "docs", "example", "examples", "src",
                      "lib", "build", "dist", "scripts", "benchmarks", "plugins", "utils"})


def _installed_distribution(name: str) -> str | None:
    try:
        return metadata.distribution(name).metadata["Name"] or name
    except metadata.PackageNotFoundError:
        return None


def plugin_names(name: str) -> dict[str, str]:
    """The names the package for ``name`` uses: distribution, module and components.

    ``seqlm-`` in front is left out of component names (``seqlm-peephole`` registers
    ``peephole-cell``); the module is the distribution name with underscores.
    """
    if not _NAME.match(name):
        raise UsageError(f"new-plugin {name!r}: use lower-case letters, digits and single "
                         "hyphens, starting with a letter (for example seqlm-peephole)")
    module = name.replace("-", "_")
    if module in _GENERIC:
        raise UsageError(f"new-plugin {name!r}: a top-level package named {module!r} would "
                         "clash with other projects' folders of that name once installed; "
                         f"choose a name of its own, such as seqlm-{name}")
    # An installed distribution or module of that name (seqlm itself, torch, click...)
    # would be replaced by `pip install -e`, or shadowed on import.
    taken = _installed_distribution(name) or (
        importlib.util.find_spec(module) is not None and module)
    if taken:
        raise UsageError(f"new-plugin {name!r}: {taken!r} is already installed here, and the "
                         "plugin would replace or shadow it; choose another name, such as "
                         f"seqlm-{name.removeprefix('seqlm-')}-plugin")
    short = name.removeprefix("seqlm-") or name
    return {"dist": name, "module": name.replace("-", "_"), "short": short,
            "cell": f"{short}-cell", "sampler": f"{short}-strided",
            "tokenizer": f"{short}-bytes", "command": f"{short}-stats"}


def write_plugin(name: str, parent: Path) -> Path:
    """Write the package folder ``parent/name`` and return it; never overwrite anything."""
    from seqlm.version import __version__

    names = {**plugin_names(name), "seqlm_version": __version__}
    root = Path(parent) / name
    if root.exists():
        raise UsageError(f"new-plugin: {root} already exists; choose another NAME or remove it")
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"{names['module']}/__init__.py": INIT,
        f"{names['module']}/plugin.py": PLUGIN,
        f"{names['module']}/components.py": COMPONENTS,
        f"{names['module']}/command.py": COMMAND,
        "tests/test_plugin.py": TESTS,
    }
    for relative, template in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        text = template
        for key, value in names.items():
            text = text.replace("{" + key + "}", value)
        path.write_text(text, encoding="utf-8")
    return root


PYPROJECT = '''\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "A seqlm plugin: an example cell, sampler, tokenizer and command"
readme = "README.md"
requires-python = ">=3.10"
# The seqlm this package was made with: it uses that version's interfaces and helpers.
dependencies = ["seqlm>={seqlm_version}"]

[project.optional-dependencies]
test = ["pytest>=7", "ruff>=0.4"]

# seqlm finds the plugin through this entry point: NAME = "module with the hooks".
[project.entry-points.seqlm]
{short} = "{module}.plugin"

# Every subpackage you add under {module}/ goes into the wheel too.
[tool.setuptools.packages.find]
include = ["{module}*"]

[tool.ruff]
line-length = 100

[tool.ruff.lint]
select = ["E", "F", "W", "I", "B", "UP"]

[tool.ruff.lint.isort]
known-first-party = ["{module}"]
'''

README = '''\
# {dist}

A seqlm plugin. It adds:

| Kind | Name | Class |
| --- | --- | --- |
| cell | `{cell}` | `{module}.components:ElmanCell` |
| sampler | `{sampler}` | `{module}.components:StridedSampler` |
| tokenizer | `{tokenizer}` | `{module}.components:ByteTokenizer` |
| command | `seqlm {command}` | `{module}.command:stats` |

## Install and try

```
pip install -e .
seqlm plugins                      # lists {dist} with its cell, sampler, tokenizer, command
seqlm run --cell {cell} --epochs 5
seqlm run --sampler {sampler} --sampler-opt stride=7 --epochs 5
seqlm run --tokenizer {tokenizer} --clean none --epochs 5
seqlm {command} path/to/text.txt
```

## Test

```
pip install -e '.[test]'
python -m pytest tests
ruff check .
```

`tests/test_plugin.py` runs seqlm's conformance kit (`seqlm.testing`) on every class, so
each rule of the contracts (shapes, state, gradients, determinism, saved state) is one
test; checks that the installed entry point registers every name (a typo in
`plugin.py` fails there, not in a user's run); tests what each option changes; and tests
the command with click's test runner.

See seqlm's `docs/plugins/` for the hooks, the contracts, and what to do if it breaks.
'''

INIT = '''\
"""{dist}: a seqlm plugin."""
'''

PLUGIN = '''\
"""The hooks seqlm calls. Classes are registered as "module:Class" strings, imported only
when used, so that `seqlm --help` stays fast."""

import click
import seqlm
from seqlm.hookspecs import Register


@seqlm.hookimpl
def register_cells(register: Register) -> None:
    register("{cell}", "{module}.components:ElmanCell")


@seqlm.hookimpl
def register_samplers(register: Register) -> None:
    register("{sampler}", "{module}.components:StridedSampler")


@seqlm.hookimpl
def register_tokenizers(register: Register) -> None:
    register("{tokenizer}", "{module}.components:ByteTokenizer")


@seqlm.hookimpl
def register_commands(cli: click.Group) -> None:
    from {module}.command import stats

    cli.add_command(stats)
'''

COMPONENTS = '''\
"""An example of each component; see seqlm's docs/plugins/contracts.md."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from seqlm.errors import UsageError
from seqlm.interfaces import RecurrentCell, Sampler, Tokenizer
from torch import nn


class ElmanCell(RecurrentCell):
    """Stacked Elman layers: h = act(W x + U h + b) in each.

    The first line of a docstring is what `seqlm list cells` shows; keep it whole."""

    #: Runs under bfloat16 autocast (--precision bf16); seqlm.testing checks it.
    supports_bf16 = True

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 activation: str = "tanh") -> None:
        super().__init__()  # seqlm passes the sizes; the base class keeps them
        if activation not in ("tanh", "relu"):
            raise UsageError(f"--cell-opt activation must be tanh or relu, got {activation!r}")
        self.activation = torch.tanh if activation == "tanh" else torch.relu
        # Layer i reads layer i - 1's outputs (the first reads the inputs).
        self.input = nn.ModuleList(nn.Linear(input_size if i == 0 else hidden_size, hidden_size)
                                   for i in range(num_layers))
        self.recurrent = nn.ModuleList(nn.Linear(hidden_size, hidden_size, bias=False)
                                       for _ in range(num_layers))

    def begin_state(self, batch_size: int, device: torch.device | str) -> torch.Tensor:
        return torch.zeros(self.num_layers, batch_size, self.hidden_size, device=device)

    def forward(  # type: ignore[override]  # this cell's state is one tensor
        self, inputs: torch.Tensor, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # inputs: (num_steps, batch, input_size); outputs: (num_steps, batch, hidden_size);
        # state: (num_layers, batch, hidden_size), each layer's last hidden vector.
        finals = []
        layers = zip(self.input, self.recurrent, strict=True)
        for layer, (input_product, recurrent) in enumerate(layers):
            hidden = state[layer]
            outputs = []
            for x in input_product(inputs):  # the input products of all steps at once
                hidden = self.activation(x + recurrent(hidden))
                outputs.append(hidden)
            inputs = torch.stack(outputs)
            finals.append(hidden)
        return inputs, torch.stack(finals)


class StridedSampler(Sampler):
    """Windows of num_steps tokens starting every `stride` tokens, in random order."""

    contiguous = False  # rows do not continue from batch to batch

    def __init__(self, batch_size: int, num_steps: int, stride: int = 0) -> None:
        super().__init__(batch_size, num_steps)
        if stride < 0:
            raise UsageError(f"--sampler-opt stride must be 0 (num_steps) or more, got {stride}")
        self.stride = stride or num_steps

    def __call__(self, corpus: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        count = (len(corpus) - self.num_steps - 1) // self.stride + 1
        starts = torch.arange(max(count, 0), device=corpus.device) * self.stride
        starts = starts[torch.randperm(len(starts)).to(corpus.device)]  # seeded by --seed
        steps = torch.arange(self.num_steps, device=corpus.device)
        for b in range(len(starts) // self.batch_size):
            rows = starts[b * self.batch_size:(b + 1) * self.batch_size, None] + steps
            yield corpus[rows], corpus[rows + 1]

    def min_tokens(self) -> int:
        return (self.batch_size - 1) * self.stride + self.num_steps + 1


class ByteTokenizer(Tokenizer):
    """One token per UTF-8 byte, written as two hex digits; any text, no fitting."""

    def tokenize(self, lines: Sequence[str]) -> list[list[str]]:
        return [[f"{byte:02x}" for byte in line.encode("utf-8")] for line in lines]

    def detokenize(self, tokens: Sequence[str]) -> str:
        # "<unk>" (a token the vocabulary lacks) may come here: show it as U+FFFD.
        data = b"".join(b"\\xef\\xbf\\xbd" if t == "<unk>" else bytes.fromhex(t) for t in tokens)
        return data.decode("utf-8", errors="replace")
'''

COMMAND = '''\
"""`seqlm {command}`: counts of a text's tokens, read and cleaned as `seqlm run` does."""

from __future__ import annotations

import click
import seqlm


@click.command("{command}")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--clean", type=click.Choice(["letters", "none"]), default="letters",
              show_default=True, help="Clean the text as seqlm run --clean does.")
@click.option("--encoding", default="utf-8", show_default=True, help="Encoding of PATH.")
@click.option("--top", type=click.IntRange(min=0), default=5, show_default=True,
              help="Most frequent tokens.")
def stats(path: str, clean: str, encoding: str, top: int) -> None:
    """Vocabulary size and most frequent characters of the text in PATH."""
    # seqlm's reading: encodings and errors as in `seqlm run`, naming PATH as given.
    text = seqlm.load_text(path, encoding, label=path)
    tokens = seqlm.text_tokens(text, seqlm.get_plugins().get("tokenizer", "char")(), clean)
    vocab = seqlm.Vocab(tokens)
    common = ", ".join(repr(token) for token, _ in vocab.token_freqs[:top])
    click.echo(f"{len(tokens)} tokens, vocabulary {len(vocab)}; most frequent: {common}")
'''

TESTS = '''\
"""The plugin keeps seqlm's contracts (seqlm.testing), and its command works."""

import seqlm
import torch
from click.testing import CliRunner
from seqlm.testing import parametrize_checks

from {module}.command import stats
from {module}.components import ByteTokenizer, ElmanCell, StridedSampler


@parametrize_checks([
    ElmanCell, (ElmanCell, {"activation": "relu", "num_layers": 2}),
    StridedSampler, (StridedSampler, {"stride": 2}),
    ByteTokenizer,
])
def test_conforms(check):
    check()


def test_the_installed_entry_point_registers_every_name():
    # `pip install -e .` first: seqlm finds the plugin only through its entry point.
    plugins = seqlm.get_plugins()
    info = next((i for i in plugins.info.values() if i.distribution == "{dist}"), None)
    assert info is not None, "{dist} is not installed: pip install -e '.[test]'"
    assert info.status == "ok", info.status
    assert info.registered == {"cell": ["{cell}"], "sampler": ["{sampler}"],
                               "tokenizer": ["{tokenizer}"]}
    # Each "module:Class" string of plugin.py imports the class it names.
    assert plugins.get("cell", "{cell}") is ElmanCell
    assert plugins.get("sampler", "{sampler}") is StridedSampler
    assert plugins.get("tokenizer", "{tokenizer}") is ByteTokenizer
    # The command is added when seqlm's command line is built, as `seqlm ...` does.
    from seqlm.cli import main

    shown = CliRunner().invoke(main, ["{command}", "--help"])
    assert shown.exit_code == 0, shown.output


def test_each_cell_option_changes_the_cell():
    torch.manual_seed(0)
    # seqlm builds cells with keywords, as here.
    tanh = ElmanCell(input_size=3, hidden_size=4)
    relu = ElmanCell(input_size=3, hidden_size=4, activation="relu")
    relu.load_state_dict(tanh.state_dict())
    inputs = torch.randn(5, 2, 3)
    out_tanh, _ = tanh(inputs, tanh.begin_state(2, "cpu"))
    out_relu, _ = relu(inputs, relu.begin_state(2, "cpu"))
    assert not torch.equal(out_tanh, out_relu)
    assert (out_relu >= 0).all()


def test_the_stride_sets_where_windows_start():
    corpus = torch.arange(100)
    torch.manual_seed(0)
    starts = {int(X[row, 0]) for X, _ in StridedSampler(2, 5, stride=7)(corpus)
              for row in range(2)}
    assert starts and all(start % 7 == 0 for start in starts)


def test_the_command_counts_a_text(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("Abba, abba!\\n", encoding="utf-8")
    result = CliRunner().invoke(stats, [str(text), "--top", "1"])
    assert result.exit_code == 0, result.output
    assert result.output == "9 tokens, vocabulary 4; most frequent: 'a'\\n"


def test_bytes_round_trip_and_unknown_tokens():
    tokenizer = ByteTokenizer()
    (tokens,) = tokenizer.tokenize(["café"])
    assert tokenizer.detokenize(tokens) == "café"
    assert tokenizer.detokenize([*tokens[:2], "<unk>"]) == "ca\\ufffd"
'''
