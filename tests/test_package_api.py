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
