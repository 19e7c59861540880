"""Trailing-twelve-month (TTM) sums: of a reported series and of simulated paths continuing it.

One definition for both: the TTM value at quarter t is the sum of the four quarters ending at
t, and exists only where all four are there. `trailing_twelve_months` applies it to a long
frame (``<series>_ttm`` rows, as companies report TTM free cash flow); `ttm_paths` to sample
paths that continue a reported history (the first forecast quarter's TTM takes the last three
reported quarters).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.calendar import SEASON_LENGTH, FiscalCalendar
from features.errors import OptionError

__all__ = ["trailing_twelve_months", "ttm_paths", "TTM_SUFFIX"]

TTM_SUFFIX = "_ttm"


def trailing_twelve_months(df: pd.DataFrame, series: str) -> pd.DataFrame:
    """Trailing-twelve-month sums of one quarterly series of a long frame, as ``<series>_ttm``
    (``unique_id, ds, y``), where the four quarters ending there are all present."""
    s = df[df["unique_id"] == series].sort_values("ds")
    if s.empty:
        raise OptionError(f"series '{series}' is not in the frame")
    y = s["y"].rolling(SEASON_LENGTH).sum()
    # four rows are four quarters only if the first is three quarters before the last (a hole
    # in the series must not make a "TTM" of quarters from two different years)
    cal = FiscalCalendar.infer(s["ds"])
    ds = pd.DatetimeIndex(s["ds"])
    consecutive = pd.Series(ds, index=s.index).shift(SEASON_LENGTH - 1) == ds - cal.offset(SEASON_LENGTH - 1)
    y = y.where(consecutive.to_numpy())
    out = pd.DataFrame({"unique_id": series + TTM_SUFFIX, "ds": s["ds"].to_numpy(), "y": y.to_numpy()})
    return out.dropna().reset_index(drop=True)


def ttm_paths(paths: np.ndarray, reported: np.ndarray) -> np.ndarray:
    """Trailing-twelve-month sums of quarterly paths continuing a reported history.

    Args:
        paths: (n_paths, h) forecast quarters.
        reported: the reported quarters just before the forecast, oldest first (>= 3).
    Returns: (n_paths, h) TTM sums ending at each forecast quarter.
    """
    reported = np.asarray(reported, dtype=float)
    k = SEASON_LENGTH - 1
    if len(reported) < k:
        raise OptionError(f"ttm_paths: need the {k} reported quarters before the forecast")
    n, h = paths.shape
    full = np.concatenate([np.broadcast_to(reported[-k:], (n, k)), paths], axis=1)
    c = np.cumsum(np.concatenate([np.zeros((n, 1)), full], axis=1), axis=1)
    return c[:, SEASON_LENGTH:] - c[:, :-SEASON_LENGTH][:, :h]
