"""The statsforecast engine: statistical specs forecast at one origin, with their fallbacks.

`forecast_stats` plans, per series, the spec actually used for each requested spec (a series
shorter than a spec's ``min_obs``, or not positive for a log-scale spec, takes the spec's
fallback, with a `ShortSeriesWarning`), runs one `StatsForecast` call per group of series
sharing a plan, and refits one by one, down the fallback chain, only the series whose model
failed or returned NaN. ``transform="log"`` specs are fitted to log(y) and their quantiles
mapped back with exp.

The frequency of the quarter ends comes from the data (`forecasting.core.frames.calendar_of`), so a
fiscal year ending in any month is forecast on its own quarter ends.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict, defaultdict
from collections.abc import Sequence

import numpy as np
import pandas as pd

from forecasting.core.frames import LEVELS, SEASON_LENGTH, ShortSeriesWarning, calendar_of, enforce_order, interval_columns, switched_on
from forecasting.methods.registry import ModelSpec, fallback_chain, get_spec
from features.errors import OptionError

__all__ = ["clear_memo", "forecast_stats", "memo_enabled", "MEMO_ENTRIES"]


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
                raise OptionError(
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
        raise OptionError("log-scale models need positive values")
    out = _run_scale(sub.assign(y=np.log(sub["y"])), h, logged, level, season_length, engine)
    cols = [c for c in out.columns if c not in ("unique_id", "ds")]
    out[cols] = np.exp(out[cols].astype(float))
    if plain:
        out = _run_scale(sub, h, plain, level, season_length, engine).merge(out, on=["unique_id", "ds"])
    return out


def _run_scale(sub: pd.DataFrame, h: int, used: list[ModelSpec], level, season_length, engine=None):
    from statsforecast import StatsForecast

    from forecasting.methods.engines.distributed import is_distributed, statsforecast_forecast

    freq = calendar_of(sub).freq
    if is_distributed(engine):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return statsforecast_forecast(sub, [s.build(season_length) for s in used], h, level, freq, engine)
    models = [s.build(season_length) for s in used]
    if len(sub["unique_id"].unique()) > 1:
        for m in models:  # a refused ARIMA fit marks its series with NaN instead of stopping the run
            if hasattr(m, "on_degenerate"):
                m.on_degenerate = "nan"
    sf = StatsForecast(models=models, freq=freq, n_jobs=1)
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


#: Fits this process remembers (`forecast_stats`): (series, settings, spec) -> its forecast rows.
MEMO_ENTRIES = 20_000
_MEMO: OrderedDict = OrderedDict()


def memo_enabled(engine=None) -> bool:
    """Whether `forecast_stats` reuses this process's earlier fits: on unless ``FCF_FIT_MEMO``
    is ``0``/``false``/``no``/``off``; never for a cluster engine (its runs are compared with
    local ones in the tests, and the fit happens elsewhere)."""
    if engine is not None:
        return False
    return switched_on("FCF_FIT_MEMO")


def clear_memo() -> None:
    """Forget every fit `forecast_stats` remembers."""
    _MEMO.clear()


def _series_keys(df: pd.DataFrame, h: int, level, season_length: int) -> dict:
    """Per series: its exact quarters and values with the fit settings (the memo's data key)."""
    settings = (int(h), tuple(int(v) for v in level), int(season_length))
    keys = {}
    for uid, g in df.groupby("unique_id", sort=False):
        ds = g["ds"].to_numpy(dtype="datetime64[ns]").view("int64")
        keys[uid] = (uid, ds.tobytes(), g["y"].to_numpy(dtype=float).tobytes(), settings)
    return keys


def forecast_stats(
    df: pd.DataFrame,
    h: int,
    specs: list[ModelSpec],
    level: Sequence[int] = LEVELS,
    season_length: int = SEASON_LENGTH,
    engine=None,
) -> pd.DataFrame:
    """statsforecast models, one `StatsForecast` call per group of series sharing a plan.

    `engine` fits each group on a cluster (see `forecasting.methods.engines.distributed`); a series
    whose model fails is then refitted locally down its fallback chain.

    A statistical model is fitted on each series on its own and deterministically, so a series
    this process already forecast with the same spec, quarters, values, horizon, levels and
    season length is not fitted again: its rows are taken from the process's memo (at most
    `MEMO_ENTRIES`, least recently used dropped; ``FCF_FIT_MEMO=0`` turns it off). This is what
    lets a guided model reuse its base's fit, the roll-up's node runs share candidates, and a
    backtest's clean and poisoned runs share the cutoffs before the poison. A fit that fell
    back down its chain (a `ShortSeriesWarning`) is not remembered, so its warning is raised
    again whenever it happens.

    Returns:
        ``output_columns(level)``, rows ordered by series, then spec, then quarter."""
    plan = _plan(df, specs)
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for uid, p in plan.items():
        groups[tuple(s.name for s in p.values())].append(uid)
    ivals = interval_columns(level)
    memo = memo_enabled(engine)
    keys = _series_keys(df, h, level, season_length) if memo else {}
    ids = {spec.name: (spec.name, repr(spec)) for spec in specs}
    rows = []
    for key, uids in groups.items():
        todo = uids
        if memo:
            todo = []
            for uid in uids:
                blocks = [_MEMO.get((keys[uid], ids[spec.name])) for spec in specs]
                if all(b is not None for b in blocks):
                    for spec in specs:
                        _MEMO.move_to_end((keys[uid], ids[spec.name]))
                    rows.extend(blocks)
                else:
                    todo.append(uid)
        if not todo:
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            new = _fit_group(df[df["unique_id"].isin(todo)], todo, h, specs, plan, level, season_length,
                             engine, ivals)
        for w in caught:
            warnings.warn(w.message, stacklevel=2)
        rows.extend(new)
        if memo and not any(issubclass(w.category, ShortSeriesWarning) for w in caught):
            for block in new:
                for uid, b in block.groupby("unique_id", sort=False):
                    _MEMO[(keys[uid], ids[b["model"].iloc[0]])] = b.reset_index(drop=True)
            while len(_MEMO) > MEMO_ENTRIES:
                _MEMO.popitem(last=False)
    out = pd.concat(rows, ignore_index=True)
    order = {uid: i for i, uid in enumerate(uid for uids in groups.values() for uid in uids)}
    rank = {s.name: i for i, s in enumerate(specs)}
    out = out.iloc[np.lexsort((out["model"].map(rank).to_numpy(), out["unique_id"].map(order).to_numpy()),
                              )].reset_index(drop=True)  # series, then spec; ds order kept (stable)
    return enforce_order(out, level)


def _fit_group(sub: pd.DataFrame, uids: list[str], h: int, specs: list[ModelSpec], plan, level,
               season_length: int, engine, ivals: list[str]) -> list[pd.DataFrame]:
    """The rows of every spec for the series `uids` of one group (they share a plan)."""
    rows = []
    used = list({u.name: u for u in (plan[uids[0]][s.name] for s in specs)}.values())
    outs = _run_group(sub, h, used, level, season_length, engine)
    # One frame per spec for all series of the group (they share the plan); only the series
    # whose forecast failed or has a NaN are refitted one by one down the fallbacks.
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
    return rows


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
