"""Running the rules: one class against its interface's, and pytest cases of them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from seqlm.interfaces import Callback, RecurrentCell, Sampler, Tokenizer, Trainer
from seqlm.plugins.culprit import cause_hint
from seqlm.plugins.door import rng_kept
from seqlm.plugins.manager import INTERFACES, interface_problem
from seqlm.plugins.torch_globals import default_dtype, dtype_changed_from
from seqlm.testing.basics import Rule, fail, require
from seqlm.testing.cells import CELL_RULES
from seqlm.testing.loggers import LOGGER_RULES
from seqlm.testing.samplers import SAMPLER_RULES
from seqlm.testing.tokenizers import TOKENIZER_RULES
from seqlm.testing.trainers import TRAINER_RULES

_RULES = ((RecurrentCell, CELL_RULES), (Sampler, SAMPLER_RULES), (Tokenizer, TOKENIZER_RULES),
          (Trainer, TRAINER_RULES), (Callback, LOGGER_RULES))


def _kind_of(base: type) -> str:
    """``cell`` for RecurrentCell, and so on: the kind whose interface ``base`` is."""
    return next(k for k, name in INTERFACES.items() if name == base.__name__)


def interface(cls: type, options: dict[str, Any]) -> None:
    """What seqlm checks when the class is registered: it subclasses its interface and
    implements every abstract method (a sampler also says whether it is ``contiguous``)."""
    base = next(base for base, _ in _RULES if issubclass(cls, base))
    problem = interface_problem(_kind_of(base), cls)
    require(problem is None, "interface", str(problem))


def rules_for(cls: type) -> tuple[Rule, ...]:
    """The rules of the interface ``cls`` implements, :func:`interface` first."""
    for base, rules in _RULES:
        if isinstance(cls, type) and issubclass(cls, base):
            return (interface, *rules)
    raise TypeError(f"{cls!r} implements none of seqlm's interfaces (RecurrentCell, Sampler, "
                    "Tokenizer, Trainer, Callback)")


def apply_rule(rule: Rule, cls: type, options: dict[str, Any]) -> None:
    """Run one rule; an exception the class raises fails the rule, with its name.

    The rule leaves torch's random generators and default dtype as it found them, so
    that one class's rules cannot fail another's; a class that changed the default dtype
    fails the rule (a run's model would change with it)."""
    dtype = default_dtype()
    try:
        with rng_kept():
            rule(cls, dict(options))
    except AssertionError:
        raise
    except (Exception, SystemExit) as error:
        raise fail(rule.__name__, f"{cls.__qualname__} raised {type(error).__name__}: "
                    f"{error}{cause_hint(error)}") from error
    finally:
        changed = dtype_changed_from(dtype)  # put back as it says, however the rule ended
    require(changed is None, rule.__name__, f"{cls.__qualname__} {changed}")


def _check_all(cls: type, options: dict[str, Any], base: type) -> None:
    if not (isinstance(cls, type) and issubclass(cls, base)):  # another interface, or none
        raise fail("interface", str(interface_problem(_kind_of(base), cls)))
    for rule in rules_for(cls):
        apply_rule(rule, cls, options)


def check_cell(cls: type, **options: Any) -> None:
    """Check a :class:`~seqlm.interfaces.RecurrentCell` class against its contract."""
    _check_all(cls, options, RecurrentCell)


def check_sampler(cls: type, **options: Any) -> None:
    """Check a :class:`~seqlm.interfaces.Sampler` class against its contract."""
    _check_all(cls, options, Sampler)


def check_tokenizer(cls: type, **options: Any) -> None:
    """Check a :class:`~seqlm.interfaces.Tokenizer` class against its contract."""
    _check_all(cls, options, Tokenizer)


def check_trainer(cls: type, **options: Any) -> None:
    """Check a :class:`~seqlm.interfaces.Trainer` class against its contract."""
    _check_all(cls, options, Trainer)


def check_logger(cls: type, **options: Any) -> None:
    """Check a logger (a :class:`~seqlm.interfaces.Callback` that a plugin registers for
    ``seqlm run --log NAME``) against its contract."""
    _check_all(cls, options, Callback)


def all_checks(
    components: Iterable[type | tuple[type, dict[str, Any]]],
) -> list[tuple[str, Callable[[], None]]]:
    """``(id, check)`` for every rule of every component; ``check()`` runs one rule.

    A component is a class, or a ``(class, options)`` pair. The id names the class, its
    options and the rule (``MinGRU[num_layers=2]-cell_shapes``), so the same class checked
    with two sets of options gives cases that say which set failed.
    """
    checks = []
    for item in components:
        cls, options = item if isinstance(item, tuple) else (item, {})
        label = cls.__qualname__
        if options:
            label += "[" + ",".join(f"{key}={value!r}" for key, value in options.items()) + "]"
        for rule in rules_for(cls):
            def check(rule: Rule = rule, cls: type = cls, options: dict = options) -> None:
                apply_rule(rule, cls, options)
            checks.append((f"{label}-{rule.__name__}", check))
    return checks


def parametrize_checks(components: Sequence[type | tuple[type, dict[str, Any]]]) -> Any:
    """A ``pytest.mark.parametrize`` over every rule of every component, as ``check``."""
    import pytest

    checks = all_checks(components)
    return pytest.mark.parametrize("check", [c for _, c in checks], ids=[i for i, _ in checks])
