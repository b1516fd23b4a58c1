"""Loading plugins from entry points: every way a plugin can fail is isolated and reported."""

from __future__ import annotations

import pytest
from plugin_dists import make_dist, unique, with_cell

from seqlm.errors import PluginError, UsageError
from seqlm.plugins.manager import HOOKS, Plugins, get_plugins

BUILTIN_CELLS = {"gru", "gru-scratch", "lstm", "lstm-scratch", "rnn", "rnn-scratch"}


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path for throwaway distributions, and a clean environment."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("SEQLM_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("SEQLM_RAISE_PLUGIN_ERRORS", raising=False)
    return tmp_path


def load(allowed=None) -> Plugins:
    plugins = Plugins()
    plugins.load_entry_points(allowed)
    return plugins


def one_dist(site, name, source, entry="plugin") -> str:
    """A distribution ``name`` whose entry point ``entry`` is a module with ``source``."""
    module = unique(name.replace("-", "_"))
    make_dist(site, name, {module: source}, {entry: module})
    return module


def assert_failed_once(capsys, plugins, dist, reason_part, entry="plugin", version="1.0"):
    err = capsys.readouterr().err
    prefix = f"seqlm: plugin {entry} ({dist} {version}) failed: "
    lines = [line for line in err.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, err
    assert reason_part in lines[0], lines[0]
    (info,) = [i for i in plugins.info.values() if i.distribution == dist]
    assert info.error is not None and reason_part in info.status
    # Everything else still works: the built-ins load and are usable.
    assert BUILTIN_CELLS <= set(plugins.choices("cell"))
    assert plugins.get("tokenizer", "char").__name__ == "CharTokenizer"
    return info


def test_a_good_plugin_registers_its_cell(site, capsys):
    module = one_dist(site, "seqlm-good", with_cell("""
        import seqlm

        @seqlm.hookimpl
        def register_cells(register):
            register("tanh-test", TanhCell)
    """), entry="good")
    plugins = load()
    assert capsys.readouterr().err == ""
    info = plugins.info["seqlm-good:good"]
    assert (info.name, info.version, info.status) == ("good", "1.0", "ok")
    assert info.registered == {"cell": ["tanh-test"]}
    assert info.hooks == ["register_cells"]
    assert plugins.get("cell", "tanh-test").__module__ == module


def test_import_error_is_reported_once_and_left_out(site, capsys):
    module = one_dist(site, "seqlm-broken", "raise RuntimeError('no GPU driver here')\n")
    plugins = load()
    info = assert_failed_once(capsys, plugins, "seqlm-broken",
                              f"import of {module} raised RuntimeError: no GPU driver here")
    # The line on stderr points to where each such message is explained; the status
    # that seqlm plugins shows is the reason alone.
    assert "see docs/plugins/troubleshooting.md" not in info.status


def test_missing_module_and_sys_exit_on_import_are_isolated(site, capsys):
    make_dist(site, "seqlm-ghost", {}, {"plugin": "no_such_module_anywhere"})
    one_dist(site, "seqlm-quitter", "import sys\nsys.exit(3)\n")
    plugins = load()
    err = capsys.readouterr().err
    assert "seqlm: plugin plugin (seqlm-ghost 1.0) failed: import of no_such_module_anywhere " \
           "raised ModuleNotFoundError" in err
    assert all(line.endswith("; see docs/plugins/troubleshooting.md")
               for line in err.splitlines() if line.startswith("seqlm: plugin "))
    assert "seqlm: plugin plugin (seqlm-quitter 1.0) failed: import of " in err
    assert "raised SystemExit: 3" in err
    assert BUILTIN_CELLS <= set(plugins.choices("cell"))


def test_a_plugin_that_changes_torchs_default_dtype_at_import_is_left_out(site, capsys):
    import torch

    one_dist(site, "seqlm-doubles", "import torch\ntorch.set_default_dtype(torch.float64)\n")
    plugins = load()
    assert_failed_once(capsys, plugins, "seqlm-doubles", "changed torch's default dtype to "
                       "torch.float64 (seqlm set it back to torch.float32); a plugin must "
                       "leave torch's global settings as it found them")
    assert torch.get_default_dtype() == torch.float32


def test_ctrl_c_while_plugins_load_ends_as_a_stop_does(site):
    from plugin_dists import run_seqlm

    one_dist(site, "seqlm-slow", "raise KeyboardInterrupt\n")
    result = run_seqlm(["plugins"], pythonpath=site)
    assert result.returncode == 130
    assert result.stderr == "Interrupted.\n"


def test_hook_that_raises_is_left_out_with_everything_it_registered(site, capsys):
    one_dist(site, "seqlm-raiser", with_cell("""
        import seqlm

        @seqlm.hookimpl
        def register_tokenizers(register):
            register("half-registered", "x.y:Z")

        @seqlm.hookimpl
        def register_cells(register):
            raise ValueError("cannot find weights")
    """))
    plugins = load()
    assert_failed_once(capsys, plugins, "seqlm-raiser",
                       "register_cells raised ValueError: cannot find weights")
    assert "half-registered" not in plugins.choices("tokenizer")


@pytest.mark.parametrize(("registration", "reason"), [
    ("register('bad', object)", "object does not subclass seqlm.interfaces.RecurrentCell"),
    ("register('bad', 42)", "expected a class, got int 42"),
    ("register('bad', Abstract)", "Abstract leaves abstract methods unimplemented: forward"),
    ("register('bad', TanhCell); register('bad', TanhCell)", "registered cell 'bad' twice"),
    ("register('bad', 'module_without_colon')", "a string must be 'module:Class'"),
    ("register('two words', TanhCell)", "invalid name 'two words'"),
])
def test_registering_something_that_is_not_a_cell_fails(site, capsys, registration, reason):
    one_dist(site, "seqlm-wrong", with_cell(f"""
        import seqlm

        class Abstract(seqlm.RecurrentCell):
            def begin_state(self, batch_size, device):
                return None

        @seqlm.hookimpl
        def register_cells(register):
            {registration}
    """))
    plugins = load()
    assert_failed_once(capsys, plugins, "seqlm-wrong", reason)
    assert "bad" not in plugins.choices("cell")


def test_a_class_of_the_wrong_kind_is_refused(site, capsys):
    one_dist(site, "seqlm-mixup", """
        import seqlm
        from seqlm.data.tokenizers import CharTokenizer

        @seqlm.hookimpl
        def register_samplers(register):
            register("chars", CharTokenizer)
    """)
    plugins = load()
    assert_failed_once(capsys, plugins, "seqlm-mixup",
                       "CharTokenizer does not subclass seqlm.interfaces.Sampler")


def test_misspelled_hook_is_reported_with_the_known_hooks(site, capsys):
    one_dist(site, "seqlm-typo", """
        import seqlm

        @seqlm.hookimpl
        def register_cell(register):
            register("never", "x:Y")
    """)
    plugins = load()
    info = assert_failed_once(capsys, plugins, "seqlm-typo", "implements unknown hook "
                              "register_cell (known hooks: " + ", ".join(HOOKS) + ")")
    assert info.registered == {}


def test_misnamed_hook_argument_and_missing_marker_fail(site, capsys):
    one_dist(site, "seqlm-argname", """
        import seqlm

        @seqlm.hookimpl
        def register_cells(reg):
            reg("never", "x:Y")
    """)
    one_dist(site, "seqlm-unmarked", """
        def register_cells(register):
            register("never", "x:Y")
    """)
    plugins = load()
    err = capsys.readouterr().err
    assert "plugin plugin (seqlm-argname 1.0) failed: " in err and "'reg'" in err
    assert "plugin plugin (seqlm-unmarked 1.0) failed: implements no seqlm hook" in err
    assert "never" not in plugins.choices("cell")


def test_lazy_class_that_fails_is_an_error_only_when_chosen(site, capsys):
    one_dist(site, "seqlm-lazy", """
        import seqlm

        @seqlm.hookimpl
        def register_cells(register):
            register("lazy-missing", "no_such_module_xyz:Cell")
            register("lazy-wrong", "collections:OrderedDict")
    """)
    plugins = load()
    assert capsys.readouterr().err == ""
    with pytest.raises(PluginError, match=r"^plugin plugin \(seqlm-lazy 1.0\) failed: cell "
                       r"'lazy-missing' could not be imported from no_such_module_xyz:Cell: "
                       "ModuleNotFoundError"):
        plugins.get("cell", "lazy-missing")
    with pytest.raises(PluginError, match="OrderedDict does not subclass seqlm.interfaces"
                       r".*; see docs/plugins/contracts.md#recurrentcell$"):
        plugins.get("cell", "lazy-wrong")
    assert plugins.get("cell", "lstm").__name__ == "TorchLSTM"


def test_raise_plugin_errors_turns_failures_into_exceptions(site, monkeypatch):
    one_dist(site, "seqlm-broken", "raise RuntimeError('boom')\n")
    monkeypatch.setenv("SEQLM_RAISE_PLUGIN_ERRORS", "1")
    with pytest.raises(PluginError, match=r"plugin plugin \(seqlm-broken 1.0\) failed: import "
                       "of .* raised RuntimeError: boom") as caught:
        load()
    assert isinstance(caught.value.__cause__, RuntimeError)


def _dup_source(doc: str) -> str:
    return with_cell(f"""
        import seqlm

        class Dup(TanhCell):
            \"\"\"{doc}\"\"\"

        @seqlm.hookimpl
        def register_cells(register):
            register("dup", Dup)
    """)


def test_two_plugins_with_one_name_is_an_error_naming_both(site, capsys):
    one_dist(site, "seqlm-first", _dup_source("first"), entry="first")
    one_dist(site, "seqlm-second", _dup_source("second"), entry="second")
    plugins = load()
    err = capsys.readouterr().err
    with pytest.raises(UsageError) as caught:
        plugins.get("cell", "dup")
    message = str(caught.value)
    for text in ("first (seqlm-first 1.0)", "second (seqlm-second 1.0)", "SEQLM_LOAD_PLUGINS",
                 "uninstall"):
        assert text in message
    plugins.report_conflicts()
    assert message in capsys.readouterr().err
    assert err == ""  # load_entry_points itself reports failures only; get_plugins warns
    # Choosing the distributions resolves it.
    only_first = load(["seqlm-first"])
    assert only_first.get("cell", "dup").__doc__ == "first"


def test_a_plugin_cannot_take_a_builtin_name_and_keeps_its_other_names(site):
    one_dist(site, "seqlm-shadow", with_cell("""
        import seqlm

        @seqlm.hookimpl
        def register_cells(register):
            register("lstm", TanhCell)
            register("tanh-own", TanhCell)
    """))
    plugins = load()
    assert plugins.get("cell", "lstm").__name__ == "TorchLSTM"
    assert plugins.get("cell", "tanh-own").__name__ == "TanhCell"
    info = next(i for i in plugins.info.values() if i.distribution == "seqlm-shadow")
    assert info.status == "ok" and info.registered == {"cell": ["tanh-own"]}
    assert info.refused == ["cell 'lstm' refused: the name is built in"]


def test_load_plugins_limits_the_distributions(site, capsys):
    one_dist(site, "seqlm-broken", "raise RuntimeError('boom')\n")
    one_dist(site, "seqlm-good", """
        import seqlm

        @seqlm.hookimpl
        def register_tokenizers(register):
            register("good-chars", "seqlm.data.tokenizers:CharTokenizer")
    """)
    builtins_only = load([])
    assert capsys.readouterr().err == ""
    assert {i.distribution for i in builtins_only.info.values()} == {"seqlm"}
    good_only = load(["SEQLM_good"])  # names compare as pip does: case, - and _ alike
    assert capsys.readouterr().err == ""
    assert {i.distribution for i in good_only.info.values()} == {"seqlm", "seqlm-good"}
    assert "good-chars" in good_only.choices("tokenizer")
    load(["seqlm-good", "seqlm-nonesuch"])
    err = capsys.readouterr().err
    assert "SEQLM_LOAD_PLUGINS names seqlm-nonesuch, which provides no seqlm plugin" in err


def test_dist_info_without_metadata_is_named_after_its_folder(site, capsys):
    module = unique("bare")
    make_dist(site, "seqlm-bare", {module: "raise ImportError('x')\n"}, {"plugin": module},
              version="0.3", metadata=False)
    load()
    assert "seqlm: plugin plugin (seqlm_bare 0.3) failed: import of" in capsys.readouterr().err


def test_add_refuses_a_taken_name_and_remove_forgets():
    plugins = Plugins()
    plugins.load_entry_points([])

    class Extra:
        @staticmethod
        def register_samplers(register):  # not marked: not a hook
            raise AssertionError("unmarked functions are never called")

    with pytest.raises(PluginError, match="already registered"):
        plugins.add(object(), "seqlm:cells")
    info = plugins.add(Extra(), "extra")
    assert "implements no seqlm hook" in info.status
    # The failed plugin keeps its name until removed, and the refusal says so.
    with pytest.raises(PluginError, match="'extra' is already registered \\(and failed: "
                       "implements no seqlm hook.*\\); remove\\('extra'\\) first"):
        plugins.add(Extra(), "extra")
    plugins.remove("extra")
    assert "extra" not in plugins.info


def test_builtins_are_registered_without_any_entry_point(monkeypatch):
    # A source tree that was never pip-installed has no entry points at all; every
    # built-in must still be there, registered by the plugin manager itself.
    from importlib import metadata

    from seqlm.plugins.manager import reset_plugins

    monkeypatch.setattr(metadata, "entry_points", lambda **_: [])
    monkeypatch.delenv("SEQLM_LOAD_PLUGINS", raising=False)
    reset_plugins()
    try:
        plugins = get_plugins()
        assert {"lstm", "gru", "rnn", "lstm-scratch"} <= set(plugins.choices("cell"))
        assert {"char", "word"} <= set(plugins.choices("tokenizer"))
        assert {"sequential", "random"} <= set(plugins.choices("sampler"))
        assert {"default", "ddp"} <= set(plugins.choices("trainer"))
        assert all(info.builtin for info in plugins.info.values())
    finally:
        reset_plugins()
