"""`seqlm new-plugin NAME`: the package it writes installs, passes its own tests (which
use seqlm.testing) and trains, as a new plugin author would use it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from plugin_dists import TINY_RUN, run_seqlm

from seqlm.cli import main


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_the_template_installs_passes_its_tests_and_trains(tmp_path, small_text):
    name = f"seqlm-tmpl-t{os.getpid()}"  # unlike any real distribution, seqlm-bpe included
    made = CliRunner().invoke(main, ["new-plugin", name, "--dir", str(tmp_path)])
    assert made.exit_code == 0, made.output
    root = tmp_path / name
    assert {p.name for p in root.iterdir()} >= {"pyproject.toml", "README.md", "tests",
                                                name.replace("-", "_")}
    installed = _pip("install", "--quiet", "--no-deps", "--no-build-isolation", "-e", str(root))
    assert installed.returncode == 0, installed.stderr
    try:
        tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                "tests"], cwd=root, capture_output=True, text=True, timeout=600)
        assert tests.returncode == 0, tests.stdout + tests.stderr
        assert " passed" in tests.stdout and "failed" not in tests.stdout
        # Its own lint settings pass on what it was given (imports sorted, zip strict...).
        linted = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."],
                                cwd=root, capture_output=True, text=True, timeout=120)
        assert linted.returncode == 0, linted.stdout + linted.stderr

        short = name.removeprefix("seqlm-")
        listed = run_seqlm(["plugins", "--json"])
        row = next(r for r in json.loads(listed.stdout) if r["distribution"] == name)
        assert row["status"] == "ok" and row["refused"] == []
        assert row["registered"] == {"cell": [f"{short}-cell"], "sampler": [f"{short}-strided"],
                                     "tokenizer": [f"{short}-bytes"],
                                     "command": [f"{short}-stats"]}
        out = tmp_path / "run"
        trained = run_seqlm(["run", "--cell", f"{short}-cell", "--sampler", f"{short}-strided",
                             "--sampler-opt", "stride=3", "--data", str(small_text), "--out",
                             str(out), *TINY_RUN, "--epochs", "1", "--num-layers", "2"])
        assert trained.returncode == 0, trained.stderr
        assert (out / "checkpoint.json").is_file()
        stats = run_seqlm([f"{short}-stats", str(small_text), "--top", "2"])
        assert stats.returncode == 0, stats.stderr
        count, rest = stats.stdout.split(" ", 1)
        assert int(count) > 1000 and rest.startswith("tokens, vocabulary ")
    finally:
        removed = _pip("uninstall", "--yes", name)
        assert removed.returncode == 0, removed.stderr
    assert name not in _pip("list", "--format=freeze").stdout


@pytest.mark.parametrize("args, message", [
    (["new-plugin", "Bad_Name"], "use lower-case letters, digits and single hyphens"),
    (["new-plugin", "taken"], "already exists; choose another NAME or remove it"),
    (["new-plugin", "seqlm"], "'seqlm' is already installed here"),
    (["new-plugin", "torch"], "'torch' is already installed here"),
    (["new-plugin", "seqlm-bpe"], "is already installed here"),
    (["new-plugin", "tests"], "a top-level package named 'tests' would clash with other "
     "projects' folders of that name once installed; choose a name of its own, such as "
     "seqlm-tests"),
])
def test_new_plugin_refuses_a_bad_name_or_an_existing_folder(tmp_path, args, message):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep me")
    result = CliRunner().invoke(main, [*args, "--dir", str(tmp_path)])
    assert result.exit_code == 2 and message in result.output
    assert (tmp_path / "taken" / "mine.txt").read_text() == "keep me"


def test_new_plugin_refuses_a_name_whose_components_are_registered(tmp_path):
    import seqlm

    class Installed:
        @seqlm.hookimpl
        def register_cells(self, register):
            register("peephole-cell", "seqlm.cells.torch_cells:TorchLSTM")

    plugins = seqlm.get_plugins()
    plugins.add(Installed(), "installed-peephole", distribution="peephole", version="1.0")
    try:
        result = CliRunner().invoke(main, ["new-plugin", "seqlm-peephole", "--dir",
                                           str(tmp_path)])
    finally:
        plugins.remove("installed-peephole")
    assert result.exit_code == 2
    assert ("new-plugin 'seqlm-peephole': cell 'peephole-cell' would be registered twice: an "
            "installed plugin registers that name already") in result.output
    assert not (tmp_path / "seqlm-peephole").exists()
