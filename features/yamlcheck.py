"""Checks shared by the YAML readers (company profiles, scenario files, claims files).

Each reader raises its own `features.errors.InputError` kind (it knows the file and the entry);
the checks here only say what is wrong, with a "did you mean" where a key is close to a valid one.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

__all__ = ["unknown_key"]


def unknown_key(d: Mapping, allowed: Iterable[str]) -> tuple[str, str] | None:
    """The first key of `d` not in `allowed` and the message for it, or None when all are known."""
    allowed = list(allowed)
    for k in d:
        if k not in allowed:
            close = difflib.get_close_matches(str(k), allowed, n=1, cutoff=0.5)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            return str(k), f"unknown key{hint}; allowed: {', '.join(allowed)}"
    return None
