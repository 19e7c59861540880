"""Backtest metrics: pure functions of frames (one row per group, one column per metric).

Definitions, for a forecast f of a reported value y made at a cutoff. Where utilsforecast
computes the same thing, `summarize` takes it from ``utilsforecast.losses``; ours differ where
said:

- MAE = mean |y - f| (``losses.mae``); sMAPE = 200 mean |y - f| / (|y| + |f|), 0 where both are 0
  (``losses.smape`` x 200: percent on 0..200, the M3 convention); coverage-L = share of
  outcomes inside the L% interval (``losses.coverage``, over the rows that have an interval).
- MAPE = 100 mean |y - f| / |y| over rows with y != 0 (``losses.mape`` counts y = 0 as a zero
  error instead).
- MASE = mean |y - f| / scale, where scale is the in-sample seasonal-naive MAE
  (m = `season_length`) of the series *up to that cutoff*, so no error is scaled with data
  from after the cutoff. utilsforecast's ``mase`` takes one training frame for all cutoffs,
  which is why it is computed here.
- bias = mean signed percentage error 100 (f - y) / |y| (positive: forecasts too high)
- coverage-L = share of outcomes inside the L% interval; width-L = mean (hi - lo), and
  width-L scaled by the same MASE scale.
- YoY growth error (percentage points) = forecast YoY growth - reported YoY growth, where the
  forecast growth divides by the reported value four quarters earlier when it was reported
  by the cutoff, else by the same cutoff's forecast of it. Only where that base is positive.
- relative MASE = MASE of the model / MASE of SeasonalNaive on the same rows. Aggregated
  over series as a geometric mean (`gmean`; Fleming & Wallace 1986: the right mean of ratios).
- Proper scores of the distribution, scaled by the same MASE scale (lower is better; a
  narrower band improves them only if it stays honest):
  scaled CRPS ~= 2 x the mean pinball loss over the quantiles the frame carries (P2.5, P10,
  P50 = ``mean``, P90, P97.5 from ``lo-95, lo-80, mean, hi-80, hi-95``): the quantile
  approximation of the CRPS that utilsforecast's ``mqloss`` / ``scaled_crps`` use, here per
  row and scaled per cutoff by the MASE scale (``losses.scaled_crps`` divides by the sum of
  |y| instead); scaled interval score at L% (Gneiting & Raftery 2007, the
  M4 competition's MSIS): ``(hi - lo + (2/a)(lo - y)1{y<lo} + (2/a)(y - hi)1{y>hi}) / scale``
  with a = 1 - L/100.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from utilsforecast import losses

from features.calendar import SEASON_LENGTH, FiscalCalendar
from forecasting.core.provenance import active, outcomes_read

__all__ = ["BASELINE", "pointwise", "leaderboard", "add_relative", "best_by_series", "gmean", "pinball",
           "scaled_crps_rows", "seasonal_scale", "summarize"]

BASELINE = "SeasonalNaive"


def gmean(values) -> float:
    """Geometric mean of the finite positive values (NaN if there are none): the mean of ratios."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.exp(np.log(v).mean())) if len(v) else float("nan")


def seasonal_scale(history: pd.DataFrame, cutoffs: pd.DataFrame, season_length: int = SEASON_LENGTH
                   ) -> pd.DataFrame:
    """Seasonal-naive in-sample MAE of each series up to each cutoff.

    Args:
        history: long frame ``unique_id, ds, y``.
        cutoffs: frame with ``unique_id, cutoff`` pairs.
    Returns: ``unique_id, cutoff, scale``.
    """
    rows = []
    hist = {uid: g.sort_values("ds") for uid, g in history.groupby("unique_id")}
    for uid, cut in cutoffs[["unique_id", "cutoff"]].drop_duplicates().itertuples(index=False):
        known = hist[uid]["ds"] <= cut
        y = hist[uid].loc[known, "y"].to_numpy(dtype=float)
        if active():
            outcomes_read("metrics.seasonal_scale", cut, hist[uid].loc[known, "ds"])
        d = np.abs(y[season_length:] - y[:-season_length])
        rows.append((uid, cut, float(d.mean()) if len(d) else np.nan))
    out = pd.DataFrame(rows, columns=["unique_id", "cutoff", "scale"])
    out.loc[out["scale"] <= 0, "scale"] = np.nan
    return out


def pointwise(
    bt: pd.DataFrame,
    history: pd.DataFrame,
    level: Sequence[int] = (80, 95),
    season_length: int = SEASON_LENGTH,
) -> pd.DataFrame:
    """Per-row errors of a backtest frame (adds ``ae, ape, sape, ase, spe, in-L, width-L, yoy_err_pp``).

    Each (``unique_id``, ``model``, ``cutoff``, ``ds``) must appear once: a repeated row means the
    caller concatenated one model's backtest twice, and is refused (a bug, not bad input)."""
    keys = ["unique_id", "model", "cutoff", "ds"]
    repeated = bt.duplicated(keys, keep=False)
    if repeated.any():
        first = bt.loc[repeated, keys].iloc[0]
        raise ValueError(f"pointwise: {int(repeated.sum())} backtest rows repeat a (unique_id, model, cutoff, ds), "
                         f"e.g. {first['unique_id']} / {first['model']} / {pd.Timestamp(first['cutoff']).date()} / "
                         f"{pd.Timestamp(first['ds']).date()}; pass each model's rows once")
    out = bt.merge(seasonal_scale(history, bt, season_length), on=["unique_id", "cutoff"], how="left")
    y, f = out["y"].to_numpy(dtype=float), out["mean"].to_numpy(dtype=float)
    err = f - y
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ae"] = np.abs(err)
        out["ape"] = np.where(y != 0, 100 * np.abs(err) / np.abs(y), np.nan)
        den = np.abs(y) + np.abs(f)
        out["sape"] = np.where(den > 0, 200 * np.abs(err) / den, 0.0)
        out["ase"] = out["ae"] / out["scale"]
        out["spe"] = np.where(y != 0, 100 * err / np.abs(y), np.nan)
    for lv in level:
        lo, hi = out[f"lo-{lv}"], out[f"hi-{lv}"]
        inside = ((out["y"] >= lo) & (out["y"] <= hi)).astype(float)
        out[f"in-{lv}"] = inside.where(lo.notna() & hi.notna())  # no interval: no coverage
        out[f"width-{lv}"] = hi - lo
        out[f"swidth-{lv}"] = (hi - lo) / out["scale"]
        a = 1 - lv / 100
        yv = out["y"]
        out[f"sis-{lv}"] = ((hi - lo) + (2 / a) * (lo - yv).clip(lower=0) + (2 / a) * (yv - hi).clip(lower=0)
                            ) / out["scale"]
    out["scrps"] = scaled_crps_rows(out, level)
    out["yoy_err_pp"] = _yoy_error(out, history)
    return out


def pinball(y: np.ndarray, q: np.ndarray, tau: float) -> np.ndarray:
    """Quantile (pinball) loss of quantile forecast `q` at level `tau` for outcomes `y`."""
    d = np.asarray(y, dtype=float) - np.asarray(q, dtype=float)
    return np.maximum(tau * d, (tau - 1) * d)


def scaled_crps_rows(rows: pd.DataFrame, level: Sequence[int] = (80, 95)) -> pd.Series:
    """Per row: 2 x mean pinball loss over the quantiles ``lo-L``, the median, ``hi-L`` (one pair
    per level) divided by ``scale`` (see the module docstring). The median is the ``median``
    column where a row has one (sample paths: P50), else ``mean`` (the point forecast of a model
    whose intervals are symmetric around it). NaN where a bound is missing."""
    y = rows["y"].to_numpy(dtype=float)
    centre = rows["mean"]
    if "median" in rows.columns:
        centre = rows["median"].where(rows["median"].notna(), rows["mean"])
    losses = [pinball(y, centre.to_numpy(dtype=float), 0.5)]
    for lv in level:
        a = (1 - lv / 100) / 2
        losses.append(pinball(y, rows[f"lo-{lv}"].to_numpy(dtype=float), a))
        losses.append(pinball(y, rows[f"hi-{lv}"].to_numpy(dtype=float), 1 - a))
    return pd.Series(2 * np.mean(losses, axis=0) / rows["scale"].to_numpy(dtype=float), index=rows.index)


def _yoy_error(out: pd.DataFrame, history: pd.DataFrame) -> np.ndarray:
    base_ds = out["ds"] - FiscalCalendar.infer(out["ds"].iloc[:1]).offset(SEASON_LENGTH)
    hist = history.set_index(["unique_id", "ds"])["y"]
    reported_base = hist.reindex(pd.MultiIndex.from_arrays([out["unique_id"], base_ds])).to_numpy()
    fc_base = (
        out.set_index(["unique_id", "model", "cutoff", "ds"])["mean"]
        .reindex(pd.MultiIndex.from_arrays([out["unique_id"], out["model"], out["cutoff"], base_ds]))
        .to_numpy()
    )
    known = (base_ds <= out["cutoff"]).to_numpy()
    fbase = np.where(known, reported_base, fc_base)
    y, f = out["y"].to_numpy(dtype=float), out["mean"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        g_fc = np.where(fbase > 0, f / fbase - 1, np.nan)
        g_rep = np.where(reported_base > 0, y / reported_base - 1, np.nan)
    return 100 * (g_fc - g_rep)


def summarize(points: pd.DataFrame, by: Sequence[str] = ("unique_id", "model", "step"),
              level: Sequence[int] = (80, 95)) -> pd.DataFrame:
    """Aggregate `pointwise` rows by `by` into one metrics row per group (the module docstring
    says which come from ``utilsforecast.losses``)."""
    g = points.groupby(list(by), observed=True)
    key = g.ngroup().rename("group_")
    frame = pd.DataFrame({"group_": key, "y": points["y"], "mean": points["mean"]})
    out = pd.DataFrame({
        "n": g.size(),
        "mae": _by_group(losses.mae(frame, ["mean"], id_col="group_"), g),
        "mape": g["ape"].mean(),
        "smape": 200 * _by_group(losses.smape(frame, ["mean"], id_col="group_"), g),
        "mase": g["ase"].mean(),
        "bias_pct": g["spe"].mean(),
        "yoy_abs_err_pp": g["yoy_err_pp"].apply(lambda s: s.abs().mean()),
    })
    for lv in level:
        out[f"coverage_{lv}"] = _coverage(points, key, g, lv)
        out[f"width_{lv}"] = g[f"width-{lv}"].mean()
        out[f"scaled_width_{lv}"] = g[f"swidth-{lv}"].mean()
        if f"sis-{lv}" in points:
            out[f"msis_{lv}"] = g[f"sis-{lv}"].mean()
    if "scrps" in points:
        out["scaled_crps"] = g["scrps"].mean()
    out = out.reset_index()
    if "model" in by:
        out = add_relative(out, [c for c in by if c != "model"])
    return out


def _by_group(table: pd.DataFrame, g) -> pd.Series:
    """A utilsforecast loss table (one row per ``group_``) in the order of the groups of `g`."""
    values = table.set_index("group_")["mean"]
    return pd.Series(values.reindex(range(g.ngroups)).to_numpy(), index=g.size().index)


def _coverage(points: pd.DataFrame, key: pd.Series, g, lv: int) -> pd.Series:
    """``losses.coverage`` over the rows with an L% interval; NaN for a group without any."""
    has = points[f"lo-{lv}"].notna() & points[f"hi-{lv}"].notna()
    frame = pd.DataFrame({"group_": key[has], "y": points.loc[has, "y"], "mean": 0.0,
                          f"mean-lo-{lv}": points.loc[has, f"lo-{lv}"], f"mean-hi-{lv}": points.loc[has, f"hi-{lv}"]})
    if frame.empty:
        return pd.Series(np.nan, index=g.size().index)
    return _by_group(losses.coverage(frame, ["mean"], level=lv, id_col="group_"), g)


def add_relative(table: pd.DataFrame, keys: Sequence[str], baseline: str = BASELINE) -> pd.DataFrame:
    """Add ``rel_mase`` = MASE / SeasonalNaive's MASE on the same keys."""
    keys = list(keys)
    base = table[table["model"] == baseline][keys + ["mase"]].rename(columns={"mase": "_base"})
    out = table.merge(base, on=keys, how="left") if keys else table.assign(
        _base=float(base["_base"].iloc[0]) if len(base) else np.nan)
    out["rel_mase"] = out["mase"] / out["_base"]
    return out.drop(columns="_base")


def leaderboard(points: pd.DataFrame, level: Sequence[int] = (80, 95), baseline: str = BASELINE) -> pd.DataFrame:
    """One row per model, best first.

    ``gm_rel_mase``: geometric mean over series of (series MASE / SeasonalNaive's series MASE);
    ``series_beating_baseline``: on how many series the model's MASE is below the baseline's;
    coverage and widths are means over all backtest rows.
    """
    per = summarize(points, ("unique_id", "model"), level)
    g = per.groupby("model", observed=True)
    overall = summarize(points, ("model",), level).set_index("model")
    out = pd.DataFrame({
        "gm_rel_mase": g["rel_mase"].apply(gmean),
        "mean_mase": overall["mase"],
        "smape": overall["smape"],
        "bias_pct": overall["bias_pct"],
        "yoy_abs_err_pp": overall["yoy_abs_err_pp"],
        "series_beating_baseline": g["rel_mase"].apply(lambda s: int((s < 1).sum())),
        "n_series": g.size(),
    })
    for lv in level:
        out[f"coverage_{lv}"] = overall[f"coverage_{lv}"]
    out = out.sort_values(["gm_rel_mase", "mean_mase"])
    return out.reset_index()


def best_by_series(points: pd.DataFrame, steps: Sequence[int] = (1, 4), level: Sequence[int] = (80, 95),
                   baseline: str = BASELINE) -> pd.DataFrame:
    """Per series and step: the lowest-MASE model, its relative MASE and coverage, beside the baseline."""
    t = summarize(points[points["step"].isin(steps)], ("unique_id", "step", "model"), level)
    rows = []
    for (uid, step), g in t.groupby(["unique_id", "step"]):
        best = g.sort_values("mase").iloc[0]
        base = g[g["model"] == baseline]
        rows.append({
            "unique_id": uid, "step": step, "best_model": best["model"],
            "best_mase": best["mase"], "baseline_mase": float(base["mase"].iloc[0]) if len(base) else np.nan,
            "rel_mase": best["rel_mase"], f"coverage_{level[0]}": best[f"coverage_{level[0]}"],
            "beats_baseline": bool(best["model"] != baseline and best["rel_mase"] < 1),
        })
    return pd.DataFrame(rows)
