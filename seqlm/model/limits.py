"""What one generation may ask for: how many tokens, at what temperature.

Checked where generation starts (:func:`seqlm.model.generation.generate`) and, earlier,
where the command line and a saved run read the settings, so that a bad value stops
before any model runs. No torch here: the command line imports it at start.
"""

from __future__ import annotations

import math

from seqlm.errors import UsageError

#: The most tokens one generation may ask for (``--predict``, ``--length``).
MAX_GENERATE = 1_000_000
#: Temperatures outside this range overflow float32 logits or turn them into noise.
TEMPERATURE_RANGE = (1e-3, 1e3)


def check_generate_length(flag: str, length: int) -> None:
    """A generation asks for a whole number of tokens, from 0 to :data:`MAX_GENERATE`."""
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise UsageError(f"{flag} must be a whole number, 0 or more, got {length!r}")
    if length > MAX_GENERATE:
        raise UsageError(f"{flag} {length} is more than {MAX_GENERATE:,} tokens; generate "
                         "less at a time (each token is one step of the model)")


def check_temperature(temperature: float) -> None:
    """``--temperature`` must be a finite number within :data:`TEMPERATURE_RANGE`."""
    low, high = TEMPERATURE_RANGE
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature)
            and low <= temperature <= high):
        raise UsageError(f"--temperature must be from {low:g} to {high:g}, got {temperature!r}"
                         "; for the most likely token every time, use --greedy")
