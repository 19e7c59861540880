"""Backtest of the FCF roll-up against reported quarters, beside the direct forecasts of FCF.

At each of the last `n_windows` cutoffs whose `h` quarters are all reported, the roll-up
(`forecasting.rollup.paths`) is run as it would have been on the day that quarter was reported,
and scored against reported FCF and trailing-twelve-month (TTM) FCF:

- ``Rollup``: the raw simulation; ``RollupCalibrated``: its spread scaled by the conformal
  quantile of the raw simulations' misses at the cutoffs just before, over the quarters
  reported by the cutoff (`forecasting.rollup.paths.recent_misses`);
- direct models of the FCF series and of the TTM series itself (`direct_models`, conformal
  intervals) and seasonal naive (the TTM equivalent of quarterly seasonal naive is the last
  reported TTM carried forward);
- fiscal-year FCF of the current and the next year (reported quarters + simulated ones),
  where the year has been reported;
- node tables: the reconciled totals against each candidate, the nested champion and the
  guidance midpoint (h = 1); the segment reconciliation and the cash-flow identity variants
  (direct FCF, bridged, OCF model - capex model, reconciled).

Scores come from `forecasting.core.metrics` (MASE relative to seasonal naive, coverage, scaled
CRPS and interval score).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.profile import CompanyProfile
from forecasting.rolling.backtest import backtest
from forecasting.core.frames import ShortSeriesWarning
from forecasting.core.metrics import gmean, pointwise, scaled_crps_rows, seasonal_scale, summarize
from forecasting.rollup.paths import (
    build_inputs,
    calibrate,
    calibration_cutoffs,
    interval_rows,
    raw_simulation,
    recent_misses,
    reported_fcf,
    simulate,
)
from forecasting.rollup.config import RollupConfig, RollupSeries
from forecasting.rollup.pipeline import Pipeline, prepare_pipeline, quarters_between

__all__ = ["RollupBacktest", "RollupBacktestConfig", "RollupScores", "backtest_rollup", "score_rollup",
           "compare_reconciliation", "score_fiscal_years"]

#: Direct models of the FCF series (and of TTM FCF) shown beside the roll-up.
DIRECT_MODELS = ("AutoETS", "StatsCombo", "StatsMLCombo")


@dataclass
class RollupBacktest:
    """Everything `backtest_rollup` measured.

    Attributes:
        backtest: FCF and TTM FCF rows of every model (`forecasting.rolling.backtest` format).
        history: reported FCF and TTM FCF (MASE scales).
        fiscal_years: ``cutoff, fiscal_year, which (current/next), model, y, mean, lo-80..``.
        nodes: reconciled totals, champions, candidates and the guidance midpoint on the
            nodes (`forecasting.rolling.backtest` format with ``model``).
        cashflow: FCF from each cash-flow variant at the evaluated cutoffs.
        reconciliation: segment forecasts before and after reconciliation (``method``).
        choices: the per-node choices at the evaluated cutoffs.
        factors: the calibration factor used at each evaluated cutoff.
        pipeline: the computed `forecasting.rollup.pipeline.Pipeline` (reusable by `rollup`).
    """

    backtest: pd.DataFrame
    history: pd.DataFrame
    fiscal_years: pd.DataFrame
    nodes: pd.DataFrame
    cashflow: pd.DataFrame
    reconciliation: pd.DataFrame
    choices: pd.DataFrame
    factors: pd.DataFrame
    pipeline: Pipeline


def _fy_rows(sim, inputs, cutoff, model: str) -> list[dict]:
    """Fiscal-year FCF of the current and next year from one simulation (`Simulation.fiscal_years`):
    the point is the year's P50 (the sum of reported and simulated quarters is skewed by the
    floors on sales and capex paths, and its MAE is scored on the median), bands P2.5..P97.5."""
    cal = inputs.series.calendar
    first = int(cal.fiscal_year([pd.Timestamp(cutoff) + cal.offset(1)])[0])
    years = sim.fiscal_years(inputs.history)
    rows = []
    for which, year in (("current", first), ("next", first + 1)):
        r = years[years["fiscal_year"] == year] if len(years) else years
        if not len(r):
            continue
        r = r.iloc[0]
        rows.append({"cutoff": pd.Timestamp(cutoff), "fiscal_year": year, "which": which, "model": model,
                     "mean": r["p50"], "lo-95": r["p2.5"], "lo-80": r["p10"], "hi-80": r["p90"], "hi-95": r["p97.5"],
                     "steps": 4 - int(r["reported_quarters"])})
    return rows


def _direct(history: pd.DataFrame, series: RollupSeries, models: Sequence[str], h: int, n_windows: int
            ) -> pd.DataFrame:
    """Direct models on the FCF and TTM FCF series at the evaluated cutoffs, and seasonal naive
    (TTM: the last reported TTM carried forward)."""
    hist_all = reported_fcf(history, series)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShortSeriesWarning)
        bt = backtest(hist_all, models=["Naive", *models], h=h, n_windows=n_windows, end_offset=h, cache=None)
    q = bt[(bt["unique_id"] == series.fcf) & (bt["model"] != "Naive")]
    t = bt[(bt["unique_id"] == series.fcf_ttm) & ~bt["model"].isin(["SeasonalNaive"])]
    t = t.assign(model=t["model"].replace({"Naive": "SeasonalNaive"}))
    return pd.concat([q, t], ignore_index=True)


def _fy_seasonal_naive(history: pd.DataFrame, series: RollupSeries, fy: pd.DataFrame) -> pd.DataFrame:
    """Seasonal naive summed into fiscal years (each forecast quarter = same quarter a year earlier)."""
    cal = series.calendar
    fcf = history[history["unique_id"] == series.fcf].set_index("ds")["y"]
    rows = []
    for (cutoff, year, which), _ in fy.groupby(["cutoff", "fiscal_year", "which"]):
        vals = []
        for q in cal.year_quarters(year):
            src = q
            while src > cutoff:  # seasonal naive: the same quarter of the last reported year
                src = src - cal.offset(4)
            vals.append(float(fcf.get(src, np.nan)))
        rows.append({"cutoff": cutoff, "fiscal_year": year, "which": which, "model": "SeasonalNaive",
                     "mean": float(np.sum(vals))})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class RollupBacktestConfig:
    """What `backtest_rollup` scores besides the roll-up's own settings (`RollupConfig`).

    Attributes:
        n_windows: the last fully reported cutoffs evaluated.
        direct_models: direct models of the FCF and TTM FCF series shown beside the roll-up.
        fiscal_years: also score fiscal-year FCF (current and next year).
    """

    n_windows: int = 12
    direct_models: tuple[str, ...] = DIRECT_MODELS
    fiscal_years: bool = True


def backtest_rollup(df: pd.DataFrame, profile: CompanyProfile, config: RollupConfig | None = None, guidance=None,
                    scoring: RollupBacktestConfig = RollupBacktestConfig(), pipeline: Pipeline | None = None,
                    progress: Callable[[Iterable], Iterable] | None = None) -> RollupBacktest:
    """The roll-up at each of the last `scoring.n_windows` fully reported cutoffs (module docstring).

    Args:
        df: every modelled series (`features.loader.load_quarterly()`).
        profile: the company's profile (hierarchy, cash-flow series, calendar).
        config: `forecasting.rollup.config.RollupConfig` (``h`` quarters are scored).
        guidance: `features.guidance.GuidanceBook` (each cutoff sees what was known then).
        scoring: how many cutoffs, which direct models, fiscal years or not.
        pipeline: a `Pipeline` already computed on `df` (reused): `config`'s horizon, paths, seed
            and calibration apply; its pipeline settings must match (`Pipeline.with_config`).
    """
    pipe = pipeline.with_config(config) if pipeline is not None else prepare_pipeline(df, profile, config, guidance)
    config, rs = pipe.config, pipe.series
    cal = rs.calendar
    h = config.h
    history = pipe.history
    newest = history["ds"].max()
    evaluated = calibration_cutoffs(pipe, h, scoring.n_windows)
    hist_all = reported_fcf(history, rs)
    raw, calibrated, factors, fy = [], [], [], []
    sims: dict = {}  # raw simulations shared by the cutoffs' calibrations (`raw_simulation`)
    iterator = progress(evaluated) if progress is not None else evaluated
    for c in iterator:
        c = pd.Timestamp(c)
        inputs = build_inputs(pipe, c, h)
        raw.append(interval_rows(raw_simulation(pipe, c, h, sims), c, "Rollup", hist_all))
        calibrate(inputs, pipe, c, h, sims)
        factors.append({"cutoff": c, "error_scale": inputs.spread_scale,
                        "rows": _calibration_rows(pipe, c, h, sims) if config.calibrate else 0})
        calibrated.append(interval_rows(simulate(inputs), c, "RollupCalibrated", hist_all))
        if scoring.fiscal_years:
            first_year = int(cal.fiscal_year([c + cal.offset(1)])[0])
            year_end = cal.year_end(first_year + 1)
            if year_end > newest:  # the next fiscal year is not reported yet: score the current one only
                year_end = cal.year_end(first_year)
            try:
                fy_in = build_inputs(pipe, c, quarters_between(c, year_end, cal))
            except ValueError:  # a short history: too few past windows as long as the year's horizon
                continue
            fy += _fy_rows(simulate(fy_in), fy_in, c, "Rollup")
            fy_in.error_scale, fy_in.node_scale = inputs.error_scale, inputs.node_scale
            fy += _fy_rows(simulate(fy_in), fy_in, c, "RollupCalibrated")
    roll = pd.concat(raw + calibrated, ignore_index=True)
    direct = _direct(history, rs, list(scoring.direct_models), h, scoring.n_windows)
    champ = pipe.champions[(pipe.champions["unique_id"] == rs.fcf) & pipe.champions["cutoff"].isin(evaluated)
                           & (pipe.champions["step"] <= h)]
    champ = champ.assign(model="FCFChampion", model_used=champ["model"])
    for c in ("lo-95", "lo-80", "hi-80", "hi-95"):
        champ[c] = np.nan
    out = pd.concat([roll, direct, champ], ignore_index=True).dropna(subset=["y"])
    out["step"] = cal.steps(out["cutoff"], out["ds"]).astype(int)
    cols = ["unique_id", "cutoff", "ds", "step", "y", "model", "model_used", "mean", "lo-95", "lo-80", "hi-80", "hi-95"]
    out = out[cols].sort_values(["unique_id", "model", "cutoff", "ds"]).reset_index(drop=True)
    fy_df = pd.DataFrame(fy)
    if len(fy_df):
        fy_df = pd.concat([fy_df, _fy_seasonal_naive(history, rs, fy_df[fy_df["model"] == "Rollup"])],
                          ignore_index=True)
        fcf = history[history["unique_id"] == rs.fcf]
        annual = fcf.groupby(cal.fiscal_year(fcf["ds"]))["y"].agg(["sum", "size"])
        annual = annual[annual["size"] == 4]["sum"]
        fy_df["y"] = fy_df["fiscal_year"].map(annual)
    return RollupBacktest(backtest=out, history=hist_all, fiscal_years=fy_df,
                          nodes=_node_rows(pipe, evaluated, h), cashflow=_cashflow_rows(pipe, evaluated, h),
                          reconciliation=_reconciliation_rows(pipe, evaluated),
                          choices=pipe.choices[pipe.choices["cutoff"].isin(evaluated)].reset_index(drop=True),
                          factors=pd.DataFrame(factors), pipeline=pipe)


def _calibration_rows(pipe: Pipeline, c, h: int, sims: dict) -> int:
    """Reported rows the calibration at `c` learnt from (FCF's, or every simulated node's)."""
    series = list(pipe.series.simulated) if pipe.config.calibrate_by == "node" else None
    known = recent_misses(pipe, c, h, pipe.config.calibration_window, sims, series=series)
    return len(known.dropna(subset=["y"]))


def _node_rows(pipe: Pipeline, cutoffs: Sequence, h: int) -> pd.DataFrame:
    """Totals (sales, OI), capex and OCF: the roll-up's reconciled values, the champions and
    every candidate (incl. the guidance midpoint), as backtest rows with ``model``."""
    cash = pipe.series.cash
    series = [cash.sales, cash.operating_income, cash.capex, cash.operating_cash_flow]
    keep = lambda d: d[d["unique_id"].isin(series) & d["cutoff"].isin(cutoffs) & (d["step"] <= h)]  # noqa: E731
    final = keep(pipe.final).assign(model="Rollup")
    champ = keep(pipe.champions).assign(model="Champion")
    cand = keep(pipe.nodes)
    out = pd.concat([final, champ[final.columns], cand[final.columns]], ignore_index=True).dropna(subset=["y"])
    for c in ("lo-95", "lo-80", "hi-80", "hi-95"):
        out[c] = np.nan
    out["model_used"] = out["model"]
    return out.reset_index(drop=True)


def _cashflow_rows(pipe: Pipeline, cutoffs: Sequence, h: int) -> pd.DataFrame:
    """FCF of each way of combining the cash-flow forecasts, at the evaluated cutoffs."""
    FCF, cal = pipe.series.fcf, pipe.series.calendar
    ci = pipe.cashflow_inputs
    ci = ci[ci["cutoff"].isin(cutoffs) & (ci["step"] <= h)]
    rec = pipe.final[(pipe.final["unique_id"] == FCF) & pipe.final["cutoff"].isin(cutoffs) & (pipe.final["step"] <= h)]
    variants = {"direct FCF model": ci["fcf"], "bridge OCF - capex model": ci["ocf_bridge"] - ci["capex"],
                "OCF model - capex model": ci["ocf"] - ci["capex"]}
    parts = [pd.DataFrame({"unique_id": FCF, "cutoff": ci["cutoff"], "ds": ci["ds"], "step": ci["step"],
                           "model": name, "mean": v.to_numpy()}) for name, v in variants.items()]
    parts.append(rec[["unique_id", "cutoff", "ds", "step"]].assign(model=f"reconciled ({pipe.config.cashflow})",
                                                                   mean=rec["mean"].to_numpy()))
    out = pd.concat(parts, ignore_index=True)
    fcf = pipe.history[pipe.history["unique_id"] == FCF][["ds", "y"]]
    out = out.merge(fcf, on="ds", how="left").dropna(subset=["y", "mean"])
    sn = out[out["model"] == "direct FCF model"].copy()
    sn["model"] = "SeasonalNaive"
    sn["mean"] = fcf.set_index("ds")["y"].reindex(sn["ds"] - cal.offset(4)).to_numpy()
    sn["mean"] = np.where(sn["step"] > 4, np.nan, sn["mean"])
    out = pd.concat([out, sn.dropna(subset=["mean"])], ignore_index=True)
    for c in ("lo-95", "lo-80", "hi-80", "hi-95"):
        out[c] = np.nan
    out["model_used"] = out["model"]
    return out


def _reconciliation_rows(pipe: Pipeline, cutoffs: Sequence) -> pd.DataFrame:
    nodes = pipe.series.tree.nodes()
    base = pipe.champions[pipe.champions["unique_id"].isin(nodes) & pipe.champions["cutoff"].isin(cutoffs)]
    rec = pipe.final[pipe.final["unique_id"].isin(nodes) & pipe.final["cutoff"].isin(cutoffs)]
    cols = ["cutoff", "unique_id", "ds", "step", "mean", "y"]
    return pd.concat([base[cols].assign(method="base"), rec[cols].assign(method=pipe.config.method)],
                     ignore_index=True).dropna(subset=["y"])


# --------------------------------------------------------------------------- scores
@dataclass
class RollupScores:
    """The tables `score_rollup` computes from a `RollupBacktest` (metrics of
    `forecasting.core.metrics.summarize`: MASE relative to seasonal naive, coverage, scaled CRPS...).

    Attributes:
        points: per-row errors; by_step / overall: FCF and TTM FCF, every model, per step / all.
        fiscal_years: `score_fiscal_years`; nodes_by_step: the node tables; cashflow_by_step /
        cashflow_overall: the cash-flow variants; reconciliation: `compare_reconciliation`.
    """

    points: pd.DataFrame
    by_step: pd.DataFrame
    overall: pd.DataFrame
    fiscal_years: pd.DataFrame
    nodes_by_step: pd.DataFrame
    cashflow_by_step: pd.DataFrame
    cashflow_overall: pd.DataFrame
    reconciliation: pd.DataFrame


def score_rollup(result: RollupBacktest, level: Sequence[int] = (80, 95)) -> RollupScores:
    """The tables of a `RollupBacktest` (see `RollupScores`)."""
    pts = pointwise(result.backtest, result.history, level)
    hist = result.pipeline.history
    node_pts = pointwise(result.nodes, hist, level)
    cash_pts = pointwise(result.cashflow, hist, level)
    return RollupScores(points=pts, by_step=summarize(pts, ("unique_id", "model", "step"), level),
                        overall=summarize(pts, ("unique_id", "model"), level),
                        fiscal_years=score_fiscal_years(result.fiscal_years, hist, result.pipeline.series),
                        nodes_by_step=summarize(node_pts, ("unique_id", "model", "step"), level),
                        cashflow_by_step=summarize(cash_pts, ("unique_id", "model", "step"), level),
                        cashflow_overall=summarize(cash_pts, ("unique_id", "model"), level),
                        reconciliation=compare_reconciliation(result.reconciliation, hist))


def score_fiscal_years(fy: pd.DataFrame, history: pd.DataFrame, series: RollupSeries) -> pd.DataFrame:
    """MAE, MASE (scale: mean |FY_t - FY_t-1| of the fiscal years of FCF completed by the
    cutoff), coverage, scaled CRPS and 80% interval width of fiscal-year FCF, per ``which`` x model."""
    if fy.empty:
        return pd.DataFrame()
    cal = series.calendar
    fcf = history[history["unique_id"] == series.fcf]
    annual = fcf.groupby(cal.fiscal_year(fcf["ds"]))["y"].agg(["sum", "size"])
    annual = annual[annual["size"] == 4]["sum"]
    d = fy.dropna(subset=["y"]).copy()
    cuts = pd.DatetimeIndex(d["cutoff"])
    done = cal.fiscal_year(cuts) - (cal.quarter_of_year(cuts) != 4)  # the last fiscal year complete by then
    d["scale"] = [float(np.abs(np.diff(annual[annual.index <= y].to_numpy())).mean()) for y in done]
    d["ase"] = (d["y"] - d["mean"]).abs() / d["scale"]
    has = d["lo-80"].notna() if "lo-80" in d else pd.Series(False, index=d.index)
    d["in-80"] = ((d["y"] >= d.get("lo-80")) & (d["y"] <= d.get("hi-80"))).astype(float).where(has)
    d["in-95"] = ((d["y"] >= d.get("lo-95")) & (d["y"] <= d.get("hi-95"))).astype(float).where(has)
    d["scrps"] = scaled_crps_rows(d).where(has)
    g = d.groupby(["which", "model"])
    out = pd.DataFrame({"n": g.size(), "mae": (d["y"] - d["mean"]).abs().groupby([d["which"], d["model"]]).mean(),
                        "mase": g["ase"].mean(), "coverage_80": g["in-80"].mean(), "coverage_95": g["in-95"].mean(),
                        "scaled_crps": g["scrps"].mean(),
                        "width_80": (d["hi-80"] - d["lo-80"]).groupby([d["which"], d["model"]]).mean()}).reset_index()
    base = out[out["model"] == "SeasonalNaive"].set_index("which")["mase"]
    out["rel_mase"] = out["mase"] / out["which"].map(base)
    return out


def compare_reconciliation(rec: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """MASE of base vs reconciled node forecasts: one row per method x series, plus the
    geometric mean over series of MASE relative to the base forecasts (``gm_rel_to_base``)."""
    r = rec.merge(seasonal_scale(history, rec), on=["unique_id", "cutoff"], how="left")
    r["ase"] = (r["mean"] - r["y"]).abs() / r["scale"]
    t = r.groupby(["method", "unique_id"]).agg(mase=("ase", "mean"), n=("ase", "size")).reset_index()
    base = t[t["method"] == "base"].set_index("unique_id")["mase"]
    t["rel_to_base"] = t["mase"] / t["unique_id"].map(base)
    t["gm_rel_to_base"] = t["method"].map(t.groupby("method")["rel_to_base"].apply(gmean))
    return t
