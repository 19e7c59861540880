"""Conformal calibration of prediction intervals from earlier rolling-origin windows.

Model intervals fitted on 14-50 quarters are over-confident for income and cash-flow series
and too wide for smooth sales series: plain statsforecast's 80% intervals covered 49-69% of
the shipped company's reported outcomes. We keep each model's point forecast and the *shape* of its
interval (how it widens with the horizon) and rescale its width so that it would have
covered the nominal share of outcomes in earlier windows.

Scores. For a past forecast with outcome y, point f and level-L bounds lo, hi, the
nonconformity score is ``s = |y - f| / w`` with ``w = f - lo`` when y < f, else ``hi - f``
(the model's own distance to the bound on that side, so skewed log-scale intervals keep
their skew).

Factor. At a cutoff C, with the scores of the last `window` cutoffs before C (only rows
whose quarter was reported by C), for model m and series i::

    q_pool(a) = conformal quantile at level a of the scores of model m, all series
    q_i(a)    = the same over series i only (n_i scores)
    q(a)      = (n_i q_i(a) + k q_pool(a)) / (n_i + k)       (shrinkage, k = prior_weight)

and the calibrated interval is ``[f - q(a) (f - lo), f + q(a) (hi - f)]``.

Adaptive level (Gibbs & Candes 2021, "Adaptive conformal inference under distribution
shift"). The working level `a` starts at the nominal L and after each quarter is reported
moves by ``gamma * (L - realised coverage of the calibrated intervals that quarter)``, so
a run of misses widens the next intervals and a run of hits narrows them. The level is
replayed from `past` alone, so the function is pure and sees nothing after C.

With fewer than `min_scores` scores a model's own intervals are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.calendar import FiscalCalendar
from forecasting.core.frames import SEASON_LENGTH, calendar_of, enforce_order
from forecasting.core.provenance import active, outcomes_read

__all__ = ["adaptive_level", "CalibrationSettings", "conformal_factor", "conformal_quantile",
           "conformalize", "DEFAULT", "interval_scores"]


@dataclass(frozen=True)
class CalibrationSettings:
    """Tuning of `conformalize` (chosen on the shipped company's backtest; see the README)."""

    window: int = 12
    prior_weight: float = 12.0
    gamma: float = 0.1
    min_scores: int = 8
    min_level: float = 0.5
    max_level: float = 0.99


DEFAULT = CalibrationSettings()


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """Split-conformal quantile: the ceil((n+1) * level)-th smallest finite score.

    When ceil((n+1) * level) > n (at 95% with fewer than 19 scores) split conformal would give
    an infinite bound; this returns the largest score instead, so the finite-sample guarantee
    does not hold there (per-series quantiles are shrunk toward the pooled one, which softens it)."""
    scores = np.sort(np.asarray(scores, dtype=float))
    scores = scores[np.isfinite(scores)]
    n = len(scores)
    if n == 0:
        return np.nan
    k = int(np.ceil((n + 1) * level)) - 1
    return float(scores[min(max(k, 0), n - 1)])


def interval_scores(p: pd.DataFrame, level: int) -> pd.Series:
    """The nonconformity score of each row of `p` (``y, mean, lo-<level>, hi-<level>``):
    |y - f| over the distance from f to the bound on y's side (NaN where that distance is 0)."""
    return _scores(p, level)


def conformal_factor(rows: pd.DataFrame, level: int = 80, min_rows: int = 8) -> float:
    """The split-conformal quantile at `level` of the `interval_scores` of past rows with
    outcomes: by how much the level-`level` intervals of those rows should have been widened
    (> 1) or narrowed (< 1) to cover `level`% of them. 1.0 with fewer than `min_rows` scores."""
    rows = rows.dropna(subset=["y"])
    if len(rows) < min_rows:
        return 1.0
    s = interval_scores(rows, level).to_numpy(dtype=float)
    s = s[np.isfinite(s)]
    q = conformal_quantile(s, level / 100) if len(s) >= min_rows else np.nan
    return float(q) if np.isfinite(q) and q > 0 else 1.0


def _scores(p: pd.DataFrame, lv: int) -> pd.Series:
    """|y - f| over the distance from f to the bound on y's side (asymmetric intervals of
    log-scale models keep their skew)."""
    below = p["y"] < p["mean"]
    w = np.where(below, p["mean"] - p[f"lo-{lv}"], p[f"hi-{lv}"] - p["mean"])
    s = (p["y"] - p["mean"]).abs() / w
    return s.where(np.isfinite(s) & (w > 0))


def _factors(vals: np.ndarray, uids: np.ndarray, ids: np.ndarray, level: float,
             s: CalibrationSettings) -> np.ndarray:
    """Width factors for the series `ids` from past scores `vals` of series `uids`."""
    keep = np.isfinite(vals)
    vals, uids = vals[keep], uids[keep]
    if len(vals) < s.min_scores:
        return np.full(len(ids), np.nan)
    q_pool = conformal_quantile(vals, level)
    order = np.lexsort((vals, uids))
    vals, uids = vals[order], uids[order]
    names, first, n_i = np.unique(uids, return_index=True, return_counts=True)
    k = np.clip(np.ceil((n_i + 1) * level).astype(int) - 1, 0, n_i - 1)
    q = (n_i * vals[first + k] + s.prior_weight * q_pool) / (n_i + s.prior_weight)
    pos = np.searchsorted(names, ids)
    found = (pos < len(names)) & (names[np.minimum(pos, len(names) - 1)] == ids)
    return np.where(found, q[np.minimum(pos, len(names) - 1)], q_pool)


class _Scored:
    """One model's past rows as arrays (quarters as integers), for the replay loop."""

    def __init__(self, p: pd.DataFrame, lv: int, calendar: FiscalCalendar):
        self.cut = calendar.ordinals(p["cutoff"])
        self.ds = calendar.ordinals(p["ds"])
        self.dates = pd.to_datetime(p["ds"]).to_numpy()
        self.uid = p["unique_id"].to_numpy().astype(str)
        self.s = _scores(p, lv).to_numpy(dtype=float)

    def window(self, t: int, s: CalibrationSettings) -> np.ndarray:
        """Rows scored by quarter `t`: outcome reported by then (``ds <= t``; a forecast made at
        `t` or later has no such row) and made at one of the `s.window` cutoffs before it."""
        return (self.cut >= t - s.window) & (self.ds <= t)


def adaptive_level(p: _Scored, target: float, cutoff: int, s: CalibrationSettings = DEFAULT,
                   at: pd.Timestamp | None = None) -> float:
    """Replay adaptive conformal inference over the past cutoffs of one model's scored rows
    (`at`: the date of `cutoff`, for the provenance record)."""
    level = target
    if s.gamma == 0 or len(p.s) == 0:
        return level
    done_ds: list[np.ndarray] = []
    done_in: list[np.ndarray] = []
    done_dates: list[np.ndarray] = []
    prev = None
    for t in [*np.unique(p.cut), cutoff]:
        if done_ds and prev is not None:
            ds, inside = np.concatenate(done_ds), np.concatenate(done_in)
            new = (ds > prev) & (ds <= t)
            if active():
                outcomes_read("calibration.adaptive_level", at, np.concatenate(done_dates)[new])
            if new.any():
                level = float(np.clip(level + s.gamma * (target - inside[new].mean()), s.min_level, s.max_level))
        if t == cutoff:
            break
        rows = p.cut == t
        w = p.window(t, s)
        fac = _factors(p.s[w], p.uid[w], p.uid[rows], level, s)
        ok = np.isfinite(fac) & np.isfinite(p.s[rows])
        if ok.any():
            done_ds.append(p.ds[rows][ok])
            done_in.append(p.s[rows][ok] <= fac[ok])
            done_dates.append(p.dates[rows][ok])
        prev = t
    return level


def conformalize(
    fc: pd.DataFrame,
    past: pd.DataFrame,
    level: Sequence[int],
    train: pd.DataFrame | None = None,
    season_length: int = SEASON_LENGTH,
    settings: CalibrationSettings = DEFAULT,
) -> pd.DataFrame:
    """Rescale the intervals of `fc` (one cutoff) using `past` (see the module docstring).

    Args:
        fc: forecasts at one cutoff: long format with ``cutoff``, ``unique_id``, ``model``,
            ``mean`` and ``lo-L``/``hi-L`` columns.
        past: earlier cutoffs' forecasts with their reported ``y`` and *uncalibrated*
            intervals; only rows reported on or before the cutoff of `fc` are read (a
            caller that passes later ones cannot leak them).
        level: interval levels in percent.
    Returns:
        a copy of `fc` with rescaled intervals (point forecasts untouched) and nested levels.
    """
    if past is None or len(past) == 0 or len(fc) == 0:
        return fc
    cal = calendar_of(fc)
    cutoff = pd.Timestamp(fc["cutoff"].iloc[0])
    past = past.dropna(subset=["y"])
    fc = fc.copy()
    for lv in sorted(level):
        lo, hi = f"lo-{lv}", f"hi-{lv}"
        factor = np.full(len(fc), np.nan)
        for model, p in past.groupby("model"):
            rows = (fc["model"] == model).to_numpy()
            if not rows.any():
                continue
            scored = _Scored(p, lv, cal)
            t = int(cal.ordinals([cutoff])[0])
            a = adaptive_level(scored, lv / 100, t, settings, at=cutoff)
            w = scored.window(t, settings)
            outcomes_read("calibration.window", cutoff, scored.dates[w])
            ids = fc.loc[rows, "unique_id"].to_numpy().astype(str)
            factor[rows] = _factors(scored.s[w], scored.uid[w], ids, a, settings)
        ok = np.isfinite(factor)
        mean = fc["mean"].to_numpy(dtype=float)
        down = mean - fc[lo].to_numpy(dtype=float)
        up = fc[hi].to_numpy(dtype=float) - mean
        fc.loc[ok, lo] = mean[ok] - factor[ok] * down[ok]
        fc.loc[ok, hi] = mean[ok] + factor[ok] * up[ok]
    return enforce_order(fc, level)
