"""The roll-up's point forecasts at every cutoff: node forecasts, champions, reconciliation.

At every origin C (a cutoff; only the reported quarters up to C and the guidance known on the
day C was reported; the quarters are the data file's latest vintage: a restatement published
after C is not undone, which in the shipped data touches only a few early recast quarters), for the nodes a
company profile names (`features.profile.Hierarchy`, `features.profile.CashFlow`):

1. **Node forecasts** (`node_forecasts`): every candidate model of `RollupConfig.candidates`
   on every node (each measure's segments, groups and total; capex; operating cash flow; free
   cash flow), and the guided models (`forecasting.methods.guided`) on the nodes management guides,
   at every cutoff since `first_cutoff`. One backtest computes them once for the forecast, its
   calibration and the roll-up backtest.
2. **Per-node champions** (`forecasting.rollup.selection`): at C, each node's model and intercept
   correction with the lowest error over the forecasts made in the quarters before C and
   reported by C.
3. **Segments add up** (`forecasting.reconcile.hierarchy`, MinTrace ``wls_var`` by default: weights from
   the champions' past errors at the same step, so a precise guided total is not pulled toward
   the sum of less precise segments).
4. **The cash-flow identity** (`forecasting.reconcile.cashflow`): the direct FCF forecast, OCF from the
   bridge (`forecasting.reconcile.bridge`: OI + gamma_q x sales, with the reconciled totals), the OCF
   model and the capex model combined by MinTrace with W learnt from their past errors (all
   steps pooled: per step, with fewer errors each, measured worse), so that FCF = OCF - capex
   holds exactly.

`prepare_pipeline` runs these at every cutoff; `forecasting.rollup.paths` simulates paths and
calibrates them; `forecasting.rollup.backtest` scores the whole at past cutoffs.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from features.calendar import FiscalCalendar
from features.profile import CompanyProfile
from forecasting.rolling.backtest import backtest
from forecasting.reconcile.bridge import OCFBridge
from forecasting.reconcile.cashflow import METHODS as CASHFLOW_METHODS
from forecasting.reconcile.cashflow import NODES as CASHFLOW_NODES
from forecasting.reconcile.cashflow import reconcile_cashflow
from forecasting.rolling.forecast import forecast
from forecasting.core.frames import ShortSeriesWarning, check_series_frame
from forecasting.reconcile.hierarchy import (
    ERROR_METHODS,
    add_groups,
    mintrace,
    reconcile,
    summing_matrix,
)
from forecasting.core.provenance import outcomes_read
from forecasting.rollup.config import NODE_HORIZON, MIN_FIRST_CUTOFF_QUARTERS, RollupConfig, RollupSeries
from forecasting.rollup.selection import champion_forecasts, scored
from features.errors import OptionError

__all__ = ["driver_frame", "first_cutoff", "node_forecasts", "Pipeline", "PIPELINE_FIELDS",
           "prepare_pipeline", "quarters_between", "run_pipeline"]


# --------------------------------------------------------------------------- node forecasts
def driver_frame(df: pd.DataFrame, series: RollupSeries, extra: Sequence[str] = ()) -> pd.DataFrame:
    """The reported series the roll-up uses: hierarchy nodes (groups derived), capex, OCF, FCF."""
    need = [*series.nodes, *extra]
    derived = series.tree.derived()
    base_need = [s for s in need if s not in derived]
    missing = [s for s in base_need if s not in set(df["unique_id"])]
    if missing:
        raise OptionError(f"the roll-up needs series {missing}, which are not in the data; "
                         "load every modelled series (load_quarterly() without series=)")
    out = add_groups(df[df["unique_id"].isin(base_need)], series.tree)
    return check_series_frame(out[out["unique_id"].isin(need)], "roll-up data")


def quarters_between(a, b, calendar: FiscalCalendar) -> int:
    """Quarters from quarter end `a` to quarter end `b`."""
    return int(calendar.steps([a], [b])[0])


def first_cutoff(history: pd.DataFrame, series: RollupSeries, config: RollupConfig) -> pd.Timestamp:
    """The earliest node cutoff: `config.first_cutoff`, else the quarter by which every node has
    `MIN_FIRST_CUTOFF_QUARTERS` reported quarters."""
    if config.first_cutoff:
        try:
            return series.calendar.parse(config.first_cutoff).end_time.normalize()
        except ValueError:
            raise OptionError(f"first_cutoff '{config.first_cutoff}' is not a quarter like 2016Q2 "
                             "(or FY2024Q1 for a fiscal calendar)") from None
    starts = history.groupby("unique_id")["ds"].min()
    return pd.Timestamp(starts.max()) + series.calendar.offset(MIN_FIRST_CUTOFF_QUARTERS - 1)


def node_forecasts(history: pd.DataFrame, series: RollupSeries, config: RollupConfig, guidance=None
                   ) -> pd.DataFrame:
    """Base point forecasts of every node x candidate at every cutoff from `config.first_cutoff`
    to the newest quarter (that one by `forecasting.rolling.forecast.forecast`).

    Returns:
        ``cutoff, unique_id, ds, step, model, mean, y`` (``y`` NaN after the newest quarter).
    """
    nodes = series.nodes
    last = history["ds"].max()
    n_windows = quarters_between(first_cutoff(history, series, config), last, series.calendar)
    guided_nodes = [n for n in nodes if guidance is not None and n in guidance.metrics]
    runs = [(nodes, list(config.candidates))]
    if guided_nodes and config.guided:
        runs.append((guided_nodes, [*config.guided, "GuidanceMidpoint"]))  # the midpoint: reported only
    parts = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShortSeriesWarning)
        for series, models in runs:
            d = history[history["unique_id"].isin(series)]
            if n_windows >= 1:
                # cache=None: the node backtests follow FCF_CACHE like forecast(), so `fcf rollup`,
                # `scenario` and `claims` on one data vintage fit each cutoff once (same numbers)
                bt = backtest(d, models=models, h=NODE_HORIZON, n_windows=n_windows, warmup_windows=0,
                              intervals="model", end_offset=1, guidance=guidance, cache=None)
                parts.append(bt[["cutoff", "unique_id", "ds", "step", "model", "mean", "y"]])
            now = forecast(d, h=NODE_HORIZON, models=models, intervals="model", guidance=guidance)
            now["cutoff"] = last
            now["step"] = now.groupby(["unique_id", "model"]).cumcount() + 1
            now["y"] = np.nan
            parts.append(now[["cutoff", "unique_id", "ds", "step", "model", "mean", "y"]])
        extra = [s for s in config.extra if s in set(history["unique_id"])]
        if extra:
            ex = forecast(history[history["unique_id"].isin(extra)], h=NODE_HORIZON, models=["AutoETS"],
                          intervals="model")
            ex = ex[ex["model"] == "AutoETS"].assign(cutoff=last, y=np.nan)
            ex["step"] = ex.groupby("unique_id").cumcount() + 1
            parts.append(ex[["cutoff", "unique_id", "ds", "step", "model", "mean", "y"]])
    out = pd.concat(parts, ignore_index=True).drop_duplicates(["cutoff", "unique_id", "model", "ds"])
    return out.sort_values(["unique_id", "model", "cutoff", "ds"]).reset_index(drop=True)


# --------------------------------------------------------------------------- the pipeline
@dataclass
class Pipeline:
    """The roll-up's point forecasts at every cutoff, and how they were made.

    Attributes:
        history: reported node series (retail derived).
        final: ``cutoff, unique_id, ds, step, mean, y``: reconciled segments and totals, and the
            cash-flow nodes after the identity reconciliation (OCF, capex, FCF).
        cashflow_inputs: ``cutoff, ds, step, fcf, ocf_bridge, ocf, capex, method_used``: the
            base forecasts the identity reconciliation combined.
        choices: per cutoff and node, the chosen model and correction (`forecasting.rollup.selection`).
        champions: the chosen models' corrected forecasts before any reconciliation.
        nodes: every candidate's base forecasts (`node_forecasts`).
        config: the settings.
        series: the company's roll-up series.
    """

    history: pd.DataFrame
    final: pd.DataFrame
    cashflow_inputs: pd.DataFrame
    choices: pd.DataFrame
    champions: pd.DataFrame
    nodes: pd.DataFrame
    config: RollupConfig
    series: RollupSeries

    @property
    def cutoffs(self) -> list[pd.Timestamp]:
        return sorted(self.final["cutoff"].unique())

    def at(self, cutoff) -> pd.DataFrame:
        return self.final[self.final["cutoff"] == pd.Timestamp(cutoff)]

    def with_config(self, config: RollupConfig | None) -> Pipeline:
        """This pipeline under the caller's `config` (its horizon, paths, seed, calibration...),
        or as it is when `config` is None. The settings the pipeline was computed with
        (`PIPELINE_FIELDS`) must agree: a ValueError names those that differ."""
        if config is None or config == self.config:
            return self
        config = config.for_company_of(self.config)
        differ = [f for f in PIPELINE_FIELDS if getattr(config, f) != getattr(self.config, f)]
        if differ:
            raise OptionError(f"the pipeline was computed with other {', '.join(differ)} than the config "
                             "asks for; compute it again with this config (prepare_pipeline)")
        return replace(self, config=config)


#: The `RollupConfig` fields the node forecasts, champions and reconciliations depend on.
PIPELINE_FIELDS = ("candidates", "guided", "selection", "method", "cashflow", "bridge_window", "first_cutoff",
                   "extra")


def _bridged(history: pd.DataFrame, rec: pd.DataFrame, cutoff, window: int, series: RollupSeries) -> pd.Series:
    """OCF from the bridge fitted up to `cutoff`, given reconciled OI and sales forecasts."""
    w = rec.pivot_table(index="ds", columns="unique_id", values="mean")
    try:
        br = OCFBridge(series.cash, window, series.calendar).fit(history, cutoff=cutoff)
    except ValueError:
        return pd.Series(np.nan, index=w.index)
    cash = series.cash
    return pd.Series(br.predict(w[cash.operating_income].to_numpy(), w[cash.sales].to_numpy(), w.index),
                     index=w.index)


def _level(scale: pd.Series, cutoff) -> float:
    """Mean |value| of the four quarters of `scale` up to `cutoff` (errors' common scale)."""
    known = scale[scale.index <= cutoff].iloc[-4:]
    outcomes_read("reconciliation.scale", cutoff, known.index)
    return float(np.abs(known).mean())


def _reconcile_with_errors(h_part: pd.DataFrame, scale: pd.Series, method: str, window: int,
                           series: RollupSeries) -> pd.DataFrame:
    """The segment trees reconciled at each cutoff and step by MinTrace with W learnt from the
    champions' errors at the same step, made at the `window` earlier cutoffs on quarters
    reported by the cutoff (scaled by total sales at their cutoff); ``wls_struct`` until enough
    errors exist. Per step, because errors grow with the horizon: pooled, the far steps' errors
    would set the weights of the next quarter (where a guided total is the most precise node)."""
    S_df, _ = summing_matrix(series.tree)
    nodes = list(S_df["unique_id"])
    S = S_df.drop(columns="unique_id").to_numpy(dtype=float)
    cal = series.calendar
    levels = {c: _level(scale, c) for c in h_part["cutoff"].unique()}  # once per cutoff, not per row
    err = h_part.assign(e=(h_part["y"] - h_part["mean"]) / h_part["cutoff"].map(levels))
    if "step" not in err:
        err["step"] = [quarters_between(c, d, cal) for c, d in zip(err["cutoff"], err["ds"])]
    E = err.pivot_table(index=["cutoff", "ds", "step"], columns="unique_id", values="e").reindex(columns=nodes)
    cuts, dss, steps = (E.index.get_level_values(i) for i in range(3))
    out = []
    for c, g in h_part.groupby("cutoff", sort=True):
        w = g.pivot_table(index="ds", columns="unique_id", values="mean").reindex(columns=nodes)
        known = (dss <= c) & (cuts >= c - cal.offset(window))  # reported by c, so made before it
        outcomes_read("reconciliation.segment_errors", c, dss[known])
        rec = np.empty((len(nodes), len(w)))
        for j, d in enumerate(w.index):
            past = E[known & (steps == quarters_between(c, d, cal))]
            r, _ = mintrace(S, w.to_numpy(dtype=float).T[:, [j]], past.to_numpy(dtype=float).T, method)
            rec[:, j] = r[:, 0]
        o = pd.DataFrame(rec.T, index=w.index, columns=nodes).reset_index()
        o = o.melt(id_vars="ds", var_name="unique_id", value_name="mean")
        o["cutoff"] = c
        out.append(o[["cutoff", "unique_id", "ds", "mean"]])
    return pd.concat(out, ignore_index=True)


def run_pipeline(history: pd.DataFrame, nodes: pd.DataFrame, series: RollupSeries, config: RollupConfig
                 ) -> Pipeline:
    """Steps 2-4 of the module docstring at every cutoff where every node has a forecast."""
    hier = series.tree.nodes()
    cash = series.cash_nodes
    CAPEX, OCF, FCF = cash
    cal = series.calendar
    needed = set(hier) | set(cash)
    have = nodes.groupby("cutoff")["unique_id"].agg(lambda s: needed <= set(s))
    cutoffs = sorted(have.index[have.to_numpy()])
    candidates = [*config.candidates, *config.guided]
    sc = scored(nodes[nodes["unique_id"].isin(needed)], history, config.selection.lambdas)
    champs, choices = champion_forecasts(sc, cutoffs, candidates, config.selection)
    # segments add up
    h_part = champs[champs["unique_id"].isin(hier)]
    complete = h_part.groupby(["cutoff", "ds"])["unique_id"].transform("nunique") == len(hier)
    h_part = h_part[complete]
    scale = history[history["unique_id"] == series.cash.sales].set_index("ds")["y"]
    if config.method == "base":
        rec = h_part[["cutoff", "unique_id", "ds", "mean"]]
    elif config.method in ERROR_METHODS:
        rec = _reconcile_with_errors(h_part, scale, config.method.split("-", 1)[1], config.selection.window,
                                     series)
    else:
        r = reconcile(h_part, series.tree, methods=[config.method], by=("cutoff",))
        rec = r[r["method"] == config.method][["cutoff", "unique_id", "ds", "mean"]]
    yv = history.set_index(["unique_id", "ds"])["y"]
    w = champs[champs["unique_id"].isin(cash)].pivot_table(index=["cutoff", "ds"], columns="unique_id",
                                                           values="mean")
    inputs, finals, errs = [], [], []
    for c in cutoffs:
        rc = rec[rec["cutoff"] == c]
        if rc.empty or c not in w.index.get_level_values(0):
            continue
        wc = w.loc[c]
        base = pd.DataFrame({"ds": wc.index, "fcf": wc[FCF].to_numpy(), "ocf": wc[OCF].to_numpy(),
                             "capex": wc[CAPEX].to_numpy()})
        base["ocf_bridge"] = _bridged(history, rc, c, config.bridge_window, series).reindex(base["ds"]).to_numpy()
        base = base.dropna(subset=["ocf", "capex"]).reset_index(drop=True)
        if base.empty:
            continue
        past = pd.concat(errs, ignore_index=True) if errs else None
        if past is not None:
            past = past[(past["ds"] <= c) & (past["cutoff"] >= c - cal.offset(config.selection.window))]
            outcomes_read("reconciliation.cashflow_errors", c, past["ds"])
        if config.cashflow in CASHFLOW_METHODS:
            out = reconcile_cashflow(base, past[list(CASHFLOW_NODES)] if past is not None else None,
                                     config.cashflow)
        elif config.cashflow == "bridge":
            ocf = base["ocf_bridge"].fillna(base["ocf"])
            out = pd.DataFrame({"ds": base["ds"], "ocf": ocf, "capex": base["capex"],
                                "fcf": ocf - base["capex"], "method_used": "bridge"})
        else:
            out = pd.DataFrame({"ds": base["ds"], "ocf": base["ocf"], "capex": base["capex"],
                                "fcf": base["ocf"] - base["capex"], "method_used": "direct"})
        base["cutoff"] = c
        base["method_used"] = out["method_used"].to_numpy()
        inputs.append(base)
        # scaled errors of the four inputs where the outcome is reported (for later cutoffs' W)
        lev = _level(scale, c)
        e = pd.DataFrame({"cutoff": c, "ds": base["ds"]})
        for node, name in (("fcf", FCF), ("ocf_bridge", OCF), ("ocf", OCF), ("capex", CAPEX)):
            actual = yv.reindex(pd.MultiIndex.from_product([[name], base["ds"]])).to_numpy(dtype=float)
            e[node] = (actual - base[node].to_numpy(dtype=float)) / lev
        errs.append(e.dropna(subset=["fcf", "ocf", "capex"]))
        cf = out.melt(id_vars="ds", value_vars=["ocf", "capex", "fcf"], var_name="node", value_name="mean")
        cf["unique_id"] = cf["node"].map({"ocf": OCF, "capex": CAPEX, "fcf": FCF})
        cf["cutoff"] = c
        finals.append(pd.concat([rc, cf[["cutoff", "unique_id", "ds", "mean"]]], ignore_index=True))
    final = pd.concat(finals, ignore_index=True)
    extra = [s for s in config.extra if s in set(nodes["unique_id"])]
    if extra:
        ex = nodes[nodes["unique_id"].isin(extra)][["cutoff", "unique_id", "ds", "mean"]]
        final = pd.concat([final, ex], ignore_index=True)
    final = final.merge(history, on=["unique_id", "ds"], how="left")
    final["step"] = cal.steps(final["cutoff"], final["ds"]).astype(int)
    cols = ["cutoff", "unique_id", "ds", "step", "mean", "y"]
    final = final[cols].sort_values(["cutoff", "unique_id", "ds"]).reset_index(drop=True)
    cf_in = pd.concat(inputs, ignore_index=True) if inputs else pd.DataFrame()
    if len(cf_in):
        cf_in["step"] = cal.steps(cf_in["cutoff"], cf_in["ds"]).astype(int)
    return Pipeline(history=history, final=final, cashflow_inputs=cf_in, choices=choices,
                    champions=champs, nodes=nodes, config=config, series=series)


def prepare_pipeline(df: pd.DataFrame, profile: CompanyProfile, config: RollupConfig | None = None,
                     guidance=None) -> Pipeline:
    """`node_forecasts` and `run_pipeline` on every modelled series of `df`, for the company of
    `profile` (its hierarchy, cash-flow series, calendar and roll-up settings)."""
    series = RollupSeries.of(profile)
    config = (config or RollupConfig()).for_company(profile)
    history = driver_frame(df, series, config.extra)
    return run_pipeline(history, node_forecasts(history, series, config, guidance), series, config)
