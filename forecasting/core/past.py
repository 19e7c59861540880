"""What earlier windows may teach at a cutoff: the no-look-ahead rule for past forecasts.

Learned post-steps (weighted ensembles, selecting ensembles, interval calibration) read the
forecasts of earlier rolling-origin windows with their outcomes. At a series' cutoff C only
rows whose quarter was reported by C (``ds <= C``) and whose own forecast was made before C
(``cutoff < C``) may be used; `known_past` drops everything else, so a caller that passes too
much cannot leak outcomes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from forecasting.core.frames import calendar_of

__all__ = ["known_past", "series_cutoffs", "window_rows", "window_scores"]


def series_cutoffs(members_fc: pd.DataFrame) -> pd.Series:
    """Per series, the quarter before its first forecast quarter (index ``unique_id``)."""
    first = pd.to_datetime(members_fc.groupby("unique_id")["ds"].min())
    return first - calendar_of(members_fc).offset(1)


def known_past(past: pd.DataFrame | None, cutoffs: pd.Series) -> pd.DataFrame:
    """Rows of `past` usable at each series' cutoff: outcome reported (``ds <= cutoff``),
    forecast made earlier (``cutoff`` column, when present, before it) and ``y`` finite."""
    if past is None or len(past) == 0:
        return pd.DataFrame(columns=["unique_id", "ds", "model", "mean", "y"])
    p = past[past["unique_id"].isin(cutoffs.index)]
    cut = p["unique_id"].map(cutoffs)
    ok = (pd.to_datetime(p["ds"]) <= cut) & np.isfinite(p["y"].to_numpy(dtype=float))
    if "cutoff" in p.columns:
        ok &= pd.to_datetime(p["cutoff"]) < cut
    return p[ok]


def window_rows(rows: pd.DataFrame, known_by=None, window: int | None = None,
                steps: int | None = None) -> pd.DataFrame:
    """The rows of `rows` a score at cutoff `known_by` may read (see `window_scores`)."""
    p = rows
    if steps is not None:
        p = p[p["step"] <= steps]
    if known_by is not None:
        if isinstance(known_by, pd.Series):
            c = pd.to_datetime(p["unique_id"].map(known_by))
        else:
            c = pd.Series(pd.Timestamp(known_by), index=p.index)
        ok = (pd.to_datetime(p["ds"]) <= c) & (pd.to_datetime(p["cutoff"]) < c)
        if window is not None and len(p):
            ok &= calendar_of(p).steps(p["cutoff"], c) <= int(window)
        p = p[ok]
    return p


def window_scores(rows: pd.DataFrame, columns, known_by=None, window: int | None = None,
                  steps: int | None = None, by: Sequence[str] = ("unique_id", "model"),
                  per_step: bool = False) -> pd.DataFrame:
    """The one past-window scorer: the mean error of each group over earlier windows.

    AutoCombo's candidate scores (`forecasting.methods.autocombo.scores`), the roll-up's node
    selection (`forecasting.rollup.selection.choose`) and the retrain's champions
    (`forecasting.rolling.champions.series_scores`) all score through it; each applies its own
    rule to the scores.

    Args:
        rows: past forecasts ``unique_id, cutoff, ds, step``, the `by` keys and the error
            `columns` (NaN: outcome unknown, left out of the mean).
        columns: one error column or several (each averaged on its own).
        known_by: a cutoff C (a timestamp, or per series a Series indexed by ``unique_id``):
            only rows reported by C (``ds <= C``) and made before it count (`known_past`'s
            rule); None: every row (a backtest scored after the fact).
        window: with `known_by`, only rows made at the last `window` cutoffs before C.
        steps: only horizons ``1..steps``.
        by: the groups scored.
        per_step: average within each step first, then over steps (each horizon weighs the
            same however many of its rows are known).
    Returns:
        One row per group: the `by` keys, the mean of each column, ``n`` (rows scored) and,
        when `rows` has a ``cutoff`` column, ``n_windows`` (distinct cutoffs scored).
    """
    cols = [columns] if isinstance(columns, str) else list(columns)
    by = list(by)
    p = window_rows(rows, known_by, window, steps)
    if per_step:
        means = p.groupby([*by, "step"], observed=True)[cols].mean().groupby(level=list(range(len(by)))).mean()
    else:
        means = p.groupby(by, observed=True)[cols].mean()
    g = p.groupby(by, observed=True)
    out = means.join(g.size().rename("n"))
    if "cutoff" in p.columns:
        out = out.join(g["cutoff"].nunique().rename("n_windows"))
    return out.reset_index()
