"""Which outcomes each learned step read: an opt-in record of the latest outcome date per step.

The no-look-ahead rule says a step that learns at a cutoff C (conformal calibration, ensemble
weights, AutoCombo's scores, node selection, the roll-up's error windows and spread
calibration, the claims' base rates...) reads no outcome dated after C. Poisoning the data
after C (`tests/leakage.py`) catches a leak when it moves a number; a rank-based statistic (a
conformal quantile) can hide one. This record does not depend on numbers moving: each step
reports, for the cutoff it learns at, the dates of the outcomes it actually used, and a test
asserts none is after the cutoff.

Recording is off unless a caller opens `recording()`; then `outcomes_read` appends one `Read`
per call to the list the context yields (context-local, so nested or concurrent runs do not
mix). Off, `outcomes_read` returns at once; on or off, no step's numbers change.

    with recording() as reads:
        backtest(df, ["AutoCombo"], config)
    assert not reads.after_cutoff()
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["active", "outcomes_read", "Read", "Reads", "recording"]


@dataclass(frozen=True)
class Read:
    """One step's read at one cutoff.

    Attributes:
        step: the learned step (``"calibration.window"``, ``"selection"``...).
        at: the cutoff (or origin) it learnt at; with per-row cutoffs (per-series cutoffs of
            an ensemble), the cutoff of the row read furthest after its own cutoff.
        latest: the latest outcome date read (with per-row cutoffs: of that row); NaT when
            the step read no outcome.
        n: how many outcome rows it read.
    """

    step: str
    at: pd.Timestamp
    latest: pd.Timestamp
    n: int

    @property
    def after_cutoff(self) -> bool:
        return pd.notna(self.latest) and self.latest > self.at


class Reads(list):
    """The `Read`s of one `recording()` block, in the order the steps ran."""

    def after_cutoff(self) -> list[Read]:
        """The reads of an outcome dated after the cutoff they learnt at (empty: no leak)."""
        return [r for r in self if r.after_cutoff]

    def steps(self) -> set[str]:
        """The steps that read at least one outcome."""
        return {r.step for r in self if r.n}

    def of(self, step: str) -> list[Read]:
        return [r for r in self if r.step == step]


_ACTIVE: ContextVar[Reads | None] = ContextVar("forecasting_provenance", default=None)


@contextmanager
def recording() -> Iterator[Reads]:
    """Record every `outcomes_read` inside the block into the yielded `Reads`."""
    reads = Reads()
    token = _ACTIVE.set(reads)
    try:
        yield reads
    finally:
        _ACTIVE.reset(token)


def active() -> bool:
    """True inside `recording()` (callers skip work done only for the record)."""
    return _ACTIVE.get() is not None


def outcomes_read(step: str, at, dates) -> None:
    """Record that `step`, learning at cutoff `at` (a date, or one date per row), read outcomes
    dated `dates` (array-like of dates). A no-op outside `recording()`."""
    reads = _ACTIVE.get()
    if reads is None:
        return
    d = pd.DatetimeIndex(pd.to_datetime(np.asarray(dates).ravel()))
    ok = ~d.isna()
    if np.ndim(at) == 0:
        cut = pd.Timestamp(at)
        reads.append(Read(step, cut, d[ok].max() if ok.any() else pd.NaT, int(ok.sum())))
        return
    cuts = pd.DatetimeIndex(pd.to_datetime(np.asarray(at).ravel()))
    if len(cuts) != len(d):
        raise ValueError(f"outcomes_read({step!r}): {len(cuts)} cutoffs for {len(d)} dates")
    ok &= ~cuts.isna()
    if not ok.any():
        reads.append(Read(step, cuts.max() if len(cuts) else pd.NaT, pd.NaT, 0))
        return
    lead = (d[ok] - cuts[ok]).to_numpy()
    i = int(np.argmax(lead))
    reads.append(Read(step, cuts[ok][i], d[ok][i], int(ok.sum())))
