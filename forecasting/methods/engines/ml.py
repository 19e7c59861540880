"""Global machine-learning models: one scikit-learn regressor trained across all series.

Built on `mlforecast.MLForecast`: the features and target transforms of each spec are a
`features.transforms.FeatureSet` (default: seasonally differenced, per-series standardised
target, so series 100x apart in scale and with trends share one model; lags 1-4, a
4-quarter rolling mean, the quarter). Forecasts are recursive. Specs with the same
`FeatureSet` share one `MLForecast` (one feature computation, one fit per regressor).

Intervals: mlforecast's conformal intervals (`PredictionIntervals`, per series and horizon,
from up to `CONFORMAL_WINDOWS` rolling windows of the model trained once). They need
``n_windows * h`` more observations than training does in the *shortest* series of the
fit. When two windows do not fit every series, the points still come from the one model
fitted on all series, and the interval half-widths from a second, conformal fit on the
series long enough for two windows; a series shorter than that takes the half-widths of
the spec's fallback statistical model (refit on the same data).
Either way the backtest and `forecast()` rescale intervals conformally from earlier windows
(`forecasting.methods.calibration`).

A series shorter than a spec's ``min_obs`` (or all series, if the regressor fails or returns
a non-finite value) is forecast by the spec's ``fallback`` statistical model, with ``model``
= the ML spec's name, ``model_used`` = the fallback, and a `ShortSeriesWarning`.

Adding a regressor is one line::

    register_regressor("ElasticNetML", lambda seed: ElasticNet(alpha=0.01, random_state=seed))
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from features.errors import OptionError
from features.transforms import DEFAULT_FEATURES, FeatureSet
from forecasting.methods.engines.stats import forecast_stats
from forecasting.core.frames import (
    LEVELS,
    SEASON_LENGTH,
    ShortSeriesWarning,
    calendar_of,
    check_horizon,
    enforce_order,
    interval_columns,
    output_columns,
)
from forecasting.methods.registry import ModelSpec, get_spec, register

__all__ = ["CONFORMAL_WINDOWS", "forecast_ml", "MIN_TRAIN_ROWS", "register_regressor"]

#: Most conformal windows mlforecast uses for the ML intervals.
CONFORMAL_WINDOWS = 3
#: Training rows a series must give (after transforms and lags) to be used by an ML model.
MIN_TRAIN_ROWS = 4


def register_regressor(
    name: str,
    build: Callable[[int], object],
    features: FeatureSet = DEFAULT_FEATURES,
    fallback: str = "AutoETS",
    min_obs: int | None = None,
    complexity: int = 6,
    description: str = "",
) -> ModelSpec:
    """Register a global ML model: `build(seed)` returns an unfitted scikit-learn regressor.

    ``min_obs`` defaults to what `features` needs for `MIN_TRAIN_ROWS` training rows; shorter
    series are forecast by `fallback`.
    """
    min_obs = features.min_train_obs(MIN_TRAIN_ROWS) if min_obs is None else int(min_obs)
    params = {"features": repr(features)}
    try:
        est = build(0)
        params.update({k: v for k, v in est.get_params().items() if isinstance(v, (int, float, str, bool))})
        params["regressor"] = type(est).__name__
    except Exception as exc:  # fail at registration, not at the first forecast
        raise OptionError(f"ML model '{name}': build(seed) failed ({exc})") from exc
    return register(
        ModelSpec(name=name, kind="ml", build=build, family="ml", min_obs=min_obs, fallback=fallback,
                  complexity=complexity, params=params, options={"features": features},
                  description=description or f"global {params['regressor']} across series (mlforecast)"),
        replace=True,
    )


def forecast_ml(
    df: pd.DataFrame,
    h: int,
    specs: Sequence[ModelSpec],
    level: Sequence[int] = LEVELS,
    season_length: int = SEASON_LENGTH,
    seed: int = 0,
) -> pd.DataFrame:
    """Forecast every series in `df` with the ML `specs`.

    Args:
        df: long frame ``unique_id, ds, y`` (checked, gap-free, sorted).
        h: quarters ahead.
        specs: ML specs (``kind="ml"``); each ``options["features"]`` is a `FeatureSet`.
        level: interval levels.
        seed: passed to each regressor's ``build(seed)``.

    Returns:
        ``output_columns(level)``: one row per series x spec x quarter.
    """
    h = check_horizon(h)
    bad = [s.name for s in specs if s.kind != "ml"]
    if bad:
        raise ValueError(f"forecast_ml got non-ML specs {bad}; pass them to forecast_base")
    sizes = df.groupby("unique_id", sort=True).size()
    parts: list[pd.DataFrame] = []
    groups: dict[tuple[FeatureSet, int], list[ModelSpec]] = defaultdict(list)
    for spec in specs:
        groups[(spec.options.get("features", DEFAULT_FEATURES), spec.min_obs)].append(spec)
    for (features, min_obs), group in groups.items():
        long_ids = sizes.index[sizes >= min_obs]
        short_ids = sizes.index[sizes < min_obs]
        for spec in group:
            for uid in short_ids:
                warnings.warn(
                    f"series {uid}: {sizes[uid]} observations, fewer than the {spec.min_obs} {spec.name} "
                    f"needs; forecasting it with {spec.fallback} instead",
                    ShortSeriesWarning,
                    stacklevel=2,
                )
        if len(short_ids):
            parts.append(_fallback(df[df["unique_id"].isin(short_ids)], h, group, level, season_length))
        if len(long_ids):
            sub = df[df["unique_id"].isin(long_ids)]
            try:
                parts.append(_fit_predict(sub, h, group, features, level, season_length, seed))
            except Exception as exc:  # a regressor failing must not stop the statistical models
                for spec in group:
                    warnings.warn(f"{spec.name} failed ({type(exc).__name__}: {exc}); forecasting "
                                  f"{len(long_ids)} series with {spec.fallback} instead",
                                  ShortSeriesWarning, stacklevel=2)
                parts.append(_fallback(sub, h, group, level, season_length))
    out = pd.concat(parts, ignore_index=True)
    return enforce_order(out, level)[output_columns(level)]


def _fallback(df, h, specs, level, season_length) -> pd.DataFrame:
    """Each spec's fallback statistical model on `df`, labelled with the ML spec's name."""
    parts, cache = [], {}
    for spec in specs:
        if not spec.fallback:
            raise ValueError(f"{spec.name} has no fallback model for series it cannot forecast")
        if spec.fallback not in cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ShortSeriesWarning)
                fb = get_spec(spec.fallback)
                cache[spec.fallback] = forecast_stats(df, h, [fb], level, season_length)
        parts.append(cache[spec.fallback].assign(model=spec.name))
    return pd.concat(parts, ignore_index=True)


def _fit_predict(df, h, specs, features: FeatureSet, level, season_length, seed) -> pd.DataFrame:
    """One global fit for the points; intervals as described in the module docstring."""
    sizes = df.groupby("unique_id").size()
    need = features.min_train_obs(MIN_TRAIN_ROWS)
    windows = (sizes - need) // int(h)
    n_all = min(CONFORMAL_WINDOWS, int(windows.min()))
    pred = _mlforecast(df, h, specs, features, level, seed, n_all)
    ivals = interval_columns(level)
    if n_all < 2:
        # points from the model on all series; half-widths from a conformal fit on the series
        # long enough for two windows, else from the fallback statistical model
        long_ids = windows.index[windows >= 2]
        width = []
        if len(long_ids):
            n_long = min(CONFORMAL_WINDOWS, int(windows[long_ids].min()))
            wp = _mlforecast(df[df["unique_id"].isin(long_ids)], h, specs, features, level, seed, n_long)
            width.append(wp)
        short = df[~df["unique_id"].isin(long_ids)]
        if len(short):
            fb = _fallback(short, h, specs, level, season_length)
            fb = fb.pivot_table(index=["unique_id", "ds"], columns="model", values=["mean"] + ivals)
            fb.columns = [m if c == "mean" else f"{m}-{c}" for c, m in fb.columns]
            width.append(fb.reset_index())
        width = pd.concat(width, ignore_index=True)
        width = pred[["unique_id", "ds"]].merge(width, on=["unique_id", "ds"], how="left")
        for spec in specs:
            for c in ivals:
                pred[f"{spec.name}-{c}"] = pred[spec.name] + (width[f"{spec.name}-{c}"] - width[spec.name])
    parts = []
    for spec in specs:
        part = pred[["unique_id", "ds"]].copy()
        part["model"] = spec.name
        part["model_used"] = spec.name
        part["mean"] = pred[spec.name].to_numpy(dtype=float)
        for c in ivals:
            part[c] = pred[f"{spec.name}-{c}"].to_numpy(dtype=float)
        if not np.isfinite(part[["mean"] + ivals].to_numpy(dtype=float)).all():
            raise ValueError(f"{spec.name} returned non-finite forecasts")
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _mlforecast(df, h, specs, features: FeatureSet, level, seed, n_windows: int) -> pd.DataFrame:
    """`MLForecast` fit + recursive predict: ``unique_id, ds, <spec>`` (+ ``<spec>-lo-80``...
    when ``n_windows >= 2`` conformal windows fit), sorted by series and date."""
    from mlforecast import MLForecast
    from mlforecast.conformal_prediction import PredictionIntervals
    from threadpoolctl import threadpool_limits

    models = {s.name: s.build(seed) for s in specs}
    mlf = MLForecast(models=models, freq=calendar_of(df).freq, num_threads=1, **features.mlforecast_kwargs())
    conformal = n_windows >= 2
    # one thread: OpenMP regressors (HistGradientBoosting) are ~20x slower on a busy machine
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        intervals = PredictionIntervals(n_windows=n_windows, h=int(h)) if conformal else None
        mlf.fit(df, prediction_intervals=intervals)
        pred = mlf.predict(int(h), level=list(level) if conformal else None)
    return pred.sort_values(["unique_id", "ds"]).reset_index(drop=True)
