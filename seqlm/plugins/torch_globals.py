"""torch's global settings that plugin code must leave as it found them.

Read without importing torch (``seqlm --help`` and ``seqlm plugins`` go without it): a
plugin that imports torch itself finds its defaults.
"""

from __future__ import annotations

import sys
from typing import Any


def default_dtype() -> Any:
    """torch's default dtype now, or None where torch is not imported yet (its default is
    then float32): read without importing torch, which ``seqlm --help`` does without."""
    torch = sys.modules.get("torch")
    return torch.get_default_dtype() if torch is not None else None


def dtype_changed_from(dtype: Any) -> str | None:
    """Where plugin code changed torch's default dtype from ``dtype`` (what
    :func:`default_dtype` gave before it ran), put it back and say so (``changed torch's
    default dtype to ...``); else None. Every model seqlm built afterwards would change
    with it, built-in cells and saved runs included."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    before = torch.float32 if dtype is None else dtype
    now = torch.get_default_dtype()
    if now == before:
        return None
    torch.set_default_dtype(before)
    return (f"changed torch's default dtype to {now} (seqlm set it back to {before}); a "
            "plugin must leave torch's global settings as it found them")
