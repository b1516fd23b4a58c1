"""Throwaway plugin distributions for tests: a ``*.dist-info`` folder and its modules.

``importlib.metadata`` finds a distribution from a ``NAME-VERSION.dist-info`` folder with
an ``entry_points.txt`` anywhere on ``sys.path``, so no ``pip install`` is needed.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

_counter = itertools.count()


def unique(prefix: str) -> str:
    """A module name no other test uses (modules stay cached in ``sys.modules``)."""
    return f"{prefix}_{os.getpid()}_{next(_counter)}"


def make_dist(
    root: Path, name: str, modules: dict[str, str], entry_points: dict[str, str],
    version: str = "1.0", metadata: bool = True,
) -> Path:
    """Write modules and a dist-info folder declaring ``entry_points`` in the seqlm group."""
    for module, source in modules.items():
        path = root / (module.replace(".", "/") + ".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[seqlm]\n{lines}", encoding="utf-8")
    if metadata:
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
        )
    return info


def run_seqlm(
    args: list[str], pythonpath: Path | None = None, timeout: float = 180, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m seqlm ARGS`` with ``pythonpath`` in front; env values of "" are kept."""
    environ = {k: v for k, v in os.environ.items()
               if k not in ("SEQLM_LOAD_PLUGINS", "SEQLM_RAISE_PLUGIN_ERRORS")}
    if pythonpath is not None:
        environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(pythonpath), environ.get("PYTHONPATH", "")])
        )
    environ.update(env)
    environ.setdefault("OMP_NUM_THREADS", "1")
    environ.setdefault("COLUMNS", "200")
    return subprocess.run([sys.executable, "-m", "seqlm", *args], capture_output=True,
                          text=True, env=environ, timeout=timeout)


#: A real, tiny cell: an Elman RNN with tanh, written with plain tensor operations.
CELL_SOURCE = '''
import torch
from torch import nn

from seqlm.interfaces import RecurrentCell


class TanhCell(RecurrentCell):
    """A one-layer tanh RNN for plugin tests."""

    def __init__(self, input_size, hidden_size, num_layers=1, scale=0.01):
        super().__init__(input_size, hidden_size, num_layers)
        self.W_x = nn.Parameter(torch.randn(input_size, hidden_size) * scale)
        self.W_h = nn.Parameter(torch.randn(hidden_size, hidden_size) * scale)
        self.b = nn.Parameter(torch.zeros(hidden_size))

    def begin_state(self, batch_size, device):
        return torch.zeros(batch_size, self.hidden_size, device=device)

    def forward(self, inputs, state):
        outputs = []
        for x in inputs:
            state = torch.tanh(x @ self.W_x + state @ self.W_h + self.b)
            outputs.append(state)
        return torch.stack(outputs), state
'''

def with_cell(body: str) -> str:
    """Module source: :data:`CELL_SOURCE` (defining ``TanhCell``), then ``body``."""
    return CELL_SOURCE + textwrap.dedent(body)


#: ``seqlm run`` settings small enough to train in a second or two.
TINY_RUN = ["--epochs", "2", "--hidden", "8", "--batch-size", "4", "--num-steps", "5",
            "--max-tokens", "400", "--predict", "5", "--device", "cpu", "--force"]
