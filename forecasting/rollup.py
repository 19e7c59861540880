"""Roll segment forecasts up to consolidated free cash flow, with an honest distribution.

At every origin C (a cutoff; only data and guidance known on the day C was reported):

1. **Node forecasts** (`node_forecasts`): every candidate model of `RollupConfig.candidates`
   on every node (net sales and operating income of the segments, retail and the totals;
   net capex; operating cash flow; free cash flow), and the guided models
   (`forecasting.guided`) on the nodes management guides (total net sales and operating
   income next quarter, fiscal-year capex), at every cutoff since `first_cutoff`. One
   backtest computes them once for the forecast, its calibration and the roll-up backtest.
2. **Per-node champions** (`forecasting.selection`): at C, each node's model and intercept
   correction with the lowest error over the forecasts made in the 12 quarters before C and
   reported by C.
3. **Segments add up** (`forecasting.hierarchy.reconcile`, MinTrace ``wls_struct``).
4. **The cash-flow identity** (`forecasting.cashflow`): the direct FCF forecast, OCF from
   the bridge (`forecasting.bridge`: OI + gamma_q x net sales, with the reconciled totals),
   the OCF model and the capex model combined by MinTrace with W learnt from their past
   errors, so that FCF = OCF - net capex holds exactly.
5. **Sample paths** (`simulate`): whole past error windows of this same pipeline (steps 1-4
   made at earlier cutoffs, all reported by C) for the six segment series, capex and OCF,
   drawn jointly (`forecasting.simulate`); totals are sums of segment paths, FCF = OCF -
   capex path by path, trailing-twelve-month FCF continues the reported quarters. A
   scenario may change segment and capex paths; OCF then moves by the bridge's response
   (dOI + gamma_q x dSales).
6. **Calibration**: the spread around the centre is scaled by the conformal quantile of the
   roll-up's own earlier misses (quantile rows of past cutoffs, reported by C).

`rollup` runs this at the newest reported quarter; `forecasting.rollup_backtest` at past
cutoffs against reported FCF, beside the direct FCF models and seasonal naive.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from forecasting.backtest import backtest
from forecasting.bridge import FCF, NET_CAPEX, OCF, OI, SALES, OCFBridge, free_cash_flow, quarter_of, ttm
from forecasting.cashflow import METHODS as CASHFLOW_METHODS
from forecasting.cashflow import NODES as CASHFLOW_NODES
from forecasting.cashflow import reconcile_cashflow
from forecasting.forecast import ShortSeriesWarning, check_series_frame, forecast
from forecasting.hierarchy import (
    DEFAULT_METHOD,
    ERROR_METHODS,
    MEASURES,
    METHODS,
    RETAIL,
    SEGMENTS,
    add_retail,
    bottom_series,
    hierarchy_series,
    mintrace,
    reconcile,
    series_name,
    summing_matrix,
)
from forecasting.selection import SelectionSettings, champion_forecasts, scored
from forecasting.simulate import (
    DEFAULT_PATHS,
    SMOOTHING,
    bootstrap_errors,
    quantile_frame,
    residual_windows,
    sample_paths,
    series_level,
)

#: Simulated series: the six segments, net capex and OCF (totals, FCF and TTM are derived).
SIMULATED = (*bottom_series(), NET_CAPEX, OCF)
#: Operating income passes near zero, so a segment's OI errors are scaled by its sales
#: (margin points); OCF's by total net sales.
SCALE_OF = {**{s: s for s in SIMULATED},
            **{s: s.replace("operating_income", "net_sales") for s in SIMULATED if s.startswith("operating_income")},
            OCF: SALES}
FCF_TTM = FCF + "_ttm"
#: Candidate models of every node, in tie-break order (the first is used while too few past
#: windows exist to choose).
CANDIDATES = ("AutoETS", "Foster", "StatsCombo", "AutoARIMALog", "SeasonalNaive", "RandomWalkWithDrift",
              "StatsMLCombo")
#: Guided candidates, run on the nodes the guidance covers.
GUIDED_CANDIDATES = ("GuidedFoster", "GuidedStatsCombo", "GuidedAutoARIMALog", "GuidedStatsMLCombo")
#: Steps every node is forecast (fiscal-year scoring needs up to two fiscal years).
NODE_HORIZON = 8


@dataclass(frozen=True)
class RollupConfig:
    """Settings of a roll-up (logged as run parameters).

    Attributes:
        h: quarters ahead (1-8).
        candidates, guided: node models the per-node choice picks from.
        selection: the nested choice (window, lambdas of the intercept correction, ...).
        method: segment reconciliation: ``MinTrace-wls_var`` (default: weights from the
            champions' past errors, so a guided total weighs more than the segments' sum),
            ``MinTrace-mint_shrink``, a `forecasting.hierarchy.METHODS` name, or ``"base"``.
        cashflow: reconciliation across FCF = OCF - capex (`forecasting.cashflow.METHODS`),
            or ``"bridge"``: FCF = bridged OCF - capex (no direct forecasts), ``"direct"``:
            the OCF and capex models only.
        error_windows: past windows drawn by the bootstrap (the most recent ones).
        centre: centre the drawn errors on zero (paths centred on the point forecasts, whose
            intercept correction already answers recent bias); False adds the past windows'
            mean error to every path.
        calibrate: scale the spread by the roll-up's own past misses.
        calibration_window: the most recent past cutoffs whose misses (the quarters reported
            by the origin, `recent_misses`) set that scale, so it follows a change of regime.
        first_cutoff: earliest node cutoff (selection needs a few years before the roll-up's).
        extra: more series forecast by AutoETS for scenarios (e.g. advertising).
    """

    h: int = 4
    candidates: tuple[str, ...] = CANDIDATES
    guided: tuple[str, ...] = GUIDED_CANDIDATES
    selection: SelectionSettings = SelectionSettings(window=16)
    method: str = DEFAULT_METHOD
    cashflow: str = "wls_var"
    bridge_window: int = 16
    n_paths: int = DEFAULT_PATHS
    seed: int = 0
    smoothing: float = SMOOTHING
    error_windows: int = 8
    centre: bool = True
    calibrate: bool = True
    calibration_window: int = 4
    first_cutoff: str = "2016Q2"
    extra: tuple[str, ...] = ()

    def __post_init__(self):
        if not 1 <= self.h <= NODE_HORIZON:
            raise ValueError(f"roll-up horizon h must be between 1 and {NODE_HORIZON}, got {self.h}")
        if self.method not in ("base", *METHODS, *ERROR_METHODS):
            raise ValueError(f"unknown reconciliation method '{self.method}'; "
                             f"choose from {['base', *METHODS, *ERROR_METHODS]}")
        if self.cashflow not in (*CASHFLOW_METHODS, "bridge", "direct"):
            raise ValueError(f"cashflow must be one of {[*CASHFLOW_METHODS, 'bridge', 'direct']}, "
                             f"got '{self.cashflow}'")
        if self.n_paths < 1:
            raise ValueError(f"n_paths must be >= 1, got {self.n_paths}")

    def replace(self, **changes) -> RollupConfig:
        return RollupConfig(**{**asdict(self), "selection": self.selection, **changes})

    def as_params(self) -> dict:
        d = asdict(self)
        sel = d.pop("selection")
        d.update({f"selection_{k}": v for k, v in sel.items()})
        return {k: (",".join(map(str, v)) if isinstance(v, tuple) else v) for k, v in d.items()}


# --------------------------------------------------------------------------- node forecasts
def driver_frame(df: pd.DataFrame, extra: Sequence[str] = ()) -> pd.DataFrame:
    """The reported series the roll-up uses: hierarchy nodes (retail derived), capex, OCF, FCF."""
    need = [*hierarchy_series(), NET_CAPEX, OCF, FCF, *extra]
    retail = [series_name(m, RETAIL) for m in MEASURES]
    base_need = [s for s in need if s not in retail]
    missing = [s for s in base_need if s not in set(df["unique_id"])]
    if missing:
        raise ValueError(f"the roll-up needs series {missing}, which are not in the data; "
                         "load every modelled series (load_quarterly() without series=)")
    out = add_retail(df[df["unique_id"].isin(base_need)])
    return check_series_frame(out[out["unique_id"].isin(need)], "roll-up data")


def _quarters(a, b) -> int:
    return int((pd.Period(pd.Timestamp(b), freq="Q") - pd.Period(pd.Timestamp(a), freq="Q")).n)


def node_forecasts(history: pd.DataFrame, config: RollupConfig, guidance=None) -> pd.DataFrame:
    """Base point forecasts of every node x candidate at every cutoff from `config.first_cutoff`
    to the newest quarter (that one by `forecasting.forecast.forecast`).

    Returns:
        ``cutoff, unique_id, ds, step, model, mean, y`` (``y`` NaN after the newest quarter).
    """
    nodes = [*hierarchy_series(), NET_CAPEX, OCF, FCF]
    last = history["ds"].max()
    first = pd.Period(config.first_cutoff, freq="Q").end_time.normalize()
    n_windows = _quarters(first, last)
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
                bt = backtest(d, models=models, h=NODE_HORIZON, n_windows=n_windows, warmup_windows=0,
                              intervals="model", end_offset=1, guidance=guidance)
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
        choices: per cutoff and node, the chosen model and correction (`forecasting.selection`).
        champions: the chosen models' corrected forecasts before any reconciliation.
        nodes: every candidate's base forecasts (`node_forecasts`).
        config: the settings.
    """

    history: pd.DataFrame
    final: pd.DataFrame
    cashflow_inputs: pd.DataFrame
    choices: pd.DataFrame
    champions: pd.DataFrame
    nodes: pd.DataFrame
    config: RollupConfig

    @property
    def cutoffs(self) -> list[pd.Timestamp]:
        return sorted(self.final["cutoff"].unique())

    def at(self, cutoff) -> pd.DataFrame:
        return self.final[self.final["cutoff"] == pd.Timestamp(cutoff)]


def _bridged(history: pd.DataFrame, rec: pd.DataFrame, cutoff, window: int) -> pd.Series:
    """OCF from the bridge fitted up to `cutoff`, given reconciled OI and sales forecasts."""
    w = rec.pivot_table(index="ds", columns="unique_id", values="mean")
    try:
        br = OCFBridge(window).fit(history, cutoff=cutoff)
    except ValueError:
        return pd.Series(np.nan, index=w.index)
    return pd.Series(br.predict(w[OI].to_numpy(), w[SALES].to_numpy(), w.index), index=w.index)


def _level(scale: pd.Series, cutoff) -> float:
    """Mean |value| of the four quarters of `scale` up to `cutoff` (errors' common scale)."""
    return float(np.abs(scale[scale.index <= cutoff].iloc[-4:]).mean())


def _reconcile_with_errors(h_part: pd.DataFrame, scale: pd.Series, method: str, window: int) -> pd.DataFrame:
    """The segment trees reconciled at each cutoff by MinTrace with W learnt from the
    champions' errors at the `window` earlier cutoffs, on quarters reported by the cutoff
    (scaled by net sales at their cutoff); ``wls_struct`` until enough errors exist."""
    S_df, _ = summing_matrix()
    nodes = list(S_df["unique_id"])
    S = S_df.drop(columns="unique_id").to_numpy(dtype=float)
    err = h_part.assign(e=(h_part["y"] - h_part["mean"]) / h_part["cutoff"].map(lambda c: _level(scale, c)))
    E = err.pivot_table(index=["cutoff", "ds"], columns="unique_id", values="e").reindex(columns=nodes)
    cuts, dss = E.index.get_level_values(0), E.index.get_level_values(1)
    out = []
    for c, g in h_part.groupby("cutoff", sort=True):
        w = g.pivot_table(index="ds", columns="unique_id", values="mean").reindex(columns=nodes)
        past = E[(cuts < c) & (dss <= c) & (cuts >= c - pd.offsets.QuarterEnd(window))]
        rec, _ = mintrace(S, w.to_numpy(dtype=float).T, past.to_numpy(dtype=float).T, method)
        o = pd.DataFrame(rec.T, index=w.index, columns=nodes).reset_index()
        o = o.melt(id_vars="ds", var_name="unique_id", value_name="mean")
        o["cutoff"] = c
        out.append(o[["cutoff", "unique_id", "ds", "mean"]])
    return pd.concat(out, ignore_index=True)


def run_pipeline(history: pd.DataFrame, nodes: pd.DataFrame, config: RollupConfig) -> Pipeline:
    """Steps 2-4 of the module docstring at every cutoff where every node has a forecast."""
    hier = hierarchy_series()
    cash = [NET_CAPEX, OCF, FCF]
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
    scale = history[history["unique_id"] == SALES].set_index("ds")["y"]
    if config.method == "base":
        rec = h_part[["cutoff", "unique_id", "ds", "mean"]]
    elif config.method in ERROR_METHODS:
        rec = _reconcile_with_errors(h_part, scale, config.method.split("-", 1)[1], config.selection.window)
    else:
        r = reconcile(h_part, methods=[config.method], by=("cutoff",))
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
                             "capex": wc[NET_CAPEX].to_numpy()})
        base["ocf_bridge"] = _bridged(history, rc, c, config.bridge_window).reindex(base["ds"]).to_numpy()
        base = base.dropna(subset=["ocf", "capex"]).reset_index(drop=True)
        if base.empty:
            continue
        past = pd.concat(errs, ignore_index=True) if errs else None
        if past is not None:
            past = past[(past["cutoff"] < c) & (past["ds"] <= c)
                        & (past["cutoff"] >= c - pd.offsets.QuarterEnd(config.selection.window))]
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
        for node, series in (("fcf", FCF), ("ocf_bridge", OCF), ("ocf", OCF), ("capex", NET_CAPEX)):
            actual = yv.reindex(pd.MultiIndex.from_product([[series], base["ds"]])).to_numpy(dtype=float)
            e[node] = (actual - base[node].to_numpy(dtype=float)) / lev
        errs.append(e.dropna(subset=["fcf", "ocf", "capex"]))
        cf = out.melt(id_vars="ds", value_vars=["ocf", "capex", "fcf"], var_name="node", value_name="mean")
        cf["unique_id"] = cf["node"].map({"ocf": OCF, "capex": NET_CAPEX, "fcf": FCF})
        cf["cutoff"] = c
        finals.append(pd.concat([rc, cf[["cutoff", "unique_id", "ds", "mean"]]], ignore_index=True))
    final = pd.concat(finals, ignore_index=True)
    extra = [s for s in config.extra if s in set(nodes["unique_id"])]
    if extra:
        ex = nodes[nodes["unique_id"].isin(extra)][["cutoff", "unique_id", "ds", "mean"]]
        final = pd.concat([final, ex], ignore_index=True)
    final = final.merge(history, on=["unique_id", "ds"], how="left")
    final["step"] = [_quarters(c, d) for c, d in zip(final["cutoff"], final["ds"])]
    cols = ["cutoff", "unique_id", "ds", "step", "mean", "y"]
    final = final[cols].sort_values(["cutoff", "unique_id", "ds"]).reset_index(drop=True)
    cf_in = pd.concat(inputs, ignore_index=True) if inputs else pd.DataFrame()
    if len(cf_in):
        cf_in["step"] = [_quarters(c, d) for c, d in zip(cf_in["cutoff"], cf_in["ds"])]
    return Pipeline(history=history, final=final, cashflow_inputs=cf_in, choices=choices,
                    champions=champs, nodes=nodes, config=config)


def prepare_pipeline(df: pd.DataFrame, config: RollupConfig | None = None, guidance=None) -> Pipeline:
    """`node_forecasts` and `run_pipeline` on every modelled series of `df`."""
    config = config or RollupConfig()
    history = driver_frame(df, config.extra)
    return run_pipeline(history, node_forecasts(history, config, guidance), config)


# --------------------------------------------------------------------------- simulation
@dataclass
class RollupInputs:
    """Everything a simulation at one origin needs (all estimated on data up to `origin`)."""

    origin: pd.Timestamp
    ds: pd.DatetimeIndex                 # (h,) forecast quarters
    point: np.ndarray                    # (n_sim, h) point forecasts of SIMULATED
    level: np.ndarray                    # (n_sim,) scales of SIMULATED's errors
    windows: list                        # cutoffs of the error windows
    errors: np.ndarray                   # (n_windows, n_sim, h) scaled errors
    bridge: OCFBridge
    history: pd.DataFrame                # reported long frame up to the origin (incl. retail)
    drivers: pd.DataFrame                # point forecasts of every node at the origin
    extra_point: dict = field(default_factory=dict)   # series -> (h,) point (e.g. advertising)
    error_scale: float = 1.0             # calibration factor on the errors' spread around their mean
    config: RollupConfig = field(default_factory=RollupConfig)


@dataclass
class Simulation:
    """Sample paths at one origin: ``paths[series]`` is (n_paths, h); also OCF, FCF, TTM FCF."""

    ds: pd.DatetimeIndex
    paths: dict

    def quarterly(self) -> pd.DataFrame:
        return quantile_frame(self.paths[FCF], self.ds, FCF)

    def ttm(self) -> pd.DataFrame:
        return quantile_frame(self.paths[FCF_TTM], self.ds, FCF_TTM)

    def table(self, series: Sequence[str] = (FCF, FCF_TTM)) -> pd.DataFrame:
        return pd.concat([quantile_frame(self.paths[s], self.ds, s) for s in series], ignore_index=True)

    def fiscal_years(self, history: pd.DataFrame, series: str = FCF) -> pd.DataFrame:
        """Fiscal-year totals of `series` (reported quarters of `history` + simulated ones) for
        the years the horizon completes: ``fiscal_year, reported_quarters, mean, p2.5 .. p97.5``."""
        rep = history[history["unique_id"] == series].set_index("ds")["y"]
        rows = []
        for y in sorted(set(self.ds.year)):
            cols = np.flatnonzero(self.ds.year == y)
            done = rep[rep.index.year == y]
            if len(cols) + len(done) != 4:
                continue
            tot = self.paths[series][:, cols].sum(axis=1) + float(done.sum())
            q = quantile_frame(tot[:, None], [pd.Timestamp(year=y, month=12, day=31)], series + "_fy")
            q.insert(0, "fiscal_year", y)
            q.insert(1, "reported_quarters", len(done))
            rows.append(q.drop(columns=["unique_id", "ds"]))
        return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def build_inputs(pipe: Pipeline, origin, h: int, min_windows: int = 2) -> RollupInputs:
    """`RollupInputs` at `origin` from the pipeline's forecasts there and its earlier windows
    fully reported by `origin` (the most recent `config.error_windows` of them)."""
    config = pipe.config
    origin = pd.Timestamp(origin)
    hist = pipe.history[pipe.history["ds"] <= origin]
    ds = pd.DatetimeIndex([origin + pd.offsets.QuarterEnd(k) for k in range(1, h + 1)])
    now = pipe.at(origin)
    pf = now.set_index(["unique_id", "ds"])["mean"]
    point = pf.reindex(pd.MultiIndex.from_product([list(SIMULATED), ds])).to_numpy(dtype=float)
    point = point.reshape(len(SIMULATED), h)
    if not np.isfinite(point).all():
        raise ValueError(f"roll-up at {origin.date()}: no {h}-quarter forecasts of {SIMULATED} there "
                         "(a cutoff needs every node forecast h quarters ahead)")
    scales = [SCALE_OF[s] for s in SIMULATED]
    past = pipe.final[(pipe.final["cutoff"] < origin)]
    cuts, R = residual_windows(past, hist, SIMULATED, h, known_by=origin, scale_by=scales)
    if len(cuts) > config.error_windows:
        cuts, R = cuts[-config.error_windows:], R[-config.error_windows:]
    if len(cuts) < min_windows:
        raise ValueError(f"roll-up at {origin.date()}: only {len(cuts)} past window(s) of {h} quarters fully "
                         f"reported, need {min_windows}; use an earlier first_cutoff or a shorter horizon")
    extra_point = {s: pf.reindex(pd.MultiIndex.from_product([[s], ds])).to_numpy(dtype=float)
                   for s in config.extra}
    return RollupInputs(origin=origin, ds=ds, point=point, level=series_level(hist, scales, origin),
                        windows=cuts, errors=R, bridge=OCFBridge(config.bridge_window).fit(hist, cutoff=origin),
                        history=hist, drivers=now.drop(columns="y"), extra_point=extra_point, config=config)


def simulate(inputs: RollupInputs, n_paths: int | None = None, seed: int | None = None,
             smoothing: float | None = None,
             adjust: Callable[[dict, RollupInputs], None] | None = None) -> Simulation:
    """Sample paths of the segments, capex and OCF; totals, FCF and TTM FCF derived.

    `adjust(paths, inputs)` may change the segment / capex paths in place (scenarios,
    `forecasting.scenarios`); OCF then moves by the bridge's response to the changed totals.
    """
    cfg = inputs.config
    n_paths = cfg.n_paths if n_paths is None else n_paths
    seed = cfg.seed if seed is None else seed
    smoothing = cfg.smoothing if smoothing is None else smoothing
    E = bootstrap_errors(inputs.errors, n_paths, seed, smoothing, centre=cfg.centre)
    if inputs.error_scale != 1.0:  # widen/narrow the spread around its centre, not the bias
        centre = E.mean(axis=0, keepdims=True)
        E = centre + inputs.error_scale * (E - centre)
    nonneg = [not s.startswith("operating_income") and s != OCF for s in SIMULATED]
    P = sample_paths(inputs.point, inputs.level, E, nonneg)
    paths = {s: P[:, i, :] for i, s in enumerate(SIMULATED)}

    def totals() -> tuple[np.ndarray, np.ndarray]:
        for m in MEASURES:
            segs = [paths[series_name(m, s)] for s in SEGMENTS]
            paths[series_name(m, RETAIL)] = segs[0] + segs[1]
            paths[series_name(m, "total")] = segs[0] + segs[1] + segs[2]
        return paths[OI].copy(), paths[SALES].copy()

    oi0, s0 = totals()
    if adjust is not None:
        adjust(paths, inputs)
        oi1, s1 = totals()
        gamma = inputs.bridge.gamma_[quarter_of(inputs.ds) - 1]
        paths[OCF] = paths[OCF] + (oi1 - oi0) + gamma[None, :] * (s1 - s0)
    paths[FCF] = free_cash_flow(paths[OCF], paths[NET_CAPEX])
    fcf_hist = inputs.history[inputs.history["unique_id"] == FCF].sort_values("ds")["y"].to_numpy()
    paths[FCF_TTM] = ttm(paths[FCF], fcf_hist[-3:])
    return Simulation(ds=inputs.ds, paths=paths)


# --------------------------------------------------------------------------- calibration
#: Fewest scored outcomes before the roll-up's errors are rescaled.
MIN_CALIBRATION_ROWS = 8


def interval_rows(sim: Simulation, cutoff, model: str, hist_all: pd.DataFrame,
                  series: Sequence[str] = (FCF, FCF_TTM)) -> pd.DataFrame:
    """Quantiles of `sim` as backtest rows (``mean`` = the paths' mean, which is the pipeline's
    point forecast up to the floors at zero; ``lo-80`` = P10, ...) with ``y``."""
    from forecasting.simulate import to_interval_columns

    qf = sim.table(series)
    qf["cutoff"] = pd.Timestamp(cutoff)
    rows = to_interval_columns(qf)
    rows["model"] = rows["model_used"] = model
    return rows.merge(hist_all, on=["unique_id", "ds"], how="left")


def calibration_factor(rows: pd.DataFrame, level: int = 80) -> float:
    """Scale for the bootstrapped errors from past roll-up forecasts with reported outcomes.

    Score of a row: |y - P50| over the distance from P50 to the P10 (y below) or P90 (y
    above) bound, the conformal score of `forecasting.calibration.interval_scores`; the factor
    is its split-conformal quantile at `level`. `simulate` scales each bootstrapped error's
    deviation from its mean by it, so the band widens (or narrows) around an unchanged
    centre by about that factor. 1.0 with fewer than `MIN_CALIBRATION_ROWS` rows.
    """
    from forecasting.calibration import conformal_quantile, interval_scores

    rows = rows.dropna(subset=["y"])
    if len(rows) < MIN_CALIBRATION_ROWS:
        return 1.0
    s = interval_scores(rows, level).to_numpy(dtype=float)
    s = s[np.isfinite(s)]
    q = conformal_quantile(s, level / 100) if len(s) >= MIN_CALIBRATION_ROWS else np.nan
    return float(q) if np.isfinite(q) and q > 0 else 1.0


def reported_fcf(history: pd.DataFrame) -> pd.DataFrame:
    """Reported quarterly FCF and its TTM sums as one long frame (MASE scales, outcomes)."""
    from features.loader import trailing_twelve_months

    fcf = history[history["unique_id"] == FCF][["unique_id", "ds", "y"]]
    return pd.concat([fcf, trailing_twelve_months(fcf, FCF)], ignore_index=True)


def recent_misses(pipe: Pipeline, origin, h: int, window: int) -> pd.DataFrame:
    """What the calibration learns from at `origin`: the raw (uncalibrated) simulations at the
    `window` pipeline cutoffs before it, each over the quarters after it that were reported by
    `origin` (at most `h`), as quantile rows with their outcomes (`interval_rows`)."""
    origin = pd.Timestamp(origin)
    hist_all = reported_fcf(pipe.history)
    rows = []
    for c in [c for c in pipe.cutoffs if c < origin][-window:]:
        try:
            inputs = build_inputs(pipe, c, min(h, _quarters(c, origin)))
        except ValueError:  # too early: fewer than two fully reported past windows
            continue
        rows.append(interval_rows(simulate(inputs), c, "Rollup", hist_all))
    if not rows:
        return pd.DataFrame(columns=["unique_id", "cutoff", "ds", "y", "mean", "lo-80", "hi-80"])
    out = pd.concat(rows, ignore_index=True)
    return out[out["ds"] <= origin].reset_index(drop=True)


# --------------------------------------------------------------------------- the forecast
@dataclass
class RollupResult:
    """`rollup` output: FCF quantiles (quarterly and TTM), the drivers, the paths, settings."""

    quarterly: pd.DataFrame
    ttm: pd.DataFrame
    drivers: pd.DataFrame
    simulation: Simulation
    inputs: RollupInputs
    params: dict
    choices: pd.DataFrame
    pipeline: Pipeline


def calibration_cutoffs(pipe: Pipeline, h: int, n: int) -> list[pd.Timestamp]:
    """The last `n` cutoffs before the newest quarter whose h quarters are all reported."""
    newest = pipe.history["ds"].max()
    ok = [c for c in pipe.cutoffs if c + pd.offsets.QuarterEnd(h) <= newest]
    return ok[-n:]


def rollup(df: pd.DataFrame, config: RollupConfig | None = None, guidance=None,
           pipeline: Pipeline | None = None) -> RollupResult:
    """Consolidated FCF forecast with quantiles, `config.h` quarters after the newest one.

    Args:
        df: long frame ``unique_id, ds, y`` of every modelled series (`load_quarterly()`).
        config: `RollupConfig`.
        guidance: a `features.guidance.GuidanceBook` (None: no guided models).
        pipeline: a `Pipeline` already computed on `df` with the same config (reused).
    Returns:
        `RollupResult`; ``quarterly``/``ttm``: ``unique_id, ds, mean, p2.5 .. p97.5``.
    """
    config = config or RollupConfig()
    pipe = pipeline or prepare_pipeline(df, config, guidance)
    origin = pipe.history["ds"].max()
    inputs = build_inputs(pipe, origin, config.h)
    if config.calibrate:
        inputs.error_scale = calibration_factor(recent_misses(pipe, origin, config.h, config.calibration_window))
    sim = simulate(inputs)
    params = {**config.as_params(), "error_scale": inputs.error_scale,
              "origin": str(pd.Period(origin, freq="Q")), "error_windows_used": len(inputs.windows),
              "guidance": guidance.fingerprint() if guidance is not None else "none"}
    choices = pipe.choices[pipe.choices["cutoff"] == origin]
    return RollupResult(quarterly=sim.quarterly(), ttm=sim.ttm(), drivers=inputs.drivers, simulation=sim,
                        inputs=inputs, params=params, choices=choices, pipeline=pipe)
