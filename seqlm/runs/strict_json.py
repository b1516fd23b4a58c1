"""The JSON that ``--json`` prints: strict JSON, which every parser reads.

Python's :mod:`json` writes an infinite perplexity (a diverged run's) as ``Infinity``,
which is no JSON: ``jq``, JavaScript's ``JSON.parse`` and most other parsers refuse it.
A number that is not finite is written as the string ``"Infinity"``, ``"-Infinity"`` or
``"NaN"`` instead: still told apart from ``null`` (no figure at all), and read back as
the number by Python's ``float()`` and JavaScript's ``Number()``.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite_or_named(value: Any) -> Any:
    """``value`` with every float that is not finite, at any depth, replaced by its name."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, dict):
        return {key: finite_or_named(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_named(item) for item in value]
    return value


def dumps(data: Any, indent: int = 2) -> str:
    """``data`` as strict JSON text (see the module's docstring for numbers not finite)."""
    return json.dumps(finite_or_named(data), indent=indent, allow_nan=False)
