"""Roll segment forecasts up to consolidated free cash flow, and backtest the roll-up.

Pipeline at a forecast origin (a cutoff; everything uses data up to it only):

1. base forecasts of every hierarchy node (`forecasting.hierarchy`: total, retail, NA,
   International, AWS for net sales and operating income) and of net capex, with one model;
2. reconciliation so that segments add up to the totals (default ``MinTrace-wls_struct``);
3. scaled errors of the same pipeline in earlier windows fully reported by the origin, for
   the six segment series, capex and the OCF bridge (`forecasting.simulate`);
4. sample paths of the segments and capex (joint bootstrap), totals as sums of the segment
   paths (so every path is coherent), optional scenario adjustments, OCF from the bridge
   (`forecasting.bridge`, fitted up to the origin) plus a bridge error, FCF = OCF - capex,
   and TTM FCF continuing the reported quarters;
5. quantiles P2.5..P97.5 per quarter (`forecasting.simulate.QUANTILES`).

`rollup` runs this at the newest reported quarter; `backtest_rollup` at each of the last
`n_windows` cutoffs and scores it against reported FCF, beside seasonal-naive FCF.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from forecasting.backtest import backtest
from forecasting.bridge import FCF, NET_CAPEX, OCF, OI, SALES, OCFBridge, free_cash_flow, ttm
from forecasting.forecast import ShortSeriesWarning, check_series_frame, forecast
from forecasting.hierarchy import DEFAULT_METHOD, METHODS, add_retail, bottom_series, hierarchy_series, reconcile
from forecasting.simulate import (
    DEFAULT_PATHS,
    SMOOTHING,
    bootstrap_errors,
    quantile_frame,
    residual_windows,
    sample_paths,
    series_level,
)

#: Simulated series: the six segments and net capex; the bridge error is appended as a 7th+1.
SIMULATED = (*bottom_series(), NET_CAPEX)
BRIDGE_ERROR = "ocf_bridge_error"
#: The series whose size scales each simulated series' errors. Operating income passes near
#: zero (International for years, North America in 2022), so its errors are scaled by its
#: segment's sales (errors in margin points); the OCF bridge error by total net sales.
SCALE_OF = {**{s: s for s in SIMULATED},
            **{s: s.replace("operating_income", "net_sales") for s in SIMULATED
               if s.startswith("operating_income")},
            BRIDGE_ERROR: SALES}
FCF_TTM = FCF + "_ttm"
DEFAULT_MODEL = "AutoETS"


@dataclass
class RollupInputs:
    """Everything a simulation at one origin needs (all estimated on data up to `origin`)."""

    origin: pd.Timestamp
    ds: pd.DatetimeIndex                 # (h,) forecast quarters
    point: np.ndarray                    # (n_sim, h) reconciled point forecasts of SIMULATED
    level: np.ndarray                    # (n_sim + 1,) scales of SIMULATED and the bridge error
    windows: list                        # cutoffs of the error windows
    errors: np.ndarray                   # (n_windows, n_sim + 1, h) scaled errors
    bridge: OCFBridge
    history: pd.DataFrame                # reported long frame up to the origin (incl. retail)
    drivers: pd.DataFrame                # reconciled point forecasts of every node at the origin
    extra_point: dict = field(default_factory=dict)   # series -> (h,) point (e.g. advertising)
    model: str = DEFAULT_MODEL
    method: str = DEFAULT_METHOD
    error_scale: float = 1.0             # calibration factor on the errors' spread around their mean


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


@dataclass
class RollupResult:
    """`rollup` output: FCF quantiles (quarterly and TTM), the drivers, the paths, settings."""

    quarterly: pd.DataFrame
    ttm: pd.DataFrame
    drivers: pd.DataFrame
    simulation: Simulation
    inputs: RollupInputs
    params: dict


# --------------------------------------------------------------------------- inputs
def driver_frame(df: pd.DataFrame, extra: Sequence[str] = ()) -> pd.DataFrame:
    """The reported series the roll-up uses: hierarchy nodes (retail derived), capex, OCF, FCF."""
    need = [*hierarchy_series(), NET_CAPEX, OCF, FCF, *extra]
    have = set(df["unique_id"])
    base_need = [s for s in need if s not in ("net_sales_retail", "operating_income_retail")]
    missing = [s for s in base_need if s not in have]
    if missing:
        raise ValueError(f"the roll-up needs series {missing}, which are not in the data; "
                         "load every modelled series (load_quarterly() without series=)")
    out = add_retail(df[df["unique_id"].isin(base_need)])
    return check_series_frame(out[out["unique_id"].isin(need)], "roll-up data")


def forecast_nodes(history: pd.DataFrame, model: str, h: int, n_windows: int,
                   end_offset: int | None, extra: Sequence[str] = (), origin: bool = False) -> pd.DataFrame:
    """Base point forecasts of the nodes and capex at past cutoffs (a backtest), or at the
    newest quarter (``origin=True``). Returns ``cutoff, unique_id, ds, model, mean``."""
    nodes = [*hierarchy_series(), NET_CAPEX, *extra]
    df = history[history["unique_id"].isin(nodes)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShortSeriesWarning)
        if origin:  # forecast() also runs ensembles (which calibrate on earlier windows)
            fc = forecast(df, h=h, models=[model], intervals="model")
            fc["cutoff"] = df["ds"].max()
        else:
            fc = backtest(df, models=[model], h=h, n_windows=n_windows, warmup_windows=0,
                          intervals="model", end_offset=end_offset)
    fc = fc[fc["model"] == model]
    return fc[["cutoff", "unique_id", "ds", "model", "mean"]].reset_index(drop=True)


def reconciled(fc: pd.DataFrame, method: str = DEFAULT_METHOD) -> pd.DataFrame:
    """Reconcile the hierarchy nodes of `fc` with `method` (``"base"``: none); capex and other
    series pass through. Returns ``cutoff, unique_id, ds, mean``."""
    nodes = hierarchy_series()
    h_part = fc[fc["unique_id"].isin(nodes)]
    rest = fc[~fc["unique_id"].isin(nodes)][["cutoff", "unique_id", "ds", "mean"]]
    if method == "base":
        rec = h_part[["cutoff", "unique_id", "ds", "mean"]]
    else:
        if method not in METHODS:
            raise ValueError(f"unknown reconciliation method '{method}'; choose from {['base', *METHODS]}")
        r = reconcile(h_part, methods=[method], by=("cutoff",))
        rec = r[r["method"] == method][["cutoff", "unique_id", "ds", "mean"]]
    return pd.concat([rec, rest], ignore_index=True)


def bridge_errors(history: pd.DataFrame, cutoffs: Sequence, h: int, window: int) -> np.ndarray:
    """Scaled out-of-sample errors of the OCF bridge given reported OI and sales, (n_cut, 1, h).

    At each cutoff c the bridge is fitted on data up to c and predicts OCF for c+1..c+h from
    the *reported* OI and sales; error = (OCF - prediction) / level of total net sales at c.
    """
    w = history.pivot_table(index="ds", columns="unique_id", values="y", aggfunc="first")
    out = []
    for c in cutoffs:
        br = OCFBridge(window).fit(history, cutoff=c)
        ds = pd.DatetimeIndex([c + pd.offsets.QuarterEnd(k) for k in range(1, h + 1)])
        sub = w.reindex(ds)
        pred = br.predict(sub[OI].to_numpy(), sub[SALES].to_numpy(), ds)
        lev = series_level(history, [SCALE_OF[BRIDGE_ERROR]], c)[0]
        out.append(((sub[OCF].to_numpy() - pred) / lev)[None, :])
    return np.stack(out) if out else np.empty((0, 1, h))


def build_inputs(history: pd.DataFrame, origin_fc: pd.DataFrame, past_fc: pd.DataFrame, origin,
                 h: int, method: str, bridge_window: int, model: str = DEFAULT_MODEL,
                 min_windows: int = 4, max_windows: int | None = None,
                 extra: Sequence[str] = ()) -> RollupInputs:
    """Assemble `RollupInputs` at `origin` from reconciled point forecasts there (`origin_fc`)
    and past windows (`past_fc`, reconciled) fully reported by `origin`."""
    origin = pd.Timestamp(origin)
    hist = history[history["ds"] <= origin]
    ds = pd.DatetimeIndex([origin + pd.offsets.QuarterEnd(k) for k in range(1, h + 1)])
    pf = origin_fc.set_index(["unique_id", "ds"])["mean"]
    idx = pd.MultiIndex.from_product([list(SIMULATED), ds])
    point = pf.reindex(idx).to_numpy(dtype=float).reshape(len(SIMULATED), h)
    if not np.isfinite(point).all():
        raise ValueError(f"roll-up at {origin.date()}: missing point forecasts for {SIMULATED}")
    scales = [SCALE_OF[s] for s in SIMULATED]
    cuts, R = residual_windows(past_fc[past_fc["cutoff"] < origin], hist, SIMULATED, h,
                               known_by=origin, scale_by=scales)
    if max_windows is not None and len(cuts) > max_windows:
        cuts, R = cuts[-max_windows:], R[-max_windows:]
    if len(cuts) < min_windows:
        raise ValueError(f"roll-up at {origin.date()}: only {len(cuts)} past window(s) fully reported, "
                         f"need {min_windows}; use more windows (n_windows) or a shorter horizon")
    Rb = bridge_errors(hist, cuts, h, bridge_window)
    level = series_level(hist, [*scales, SCALE_OF[BRIDGE_ERROR]], origin)
    extra_point = {s: origin_fc.set_index(["unique_id", "ds"])["mean"]
                   .reindex(pd.MultiIndex.from_product([[s], ds])).to_numpy(dtype=float) for s in extra}
    return RollupInputs(origin=origin, ds=ds, point=point, level=level, windows=cuts,
                        errors=np.concatenate([R, Rb], axis=1),
                        bridge=OCFBridge(bridge_window).fit(hist, cutoff=origin), history=hist,
                        drivers=origin_fc, extra_point=extra_point, model=model, method=method)


# --------------------------------------------------------------------------- simulation
def simulate(inputs: RollupInputs, n_paths: int = DEFAULT_PATHS, seed: int = 0,
             smoothing: float = SMOOTHING,
             adjust: Callable[[dict, RollupInputs], None] | None = None) -> Simulation:
    """Sample paths of the segments and capex, pushed through the bridge to FCF.

    `adjust(paths, inputs)` may change the segment / capex paths in place before totals and
    the bridge are computed (scenarios, `forecasting.scenarios`).
    """
    E = bootstrap_errors(inputs.errors, n_paths, seed, smoothing)
    if inputs.error_scale != 1.0:  # widen/narrow the spread around its centre, not the bias
        centre = E.mean(axis=0, keepdims=True)
        E = centre + inputs.error_scale * (E - centre)
    n_sim = len(SIMULATED)
    nonneg = [not s.startswith("operating_income") for s in SIMULATED]
    P = sample_paths(inputs.point, inputs.level[:n_sim], E[:, :n_sim, :], nonneg)
    paths = {s: P[:, i, :] for i, s in enumerate(SIMULATED)}
    if adjust is not None:
        adjust(paths, inputs)
    for m in ("net_sales", "operating_income"):
        segs = [paths[f"{m}_{s}"] for s in ("north_america", "international", "aws")]
        paths[f"{m}_retail"] = segs[0] + segs[1]
        paths[f"{m}_total"] = segs[0] + segs[1] + segs[2]
    bridge_err = inputs.level[n_sim] * E[:, n_sim, :]
    paths[OCF] = inputs.bridge.predict(paths[OI], paths[SALES], inputs.ds) + bridge_err
    paths[FCF] = free_cash_flow(paths[OCF], paths[NET_CAPEX])
    fcf_hist = inputs.history[inputs.history["unique_id"] == FCF].sort_values("ds")["y"].to_numpy()
    paths[FCF_TTM] = ttm(paths[FCF], fcf_hist[-3:])
    return Simulation(ds=inputs.ds, paths=paths)


def prepare(df: pd.DataFrame, h: int = 4, model: str = DEFAULT_MODEL, method: str = DEFAULT_METHOD,
            n_windows: int = 12, bridge_window: int = 16, extra: Sequence[str] = (),
            past: pd.DataFrame | None = None) -> RollupInputs:
    """`RollupInputs` at the newest reported quarter of `df` (all modelled series).

    `past`: reconciled node forecasts at earlier cutoffs already computed with the same model,
    method and horizon (``node_past`` of `backtest_rollup`); its last `n_windows` cutoffs are
    reused instead of refitting them.
    """
    history = driver_frame(df, extra)
    if past is None:
        past = reconciled(forecast_nodes(history, model, h, n_windows, end_offset=h, extra=extra), method)
    else:
        past = past[past["cutoff"].isin(sorted(past["cutoff"].unique())[-n_windows:])]
    now = reconciled(forecast_nodes(history, model, h, 0, None, extra=extra, origin=True), method)
    return build_inputs(history, now, past, history["ds"].max(), h, method, bridge_window, model,
                        min_windows=min(4, n_windows), extra=extra)


def rollup(df: pd.DataFrame, h: int = 4, model: str = DEFAULT_MODEL, method: str = DEFAULT_METHOD,
           n_windows: int = 12, n_paths: int = DEFAULT_PATHS, seed: int = 0,
           bridge_window: int = 16, smoothing: float = SMOOTHING, calibrate: bool = True,
           calibration_windows: int = 12) -> RollupResult:
    """Consolidated FCF forecast with quantiles, `h` quarters after the newest reported one.

    With `calibrate` (default) the bootstrapped errors are scaled by `error_scale`, learnt
    from the roll-up's own backtest over the last `calibration_windows` cutoffs, so that the
    80% band would have covered 80% of reported FCF there (see `calibration_factor`).

    Args:
        df: long frame ``unique_id, ds, y`` of every modelled series (`load_quarterly()`).
        model: the model forecasting every node and capex (a registered name).
        method: reconciliation (`forecasting.hierarchy.METHODS` or ``"base"``).
        n_windows: past windows (rolling origins) whose errors drive the simulation.
    Returns:
        `RollupResult`; ``quarterly``/``ttm``: ``unique_id, ds, mean, p2.5 .. p97.5``.
    """
    past = None
    scale = 1.0
    if calibrate:
        scale, past = calibration_run(df, h, model, method, calibration_windows, n_paths, seed,
                                      bridge_window, smoothing)
    inputs = prepare(df, h, model, method, n_windows, bridge_window, past=past)
    inputs.error_scale = scale
    sim = simulate(inputs, n_paths, seed, smoothing)
    params = {"h": h, "model": model, "method": method, "n_windows": n_windows, "n_paths": n_paths,
              "seed": seed, "bridge_window": bridge_window, "smoothing": smoothing,
              "calibrated": calibrate, "error_scale": inputs.error_scale,
              "origin": str(pd.Period(inputs.origin, freq="Q"))}
    return RollupResult(quarterly=sim.quarterly(), ttm=sim.ttm(), drivers=inputs.drivers,
                        simulation=sim, inputs=inputs, params=params)


# --------------------------------------------------------------------------- backtest
def backtest_rollup(df: pd.DataFrame, h: int = 4, model: str = DEFAULT_MODEL,
                    method: str = DEFAULT_METHOD, n_windows: int = 12, min_windows: int = 6,
                    n_paths: int = DEFAULT_PATHS, seed: int = 0, bridge_window: int = 16,
                    smoothing: float = SMOOTHING, methods: Sequence[str] = tuple(METHODS),
                    progress: Callable | None = None, calibrate: bool = True) -> dict:
    """Backtest the FCF roll-up at the last `n_windows` cutoffs against reported FCF.

    At each evaluated cutoff c, the error windows are those of cutoffs c' with c' + h <= c
    (at least `min_windows`), so ``n_windows + min_windows + h - 1`` cutoffs are forecast.

    Returns a dict of frames:
        ``backtest``: ``unique_id (free_cash_flow / free_cash_flow_ttm), cutoff, ds, step, y,
        model ("Rollup" / "RollupCalibrated" / "SeasonalNaive"), model_used, mean, lo-95,
        lo-80, hi-80, hi-95``; ``RollupCalibrated`` (with `calibrate`) scales the errors at
        each cutoff by `calibration_factor` of the earlier cutoffs' ``Rollup`` rows whose
        quarter was reported by then (none for the first cutoffs: factor 1)
        (the `forecasting.backtest.backtest` format, for `forecasting.metrics`); the
        seasonal-naive TTM forecast is the last reported TTM (what quarterly seasonal-naive
        forecasts sum to), with conformal intervals;
        ``history``: reported FCF and TTM FCF (for MASE scales);
        ``reconciliation``: point forecasts of every node at every cutoff, per method incl.
        ``base``, with the reported ``y`` and ``step``.
    """
    history = driver_frame(df)
    n_cut = n_windows + min_windows + h - 1
    base = forecast_nodes(history, model, h, n_cut, end_offset=h)
    recs = {m: reconciled(base, m) for m in dict.fromkeys(["base", *methods, method])}
    past = recs[method]
    cuts = sorted(past["cutoff"].unique())[-n_windows:]
    fcf_hist = history[history["unique_id"] == FCF][["unique_id", "ds", "y"]]
    hist_all = pd.concat([fcf_hist, _ttm_frame(fcf_hist)], ignore_index=True)
    raw_rows, cal_rows = [], []
    iterator = progress(cuts) if progress is not None else cuts
    for c in iterator:
        c = pd.Timestamp(c)
        inputs = build_inputs(history, past[past["cutoff"] == c], past, c, h, method, bridge_window,
                              model, min_windows=min_windows)
        raw = _interval_rows(simulate(inputs, n_paths, seed, smoothing), c, "Rollup", hist_all)
        raw_rows.append(raw)
        if calibrate:  # learn the scale only from earlier cutoffs' outcomes reported by c
            known = pd.concat(raw_rows[:-1], ignore_index=True) if len(raw_rows) > 1 else raw.iloc[:0]
            known = known[known["ds"] <= c].dropna(subset=["y"])
            inputs.error_scale = calibration_factor(known)
            cal_rows.append(_interval_rows(simulate(inputs, n_paths, seed, smoothing), c,
                                           "RollupCalibrated", hist_all))
    roll = pd.concat(raw_rows + cal_rows, ignore_index=True)
    sn = _seasonal_naive_fcf(hist_all, h, n_windows)
    out = pd.concat([roll, sn], ignore_index=True).dropna(subset=["y"])
    p = (pd.PeriodIndex(pd.DatetimeIndex(out["ds"]), freq="Q")
         - pd.PeriodIndex(pd.DatetimeIndex(out["cutoff"]), freq="Q"))
    out["step"] = [x.n for x in p]
    cols = ["unique_id", "cutoff", "ds", "step", "y", "model", "model_used", "mean",
            "lo-95", "lo-80", "hi-80", "hi-95"]
    rec = pd.concat([r.assign(method=m) for m, r in recs.items()], ignore_index=True)
    rec = rec.merge(history, on=["unique_id", "ds"], how="left").dropna(subset=["y"])
    rp = (pd.PeriodIndex(pd.DatetimeIndex(rec["ds"]), freq="Q")
          - pd.PeriodIndex(pd.DatetimeIndex(rec["cutoff"]), freq="Q"))
    rec["step"] = [x.n for x in rp]
    return {"backtest": out[cols].sort_values(["unique_id", "model", "cutoff", "ds"]).reset_index(drop=True),
            "history": hist_all, "reconciliation": rec, "node_history": history, "node_past": past}


def _interval_rows(sim: Simulation, cutoff, model: str, hist_all: pd.DataFrame) -> pd.DataFrame:
    from forecasting.simulate import to_interval_columns

    qf = pd.concat([sim.quarterly(), sim.ttm()], ignore_index=True)
    qf["cutoff"] = cutoff
    rows = to_interval_columns(qf)
    rows["mean"] = rows["p50"]  # the point forecast scored is the median path
    rows["model"] = rows["model_used"] = model
    return rows.merge(hist_all, on=["unique_id", "ds"], how="left")


#: Fewest scored outcomes before the roll-up's errors are rescaled.
MIN_CALIBRATION_ROWS = 8


def calibration_factor(rows: pd.DataFrame, level: int = 80) -> float:
    """Scale for the bootstrapped errors from past roll-up forecasts with reported outcomes.

    Score of a row: |y - P50| over the distance from P50 to the P10 (y below) or P90 (y
    above) bound; the factor is the split-conformal quantile of the scores at `level`
    (`forecasting.calibration.conformal_quantile`). `simulate` scales each bootstrapped error's
    deviation from its mean by it; the bridge is linear, so the FCF band widens (or narrows)
    around an unchanged centre by about that factor. 1.0 with fewer than
    `MIN_CALIBRATION_ROWS` rows.
    """
    from forecasting.calibration import conformal_quantile

    rows = rows.dropna(subset=["y"])
    if len(rows) < MIN_CALIBRATION_ROWS:
        return 1.0
    below = rows["y"] < rows["mean"]
    w = np.where(below, rows["mean"] - rows[f"lo-{level}"], rows[f"hi-{level}"] - rows["mean"])
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.abs(rows["y"] - rows["mean"]).to_numpy(dtype=float) / w
    s = s[np.isfinite(s)]
    q = conformal_quantile(s, level / 100) if len(s) >= MIN_CALIBRATION_ROWS else np.nan
    return float(q) if np.isfinite(q) and q > 0 else 1.0


def calibration_run(df: pd.DataFrame, h: int = 4, model: str = DEFAULT_MODEL, method: str = DEFAULT_METHOD,
                    n_windows: int = 12, n_paths: int = DEFAULT_PATHS, seed: int = 0, bridge_window: int = 16,
                    smoothing: float = SMOOTHING) -> tuple[float, pd.DataFrame]:
    """`calibration_factor` of an uncalibrated roll-up backtest over the last `n_windows`
    cutoffs, and that backtest's reconciled node forecasts (for `prepare` to reuse)."""
    res = backtest_rollup(df, h, model, method, n_windows, n_paths=n_paths, seed=seed,
                          bridge_window=bridge_window, smoothing=smoothing, methods=(method,),
                          calibrate=False)
    bt = res["backtest"]
    return calibration_factor(bt[bt["model"] == "Rollup"]), res["node_past"]


def _ttm_frame(fcf: pd.DataFrame) -> pd.DataFrame:
    s = fcf.sort_values("ds")
    return pd.DataFrame({"unique_id": FCF_TTM, "ds": s["ds"].to_numpy(),
                         "y": s["y"].rolling(4).sum().to_numpy()}).dropna()


def _seasonal_naive_fcf(hist_all: pd.DataFrame, h: int, n_windows: int) -> pd.DataFrame:
    """Seasonal-naive FCF (quarterly) and its TTM equivalent (last TTM carried forward), with
    conformal intervals, at the same cutoffs as the roll-up backtest."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShortSeriesWarning)
        bt = backtest(hist_all, models=["Naive"], h=h, n_windows=n_windows, end_offset=h)
    q = bt[(bt["unique_id"] == FCF) & (bt["model"] == "SeasonalNaive")]
    t = bt[(bt["unique_id"] == FCF_TTM) & (bt["model"] == "Naive")].assign(model="SeasonalNaive")
    return pd.concat([q, t], ignore_index=True)


def score_rollup(result: dict, level: Sequence[int] = (80, 95)) -> dict:
    """Metrics of `backtest_rollup` output (`forecasting.metrics`): per series x model x step and
    per series x model, plus the reconciliation comparison per method."""
    from forecasting.metrics import pointwise, summarize

    pts = pointwise(result["backtest"], result["history"], level)
    by_step = summarize(pts, ("unique_id", "model", "step"), level)
    overall = summarize(pts, ("unique_id", "model"), level)
    return {"points": pts, "by_step": by_step, "overall": overall,
            "reconciliation": compare_reconciliation(result["reconciliation"], result["node_history"])}


def compare_reconciliation(rec: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """MASE of base vs reconciled node forecasts: one row per method x series, plus the
    geometric mean over series of MASE relative to the base forecasts (``gm_rel_to_base``)."""
    from forecasting.metrics import seasonal_scale

    r = rec[rec["unique_id"].isin(hierarchy_series())]
    r = r.merge(seasonal_scale(history, r), on=["unique_id", "cutoff"], how="left")
    r["ase"] = (r["mean"] - r["y"]).abs() / r["scale"]
    r["sape"] = 200 * (r["mean"] - r["y"]).abs() / (r["mean"].abs() + r["y"].abs())
    t = r.groupby(["method", "unique_id"]).agg(mase=("ase", "mean"), smape=("sape", "mean"),
                                                n=("ase", "size")).reset_index()
    base = t[t["method"] == "base"].set_index("unique_id")["mase"]
    t["rel_to_base"] = t["mase"] / t["unique_id"].map(base)
    gm = t.groupby("method")["rel_to_base"].apply(lambda s: float(np.exp(np.log(s).mean())))
    t["gm_rel_to_base"] = t["method"].map(gm)
    return t
