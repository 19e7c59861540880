"""The frame contract of the forecasting code: what goes in, what comes out, and their checks.

Input: the long frame ``unique_id, ds, y`` (`features.schema.SeriesFrame`), each series a
gap-free run of quarter ends of one fiscal calendar (`check_series_frame`).

Output of a forecast (`output_columns`), one row per series x quarter x model::

    unique_id  ds  model  model_used  mean  lo-95  lo-80  hi-80  hi-95

``model_used`` names the model that produced the row (a fallback on a short series, or the
combination a selecting ensemble chose). Intervals nest: ``lo-95 <= lo-80 <= mean <= hi-80 <=
hi-95`` (`enforce_order`). A backtest frame adds ``cutoff``, ``step`` (quarters after the
cutoff) and ``y`` (the reported value). `check_forecast_frame` and `check_backtest_frame`
validate both with pandera schemas.

Interval columns and quantiles are one idea: the L% interval is ``[lo-L, hi-L]`` = the
quantiles ``(1 - L/100) / 2`` and ``1 - (1 - L/100) / 2`` (`interval_quantiles`), labelled
``p10``, ``p90`` in quantile tables (`quantile_label`).

This module imports nothing else of `forecasting`.
"""

from __future__ import annotations

import os

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from features.calendar import SEASON_LENGTH, FiscalCalendar
from features.schema import validate_series_frame
from features.errors import OptionError

__all__ = ["LEVELS", "SEASON_LENGTH", "MAX_HORIZON", "FitSettings", "ShortSeriesWarning", "switched_on",
           "interval_columns", "output_columns", "backtest_columns", "interval_quantiles",
           "quantile_label", "to_interval_columns", "check_horizon", "check_series_frame", "calendar_of",
           "enforce_order", "check_forecast_frame", "check_backtest_frame", "forecast_schema"]

LEVELS: tuple[int, ...] = (80, 95)
#: Longest horizon, in quarters, that intervals are calibrated for and commands accept.
MAX_HORIZON = 8


def switched_on(variable: str) -> bool:
    """An on/off environment switch that is on unless set to ``0``/``false``/``no``/``off``
    (``FCF_CACHE``, ``FCF_FIT_MEMO``)."""
    return os.environ.get(variable, "1").strip().lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class FitSettings:
    """What every fit at one origin takes, passed down as one object: the horizon, the interval
    levels, the season length and the seed (`forecasting.methods.dispatch.forecast_base`, the
    parallel tasks and the cache key read it; `BacktestConfig.fit` and `forecast()` build it)."""

    h: int
    level: tuple[int, ...] = LEVELS
    season_length: int = SEASON_LENGTH
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "h", int(self.h))
        object.__setattr__(self, "level", tuple(int(v) for v in self.level))
        object.__setattr__(self, "season_length", int(self.season_length))
        object.__setattr__(self, "seed", int(self.seed))


class ShortSeriesWarning(UserWarning):
    """A model could not be used on a series and a simpler fallback model was used instead."""


# --------------------------------------------------------------------------- columns
def interval_columns(level: Sequence[int] = LEVELS) -> list[str]:
    """``lo-95, lo-80, hi-80, hi-95`` for levels (80, 95): widest low bound first."""
    lv = sorted(level)
    return [f"lo-{x}" for x in reversed(lv)] + [f"hi-{x}" for x in lv]


def output_columns(level: Sequence[int] = LEVELS) -> list[str]:
    """Columns of a forecast frame (see the module docstring)."""
    return ["unique_id", "ds", "model", "model_used", "mean"] + interval_columns(level)


def backtest_columns(level: Sequence[int] = LEVELS) -> list[str]:
    """Columns of a backtest frame: ``unique_id, cutoff, ds, step, y`` and the forecast's."""
    return ["unique_id", "cutoff", "ds", "step", "y"] + output_columns(level)[2:]


FORECAST_COLUMNS = output_columns(LEVELS)


def interval_quantiles(level: Sequence[int] = LEVELS) -> dict[str, float]:
    """Interval column -> the quantile it is: ``{"lo-95": 0.025, "lo-80": 0.1, "hi-80": 0.9, ...}``."""
    out = {}
    for col in interval_columns(level):
        lv = int(col.split("-")[1])
        tail = (100 - lv) / 200
        out[col] = tail if col.startswith("lo-") else 1 - tail
    return out


def quantile_label(q: float) -> str:
    """0.1 -> ``p10``, 0.025 -> ``p2.5``: the column of quantile `q` in quantile tables."""
    return "p" + f"{100 * q:g}"


def to_interval_columns(qf: pd.DataFrame, level: Sequence[int] = LEVELS) -> pd.DataFrame:
    """A quantile table (``p10``, ``p90``, ...) with the interval columns added (``lo-80 = p10``...)."""
    out = qf.copy()
    for col, q in interval_quantiles(level).items():
        out[col] = out[quantile_label(q)]
    return out


# --------------------------------------------------------------------------- checks
def check_horizon(h, what: str = "horizon h", maximum: int | None = None) -> int:
    """`h` as an int, or a `ValueError` when it is not a whole number of quarters in 1..`maximum`."""
    if isinstance(h, bool) or not isinstance(h, (int, np.integer)):
        raise OptionError(f"{what} must be a whole number of quarters, got {h!r} ({type(h).__name__})")
    h = int(h)
    if h < 1 or (maximum is not None and h > maximum):
        bound = f"between 1 and {maximum}" if maximum is not None else ">= 1"
        raise OptionError(f"{what} must be {bound}, got {h}")
    return h


def calendar_of(df: pd.DataFrame) -> FiscalCalendar:
    """The quarter grid of a long frame's ``ds`` (`features.calendar.FiscalCalendar.infer`)."""
    return FiscalCalendar.infer(df["ds"].iloc[:1] if len(df) else [])


def check_series_frame(df: pd.DataFrame, name: str = "df") -> pd.DataFrame:
    """Validate the ``unique_id, ds, y`` contract (`features.schema.SeriesFrame`) and that every
    series is a gap-free run of quarter ends of one calendar; returns a sorted copy, float ``y``."""
    out = validate_series_frame(df, name)
    out = out.sort_values(["unique_id", "ds"]).reset_index(drop=True)
    cal = calendar_of(out)
    for uid, g in out.groupby("unique_id", sort=False):
        first, last = g["ds"].iloc[0], g["ds"].iloc[-1]
        expected = pd.date_range(first, last, freq=cal.freq) if cal.on_grid([first]) else pd.DatetimeIndex([])
        if len(expected) != len(g) or not (expected == pd.DatetimeIndex(g["ds"])).all():
            raise OptionError(
                f"{name}: series {uid} is not a gap-free run of quarter ends "
                f"({len(g)} rows between {first.date()} and {last.date()})"
            )
    return out


def enforce_order(out: pd.DataFrame, level: Sequence[int] = LEVELS) -> pd.DataFrame:
    """Make nested intervals nest: lo-95 <= lo-80 <= mean <= hi-80 <= hi-95 (fixes float noise)."""
    lv = sorted(level)
    lo = out["mean"].to_numpy(dtype=float).copy()
    hi = lo.copy()
    for x in lv:
        lo = np.minimum(lo, out[f"lo-{x}"].to_numpy(dtype=float))
        hi = np.maximum(hi, out[f"hi-{x}"].to_numpy(dtype=float))
        out[f"lo-{x}"], out[f"hi-{x}"] = lo, hi
    return out


# --------------------------------------------------------------------------- output schemas
def _nested(frame: pd.DataFrame, level: Sequence[int]) -> pd.Series:
    ok = pd.Series(True, index=frame.index)
    lows, highs = ["mean"], ["mean"]
    for lv in sorted(level):
        lows.append(f"lo-{lv}")
        highs.append(f"hi-{lv}")
    for inner, outer in zip(lows[:-1], lows[1:]):
        ok &= ~(frame[outer] > frame[inner])
    for inner, outer in zip(highs[:-1], highs[1:]):
        ok &= ~(frame[outer] < frame[inner])
    return ok


def forecast_schema(level: Sequence[int] = LEVELS, backtest: bool = False) -> pa.DataFrameSchema:
    """The pandera schema of a forecast frame (``backtest=True``: of a backtest frame)."""
    cols: dict[str, pa.Column] = {
        "unique_id": pa.Column(nullable=False),
        "ds": pa.Column("datetime64[ns]", nullable=False),
        "model": pa.Column(str, nullable=False),
        "model_used": pa.Column(str, nullable=False),
        "mean": pa.Column(float, nullable=True),
    }
    cols.update({c: pa.Column(float, nullable=True) for c in interval_columns(level)})
    if backtest:
        cols.update({"cutoff": pa.Column("datetime64[ns]", nullable=False),
                     "step": pa.Column(int, pa.Check.ge(1), nullable=False),
                     "y": pa.Column(float, nullable=False)})
    return pa.DataFrameSchema(cols, checks=[pa.Check(lambda f: _nested(f, level), name="intervals_nest")],
                              strict=False)


def _check(frame: pd.DataFrame, schema: pa.DataFrameSchema, what: str) -> pd.DataFrame:
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
        case = cases.iloc[0]
        if case["schema_context"] == "DataFrameSchema" and pd.notna(case["index"]):
            r = frame.loc[case["index"]]
            where = f"series {r['unique_id']}, model {r['model']}, quarter {pd.Timestamp(r['ds']).date()}"
            problem = f"{where}: {case['check']}"
        else:
            problem = f"column {case['column']}: {case['check']} ({case['failure_case']!r})"
        raise ValueError(f"{what} breaks its contract at {problem}; {len(cases)} failure(s) in all") from None
    return frame


def check_forecast_frame(fc: pd.DataFrame, level: Sequence[int] = LEVELS) -> pd.DataFrame:
    """`fc` unchanged if it is a valid forecast frame, else a `ValueError` naming the failure."""
    return _check(fc, forecast_schema(level), "the forecast frame")


def check_backtest_frame(bt: pd.DataFrame, level: Sequence[int] = LEVELS) -> pd.DataFrame:
    """`bt` unchanged if it is a valid backtest frame, else a `ValueError` naming the failure."""
    return _check(bt, forecast_schema(level, backtest=True), "the backtest frame")

