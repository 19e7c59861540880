"""Poisoning harness for leakage tests: what happens after a cutoff must not change what was
known at it.

`poison` replaces every value dated after a cutoff, in every input frame, by absurd values:
huge (1e9 to 2e9 in absolute value, a thousand to a million times any reported figure), of
both signs in random order (so they move ranks, medians, minima and maxima, not only sums
and means: a one-signed poison leaves a quantile unchanged whenever the leaked value was
already on the poison's side of it), all different and finite (NaN-free, so every code path
still runs, fits and validates). A statistic of absolute misses (a conformal score) still
only sees huge values; `forecasting.core.provenance` checks those steps without relying on
numbers moving. A row is
dated by its ``announced_on`` column when it has one (guidance: what was said, and when it
was said, not the quarter it is about), else by ``ds``; a frame's date columns can be named
(e.g. ``("ds", "cutoff")`` for past forecasts: a forecast made after the cutoff is poisoned,
and so is an outcome reported after it).

`assert_no_leak(run, inputs, cutoff)` runs ``run(inputs)`` on the clean and on the poisoned
inputs and requires outputs at and before the cutoff to be *bit-identical*; by default it also
requires some output after the cutoff to change, so a test whose poison never reaches the
code under test fails instead of passing vacuously.

Outputs are compared with `assert_identical`: frames exactly (values, dtypes, index, column
order), arrays with NaN == NaN, dicts / lists / dataclasses / fitted objects (their
attributes) item by item.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

#: Columns that hold realised outcomes: they legitimately differ after poisoning (a backtest
#: row at an early cutoff carries the outcome of a later quarter).
OUTCOME_COLUMNS = ("y",)
#: Absurd values are +-ABSURD * (1 + u), u uniform in [0, 1), the sign random per value.
ABSURD = 1e9


def date_columns(frame: pd.DataFrame, dates: str | Sequence[str] | None = None) -> list[str]:
    """The columns that date `frame`'s rows: `dates`, else ``announced_on``, else ``ds``."""
    if dates is not None:
        cols = [dates] if isinstance(dates, str) else list(dates)
    elif "announced_on" in frame.columns:
        cols = ["announced_on"]
    else:
        cols = ["ds"]
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(f"poison: the frame has no date column(s) {missing}; columns: {list(frame.columns)}")
    return cols


def value_columns(frame: pd.DataFrame, dates: Sequence[str]) -> list[str]:
    """Numeric columns that are not dates (and not the forecast step)."""
    return [c for c in frame.columns
            if c not in dates and c != "step" and pd.api.types.is_numeric_dtype(frame[c])
            and not pd.api.types.is_bool_dtype(frame[c])]


def poison(frame: pd.DataFrame, cutoff, dates: str | Sequence[str] | None = None,
           values: Sequence[str] | None = None, seed: int = 0) -> pd.DataFrame:
    """A copy of `frame` whose rows dated after `cutoff` (any date column > cutoff) carry
    absurd values in every numeric column (or in `values`).

    Raises if nothing is dated after the cutoff: poisoning nothing proves nothing.
    """
    cols = date_columns(frame, dates)
    cutoff = pd.Timestamp(cutoff)
    after = np.zeros(len(frame), dtype=bool)
    for c in cols:
        after |= (pd.to_datetime(frame[c]) > cutoff).to_numpy()
    vals = list(values) if values is not None else value_columns(frame, cols)
    if not vals:
        raise ValueError(f"poison: no numeric value column in {list(frame.columns)}")
    if not after.any():
        raise ValueError(f"poison: no row dated after {cutoff.date()} (dates {cols}); the test would be vacuous")
    out = frame.copy()
    rng = np.random.default_rng(seed)
    n = int(after.sum())
    for c in vals:
        out[c] = out[c].astype(float)
        out.loc[after, c] = absurd(rng, n)
    return out


def absurd(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` absurd values: magnitudes ABSURD * (1 + u), signs at random but both present when
    n >= 2 (the first two values take opposite signs, then a random permutation)."""
    sign = rng.choice([-1.0, 1.0], size=n)
    if n >= 2:
        sign[:2] = (-1.0, 1.0)
        sign = rng.permutation(sign)
    return sign * ABSURD * (1.0 + rng.random(n))


def poison_all(inputs, cutoff, dates: Mapping[str, str | Sequence[str]] | None = None,
               known_until: Mapping[str, Any] | None = None, values: Mapping[str, Sequence[str]] | None = None):
    """`poison` a frame, or every frame of a dict.

    Args:
        dates: per frame name, its date column(s).
        known_until: per frame name, the last date known at `cutoff` when it differs from the
            cutoff (guidance released with quarter `cutoff`'s results is known at that cutoff
            although it is announced weeks after the quarter ends).
        values: per frame name, the columns to poison (default: every numeric one).
    """
    if isinstance(inputs, pd.DataFrame):
        return poison(inputs, cutoff)
    dates, known_until, values = dates or {}, known_until or {}, values or {}
    return {name: poison(f, known_until.get(name, cutoff), dates.get(name), values.get(name), seed=i)
            for i, (name, f) in enumerate(inputs.items())}


def assert_identical(a: Any, b: Any, where: str = "output") -> None:
    """Bit-identical outputs (frames, arrays, scalars, and dicts / lists / dataclasses of them)."""
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        for f in dataclasses.fields(a):
            assert_identical(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, Mapping):
        assert set(a) == set(b), f"{where}: keys differ: {sorted(set(a) ^ set(b))}"
        for k in a:
            assert_identical(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, pd.DataFrame):
        try:
            pd.testing.assert_frame_equal(a, b, check_exact=True)
        except AssertionError as exc:
            raise AssertionError(f"{where} changed when data after the cutoff was poisoned:\n{exc}") from None
    elif isinstance(a, (pd.Series, pd.Index)):
        assert_identical(a.to_frame() if isinstance(a, pd.Series) else a.to_frame(index=False),
                         b.to_frame() if isinstance(b, pd.Series) else b.to_frame(index=False), where)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=f"{where} changed when data after the cutoff was poisoned",
                                      strict=True)
    elif hasattr(a, "__dict__") and not isinstance(a, type):  # a fitted estimator: its attributes
        assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
        assert_identical(vars(a), vars(b), where)
    else:
        same = (a == b) or (isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b))
        assert same, f"{where} changed when data after the cutoff was poisoned: {a!r} -> {b!r}"


def rows_at_or_before(column: str = "cutoff", drop: Sequence[str] = OUTCOME_COLUMNS):
    """Selector: rows of a frame whose `column` is on or before the cutoff, outcome columns dropped."""
    def select(out: pd.DataFrame, cutoff) -> pd.DataFrame:
        keep = pd.to_datetime(out[column]) <= pd.Timestamp(cutoff)
        return out.loc[keep, [c for c in out.columns if c not in drop]].reset_index(drop=True)
    return select


def rows_after(column: str = "cutoff", drop: Sequence[str] = OUTCOME_COLUMNS):
    """Selector: rows of a frame whose `column` is after the cutoff, outcome columns dropped."""
    def select(out: pd.DataFrame, cutoff) -> pd.DataFrame:
        keep = pd.to_datetime(out[column]) > pd.Timestamp(cutoff)
        return out.loc[keep, [c for c in out.columns if c not in drop]].reset_index(drop=True)
    return select


#: Default selectors: forecasts made at or before the cutoff / after it (column ``cutoff``).
KNOWN_AT_CUTOFF = rows_at_or_before()
MADE_AFTER_CUTOFF = rows_after()


def differs(a: Any, b: Any) -> bool:
    """True when `assert_identical` would fail."""
    try:
        assert_identical(a, b)
    except AssertionError:
        return True
    return False


@dataclasses.dataclass
class LeakCheck:
    """The two runs of `assert_no_leak`, for further checks by the caller."""

    clean: Any
    poisoned: Any


def run_clean_and_poisoned(run: Callable[[Any], Any], inputs, cutoff, **poisoning) -> LeakCheck:
    """``run(inputs)`` and ``run(poison_all(inputs, cutoff, **poisoning))``."""
    return LeakCheck(run(inputs), run(poison_all(inputs, cutoff, **poisoning)))


def assert_known_unchanged(
    check: LeakCheck,
    cutoff,
    before: Callable[[Any, Any], Any] = KNOWN_AT_CUTOFF,
    after: Callable[[Any, Any], Any] | None = MADE_AFTER_CUTOFF,
) -> None:
    """Outputs at and before the cutoff (``before(output, cutoff)``) are bit-identical in both
    runs; outputs after it (``after(output, cutoff)``; None: not checked) differ."""
    known_clean, known_dirty = before(check.clean, cutoff), before(check.poisoned, cutoff)
    if isinstance(known_clean, pd.DataFrame):
        assert len(known_clean), f"no output at or before {pd.Timestamp(cutoff).date()}: nothing was checked"
    assert_identical(known_clean, known_dirty, f"output at or before {pd.Timestamp(cutoff).date()}")
    if after is not None:
        assert differs(after(check.clean, cutoff), after(check.poisoned, cutoff)), (
            "outputs after the cutoff did not change either: the poison never reached the code under test")


def assert_no_leak(
    run: Callable[[Any], Any],
    inputs,
    cutoff,
    before: Callable[[Any, Any], Any] = KNOWN_AT_CUTOFF,
    after: Callable[[Any, Any], Any] | None = MADE_AFTER_CUTOFF,
    **poisoning,
) -> LeakCheck:
    """Run `run` on `inputs` and on `poison_all(inputs, cutoff)`; outputs at and before the
    cutoff (``before(output, cutoff)``) must be bit-identical, and outputs after it
    (``after(output, cutoff)``; None: no such check) must change.

    Args:
        run: ``run(inputs) -> output`` (a frame, arrays, a dict or a dataclass of them).
        inputs: a long frame (``unique_id, ds, y``) or a dict of frames (series, guidance
            rows with ``announced_on``, past forecasts with ``cutoff``).
        cutoff: the last date whose values may be read.
        before, after: selectors ``(output, cutoff) -> part of the output``.
        poisoning: `poison_all` options per input frame name: ``dates`` (its date columns;
            default ``announced_on`` / ``ds``), ``known_until`` (its last known date, when not
            the cutoff), ``values`` (the columns to poison).
    Returns:
        both runs (`LeakCheck`).
    """
    check = run_clean_and_poisoned(run, inputs, cutoff, **poisoning)
    assert_known_unchanged(check, cutoff, before, after)
    return check
