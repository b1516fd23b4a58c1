"""Recipes: a run's settings as a TOML file, for ``seqlm run --config`` and ``seqlm config``.

A recipe holds the settings of :class:`~seqlm.config.RunConfig` as top-level keys,
spelt as the options are (``batch-size``) or as the fields are (``batch_size``);
``cell-opt``, ``tokenizer-opt``, ``sampler-opt`` and ``trainer-opt`` are tables. Options
typed on the command line override the recipe's, key by key within those tables. A
relative ``data`` path is read from the recipe's folder.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from seqlm.config import RunConfig, setting_types
from seqlm.errors import OptionError, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: Option spellings that differ from the setting's name.
ALIASES = {"cell_opt": "cell_options", "tokenizer_opt": "tokenizer_options",
           "sampler_opt": "sampler_options", "trainer_opt": "trainer_options"}

#: Settings a recipe cannot hold: they name one run, not a way to train.
NOT_IN_RECIPES = ("out", "resume", "force")

#: TOML's names for the value types (as a recipe's author writes them).
_TOML_TYPES = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
               list: 'an array (["a", "b"])', tuple: 'an array (["a", "b"])',
               dict: "a table ({ key = value })"}


def _toml_type(value: Any) -> bool:
    return isinstance(value, (bool, int, float, str, list, dict))


def _expected_types(name: str) -> tuple[type, ...]:
    # A TOML value is never a Path: a path is a string there.
    return tuple(t for t in setting_types(name) if t is not Path) or (str,)


def load_recipe(path: str | Path) -> dict[str, Any]:
    """The settings in the TOML file ``path``, by :class:`RunConfig` field name.

    Unknown keys, run-specific keys (``out``, ``resume``, ``force``) and values of the
    wrong type are usage errors that name the key.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--config {path}: cannot read it ({exc.strerror or exc}); give the "
                         "path of a TOML recipe, such as one in examples/recipes/ or one "
                         "that seqlm config RUN wrote") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"--config {path} is not valid TOML: {exc}") from None
    known = {f.name for f in fields(RunConfig)}
    settings: dict[str, Any] = {}
    spelt: dict[str, str] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        name = ALIASES.get(name, name)
        if name in spelt:  # max-tokens and max_tokens, say: which one was meant?
            raise UsageError(f"--config {path}: {spelt[name]!r} and {key!r} are the same "
                             "setting; keep one")
        spelt[name] = key
        if name in NOT_IN_RECIPES:
            raise UsageError(f"--config {path}: {key!r} names one run and cannot be in a "
                             f"recipe; give --{name.replace('_', '-')} on the command line")
        if name not in known:
            spellings = {_recipe_key(k) for k in known if k not in NOT_IN_RECIPES}
            close = difflib.get_close_matches(key.replace("_", "-").lower(), spellings, n=1)
            fix = f"did you mean {close[0]!r}?" if close else "remove it or fix its spelling"
            raise UsageError(f"--config {path}: {key!r} is not a setting of seqlm run "
                             f"(see seqlm run --help); {fix}")
        types = _expected_types(name)
        # bool is an int in Python, but true is no number of epochs.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            wanted = " or ".join(dict.fromkeys(_TOML_TYPES.get(t, t.__name__) for t in types
                                               if not (t is int and float in types)))
            raise UsageError(f"--config {path}: {key!r} must be {wanted}, got "
                             f"{toml_value(value) if _toml_type(value) else repr(value)}")
        settings[name] = value
    if isinstance(settings.get("data"), str):
        settings["data"] = str((path.parent / settings["data"]).resolve())
    return settings


def _recipe_key(name: str) -> str:
    """How a recipe spells setting ``name``: as its option (``batch-size``, ``cell-opt``)."""
    return {v: k for k, v in ALIASES.items()}.get(name, name).replace("_", "-")


def with_recipe(
    defaults: dict[str, Any], recipe: dict[str, Any], typed: dict[str, Any]
) -> dict[str, Any]:
    """The settings of a run: ``defaults``, then the ``recipe``'s, then those ``typed`` on
    the command line.

    A component's options are merged key by key: ``--cell-opt locked_dropout=true`` adds
    to the recipe's ``cell-opt`` table rather than replacing it, so a recipe's
    ``weight_dropout`` is not lost unseen.
    """
    settings = {**defaults, **recipe, **typed}
    for table in ALIASES.values():
        if table in recipe and table in typed:
            settings[table] = {**recipe[table], **typed[table]}
    return settings


def name_the_recipe(
    error: UsageError, recipe: str | Path, from_recipe: dict[str, Any], typed: dict[str, Any]
) -> None:
    """Make ``error`` say that the setting it is about came from ``recipe``, where it did
    (and the command line did not override it): ``--config r.toml: hidden must be ...``
    rather than ``--hidden must be ...``, a flag the user never typed."""
    if isinstance(error, OptionError):
        table = f"{error.kind}_options"
        if error.key in from_recipe.get(table, {}) and error.key not in typed.get(table, {}):
            error.given = (f"--config {recipe}: {error.kind}-opt {error.key} = "
                           f"{toml_value(error.value)}")
        return
    text = str(error)
    named = re.match(r"(?:--)?([a-z][a-z0-9]*(?:[-_][a-z0-9]+)*)\b", text)
    if named is None or not error.args or error.args[0] != text:
        return
    setting = named.group(1).replace("-", "_")
    if setting in from_recipe and setting not in typed:
        key = setting.replace("_", "-")
        error.args = (f"--config {recipe}: {key}{text[named.end():]}", *error.args[1:])


def toml_value(value: Any) -> str:
    """``value`` as TOML writes it (``"text"``, ``[1, 2]``, ``{ a = 1 }``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        # JSON's string escapes are TOML's; DEL must be escaped in TOML too.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_toml_key(k)} = {toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    raise UsageError(f"cannot write a {type(value).__name__} ({value!r}) into a recipe")


def _toml_key(key: str) -> str:
    bare = key and all(c.isalnum() and c.isascii() or c in "-_" for c in key)
    return key if bare else json.dumps(key, ensure_ascii=False)


def recipe_text(settings: dict[str, Any], title: str = "") -> str:
    """TOML for the settings of :meth:`RunConfig.to_dict`, one option per line.

    Run-specific settings and unset ones (None: the option's own default) are left out.
    """
    lines = [f"# {line}" for line in title.splitlines()]
    for name in RunConfig.field_names():
        value = settings.get(name)
        if name in NOT_IN_RECIPES or value is None:
            continue
        lines.append(f"{_recipe_key(name)} = {toml_value(value)}")
    return "\n".join(lines) + "\n"
