"""Monte Carlo sample paths that keep the cross-series correlation of forecast errors.

Errors are taken from earlier rolling-origin windows whose outcomes are all reported: at a
past cutoff c, for series s and step k (1..h), the *scaled* error is

    r[c, s, k] = (y[s, c+k] - f[s, c+k]) / level[s, c]

where ``level[s, c]`` is the mean absolute value of the four quarters up to c of s or of a
series chosen to scale it (errors scale with the size of the business, which can grow ~10x
over a history). A sample path draws one whole window c at random -- all series and all steps
together, so that a quarter that was bad for one segment's sales was bad for its operating
income and for capex in the same draw -- and adds it to today's point forecasts, rescaled by
today's levels:

    path[s, k] = f_now[s, k] + level_now[s] * (r[c, s, k] + jitter)

With few windows (8-20) a plain bootstrap gives lumpy quantiles, so the draw is a smoothed
bootstrap (Silverman 1986, variance-corrected): ``r* = m + (r[c] - m + b z) / sqrt(1 + b^2)``,
where ``m`` is the mean window and ``z`` a Gaussian vector with the windows' empirical
covariance (drawn as a random combination of the centred windows, so it keeps their
correlation across series and steps). ``b = 0.5`` by default; ``b = 0`` is the plain joint
bootstrap. Everything is driven by one `numpy.random.Generator(seed)`: the same seed gives
identical paths.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from forecasting.core.frames import calendar_of, quantile_label
from features.errors import OptionError
from forecasting.core.provenance import outcomes_read

__all__ = ["bootstrap_errors", "DEFAULT_PATHS", "quantile_frame", "QUANTILES", "quantiles",
           "residual_windows", "sample_paths", "series_index", "series_level", "SMOOTHING"]

#: Quantiles reported everywhere (P2.5/P97.5 give the 95% interval, P10/P90 the 80% one).
QUANTILES = (0.025, 0.05, 0.10, 0.50, 0.90, 0.95, 0.975)
DEFAULT_PATHS = 1000
SMOOTHING = 0.5


def series_index(history: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per series, its dates (sorted) and values as arrays: what `series_level` reads, built
    once for many cutoffs."""
    h = history.sort_values(["unique_id", "ds"], kind="stable")
    return {uid: (g["ds"].to_numpy(dtype="datetime64[ns]"), g["y"].to_numpy(dtype=float))
            for uid, g in h.groupby("unique_id", sort=False)}


def series_level(history: pd.DataFrame | None, series: Sequence[str], cutoff,
                 index: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> np.ndarray:
    """Mean |y| of the last four quarters on or before `cutoff`, per series (shape (n,));
    `index` (`series_index` of the same history) saves regrouping it at every cutoff."""
    if index is None:
        index = series_index(history[history["unique_id"].isin(list(series))])
    c = np.datetime64(pd.Timestamp(cutoff), "ns")
    out = []
    for s in series:
        ds, y = index.get(s, (np.empty(0, dtype="datetime64[ns]"), np.empty(0)))
        n = int(np.searchsorted(ds, c, side="right"))
        outcomes_read("simulate.series_level", cutoff, ds[max(0, n - 4):n])
        if n == 0:
            raise OptionError(f"series_level: series {s} has no data up to {pd.Timestamp(cutoff).date()}")
        level = float(np.abs(y[max(0, n - 4):n]).mean())
        out.append(level if level > 0 else 1.0)
    return np.array(out)


def residual_windows(
    fc: pd.DataFrame,
    history: pd.DataFrame,
    series: Sequence[str],
    h: int,
    known_by=None,
    scale_by: Sequence[str] | None = None,
) -> tuple[list[pd.Timestamp], np.ndarray]:
    """Scaled errors of past windows, one (series x step) matrix per complete window.

    Args:
        fc: past forecasts ``cutoff, unique_id, ds, mean`` (one model / method only).
        history: reported ``unique_id, ds, y``.
        series: the series, in the order of the returned axis 1.
        h: steps per window.
        known_by: keep only windows whose last outcome (cutoff + h quarters) is on or before
            this date, i.e. windows fully reported by then (None: all complete windows).
        scale_by: per series, the series whose level scales its errors (default: itself;
            e.g. a segment's operating income scaled by its sales, for margin-point errors).
    Returns:
        ``(cutoffs, R)`` with ``R`` of shape (n_windows, len(series), h).
    """
    y = history.set_index(["unique_id", "ds"])["y"]
    cal = calendar_of(history)
    scales = list(scale_by or series)
    index = series_index(history[history["unique_id"].isin(scales)])
    cuts, mats = [], []
    for cut, g in fc.groupby("cutoff", sort=True):
        last = cut + cal.offset(h)
        if known_by is not None and last > pd.Timestamp(known_by):
            continue
        g = g.set_index(["unique_id", "ds"])["mean"]
        dss = [cut + cal.offset(k) for k in range(1, h + 1)]
        idx = pd.MultiIndex.from_product([list(series), dss])
        f = g.reindex(idx).to_numpy(dtype=float).reshape(len(series), h)
        obs = y.reindex(idx).to_numpy(dtype=float).reshape(len(series), h)
        if not (np.isfinite(f).all() and np.isfinite(obs).all()):
            continue
        lev = series_level(None, scales, cut, index=index)
        if known_by is not None:
            outcomes_read("simulate.error_windows", known_by, dss)
        cuts.append(cut)
        mats.append((obs - f) / lev[:, None])
    if not mats:
        return [], np.empty((0, len(series), h))
    return cuts, np.stack(mats)


def bootstrap_errors(R: np.ndarray, n_paths: int = DEFAULT_PATHS, seed: int = 0,
                     smoothing: float = SMOOTHING, centre: bool = False) -> np.ndarray:
    """Draw (n_paths, n_series, h) joint errors from windows `R` (see the module docstring).

    With `centre` the draws' own mean is removed (exactly, per series and step), so the
    paths' mean is the point forecast (for point forecasts that already correct their own
    bias); otherwise the past windows' mean error shifts every path."""
    if R.ndim != 3 or len(R) < 2:
        raise OptionError(f"bootstrap_errors: need at least 2 complete past windows of errors, got {len(R)}; "
                         "use more backtest windows (n_windows) or a shorter horizon")
    if n_paths < 1:
        raise OptionError(f"n_paths must be >= 1, got {n_paths}")
    rng = np.random.default_rng(seed)
    n = len(R)
    m = R.mean(axis=0)
    centred = R - m
    pick = rng.integers(0, n, size=n_paths)
    a = rng.standard_normal((n_paths, n)) / np.sqrt(n - 1)
    z = np.tensordot(a, centred, axes=(1, 0))  # Gaussian with the windows' covariance
    draws = (centred[pick] + smoothing * z) / np.sqrt(1.0 + smoothing**2)
    return draws - draws.mean(axis=0, keepdims=True) if centre else m + draws


def sample_paths(point: np.ndarray, level: np.ndarray, errors: np.ndarray,
                 nonnegative: Sequence[bool] | None = None) -> np.ndarray:
    """Paths = point (n_series, h) + level (n_series,) x errors (n_paths, n_series, h).

    Series flagged in `nonnegative` (sales, capex) are floored at 0.
    """
    paths = point[None, :, :] + level[None, :, None] * errors
    if nonnegative is not None:
        mask = np.asarray(nonnegative, dtype=bool)
        paths[:, mask, :] = np.maximum(paths[:, mask, :], 0.0)
    return paths


def quantiles(paths: np.ndarray, qs: Sequence[float] = QUANTILES) -> np.ndarray:
    """Quantiles over paths (axis 0): shape (len(qs), ...); non-decreasing in q by construction."""
    return np.quantile(paths, list(qs), axis=0)


def quantile_frame(paths: np.ndarray, ds: Sequence, unique_id: str,
                   qs: Sequence[float] = QUANTILES) -> pd.DataFrame:
    """One row per quarter: ``unique_id, ds, mean, p2.5, p5, p10, p50, p90, p95, p97.5``.

    Args:
        paths: (n_paths, h) sample paths of one quantity.
    """
    qv = quantiles(paths, qs)
    out = pd.DataFrame({"unique_id": unique_id, "ds": pd.DatetimeIndex(ds), "mean": paths.mean(axis=0)})
    for q, v in zip(qs, qv):
        out[quantile_label(q)] = v
    return out
