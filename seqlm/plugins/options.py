"""Options for a component's constructor (``--cell-opt KEY=VALUE`` and friends), checked
and converted before anything is built.

A value typed on the command line is text. Each option gets the type that the
constructor's annotation gives, or else the type of its default; each annotation is
resolved on its own, so one that names what the module imports only for type checkers
leaves the others their types. ``true``/``false``, ``yes``/``no`` and ``1``/``0`` (any
case) are booleans; an :class:`enum.Enum` takes a member's name (any case) or its value.
An option with neither annotation nor default is read as JSON where it parses (``3``,
``0.5``, ``"text"``), else kept as text. A list, tuple or object is given as JSON, and
its elements are converted as the annotation's parameters say (``list[int]``,
``dict[str, float]``). A value that does not fit is a one-line usage error naming the
option, the value and the type expected, given before the run folder is made.
"""

from __future__ import annotations

import enum
import inspect
import json
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from seqlm.config.bounds import python_number
from seqlm.errors import OptionError, UsageError, refuse
from seqlm.plugins.manager import check_options

_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0")
_NONE = ("none", "null")
#: The flags that set the arguments seqlm passes to every component itself.
_FIXED_FLAGS = {"lr": "--lr", "clip": "--clip", "epochs": "--epochs", "device": "--device",
                "batch_size": "--batch-size", "num_steps": "--num-steps",
                "hidden_size": "--hidden", "num_layers": "--num-layers",
                "input_size": "--embedding-dim (the vocabulary sets it otherwise)"}


def convert_options(
    kind: str,
    name: str,
    cls: type,
    options: Mapping[str, Any],
    fixed: Iterable[str] = (),
    flags: Mapping[str, str] | None = None,
    origin: str = "",
) -> dict[str, Any]:
    """``options`` checked against ``cls``'s constructor and converted to its types.

    ``fixed`` are the arguments the framework passes itself; ``flags`` maps an option
    that has a command-line flag of its own (such as ``bidirectional``) to that flag.
    Raises :class:`UsageError` for an option the constructor does not take, a value of
    the wrong type, or a required option (no default) that was not given. ``origin``
    (`` from DIST VERSION``) follows the component's name in messages.
    """
    fixed = tuple(fixed)
    flags = dict(flags or {})
    for key, value in options.items():
        if key in fixed:
            own = _FIXED_FLAGS.get(key)
            hint = f"; use {own}" if own else ""
            raise OptionError(kind, key, value, f"seqlm passes {key} to every {kind} itself, "
                              f"so it cannot be a --{kind}-opt{hint}")
        if key in flags:
            raise OptionError(kind, key, value, f"{key} is set with {flags[key]}, not "
                              f"--{kind}-opt; use {flags[key]}")
    check_options(kind, name, cls, options, fixed=fixed, flags=flags, origin=origin)
    params = _parameters(cls)
    hints = _type_hints(cls)
    missing = [p.name for p in params.values()
               if p.name not in fixed and p.name not in options and p.default is p.empty
               and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if missing:
        raise UsageError(f"{kind} {name!r}{origin} requires option {missing[0]!r}, which has no "
                         f"default; pass --{kind}-opt {missing[0]}=VALUE")
    _check_defaults(kind, name, params, hints, skip={*fixed, *options}, origin=origin)
    converted: dict[str, Any] = {}
    for key, value in options.items():
        expected = _expected_type(params.get(key), hints)
        try:
            converted[key] = convert_value(value, expected)
        except ValueError:
            raise OptionError(kind, key, value, f"option {key!r} of {kind} {name!r}{origin} "
                              f"expects {describe_type(expected)}") from None
    return converted


def _check_defaults(kind: str, name: str, params: Mapping[str, inspect.Parameter],
                    hints: Mapping[str, Any], skip: set[str], origin: str) -> None:
    """Each default the component will run with fits the option's annotation: one that
    does not (``scale: float = "big"``) would fail deep in training, or train on
    silently, without the option ever being named. None passes (``x: float = None`` is
    a common way to say "not given")."""
    for param in params.values():
        if (param.name in skip or param.default is param.empty or param.default is None
                or isinstance(param.default, float)):
            # A float default is the author's own, inf or nan included (max_norm=math.inf):
            # only what users type must be finite.
            continue
        expected = _expected_type(param, hints)
        try:
            convert_value(param.default, expected)
        except ValueError:
            raise refuse(f"{kind} {name!r}{origin}", kind,
                         f"option {param.name!r} defaults to {param.default!r}, which is not "
                         f"{describe_type(expected)} as its annotation says") from None


def convert_value(value: Any, expected: Any) -> Any:
    """``value`` as the type ``expected`` (None: read text as JSON where it parses).

    Raises ValueError when it does not fit.
    """
    value = python_number(value)  # numpy's scalars, given from Python
    if expected is None or expected is inspect.Parameter.empty or expected is Any:
        return _json_or_text(value)
    args = typing.get_args(expected)
    if _is_union(expected):
        if type(None) in args and (value is None or
                                   (isinstance(value, str) and value.lower() in _NONE)):
            return None
        for arm in (a for a in args if a is not type(None)):
            try:
                return convert_value(value, arm)
            except ValueError:
                continue
        raise ValueError(value)
    origin = typing.get_origin(expected) or expected
    if _is_enum(origin):  # before int and str: an IntEnum or a StrEnum is one of those too
        return _to_member(value, origin)
    if origin is typing.Literal:
        for choice in args:
            try:
                if convert_value(value, type(choice)) == choice:
                    return choice
            except ValueError:
                continue
        raise ValueError(value)
    if origin is bool:
        return _to_bool(value)
    if origin is int:
        return _to_int(value)
    if origin is float:
        return _to_float(value)
    if origin is str:
        return value if isinstance(value, str) else json.dumps(value)
    if origin in (list, tuple, dict):
        parsed = _json_or_text(value)
        # A list or a tuple for either: a value converted once already (a tuple option
        # passes through the check twice), or a tuple from Python.
        if not isinstance(parsed, dict if origin is dict else (list, tuple)):
            raise ValueError(value)
        return _convert_items(parsed, origin, args)
    return _json_or_text(value)  # a type seqlm does not know: the constructor checks it


def _convert_items(parsed: list | tuple | dict, origin: type, args: tuple[Any, ...]) -> Any:
    """The elements of a parsed JSON list or object as the annotation's parameters say
    (``list[int]``, ``tuple[int, ...]``, ``tuple[int, str]``, ``dict[str, float]``); a
    bare ``list``, ``tuple`` or ``dict`` takes them as they are."""
    if origin is dict:
        if not args:
            return parsed
        return {convert_value(key, args[0]): convert_value(item, args[1])
                for key, item in parsed.items()}
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(parsed) != len(args):  # a fixed-length tuple: one type per place
            raise ValueError(parsed)
        return tuple(convert_value(item, arm) for item, arm in zip(parsed, args, strict=True))
    items = [convert_value(item, args[0]) for item in parsed] if args else list(parsed)
    return tuple(items) if origin is tuple else items


def same_options(
    saved: Mapping[str, Any], given: Mapping[str, Any], cls: type | None = None
) -> bool:
    """Whether options ``given`` (text, as typed) are the ``saved`` (converted) ones.

    With ``cls``, both sides are converted as its constructor's annotations say, as the
    run converts them (a saved tuple read back from JSON is a list). Without it, each
    given value is read as the type of the saved one, and a saved None is what the run
    made of ``none`` or ``null`` (any case).
    """
    if set(saved) != set(given):
        return False
    params = _parameters(cls) if cls is not None else {}
    hints = _type_hints(cls) if cls is not None else {}
    for key, old in saved.items():
        try:
            if cls is not None and key in params:
                expected = _expected_type(params[key], hints)
                if convert_value(given[key], expected) != convert_value(old, expected):
                    return False
            elif not _same_as_saved(given[key], old):
                return False
        except ValueError:
            return False
    return True


def _same_as_saved(value: Any, old: Any) -> bool:
    """Whether ``value`` is the saved ``old``, read as the type ``old`` has."""
    if old is None:
        # Only none or null (or a None from Python) can have given a None: ``none`` for
        # an ``X | None`` annotation, ``null`` read as JSON.
        return value is None or (isinstance(value, str) and value.strip().lower() in _NONE)
    return convert_value(value, _type_of_default(old)) == old


def describe_type(expected: Any) -> str:
    """The type ``expected`` in words, with an example value."""
    if _is_union(expected):
        arms = [a for a in typing.get_args(expected) if a is not type(None)]
        text = " or ".join(describe_type(a) for a in arms)
        return text + (" or none" if len(arms) < len(typing.get_args(expected)) else "")
    origin = typing.get_origin(expected) or expected
    args = typing.get_args(expected)
    if origin is typing.Literal:
        return "one of " + ", ".join(str(c) for c in args)
    if _is_enum(origin):
        return "one of " + ", ".join(name.lower() for name in origin.__members__)
    if origin in (list, tuple) and args:
        if origin is tuple and args[-1] is not Ellipsis:
            return (f"a JSON list of {len(args)}: "
                    + "; ".join(describe_type(arm) for arm in args))
        return f"a JSON list (such as [1, 2]) of which each is {describe_type(args[0])}"
    if origin is dict and args:
        return (f'a JSON object (such as {{"a": 1}}) of which each value is '
                f"{describe_type(args[1])}")
    return {
        bool: "a boolean (true/false, yes/no or 1/0)",
        int: "a whole number (such as 3)",
        float: "a finite number (such as 0.5)",
        str: "text",
        list: "a JSON list (such as [1, 2])",
        tuple: "a JSON list (such as [1, 2])",
        dict: 'a JSON object (such as {"a": 1})',
    }.get(origin, getattr(origin, "__name__", str(origin)))


def _parameters(cls: type) -> Mapping[str, inspect.Parameter]:
    return inspect.signature(cls).parameters


def _type_hints(cls: type) -> dict[str, Any]:
    """The annotations of ``cls``'s constructor that resolve, each resolved on its own.

    One that does not (a name imported only under ``TYPE_CHECKING``, say) is left out,
    and its option is then typed as if it had no annotation: resolving all at once would
    lose every option's type to that one.
    """
    init = inspect.unwrap(cls.__init__)
    try:
        # Python 3.14 evaluates annotations when they are read: a TYPE_CHECKING-only
        # name fails right here.
        annotations = getattr(init, "__annotations__", None)
    except Exception:  # anything an annotation's own code may raise
        annotations = None
    if not isinstance(annotations, Mapping):
        return {}
    namespace = getattr(init, "__globals__", {})
    hints: dict[str, Any] = {}
    for name, annotation in annotations.items():
        holder = types.SimpleNamespace(__annotations__={name: annotation})
        try:
            hints.update(typing.get_type_hints(holder, globalns=namespace))
        except Exception:  # anything an annotation's own code may raise
            continue
    return hints


def _expected_type(param: inspect.Parameter | None, hints: Mapping[str, Any]) -> Any:
    """The type an option converts to: its parameter's annotation, else the type of its
    default; None for an option the constructor does not name (``**kwargs``)."""
    if param is None:
        return None
    expected = hints.get(param.name, inspect.Parameter.empty)
    return _type_of_default(param.default) if expected is inspect.Parameter.empty else expected


def _type_of_default(default: Any) -> Any:
    if default is inspect.Parameter.empty or default is None:
        return None
    if isinstance(default, (bool, int, float, str, list, tuple, dict, enum.Enum)):
        return type(default)
    return None


def _is_enum(origin: Any) -> bool:
    return isinstance(origin, type) and issubclass(origin, enum.Enum)


def _to_member(value: Any, choices: type[enum.Enum]) -> enum.Enum:
    """The member of ``choices`` that ``value`` names (any case) or whose value it is (as
    text, or as the value itself from a recipe or from Python)."""
    if isinstance(value, choices):
        return value
    if isinstance(value, str):
        text = value.strip()
        members = choices.__members__
        if text in members:  # the exact name first: names may differ only in case
            return members[text]
        for name, member in members.items():
            if name.lower() == text.lower():
                return member
    for member in choices:
        if _is_value_of(value, member.value):
            return member
    raise ValueError(value)


def _is_value_of(value: Any, wanted: Any) -> bool:
    if isinstance(value, str):
        return value.strip() == str(wanted)
    # True is 1 to Python, but a boolean does not stand for a number here.
    return isinstance(value, bool) == isinstance(wanted, bool) and value == wanted


def _is_union(expected: Any) -> bool:
    return typing.get_origin(expected) in (typing.Union, types.UnionType)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        if value.strip().lower() in _TRUE:
            return True
        if value.strip().lower() in _FALSE:
            return False
    raise ValueError(value)


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    raise ValueError(value)


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        number = float(value.strip())
    else:
        raise ValueError(value)
    if not math.isfinite(number):  # nan or inf would only surface later, as a nan loss
        raise ValueError(value)
    return number


def _json_or_text(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value
