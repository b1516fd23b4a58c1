"""The names ``import seqlm`` exports stay the functions and classes they are.

Importing a submodule binds it as an attribute of the package; a submodule named like an
exported function would replace that function once anything imported it (as
``seqlm.run`` does). Every export must survive importing every submodule.
"""

import importlib
import inspect
import pkgutil

import seqlm


def test_exports_are_not_shadowed_by_submodules():
    for info in pkgutil.walk_packages(seqlm.__path__, "seqlm."):
        if info.name != "seqlm.__main__":
            importlib.import_module(info.name)
    for name in seqlm.__all__:
        value = getattr(seqlm, name)
        assert not inspect.ismodule(value), f"seqlm.{name} is the module {value.__name__}"


def test_generate_continues_a_prefix_after_a_run(small_text, tmp_path):
    result = seqlm.run(data=small_text, out=tmp_path / "run", epochs=1, hidden=8,
                       batch_size=4, num_steps=8, predict=3)
    text = seqlm.generate(result.model, result.vocab, result.tokenizer, "the time", 10)
    assert isinstance(text, str) and text.startswith("the time")


def test_the_model_a_run_returns_scores_the_same_every_time(small_text, tmp_path):
    import torch

    result = seqlm.run(data=small_text, out=tmp_path / "run", epochs=1, hidden=8,
                       batch_size=4, num_steps=8, predict=3, dropout=0.5, embedding_dim=4)
    assert not result.model.training  # dropout off, as for a loaded run
    ids = torch.tensor([result.vocab[list("the time")]])
    state = result.model.begin_state(1, result.device)
    with torch.no_grad():
        first, _ = result.model(ids, state)
        again, _ = result.model(ids, state)
    assert torch.equal(first, again)


def test_the_package_says_it_is_typed():
    from importlib import resources

    assert resources.files("seqlm").joinpath("py.typed").is_file()


def test_the_paths_the_docs_give_plugin_authors_keep_working():
    from seqlm.callbacks import Callback, RunInfo
    from seqlm.config import RunConfig
    from seqlm.errors import ContractError, PluginError, SeqlmError, UsageError  # noqa: F401
    from seqlm.hookspecs import hookimpl  # noqa: F401
    from seqlm.interfaces import Callback as InterfaceCallback
    from seqlm.interfaces import RecurrentCell, Sampler, Tokenizer, Trainer  # noqa: F401
    from seqlm.metrics import EpochMetrics, bits_per_token  # noqa: F401
    from seqlm.plugins import get_plugins
    from seqlm.testing import check_cell, parametrize_checks  # noqa: F401

    assert Callback is InterfaceCallback and RunInfo.__module__ == "seqlm.interfaces"
    assert seqlm.Callback is Callback and seqlm.RunConfig is RunConfig
    assert seqlm.get_plugins is get_plugins
    assert "lstm" in get_plugins().choices("cell")


def test_the_command_line_entry_point_is_where_pyproject_says():
    from importlib import metadata

    from seqlm.cli import main

    scripts = {ep.name: ep for ep in metadata.entry_points(group="console_scripts")}
    assert scripts["seqlm"].value == "seqlm.cli:main"
    assert scripts["seqlm"].load() is main


def test_a_saved_run_is_loaded_measured_and_continued_from_the_package(small_text, tmp_path):
    import torch

    result = seqlm.run(data=small_text, out=tmp_path / "run", epochs=1, hidden=8,
                       batch_size=4, num_steps=8, predict=3)
    saved = seqlm.load_trained(result.out_dir, device=torch.device("cpu"))
    assert isinstance(saved, seqlm.TrainedModel) and not saved.model.training
    figures = seqlm.evaluate_text(result.out_dir, held_out=True, dynamic=True)
    assert figures["dynamic"]["perplexity"] > 1
    default = seqlm.DynamicSettings()
    assert figures["dynamic"]["lr"] == default.lr
    text = seqlm.generate_text(result.out_dir, "the time", 5, greedy=True)
    assert text.startswith("the time")


def test_the_saved_run_functions_refuse_wrong_types_in_one_line(small_text, tmp_path):
    import pytest

    result = seqlm.run(data=small_text, out=tmp_path / "run", epochs=1, hidden=8,
                       batch_size=4, num_steps=8, predict=3)
    with pytest.raises(seqlm.SeqlmError, match="prefix must be a str"):
        seqlm.generate_text(result.out_dir, 5, 10)
    with pytest.raises(seqlm.SeqlmError, match="dynamic must be a DynamicSettings"):
        seqlm.evaluate_text(result.out_dir, held_out=True, dynamic="yes")
    with pytest.raises(seqlm.SeqlmError, match="--device must be a name"):
        seqlm.load_trained(result.out_dir, device=3)
    with pytest.raises(seqlm.SeqlmError, match="^a run folder must be a str or a Path, got "
                       "int 5$"):
        seqlm.load_trained(5)
    with pytest.raises(seqlm.SeqlmError, match="a run folder must be a str or a Path, got "
                       "NoneType"):
        seqlm.evaluate_text([result.out_dir, None], held_out=True)
    with pytest.raises(seqlm.SeqlmError, match="^checkpoint 'worst' is not one of best, last "
                       "or epoch-N"):
        seqlm.load_trained(result.out_dir, which="worst")
    with pytest.raises(seqlm.SeqlmError, match="checkpoint '../a/best' is not one of"):
        seqlm.load_trained(result.out_dir, which="../a/best")
    with pytest.raises(seqlm.SeqlmError, match="^held_out must be True or False, got 'yes'$"):
        seqlm.evaluate_text(result.out_dir, held_out="yes")
    import torch

    assert seqlm.load_trained(result.out_dir, device=torch.device("cpu")).epoch == 1
    again = seqlm.run(data=small_text, out=tmp_path / "again", epochs=1, hidden=8,
                      batch_size=4, num_steps=8, predict=3, quiet=True,
                      device=next(result.model.parameters()).device)  # a torch.device
    assert again.summary["device"] == "cpu"


def test_run_refuses_a_console_or_quiet_of_another_type_before_any_folder(tmp_path):
    import pytest

    with pytest.raises(seqlm.SeqlmError, match="console must be a rich.console.Console"):
        seqlm.run(out=tmp_path / "r", console="stdout")
    with pytest.raises(seqlm.SeqlmError, match="quiet must be True or False"):
        seqlm.run(out=tmp_path / "r", quiet="yes")
    assert not (tmp_path / "r").exists()


def test_generate_refuses_a_blank_prefix_as_the_commands_do(small_text, tmp_path):
    import pytest

    result = seqlm.run(data=small_text, out=tmp_path / "run", epochs=1, hidden=8,
                       batch_size=4, num_steps=8, predict=3)
    with pytest.raises(seqlm.SeqlmError, match="--prefix is empty; give some text"):
        seqlm.generate(result.model, result.vocab, result.tokenizer, "   ", 5)
