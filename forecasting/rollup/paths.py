"""Consolidated free cash flow with an honest distribution: sample paths from the roll-up.

From the pipeline's point forecasts at an origin (`forecasting.rollup.pipeline`):

5. **Sample paths** (`simulate`): whole past error windows of this same pipeline (windows of
   at least 4 quarters, `MIN_WINDOW_STEPS`, made at earlier cutoffs and all reported by the
   origin; the most recent `RollupConfig.error_windows`) for the bottom of the segment tree,
   capex and OCF, drawn jointly (`forecasting.rollup.simulate`); totals are sums of segment paths,
   FCF = OCF - capex path by path, trailing-twelve-month FCF continues the reported quarters. A
   scenario may change segment and capex paths; OCF then moves by the bridge's response
   (dOI + gamma_q x dSales).
6. **Calibration**: the spread around the centre is scaled by the conformal quantile of the
   raw simulations' misses at the cutoffs just before the origin, over the quarters reported
   by it (`recent_misses`, `forecasting.methods.calibration.conformal_factor`).

`rollup` runs this at the newest reported quarter; `forecasting.rollup.backtest` at past
cutoffs against reported FCF, beside the direct FCF models and seasonal naive.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.aggregates import trailing_twelve_months, ttm_paths
from features.profile import CompanyProfile
from forecasting.reconcile.bridge import OCFBridge, free_cash_flow
from forecasting.methods.calibration import conformal_factor, conformal_quantile, interval_scores
from forecasting.core.frames import to_interval_columns
from forecasting.core.provenance import outcomes_read
from forecasting.rollup.config import RollupConfig, RollupSeries
from forecasting.rollup.pipeline import Pipeline, prepare_pipeline, quarters_between
from forecasting.rollup.simulate import bootstrap_errors, quantile_frame, residual_windows, sample_paths, series_level
from features.errors import OptionError

__all__ = ["RollupInputs", "Simulation", "RollupResult", "build_inputs", "simulate", "rollup", "calibrate",
           "calibration_cutoffs", "calibration_factor", "interval_rows", "node_factors", "raw_simulation",
           "recent_misses", "reported_fcf", "scale_spread"]


# --------------------------------------------------------------------------- simulation
@dataclass
class RollupInputs:
    """Everything a simulation at one origin needs (all estimated on data up to `origin`)."""

    origin: pd.Timestamp
    ds: pd.DatetimeIndex                 # (h,) forecast quarters
    point: np.ndarray                    # (n_sim, h) point forecasts of the simulated series
    level: np.ndarray                    # (n_sim,) scales of their errors
    windows: list                        # cutoffs of the error windows
    errors: np.ndarray                   # (n_windows, n_sim, h) scaled errors
    bridge: OCFBridge
    history: pd.DataFrame                # reported long frame up to the origin (incl. retail)
    drivers: pd.DataFrame                # point forecasts of every node at the origin
    series: RollupSeries                 # the company's roll-up series (simulated: series.simulated)
    extra_point: dict = field(default_factory=dict)   # series -> (h,) point (a revenue category)
    error_scale: float = 1.0             # calibration factor on the errors' spread around their mean
    config: RollupConfig = field(default_factory=RollupConfig)
    node_scale: np.ndarray | None = None  # (n_sim, k) per-node, per-step factors (last step repeats)

    @property
    def spread_scale(self) -> float:
        """One number for the calibration's effect: `error_scale` times the geometric mean of
        the per-node factors (1.0: the raw spread)."""
        node = 1.0 if self.node_scale is None else float(np.exp(np.log(self.node_scale).mean()))
        return self.error_scale * node

    def node_factors(self) -> np.ndarray | None:
        """`node_scale` cut or extended (the last step's factor) to this horizon, (n_sim, h)."""
        if self.node_scale is None:
            return None
        f = np.asarray(self.node_scale, dtype=float)
        h = len(self.ds)
        return f[:, :h] if f.shape[1] >= h else np.concatenate([f, np.repeat(f[:, -1:], h - f.shape[1], 1)], 1)


@dataclass
class Simulation:
    """Sample paths at one origin: ``paths[series]`` is (n_paths, h); also OCF, FCF, TTM FCF."""

    ds: pd.DatetimeIndex
    paths: dict
    series: RollupSeries

    @property
    def fiscal_year(self) -> np.ndarray:
        """The fiscal year of each simulated quarter."""
        return self.series.calendar.fiscal_year(self.ds)

    def quarterly(self) -> pd.DataFrame:
        return quantile_frame(self.paths[self.series.fcf], self.ds, self.series.fcf)

    def ttm(self) -> pd.DataFrame:
        return quantile_frame(self.paths[self.series.fcf_ttm], self.ds, self.series.fcf_ttm)

    def head(self, k: int) -> Simulation:
        """The paths of the first `k` quarters."""
        return Simulation(ds=self.ds[:k], paths={s: p[:, :k] for s, p in self.paths.items()}, series=self.series)

    def table(self, series: Sequence[str] | None = None) -> pd.DataFrame:
        series = series or (self.series.fcf, self.series.fcf_ttm)
        return pd.concat([quantile_frame(self.paths[s], self.ds, s) for s in series], ignore_index=True)

    def fiscal_years(self, history: pd.DataFrame, series: str | None = None) -> pd.DataFrame:
        """Fiscal-year totals of `series` (default FCF; reported quarters of `history` + simulated
        ones) for the years the horizon completes: ``fiscal_year, reported_quarters, mean, p2.5 .. p97.5``."""
        series = series or self.series.fcf
        cal = self.series.calendar
        rep = history[history["unique_id"] == series].set_index("ds")["y"]
        rep_year = cal.fiscal_year(rep.index)
        rows = []
        for y in sorted(set(self.fiscal_year)):
            cols = np.flatnonzero(self.fiscal_year == y)
            done = rep[rep_year == y]
            if len(cols) + len(done) != 4:
                continue
            tot = self.paths[series][:, cols].sum(axis=1) + float(done.sum())
            q = quantile_frame(tot[:, None], [cal.year_end(y)], series + "_fy")
            q.insert(0, "fiscal_year", y)
            q.insert(1, "reported_quarters", len(done))
            rows.append(q.drop(columns=["unique_id", "ds"]))
        return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


#: Error windows are at least this many quarters long, whatever the horizon asked for, so the
#: distribution of the first quarters does not depend on how far ahead one looks (and the
#: calibration, which simulates recent cutoffs over 1-3 reported quarters, rescales the same
#: simulator it learnt from).
MIN_WINDOW_STEPS = 4


def build_inputs(pipe: Pipeline, origin, h: int, min_windows: int = 2) -> RollupInputs:
    """`RollupInputs` at `origin` from the pipeline's forecasts there and its earlier windows of
    ``max(h, MIN_WINDOW_STEPS)`` quarters fully reported by `origin` (the most recent
    `config.error_windows` of them), cut to the first `h` quarters."""
    config, rs = pipe.config, pipe.series
    simulated = list(rs.simulated)
    origin = pd.Timestamp(origin)
    hist = pipe.history[pipe.history["ds"] <= origin]
    ds = pd.DatetimeIndex([origin + rs.calendar.offset(k) for k in range(1, h + 1)])
    now = pipe.at(origin)
    pf = now.set_index(["unique_id", "ds"])["mean"]
    point = pf.reindex(pd.MultiIndex.from_product([simulated, ds])).to_numpy(dtype=float)
    point = point.reshape(len(simulated), h)
    if not np.isfinite(point).all():
        raise ValueError(f"roll-up at {origin.date()}: no {h}-quarter forecasts of {simulated} there "
                         "(a cutoff needs every node forecast h quarters ahead)")
    scales = [rs.scale_of(s) for s in simulated]
    outcomes_read("rollup.history", origin, hist["ds"])
    length = max(h, MIN_WINDOW_STEPS)  # windows reported by the origin were made before it
    cuts, R = residual_windows(pipe.final, hist, simulated, length, known_by=origin, scale_by=scales)
    R = R[:, :, :h]
    if len(cuts) > config.error_windows:
        cuts, R = cuts[-config.error_windows:], R[-config.error_windows:]
    if len(cuts) < min_windows:
        raise OptionError(f"roll-up at {origin.date()}: only {len(cuts)} past window(s) of {length} quarters fully "
                         f"reported, need {min_windows}; use an earlier first_cutoff or a shorter horizon")
    extra_point = {s: pf.reindex(pd.MultiIndex.from_product([[s], ds])).to_numpy(dtype=float)
                   for s in config.extra}
    return RollupInputs(origin=origin, ds=ds, point=point, level=series_level(hist, scales, origin),
                        windows=cuts, errors=R,
                        bridge=OCFBridge(rs.cash, config.bridge_window, rs.calendar).fit(hist, cutoff=origin),
                        history=hist, drivers=now.drop(columns="y"), series=rs, extra_point=extra_point,
                        config=config)


def simulate(inputs: RollupInputs, n_paths: int | None = None, seed: int | None = None,
             smoothing: float | None = None,
             adjust: Callable[[dict, RollupInputs], None] | None = None) -> Simulation:
    """Sample paths of the segments, capex and OCF; totals, FCF and TTM FCF derived.

    `adjust(paths, inputs)` may change the segment / capex paths in place (scenarios,
    `forecasting.scenarios.run`); OCF then moves by the bridge's response to the changed totals.
    """
    cfg, rs = inputs.config, inputs.series
    simulated = rs.simulated
    tree, cash = rs.tree, rs.cash
    n_paths = cfg.n_paths if n_paths is None else n_paths
    seed = cfg.seed if seed is None else seed
    smoothing = cfg.smoothing if smoothing is None else smoothing
    E = bootstrap_errors(inputs.errors, n_paths, seed, smoothing, centre=cfg.centre)
    scale = inputs.error_scale
    if inputs.node_scale is not None:  # per node and step (E is (n_paths, n_sim, h))
        scale = scale * inputs.node_factors()[None, :, :]
    E = scale_spread(E, scale)
    nonneg = [rs.nonnegative(s) for s in simulated]
    P = sample_paths(inputs.point, inputs.level, E, nonneg)
    paths = {s: P[:, i, :] for i, s in enumerate(simulated)}

    def totals() -> tuple[np.ndarray, np.ndarray]:
        if tree.segments:
            for m in tree.measures:
                segs = {s.name: paths[s.series[m.name]] for s in tree.segments}
                for g in tree.groups:
                    paths[g.series[m.name]] = _sum(segs[n] for n in g.segments)
                paths[m.total] = _sum(segs.values())
        return paths[cash.operating_income].copy(), paths[cash.sales].copy()

    oi0, s0 = totals()
    if adjust is not None:
        adjust(paths, inputs)
        oi1, s1 = totals()
        gamma = inputs.bridge.gamma_[inputs.bridge.quarter_of(inputs.ds) - 1]
        ocf = cash.operating_cash_flow
        paths[ocf] = paths[ocf] + (oi1 - oi0) + gamma[None, :] * (s1 - s0)
    paths[rs.fcf] = free_cash_flow(paths[cash.operating_cash_flow], paths[cash.capex])
    fcf_hist = inputs.history[inputs.history["unique_id"] == rs.fcf].sort_values("ds")["y"].to_numpy()
    paths[rs.fcf_ttm] = ttm_paths(paths[rs.fcf], fcf_hist[-3:])
    return Simulation(ds=inputs.ds, paths=paths, series=rs)


def scale_spread(E: np.ndarray, scale) -> np.ndarray:
    """Draws `E` (n_paths, n_series, h) with their spread around their mean scaled by `scale`
    (a number or an array broadcasting to `E`), the mean (the bias) unchanged."""
    if np.all(np.asarray(scale) == 1.0):
        return E
    centre = E.mean(axis=0, keepdims=True)
    return centre + scale * (E - centre)


def _sum(arrays):
    """Element-wise sum in the given order (the same float result whatever the container)."""
    it = iter(arrays)
    total = next(it)
    for a in it:
        total = total + a
    return total


# --------------------------------------------------------------------------- calibration
#: Fewest scored outcomes before the roll-up's errors are rescaled.
MIN_CALIBRATION_ROWS = 8


def interval_rows(sim: Simulation, cutoff, model: str, hist_all: pd.DataFrame,
                  series: Sequence[str] | None = None) -> pd.DataFrame:
    """Quantiles of `sim` as backtest rows (``mean`` = the paths' mean, which is the pipeline's
    point forecast up to the floors at zero; ``median`` = P50, scored as the 0.5 quantile;
    ``lo-80`` = P10, ...) with ``y``."""
    qf = sim.table(series)
    qf["cutoff"] = pd.Timestamp(cutoff)
    rows = to_interval_columns(qf)
    rows["median"] = rows["p50"]
    rows["model"] = rows["model_used"] = model
    return rows.merge(hist_all, on=["unique_id", "ds"], how="left")


def calibration_factor(rows: pd.DataFrame, level: int = 80) -> float:
    """Scale for the bootstrapped errors from past roll-up forecasts with reported outcomes:
    `forecasting.methods.calibration.conformal_factor` of their P10..P90 rows. `simulate` scales each
    bootstrapped error's deviation from its mean by it, so the band widens (or narrows) around
    an unchanged centre by about that factor. 1.0 with fewer than `MIN_CALIBRATION_ROWS` rows.

    A TTM row one quarter ahead is the quarterly row plus the three reported quarters before
    it: the same score, so it is counted once (dropped when ``cutoff`` and ``ds`` are given)."""
    if {"cutoff", "ds", "unique_id"} <= set(rows.columns) and len(rows):
        ttm = rows["unique_id"].astype(str).str.endswith("_ttm")
        first = rows["ds"] == rows.groupby(["unique_id", "cutoff"])["ds"].transform("min")
        rows = rows[~(ttm & first & (rows["ds"] > rows["cutoff"]))]
    return conformal_factor(rows, level, MIN_CALIBRATION_ROWS)


def reported_fcf(history: pd.DataFrame, series: RollupSeries) -> pd.DataFrame:
    """Reported quarterly FCF and its TTM sums as one long frame (MASE scales, outcomes)."""
    fcf = history[history["unique_id"] == series.fcf][["unique_id", "ds", "y"]]
    return pd.concat([fcf, trailing_twelve_months(fcf, series.fcf)], ignore_index=True)


def raw_simulation(pipe: Pipeline, cutoff, k: int, cache: dict | None = None) -> Simulation:
    """``simulate(build_inputs(pipe, cutoff, k))``, the uncalibrated paths of `k` quarters.

    With `cache` (a dict kept by the caller for one pipeline and config), one simulation of
    `MIN_WINDOW_STEPS` quarters per cutoff serves every `k` up to it: the error windows are
    that long whatever `k`, and the random draws depend on the number of windows and paths
    only, so its first `k` quarters are the same paths. A backtest asks each cutoff for 1, 2,
    3 and 4 quarters as later origins calibrate on it."""
    key = pd.Timestamp(cutoff)
    if cache is not None and k <= MIN_WINDOW_STEPS:
        if key not in cache:
            try:
                cache[key] = simulate(build_inputs(pipe, key, MIN_WINDOW_STEPS))
            except ValueError:  # nodes forecast fewer quarters than that: simulate k only
                cache[key] = None
        if cache[key] is not None:
            return cache[key].head(k)
    return simulate(build_inputs(pipe, key, k))


def recent_misses(pipe: Pipeline, origin, h: int, window: int, cache: dict | None = None,
                  series: Sequence[str] | None = None) -> pd.DataFrame:
    """What the calibration learns from at `origin`: the raw (uncalibrated) simulations at the
    `window` pipeline cutoffs before it, each over the quarters after it that were reported by
    `origin` (at most `h`), as quantile rows with their outcomes (`interval_rows`) of FCF and
    TTM FCF, or of `series` (e.g. every simulated node). `cache`: see `raw_simulation`."""
    origin = pd.Timestamp(origin)
    hist_all = reported_fcf(pipe.history, pipe.series) if series is None else \
        pipe.history[pipe.history["unique_id"].isin(list(series))][["unique_id", "ds", "y"]]
    rows = []
    for c in [c for c in pipe.cutoffs if c < origin][-window:]:
        reported = quarters_between(c, origin, pipe.series.calendar)  # quarters after c reported by the origin
        try:
            sim = raw_simulation(pipe, c, min(h, reported), cache)
        except ValueError:  # too early: fewer than two fully reported past windows
            continue
        rows.append(interval_rows(sim, c, "Rollup", hist_all, series))
    if not rows:
        return pd.DataFrame(columns=["unique_id", "cutoff", "ds", "y", "mean", "lo-80", "hi-80"])
    out = pd.concat(rows, ignore_index=True)
    outcomes_read("rollup.spread_calibration" if series is None else "rollup.node_calibration", origin,
                  out.loc[out["y"].notna(), "ds"])
    return out


#: Past misses of a node at other steps that weigh as much as its misses at the step itself.
NODE_PRIOR_WEIGHT = 4.0


def node_factors(rows: pd.DataFrame, series: Sequence[str], h: int, level: int = 80,
                 prior_weight: float = NODE_PRIOR_WEIGHT) -> np.ndarray:
    """Per node and step, the conformal factor of that node's own past misses (`recent_misses`
    rows of the simulated series): at step k, the conformal quantile of the node's scores at k
    shrunk toward the one of all its steps, ``(n_k q_k + w q_all) / (n_k + w)``; 1.0 for a node
    with fewer than `MIN_CALIBRATION_ROWS` scores. Returns (len(series), h)."""
    out = np.ones((len(series), h))
    if not len(rows):
        return out
    rows = rows.dropna(subset=["y"])
    step = (pd.PeriodIndex(rows["ds"], freq="Q") - pd.PeriodIndex(rows["cutoff"], freq="Q")).map(lambda d: d.n)
    rows = rows.assign(score=interval_scores(rows, level).to_numpy(), step=np.asarray(step))
    rows = rows[np.isfinite(rows["score"])]
    for i, s in enumerate(series):
        g = rows[rows["unique_id"] == s]
        if len(g) < MIN_CALIBRATION_ROWS:
            continue
        q_all = conformal_quantile(g["score"].to_numpy(), level / 100)
        for k in range(1, h + 1):
            sk = g.loc[g["step"] == k, "score"].to_numpy()
            q_k = conformal_quantile(sk, level / 100) if len(sk) else q_all
            q = (len(sk) * q_k + prior_weight * q_all) / (len(sk) + prior_weight)
            out[i, k - 1] = q if np.isfinite(q) and q > 0 else 1.0
    return out


def calibrate(inputs: RollupInputs, pipe: Pipeline, origin, h: int, cache: dict | None = None) -> RollupInputs:
    """Set the calibration of `inputs` at `origin` as the config says (`RollupConfig.calibrate`,
    `RollupConfig.calibrate_by`): one factor from FCF's recent misses (``fcf``) or a factor per
    simulated node and step from each node's own (``node``). Returns `inputs`."""
    config = pipe.config
    if not config.calibrate:
        return inputs
    if config.calibrate_by == "node":
        simulated = list(pipe.series.simulated)
        rows = recent_misses(pipe, origin, h, config.calibration_window, cache, series=simulated)
        inputs.node_scale = node_factors(rows, simulated, max(h, 1))
    else:
        inputs.error_scale = calibration_factor(recent_misses(pipe, origin, h, config.calibration_window, cache))
    return inputs


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
    ok = [c for c in pipe.cutoffs if c + pipe.series.calendar.offset(h) <= newest]
    return ok[-n:]


def rollup(df: pd.DataFrame, profile: CompanyProfile, config: RollupConfig | None = None, guidance=None,
           pipeline: Pipeline | None = None) -> RollupResult:
    """Consolidated FCF forecast with quantiles, `config.h` quarters after the newest one.

    Args:
        df: long frame ``unique_id, ds, y`` of every modelled series (`load_quarterly()`).
        profile: the company's profile (its hierarchy, cash-flow series and calendar).
        config: `RollupConfig`.
        guidance: a `features.guidance.GuidanceBook` (None: no guided models).
        pipeline: a `Pipeline` already computed on `df` (reused): `config`'s horizon, paths, seed
            and calibration apply; its pipeline settings must match (`Pipeline.with_config`).
    Returns:
        `RollupResult`; ``quarterly``/``ttm``: ``unique_id, ds, mean, p2.5 .. p97.5``.
    """
    pipe = pipeline.with_config(config) if pipeline is not None else prepare_pipeline(df, profile, config, guidance)
    config = pipe.config
    origin = pipe.history["ds"].max()
    inputs = calibrate(build_inputs(pipe, origin, config.h), pipe, origin, config.h)
    sim = simulate(inputs)
    params = {**config.as_params(), "error_scale": inputs.spread_scale,
              "origin": pipe.series.calendar.label(origin), "error_windows_used": len(inputs.windows),
              "guidance": guidance.fingerprint() if guidance is not None else "none"}
    choices = pipe.choices[pipe.choices["cutoff"] == origin]
    return RollupResult(quarterly=sim.quarterly(), ttm=sim.ttm(), drivers=inputs.drivers, simulation=sim,
                        inputs=inputs, params=params, choices=choices, pipeline=pipe)
