"""Checks shared by the YAML readers (company profiles, scenario files, claims files).

Each reader raises its own `features.errors.InputError` kind (it knows the file and the entry):
it passes `fail`, a callable turning a message (and, for `check_keys`, the bad key) into that
error; the checks here say what is wrong, with a "did you mean" where a key is close to a valid one.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping

__all__ = ["as_mapping", "as_number", "check_keys", "unknown_key"]


def unknown_key(d: Mapping, allowed: Iterable[str]) -> tuple[str, str] | None:
    """The first key of `d` not in `allowed` and the message for it, or None when all are known."""
    allowed = list(allowed)
    for k in d:
        if k not in allowed:
            close = difflib.get_close_matches(str(k), allowed, n=1, cutoff=0.5)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            return str(k), f"unknown key{hint}; allowed: {', '.join(allowed)}"
    return None


def check_keys(d: Mapping, allowed: Iterable[str], fail: Callable[[str, str], Exception]) -> None:
    """Raise ``fail(key, message)`` for the first key of `d` not in `allowed` (`unknown_key`)."""
    bad = unknown_key(d, allowed)
    if bad:
        raise fail(*bad)


def as_mapping(v, fail: Callable[[str], Exception]) -> Mapping:
    """`v` if it is a mapping, else raise ``fail(message)``."""
    if not isinstance(v, Mapping):
        raise fail(f"expected a mapping, got {type(v).__name__} {v!r}")
    return v


def as_number(v, fail: Callable[[str], Exception]) -> float:
    """`v` as a float if it is a finite number (not a bool), else raise ``fail(message)``."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise fail(f"expected a number, got {v!r}")
    return float(v)
