"""The built-ins are found through the `seqlm` entry-point group, like any plugin."""

import subprocess
import sys

from seqlm.plugins.manager import Plugins

BUILTINS = {
    "tokenizer": ["char", "word"],
    "sampler": ["random", "sequential"],
    "cell": ["gru", "gru-scratch", "lstm", "lstm-scratch", "rnn", "rnn-scratch"],
    "trainer": ["default"],
}


def test_builtins_come_from_the_seqlm_distribution_through_entry_points():
    plugins = Plugins()
    plugins.load_entry_points(allowed=[])  # the built-ins only
    for kind, names in BUILTINS.items():
        assert set(names) <= set(plugins.choices(kind)), kind
        for name in names:
            (impl,) = plugins.implementations(kind)[name]
            assert plugins.info[impl.plugin].distribution == "seqlm"
    assert all(info.error is None for info in plugins.info.values())


def test_builtin_classes_load_and_implement_their_interfaces():
    from seqlm.interfaces import RecurrentCell, Sampler, Tokenizer, Trainer

    bases = {"tokenizer": Tokenizer, "sampler": Sampler, "cell": RecurrentCell,
             "trainer": Trainer}
    plugins = Plugins()
    plugins.load_entry_points(allowed=[])
    for kind, names in BUILTINS.items():
        for name in names:
            assert issubclass(plugins.get(kind, name), bases[kind])


def test_help_and_plugin_listing_do_not_import_torch():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from seqlm.cli import main\n"
        "for args in (['--help'], ['plugins'], ['run', '--help']):\n"
        "    result = CliRunner().invoke(main, args)\n"
        "    assert result.exit_code == 0, result.output\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
