"""Built-in recurrent cells: torch's modules and from-scratch versions of them."""


def check_dropout(name: str, value: float) -> None:
    """A dropout probability must lie in [0, 1); say which option was wrong otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name} must be at least 0 and below 1, got {value!r}")
