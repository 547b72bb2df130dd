"""Checks of the integer arguments, with Python's exception types: a value that is not an
integer (``8.5``, ``"8"``, ``True``) is a ``TypeError``, one out of range a ``ValueError``."""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional


def count(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int of at least ``minimum``; ``name`` is the argument's name."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def positive_float(name: str, value: Any) -> float:
    """``value`` as a finite float > 0; ``name`` is the argument's name."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def optional_count(name: str, value: Any, minimum: int = 1) -> Optional[int]:
    """:func:`count`, or ``None`` for ``None``."""
    return None if value is None else count(name, value, minimum)
