"""Forecast every series with every requested model: frames in, frames out, no I/O.

Input: a long frame ``unique_id, ds, y`` (quarter-end ``ds``, no holes).
Output (`FORECAST_COLUMNS`): one row per series x quarter x model::

    unique_id  ds          model    model_used     mean   lo-95  lo-80  hi-80  hi-95

``model_used`` differs from ``model`` where a series was too short for the model, or the
model failed or returned NaN, and a simpler fallback model was used (always with a
`ShortSeriesWarning`). Intervals satisfy ``lo-95 <= lo-80 <= mean <= hi-80 <= hi-95``.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from forecasting.models import SEASON_LENGTH, ModelSpec, fallback_chain, get_spec, resolve, with_members

LEVELS: tuple[int, ...] = (80, 95)
FREQ = "QE"
#: Ensemble combiners that learn from earlier windows (`forecasting.ensemble`).
PAST_COMBINERS = ("weighted", "select")


def past_windows(specs: Sequence[ModelSpec], calibration_windows: int, intervals: str) -> int:
    """Rolling windows `forecast()` fits before the newest origin: `calibration_windows` for
    conformal intervals or weighted ensembles, at least each selecting ensemble's ``windows``."""
    n = calibration_windows if intervals == "conformal" or any(
        s.options.get("combiner") == "weighted" for s in specs) else 0
    for s in specs:
        if s.engine == "ensemble" and s.options.get("combiner") == "select":
            n = max(n, int(s.options.get("windows", calibration_windows)))
    return max(n, 1)


class ShortSeriesWarning(UserWarning):
    """A model could not be used on a series and a simpler fallback model was used instead."""


def interval_columns(level: Sequence[int] = LEVELS) -> list[str]:
    lv = sorted(level)
    return [f"lo-{x}" for x in reversed(lv)] + [f"hi-{x}" for x in lv]


def output_columns(level: Sequence[int] = LEVELS) -> list[str]:
    lv = sorted(level)
    return (
        ["unique_id", "ds", "model", "model_used", "mean"]
        + [f"lo-{x}" for x in reversed(lv)]
        + [f"hi-{x}" for x in lv]
    )


FORECAST_COLUMNS = output_columns(LEVELS)


def check_series_frame(df: pd.DataFrame, name: str = "df") -> pd.DataFrame:
    """Validate the ``unique_id, ds, y`` contract; returns a sorted copy with float ``y``."""
    missing = [c for c in ("unique_id", "ds", "y") if c not in df.columns]
    if missing:
        raise ValueError(f"{name} needs columns unique_id, ds, y; missing {missing}")
    out = df[["unique_id", "ds", "y"]].copy()
    out["ds"] = pd.to_datetime(out["ds"])
    out["y"] = pd.to_numeric(out["y"], errors="coerce").astype(float)
    bad = out[~np.isfinite(out["y"])]
    if len(bad):
        r = bad.iloc[0]
        raise ValueError(f"{name}: series {r.unique_id} has a missing or non-finite y at {r.ds.date()}")
    dup = out[out.duplicated(["unique_id", "ds"])]
    if len(dup):
        r = dup.iloc[0]
        raise ValueError(f"{name}: series {r.unique_id} has two rows for {r.ds.date()}")
    out = out.sort_values(["unique_id", "ds"]).reset_index(drop=True)
    for uid, g in out.groupby("unique_id", sort=False):
        expected = pd.date_range(g["ds"].iloc[0], g["ds"].iloc[-1], freq=FREQ)
        if len(expected) != len(g) or not (expected == pd.DatetimeIndex(g["ds"])).all():
            raise ValueError(
                f"{name}: series {uid} is not a gap-free run of quarter ends "
                f"({len(g)} rows between {g['ds'].iloc[0].date()} and {g['ds'].iloc[-1].date()})"
            )
    return out


def forecast(
    df: pd.DataFrame,
    h: int = 8,
    models: str | Iterable[str] | None = None,
    level: Sequence[int] = LEVELS,
    season_length: int = SEASON_LENGTH,
    seed: int = 0,
    intervals: str = "conformal",
    calibration_windows: int = 12,
    engine=None,
    guidance=None,
    n_jobs: int | None = None,
    cache: bool | None = None,
) -> pd.DataFrame:
    """Forecast `h` quarters ahead for every series with every requested model.

    Args:
        df: long frame ``unique_id, ds, y``.
        h: quarters ahead (>= 1).
        models: names, a family, ``"all"`` or None for the defaults (see `forecasting.models.resolve`).
        level: interval levels in percent.
        season_length: 4 for quarterly data.
        seed: random seed for models that use one (ML models).
        intervals: ``"conformal"`` (default) widens or narrows each model's intervals so that
            they would have covered `level`% of outcomes over the last `calibration_windows`
            rolling-origin windows (see `forecasting.calibration`); ``"model"`` keeps the
            models' own intervals.
        calibration_windows: rolling windows used to calibrate intervals and ensemble weights.
        engine: where the statistical models are fitted: None (this process), ``"dask"``, a
            ``dask.distributed.Client`` or another Fugue engine (see `forecasting.distributed`);
            a Dask data frame `df` selects ``"dask"``. Results equal the local ones.
        guidance: a `features.guidance.GuidanceBook` for guided models (``GuidedFoster``...);
            they see only what was announced by the day the newest quarter was reported, and
            the calibration windows what was known at each of their cutoffs.
        n_jobs: local worker processes fitting the newest origin and the past windows side by
            side (None: ``FCF_N_JOBS`` or every core; see `forecasting.parallel`).
        cache: reuse past windows fitted on the same rows by an earlier call, from the
            data-vintage cache (`forecasting.cache`; None: on unless ``FCF_CACHE=0``).

    Returns:
        The long forecast frame described in the module docstring.
    """
    if isinstance(h, bool) or not isinstance(h, (int, np.integer)):
        raise ValueError(f"horizon h must be a whole number of quarters, got {h!r} ({type(h).__name__})")
    h = int(h)
    if h < 1:
        raise ValueError(f"horizon h must be >= 1, got {h}")
    if intervals not in ("conformal", "model"):
        raise ValueError(f"intervals must be 'conformal' or 'model', got '{intervals}'")
    if intervals == "conformal" and h > 8:
        raise ValueError(f"conformal intervals are calibrated for horizons of 1 to 8 quarters, got h={h}; "
                         "use intervals='model' (--intervals model) for longer horizons")
    from forecasting.distributed import check_engine, to_pandas_input

    df, was_dask = to_pandas_input(df)
    engine = check_engine("dask" if was_dask and engine is None else engine)
    df = check_series_frame(df)
    requested = resolve(models)
    specs = with_members(requested)
    # Past windows' errors are needed only to calibrate intervals or learn ensemble weights or
    # choices: a mean/median ensemble with the models' own intervals skips the refits.
    needs_past = intervals == "conformal" or any(
        s.engine == "ensemble" and s.options.get("combiner", "median") in PAST_COMBINERS for s in specs)
    if not (needs_past or any(s.engine == "ensemble" for s in specs)):
        now = guidance.at_cutoff(df["ds"].max()) if guidance is not None else None
        out = forecast_base(df, h, specs, level, season_length, seed, engine=engine, guidance=now)
    else:
        from forecasting.backtest import (
            BacktestConfig,
            base_at_cutoffs,
            cutoff_windows,
            cutoffs,
            finish,
            post_process,
            replay,
        )

        config = BacktestConfig(h=h, n_windows=past_windows(specs, calibration_windows, intervals),
                                level=tuple(level), season_length=season_length, warmup_windows=0,
                                end_offset=1, intervals=intervals, seed=seed)
        raw_config = replace(config, intervals="model")
        windows = []
        # a past window needs a series with 2 quarters before the newest; else keep model intervals
        if needs_past and (df["ds"] < df["ds"].max()).groupby(df["unique_id"]).sum().ge(2).any():
            windows = cutoff_windows(df, cutoffs(df, h, config.n_windows, 1, end_offset=1))
        # the newest origin and the past windows are fitted together (in parallel, see forecasting.parallel)
        bases = base_at_cutoffs(windows + [(df["ds"].max(), df)], specs, raw_config, engine=engine,
                                n_jobs=n_jobs, cache=cache, guidance=guidance)
        out, messages = bases[-1]
        for message in messages:
            warnings.warn(message, ShortSeriesWarning, stacklevel=2)
        past = pd.DataFrame(columns=["unique_id", "ds", "cutoff", "model", "mean", "y"])
        if windows:
            rows, _ = replay(df, windows, [fc for fc, _ in bases[:-1]], specs, raw_config)
            past = finish(rows, raw_config)
        out["cutoff"] = df["ds"].max()
        out["y"] = np.nan
        out = post_process(out, specs, config, df, past)
    keep = [s.name for s in requested]
    out = out[out["model"].isin(keep)].copy()
    out["model"] = pd.Categorical(out["model"], categories=keep)
    out = out.sort_values(["unique_id", "model", "ds"]).reset_index(drop=True)
    out["model"] = out["model"].astype(str)
    return out[output_columns(level)]


def forecast_base(
    df: pd.DataFrame,
    h: int,
    specs: list[ModelSpec],
    level: Sequence[int] = LEVELS,
    season_length: int = SEASON_LENGTH,
    seed: int = 0,
    engine=None,
    guidance=None,
) -> pd.DataFrame:
    """Forecasts of the statistical, ML and guided specs in `specs` (ensembles are skipped).

    `engine` fits the statistical models on a cluster (see `forecasting.distributed`);
    `guidance` is the `features.guidance.GuidanceBook` known at the origin (guided specs)."""
    parts = []
    stats = [s for s in specs if s.engine == "stats"]
    if stats:
        parts.append(forecast_stats(df, h, stats, level, season_length, engine=engine))
    ml = [s for s in specs if s.engine == "ml"]
    if ml:
        from forecasting.ml import forecast_ml

        parts.append(forecast_ml(df, h, ml, level, season_length, seed))
    guided = [s for s in specs if s.engine == "guided"]
    if guided:
        from forecasting.guided import forecast_guided

        parts.append(forecast_guided(df, h, guided, level, season_length, seed, guidance))
    if not parts:
        return pd.DataFrame(columns=output_columns(level))
    return pd.concat(parts, ignore_index=True)


def _plan(df: pd.DataFrame, specs: list[ModelSpec]) -> dict[str, dict[str, ModelSpec]]:
    """For each series, the spec actually used for each requested spec (after fallbacks)."""
    plan: dict[str, dict[str, ModelSpec]] = {}
    for uid, n in df.groupby("unique_id", sort=False).size().items():
        plan[uid] = {}
        positive = bool((df.loc[df["unique_id"] == uid, "y"] > 0).all())
        for spec in specs:
            start = spec
            if spec.options.get("transform") == "log" and not positive:
                start = get_spec(spec.fallback)  # the level-scale model (see model_used)
            used = fallback_chain(start, int(n))
            if used is None:
                raise ValueError(
                    f"series {uid} has {n} observation(s): too short for {spec.name} and every "
                    f"fallback (the shortest needs {_shortest(spec)}); start it earlier or drop it"
                )
            if used.name != start.name:
                warnings.warn(
                    f"series {uid}: {n} observations, fewer than the {spec.min_obs} {spec.name} "
                    f"needs; forecasting it with {used.name} instead",
                    ShortSeriesWarning,
                    stacklevel=3,
                )
            plan[uid][spec.name] = used
    return plan


def _shortest(spec: ModelSpec) -> int:
    n = spec.min_obs
    while spec.fallback:
        spec = get_spec(spec.fallback)
        n = min(n, spec.min_obs)
    return n


def _run_statsforecast(sub: pd.DataFrame, h: int, used: list[ModelSpec], level, season_length, engine=None):
    """One statsforecast run per target scale: plain specs on y, ``transform="log"`` specs on
    log(y), their quantiles mapped back with exp (exact for quantiles of a monotone map; the
    point forecast becomes the median on the original scale)."""
    plain = [s for s in used if s.options.get("transform") != "log"]
    logged = [s for s in used if s.options.get("transform") == "log"]
    if not logged:
        return _run_scale(sub, h, plain, level, season_length, engine)
    if (sub["y"] <= 0).any():
        raise ValueError("log-scale models need positive values")
    out = _run_scale(sub.assign(y=np.log(sub["y"])), h, logged, level, season_length, engine)
    cols = [c for c in out.columns if c not in ("unique_id", "ds")]
    out[cols] = np.exp(out[cols].astype(float))
    if plain:
        out = _run_scale(sub, h, plain, level, season_length, engine).merge(out, on=["unique_id", "ds"])
    return out


def _run_scale(sub: pd.DataFrame, h: int, used: list[ModelSpec], level, season_length, engine=None):
    from statsforecast import StatsForecast

    from forecasting.distributed import is_distributed, statsforecast_forecast

    if is_distributed(engine):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return statsforecast_forecast(sub, [s.build(season_length) for s in used], h, level, FREQ, engine)
    models = [s.build(season_length) for s in used]
    if len(sub["unique_id"].unique()) > 1:
        for m in models:  # a refused ARIMA fit marks its series with NaN instead of stopping the run
            if hasattr(m, "on_degenerate"):
                m.on_degenerate = "nan"
    sf = StatsForecast(models=models, freq=FREQ, n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        return sf.forecast(df=sub, h=h, level=list(level))


def _one_series(sub, h, spec: ModelSpec, level, season_length) -> tuple[pd.DataFrame, ModelSpec]:
    """Forecast one series with one spec, walking down the fallback chain on failure or NaN."""
    current: ModelSpec | None = spec
    uid = sub["unique_id"].iloc[0]
    reason = ""
    while current is not None:
        try:
            out = _run_statsforecast(sub, h, [current], level, season_length)
            cols = [current.name] + [f"{current.name}-{c}" for c in interval_columns(level)]
            if np.isfinite(out[cols].to_numpy(dtype=float)).all():
                if current is not spec:
                    warnings.warn(
                        f"series {uid}: {spec.name} {reason}; forecasting it with {current.name} instead",
                        ShortSeriesWarning,
                        stacklevel=4,
                    )
                return out, current
            reason = f"returned NaN with {len(sub)} observations"
        except Exception as exc:  # a model failing on one series must not stop the others
            reason = f"failed ({type(exc).__name__}: {exc})"
        current = get_spec(current.fallback) if current.fallback else None
    raise RuntimeError(f"series {uid}: {spec.name} {reason} and no fallback model could forecast it")


def forecast_stats(
    df: pd.DataFrame,
    h: int,
    specs: list[ModelSpec],
    level: Sequence[int] = LEVELS,
    season_length: int = SEASON_LENGTH,
    engine=None,
) -> pd.DataFrame:
    """statsforecast models, one `StatsForecast` call per group of series sharing a plan.

    `engine` fits each group on a cluster (see `forecasting.distributed`); a series whose
    model fails is then refitted locally down its fallback chain."""
    plan = _plan(df, specs)
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for uid, p in plan.items():
        groups[tuple(s.name for s in p.values())].append(uid)
    ivals = interval_columns(level)
    rows = []
    for key, uids in groups.items():
        sub = df[df["unique_id"].isin(uids)]
        used = list({name: get_spec(name) for name in key}.values())
        outs = _run_group(sub, h, used, level, season_length, engine)
        # One frame per spec for all series of the group (they share the plan `key`); only the
        # series whose forecast failed or has a NaN are refitted one by one down the fallbacks.
        # (Assembling per series and column cost ~40% of a conformal forecast's time.)
        for spec in specs:
            u = plan[uids[0]][spec.name]
            good: set = set()
            out = outs.get(u.name)
            if out is not None:
                cols = [u.name] + [f"{u.name}-{c}" for c in ivals]
                finite = pd.Series(np.isfinite(out[cols].to_numpy(dtype=float)).all(axis=1))
                ok = finite.groupby(out["unique_id"].to_numpy()).all()
                good = set(ok.index[ok.to_numpy()]) & set(uids)
                rows.append(_assemble(out[out["unique_id"].isin(good)], spec, u, ivals))
            for uid in (x for x in uids if x not in good):
                block, u_used = _one_series(sub[sub["unique_id"] == uid], h, u, level, season_length)
                rows.append(_assemble(block, spec, u_used, ivals))
    out = pd.concat(rows, ignore_index=True)
    order = {uid: i for i, uid in enumerate(uid for uids in groups.values() for uid in uids)}
    rank = {s.name: i for i, s in enumerate(specs)}
    out = out.iloc[np.lexsort((out["model"].map(rank).to_numpy(), out["unique_id"].map(order).to_numpy()),
                              )].reset_index(drop=True)  # series, then spec; ds order kept (stable)
    return enforce_order(out, level)


def _run_group(sub, h, used: list[ModelSpec], level, season_length, engine=None) -> dict[str, pd.DataFrame | None]:
    """statsforecast's wide output for each spec in `used` on the series of `sub`.

    One run for all specs; if it raises (a model failing on one series stops statsforecast's
    whole call), one run per spec, so only the failing spec's series are refitted one by one
    (`_one_series`) instead of every spec on every series of the group. A spec whose own run
    fails maps to None."""
    try:
        out = _run_statsforecast(sub, h, used, level, season_length, engine)
        return {s.name: out for s in used}
    except Exception:
        if len(used) == 1:
            return {used[0].name: None}
    outs: dict[str, pd.DataFrame | None] = {}
    for s in used:
        try:
            outs[s.name] = _run_statsforecast(sub, h, [s], level, season_length, engine)
        except Exception:
            outs[s.name] = None
    return outs


def _assemble(block: pd.DataFrame, spec: ModelSpec, used: ModelSpec, ivals: list[str]) -> pd.DataFrame:
    """statsforecast's wide output of model `used` as rows of the long frame for `spec`."""
    cols = [used.name] + [f"{used.name}-{c}" for c in ivals]
    data = {"unique_id": block["unique_id"].to_numpy(), "ds": block["ds"].to_numpy(),
            "model": spec.name, "model_used": used.name, "mean": block[cols[0]].to_numpy(dtype=float)}
    data.update({c: block[src].to_numpy(dtype=float) for c, src in zip(ivals, cols[1:])})
    return pd.DataFrame(data)


def enforce_order(out: pd.DataFrame, level: Sequence[int] = LEVELS) -> pd.DataFrame:
    """Make nested intervals nest: lo-95 <= lo-80 <= mean <= hi-80 <= hi-95 (fixes float noise)."""
    lv = sorted(level)
    lo = out["mean"].to_numpy(dtype=float).copy()
    hi = lo.copy()
    for x in lv:
        lo = np.minimum(lo, out[f"lo-{x}"].to_numpy(dtype=float))
        hi = np.maximum(hi, out[f"hi-{x}"].to_numpy(dtype=float))
        out[f"lo-{x}"], out[f"hi-{x}"] = lo, hi
    return out
