"""``seqlm plugins``, ``seqlm list`` and unknown names, run as a user runs them.

Most tests invoke the CLI in-process with the throwaway site on ``sys.path``; a few run
``python -m seqlm`` in a subprocess, where start-up itself is what is tested.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from plugin_dists import TINY_RUN, make_dist, run_seqlm, unique, with_cell

from seqlm.cli import main
from seqlm.plugins.manager import reset_plugins


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """One good plugin (a cell and a command), one that fails to import, one misspelled."""
    root = tmp_path_factory.mktemp("site")
    good, broken, typo = unique("good"), unique("broken"), unique("typo")
    make_dist(root, "seqlm-good", {good: with_cell('''
        import click
        import seqlm

        @seqlm.hookimpl
        def register_cells(register):
            register("tanh-test", "{module}:TanhCell")

        @seqlm.hookimpl
        def register_commands(cli):
            @cli.command()
            def hello():
                """Say hello from a plugin."""
                click.echo("hello from seqlm-good")
    '''.replace("{module}", good))}, {"good": good}, version="2.5")
    make_dist(root, "seqlm-broken", {broken: "raise RuntimeError('boom at import')\n"},
              {"broken": broken})
    make_dist(root, "seqlm-typo", {typo: """
        import seqlm

        @seqlm.hookimpl
        def register_cell(register):
            pass
    """}, {"typo": typo})
    return root


@pytest.fixture
def cli(site, monkeypatch):
    """Invoke ``seqlm ARGS`` in-process with the site's plugins loaded afresh."""
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("SEQLM_RAISE_PLUGIN_ERRORS", raising=False)
    monkeypatch.delenv("SEQLM_LOAD_PLUGINS", raising=False)
    reset_plugins()

    def invoke(*args: str, **env: str):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        reset_plugins()
        return CliRunner().invoke(main, list(args))

    yield invoke
    reset_plugins()


def test_plugins_json_lists_every_plugin_with_its_status(cli):
    result = cli("plugins", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["good"] == {
        "name": "good", "distribution": "seqlm-good", "version": "2.5",
        "hooks": ["register_cells", "register_commands"],
        "registered": {"cell": ["tanh-test"], "command": ["hello"]}, "refused": [],
        "status": "ok",
    }
    assert rows["broken"]["status"].startswith("failed: import of ")
    assert rows["broken"]["status"].endswith("raised RuntimeError: boom at import")
    assert rows["typo"]["status"] == (
        "failed: implements unknown hook register_cell (known hooks: register_tokenizers, "
        "register_samplers, register_cells, register_trainers, register_callbacks, "
        "register_commands)")
    assert rows["cells"]["distribution"] == "seqlm"
    assert rows["cells"]["registered"]["cell"][:3] == ["lstm", "gru", "rnn"]


def test_plugins_table(cli, monkeypatch):
    # Wide enough that no cell wraps, whichever plugins are installed beside these.
    monkeypatch.setenv("COLUMNS", "250")
    result = cli("plugins")
    assert result.exit_code == 0, result.output
    for text in ("Plugin", "Distribution", "Version", "Registered", "Status",
                 "seqlm-good", "2.5", "tanh-test", "failed: import of"):
        assert text in result.stdout


def test_a_plugin_whose_hook_raised_shows_nothing_registered(monkeypatch):
    import seqlm

    class Raiser:
        @seqlm.hookimpl
        def register_cells(self, register):
            raise KeyError("x")

    plugins = seqlm.get_plugins()
    info = plugins.add(Raiser(), "raiser", distribution="seqlm-raiser", version="0.1")
    try:
        assert info.hooks == ["register_cells"] and info.status.startswith("failed")
        monkeypatch.setenv("COLUMNS", "250")
        result = CliRunner().invoke(main, ["plugins"])
    finally:
        plugins.remove("raiser")
    [row] = [line for line in result.stdout.splitlines() if "seqlm-raiser" in line]
    # Its hook is not shown in the Registered column as if it had registered something.
    assert row.split("│")[4].strip() == ""
    assert "failed: register_cells raised KeyError" in row


def test_list_cells_shows_class_plugin_and_docstring(cli):
    result = cli("list", "cells", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) >= {"lstm", "gru", "rnn", "tanh-test"}
    assert rows["tanh-test"]["class"].endswith(":TanhCell")
    assert rows["tanh-test"]["plugin"] == "good (seqlm-good 2.5)"
    assert rows["tanh-test"]["description"] == "A one-layer tanh RNN for plugin tests."
    assert rows["lstm"]["description"].startswith("Long short-term memory")
    table = cli("list", "tokenizers")
    assert table.exit_code == 0 and "One token per" in table.stdout


@pytest.mark.parametrize("kind", ["cell", "sampler", "tokenizer", "trainer"])
def test_unknown_name_lists_the_choices(cli, kind):
    result = cli("run", f"--{kind}", "nonesuch", "--epochs", "1")
    assert result.exit_code == 2
    expected = {"cell": "gru, gru-scratch, lstm, lstm-scratch, rnn, rnn-scratch, tanh-test",
                "sampler": "random, sequential", "tokenizer": "char", "trainer": "default"}
    assert f"Error: --{kind} 'nonesuch' not recognized. Choose one of: " in result.stderr
    assert expected[kind] in result.stderr


def test_load_plugins_empty_loads_builtins_only(cli):
    result = cli("plugins", "--json", SEQLM_LOAD_PLUGINS="")
    assert result.exit_code == 0 and result.stderr == ""
    assert {row["distribution"] for row in json.loads(result.stdout)} == {"seqlm"}
    only_good = cli("plugins", "--json", SEQLM_LOAD_PLUGINS="seqlm-good")
    assert only_good.stderr == ""
    assert {r["name"] for r in json.loads(only_good.stdout)} >= {"good", "cells"}


def test_an_empty_list_says_none_is_installed(cli):
    result = cli("list", "callbacks", SEQLM_LOAD_PLUGINS="")
    assert result.exit_code == 0
    assert result.stdout == ("no callbacks are loaded: SEQLM_LOAD_PLUGINS names the plugins "
                             "to load\n")
    assert json.loads(cli("list", "callbacks", "--json", SEQLM_LOAD_PLUGINS="").stdout) == []


def test_tokenizer_opt_is_checked_against_the_constructor(cli, small_text, tmp_path):
    result = cli("run", "--tokenizer-opt", "size=3", "--data", str(small_text),
                 "--out", str(tmp_path / "out"), *TINY_RUN)
    assert result.exit_code == 2
    assert "Error: tokenizer 'char' does not accept option 'size'; its options: (none)" \
        in result.stderr


# -- in a subprocess: what happens at start-up ------------------------------------------


def test_broken_plugins_are_reported_once_and_do_not_stop_run(site, small_text, tmp_path):
    result = run_seqlm(["run", "--cell", "tanh-test", "--data", str(small_text),
                        "--out", str(tmp_path / "out"), *TINY_RUN], site)
    assert result.returncode == 0, result.stderr
    assert "sample: time traveller" in result.stdout
    lines = result.stderr.splitlines()
    assert sum(line.startswith("seqlm: plugin broken (seqlm-broken 1.0) failed: import of")
               for line in lines) == 1
    assert sum(line.startswith("seqlm: plugin typo (seqlm-typo 1.0) failed: implements")
               for line in lines) == 1


def test_plugin_command_and_raise_plugin_errors(site):
    hello = run_seqlm(["hello"], site, SEQLM_LOAD_PLUGINS="seqlm-good")
    assert hello.returncode == 0 and hello.stdout.strip() == "hello from seqlm-good"
    result = run_seqlm(["plugins"], site, SEQLM_RAISE_PLUGIN_ERRORS="1")
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "RuntimeError: boom at import" in result.stderr
    assert "PluginError: plugin broken (seqlm-broken 1.0) failed" in result.stderr


def test_conflicting_names_are_an_error_naming_both(tmp_path, small_text):
    for dist in ("seqlm-one", "seqlm-two"):
        module = unique(dist.replace("-", "_"))
        make_dist(tmp_path, dist, {module: with_cell("""
            import seqlm

            @seqlm.hookimpl
            def register_cells(register):
                register("same", TanhCell)
        """)}, {"cells": module})
    result = run_seqlm(["run", "--cell", "same", "--data", str(small_text),
                        "--out", str(tmp_path / "out"), *TINY_RUN], tmp_path)
    assert result.returncode == 2
    # Said once, where the name is used, and not at start-up.
    [error] = result.stderr.splitlines()
    assert error.startswith("Error: cell 'same' is registered by more than one plugin: "
                            "cells (seqlm-one 1.0) and cells (seqlm-two 1.0)")
    assert "SEQLM_LOAD_PLUGINS" in error
    # Runs that do not use the name do not hear of it.
    plain = run_seqlm(["list", "samplers"], tmp_path)
    assert plain.returncode == 0 and "more than one plugin" not in plain.stderr


def test_what_plugins_print_stays_out_of_the_results_on_stdout(tmp_path, small_text):
    noisy = unique("noisy")
    make_dist(tmp_path, "seqlm-noisy", {noisy: with_cell('''
        import seqlm

        print("NOISY: imported")

        class Chatty(TanhCell):
            def forward(self, inputs, state):
                print("NOISY: forward")
                return super().forward(inputs, state)

        @seqlm.hookimpl
        def register_cells(register):
            print("NOISY: registering")
            register("chatty", Chatty)
    ''')}, {"noisy": noisy})
    listed = run_seqlm(["plugins", "--json"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert any(p["distribution"] == "seqlm-noisy" for p in json.loads(listed.stdout))
    assert "NOISY: imported" in listed.stderr
    out = tmp_path / "run"
    trained = run_seqlm(["run", "--cell", "chatty", "--data", str(small_text), "--out",
                         str(out), *TINY_RUN], tmp_path)
    assert trained.returncode == 0, trained.stderr
    measured = run_seqlm(["eval", str(out), "--held-out", "--json"], tmp_path)
    assert measured.returncode == 0, measured.stderr
    assert json.loads(measured.stdout)["tokens"] > 0
    assert "NOISY: forward" in measured.stderr
    generated = run_seqlm(["generate", str(out), "--length", "5"], tmp_path)
    assert generated.returncode == 0, generated.stderr
    assert "NOISY" not in generated.stdout and len(generated.stdout.splitlines()) == 1
