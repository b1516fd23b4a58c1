"""Name rules, the same for every kind of registration: built-in names stay seqlm's, a
name two plugins claim is an error only where it is used, a failed hook registers
nothing, and ``seqlm plugins`` shows what was refused."""

from __future__ import annotations

import json

import pytest
from plugin_dists import TINY_RUN, make_dist, run_seqlm, unique, with_cell


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("names")
    shadow, cmd_a, cmd_b, failing = (unique(n) for n in ("shadow", "cmda", "cmdb", "failing"))
    make_dist(root, "seqlm-shadow", {shadow: with_cell('''
        import click
        import seqlm

        @seqlm.hookimpl
        def register_cells(register):
            register("lstm", TanhCell)
            register("tanh-shadow", TanhCell)

        @seqlm.hookimpl
        def register_tokenizers(register):
            register("char", "seqlm.data.tokenizers:WordTokenizer")

        @seqlm.hookimpl
        def register_commands(cli):
            @cli.command()
            def run():
                """Pretend to be seqlm run."""
                click.echo("hijacked")
    ''')}, {"shadow": shadow})
    for dist, module in (("seqlm-cmd-a", cmd_a), ("seqlm-cmd-b", cmd_b)):
        make_dist(root, dist, {module: f'''
            import click
            import seqlm

            @seqlm.hookimpl
            def register_commands(cli):
                @cli.command("vocab-stats")
                def stats():
                    click.echo("{dist}")
        '''}, {"cmds": module})
    make_dist(root, "seqlm-failing", {failing: with_cell('''
        import seqlm

        @seqlm.hookimpl
        def register_cells(register):
            register("tanh-failing", TanhCell)

        @seqlm.hookimpl
        def register_commands(cli):
            raise RuntimeError("no commands today")
    ''')}, {"failing": failing})
    return root


def test_builtin_names_stay_builtin_and_plain_run_works(site, tmp_path, small_text):
    out = tmp_path / "run"
    done = run_seqlm(["run", "--data", str(small_text), "--out", str(out), *TINY_RUN], site)
    assert done.returncode == 0, done.stderr
    assert "hijacked" not in done.stdout and (out / "summary.json").is_file()
    assert json.loads((out / "summary.json").read_text())["config"]["cell"] == "lstm"
    # The plugin's own cell still trains.
    own = run_seqlm(["run", "--cell", "tanh-shadow", "--data", str(small_text),
                     "--out", str(tmp_path / "own"), *TINY_RUN], site)
    assert own.returncode == 0, own.stderr


def test_plugins_lists_commands_and_refusals(site):
    done = run_seqlm(["plugins", "--json"], site)
    assert done.returncode == 0, done.stderr
    rows = {row["distribution"]: row for row in json.loads(done.stdout)}
    shadow = rows["seqlm-shadow"]
    assert shadow["status"] == "ok"
    assert shadow["registered"] == {"cell": ["tanh-shadow"]}
    assert set(shadow["refused"]) == {
        "cell 'lstm' refused: the name is built in",
        "tokenizer 'char' refused: the name is built in",
        "command 'run' refused: seqlm run is built in",
    }
    for dist, other in (("seqlm-cmd-a", "seqlm-cmd-b"), ("seqlm-cmd-b", "seqlm-cmd-a")):
        assert rows[dist]["registered"] == {}
        assert rows[dist]["refused"] == [
            f"command 'vocab-stats' refused: cmds ({other} 1.0) adds one of the same name"]
    # A plugin whose command hook failed registers nothing, its cell included.
    assert rows["seqlm-failing"]["status"].startswith("failed: register_commands raised")
    assert rows["seqlm-failing"]["registered"] == {}
    table = run_seqlm(["plugins"], site)
    assert "command 'run' refused" in table.stdout and "commands: hello" not in table.stdout


def test_a_command_two_plugins_add_is_an_error_naming_both(site):
    done = run_seqlm(["vocab-stats", "--any", "arg"], site)
    assert done.returncode == 2
    line = done.stderr.strip().splitlines()[-1]  # after the failing plugin's report
    assert line.startswith("Error: command 'vocab-stats' is registered by more than one "
                           "plugin: cmds (seqlm-cmd-a 1.0) and cmds (seqlm-cmd-b 1.0)")
    only_a = run_seqlm(["vocab-stats"], site, SEQLM_LOAD_PLUGINS="seqlm-cmd-a")
    assert only_a.returncode == 0 and only_a.stdout.strip() == "seqlm-cmd-a"


def test_a_failed_hook_registers_nothing(site, tmp_path, small_text):
    done = run_seqlm(["run", "--cell", "tanh-failing", "--data", str(small_text),
                      "--out", str(tmp_path / "r"), *TINY_RUN], site)
    assert done.returncode == 2 and "--cell 'tanh-failing' not recognized" in done.stderr
