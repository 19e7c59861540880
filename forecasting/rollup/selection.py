"""Per-series champions with an intercept correction, chosen at each cutoff from the past only.

Input: base forecasts of several candidate models at many cutoffs (a `forecasting.rolling.backtest`
frame with ``intervals="model"``: ``unique_id, cutoff, ds, step, model, mean, y``; ``y``
may be NaN where the outcome is not reported yet).

**Intercept correction** (Clements & Hendry 1996): after a structural change a model fitted
to the whole history under-reacts, and its errors persist from one quarter to the next. The
corrected forecast adds a share ``lam`` of the model's latest one-quarter-ahead miss, known
at the cutoff C::

    f_corrected(C + k) = f(C + k) + lam * (y_C - f_{C-1}(C))      k = 1..h

where ``f_{C-1}(C)`` is the same model's forecast of quarter C made one quarter earlier.
``lam = 0`` is the model itself.

**Nested choice**: at cutoff C, for every series, the (model, lam) pair with the lowest mean
absolute scaled error over the forecasts made at the `window` cutoffs before C, counting
only quarters reported by C (``ds <= C``), steps 1..`steps`. Errors are scaled by the
series' in-sample seasonal-naive MAE at each past cutoff (as MASE). Ties go to the earlier
candidate and the smaller ``lam``. With fewer than `min_windows` past cutoffs scored, the
first candidate without correction is used. Nothing after C is read: the rule is the same
one a forecaster would have applied on the day C was reported.

Measured on the shipped company's free cash flow (12 cutoffs 2022Q3-2025Q2, h=1..4, StatsMLCombo with the
correction chosen this way): MASE relative to seasonal naive 0.709 -> 0.673 (h=1 0.41 -> 0.29);
the choice keeps ``lam = 0`` on the smooth sales series, where a correction hurts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.core.frames import SEASON_LENGTH
from forecasting.core.metrics import seasonal_scale
from forecasting.core.past import window_rows, window_scores
from forecasting.core.provenance import outcomes_read

__all__ = ["champion_forecasts", "choose", "LAMBDAS", "latest_miss", "scored", "SelectionSettings"]

#: Shares of the latest miss tried by the nested choice.
LAMBDAS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class SelectionSettings:
    """How the nested choice is made (see the module docstring)."""

    window: int = 12
    min_windows: int = 4
    steps: int = 4
    lambdas: tuple[float, ...] = LAMBDAS


def latest_miss(fc: pd.DataFrame) -> pd.Series:
    """Per row of `fc`, the model's one-step miss ``y_C - f_{C-1}(C)`` known at the row's
    cutoff C (0 where the previous forecast or the outcome is missing)."""
    s1 = fc[fc["step"] == 1]
    miss = pd.DataFrame({"unique_id": s1["unique_id"].to_numpy(), "model": s1["model"].to_numpy(),
                         "cutoff": pd.DatetimeIndex(s1["ds"]),
                         "miss": (s1["y"] - s1["mean"]).to_numpy(dtype=float)})
    m = fc[["unique_id", "model", "cutoff"]].merge(miss, on=["unique_id", "model", "cutoff"], how="left")
    return pd.Series(np.nan_to_num(m["miss"].to_numpy(dtype=float)), index=fc.index)


def scored(fc: pd.DataFrame, history: pd.DataFrame, lambdas: Sequence[float] = LAMBDAS,
           season_length: int = SEASON_LENGTH) -> pd.DataFrame:
    """`fc` plus ``miss`` and, per lam, the corrected point ``f_<lam>`` and its scaled absolute
    error ``ase_<lam>`` (NaN where the outcome is unknown)."""
    out = fc.reset_index(drop=True).copy()
    out["miss"] = latest_miss(out)
    scale = seasonal_scale(history, out[["unique_id", "cutoff"]], season_length)
    out = out.merge(scale, on=["unique_id", "cutoff"], how="left")
    for lam in lambdas:
        f = out["mean"] + lam * out["miss"]
        out[f"f_{lam:g}"] = f
        out[f"ase_{lam:g}"] = (out["y"] - f).abs() / out["scale"]
    return out


def choose(sc: pd.DataFrame, cutoff, candidates: Sequence[str], settings: SelectionSettings = SelectionSettings()
           ) -> pd.DataFrame:
    """The (model, lam) of every series at `cutoff` from the rows of `sc` (a `scored` frame)
    made at the `settings.window` cutoffs before it and reported by it.

    Returns:
        ``unique_id, cutoff, model, lam, score, n_windows`` (score NaN when the default was used).
    """
    c = pd.Timestamp(cutoff)
    cols = [f"ase_{lam:g}" for lam in settings.lambdas]
    past = window_rows(sc[sc["model"].isin(candidates)], known_by=c, window=settings.window, steps=settings.steps)
    outcomes_read("selection", c, past["ds"])
    score = window_scores(past, cols).set_index(["unique_id", "model"])
    windows = past.groupby("unique_id")["cutoff"].nunique()
    rows = []
    order = {m: i for i, m in enumerate(candidates)}
    now = sc[sc["cutoff"] == c]
    for uid in sorted(now["unique_id"].unique()):
        n_win = int(windows.get(uid, 0))
        made = set(now.loc[now["unique_id"] == uid, "model"])
        present = [m for m in candidates if m in made]
        if not present:
            continue
        if n_win < settings.min_windows:
            rows.append((uid, c, present[0], 0.0, np.nan, n_win))
            continue
        best = None
        for m in sorted(present, key=order.get):
            if (uid, m) not in score.index:
                continue
            for lam, col in zip(settings.lambdas, cols):
                s = score.at[(uid, m), col]
                if np.isfinite(s) and (best is None or s < best[2] - 1e-12):
                    best = (m, lam, float(s))
        if best is None:
            rows.append((uid, c, present[0], 0.0, np.nan, n_win))
        else:
            rows.append((uid, c, best[0], best[1], best[2], n_win))
    return pd.DataFrame(rows, columns=["unique_id", "cutoff", "model", "lam", "score", "n_windows"])


def champion_forecasts(sc: pd.DataFrame, cutoffs: Sequence, candidates: Sequence[str],
                       settings: SelectionSettings = SelectionSettings()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Nested champions at each of `cutoffs` and their corrected forecasts.

    Returns:
        ``(forecasts, choices)``: forecasts ``unique_id, cutoff, ds, step, model, lam, mean, y``
        (``mean`` corrected) and the `choose` rows of every cutoff.
    """
    choices = pd.concat([choose(sc, c, candidates, settings) for c in cutoffs], ignore_index=True)
    m = sc.merge(choices[["unique_id", "cutoff", "model", "lam"]], on=["unique_id", "cutoff", "model"])
    corrected = m["mean"] + m["lam"] * m["miss"]
    out = m.assign(mean=corrected)[["unique_id", "cutoff", "ds", "step", "model", "lam", "mean", "y"]]
    return out.sort_values(["unique_id", "cutoff", "ds"]).reset_index(drop=True), choices
