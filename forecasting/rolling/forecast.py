"""Forecast every series with every requested model: frames in, frames out, no I/O.

Input: a long frame ``unique_id, ds, y`` (quarter ends of one fiscal calendar, no holes).
Output (`forecasting.core.frames.output_columns`): one row per series x quarter x model::

    unique_id  ds          model    model_used     mean   lo-95  lo-80  hi-80  hi-95

``model_used`` differs from ``model`` where a series was too short for the model, or the
model failed or returned NaN, and a simpler fallback model was used (always with a
`ShortSeriesWarning`), and for a selecting ensemble (the combination it chose). Intervals
satisfy ``lo-95 <= lo-80 <= mean <= hi-80 <= hi-95`` (checked by
`forecasting.core.frames.check_forecast_frame`).

Calibrated intervals and learned ensembles need the errors of earlier windows, so `forecast`
runs the last windows of a rolling-origin backtest (`forecasting.rolling.backtest`) beside the newest
origin and post-processes the newest origin's forecasts from them.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from forecasting.rolling.backtest import (
    BacktestConfig,
    base_at_cutoffs,
    cutoff_windows,
    cutoffs,
    finish,
    post_process,
    replay,
)
from forecasting.methods.catalogue import resolve
from forecasting.methods.dispatch import forecast_base
from forecasting.methods.engines.distributed import check_engine, to_pandas_input
from forecasting.core.frames import (
    LEVELS,
    FitSettings,
    MAX_HORIZON,
    SEASON_LENGTH,
    ShortSeriesWarning,
    check_forecast_frame,
    check_horizon,
    check_series_frame,
    output_columns,
)
from forecasting.methods.registry import ModelSpec, with_members
from features.errors import OptionError

__all__ = ["forecast", "past_windows"]

#: Ensemble combiners that learn from earlier windows (`forecasting.methods.ensemble`).
PAST_COMBINERS = ("weighted", "select")


def past_windows(specs: Sequence[ModelSpec], calibration_windows: int, intervals: str) -> int:
    """Rolling windows `forecast()` fits before the newest origin: `calibration_windows` for
    conformal intervals or weighted ensembles, at least each selecting ensemble's ``windows``."""
    n = calibration_windows if intervals == "conformal" or any(
        s.options.get("combiner") == "weighted" for s in specs) else 0
    for s in specs:
        if s.kind == "ensemble" and s.options.get("combiner") == "select":
            n = max(n, int(s.options.get("windows", calibration_windows)))
    return max(n, 1)


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
    default: str | None = None,
) -> pd.DataFrame:
    """Forecast `h` quarters ahead for every series with every requested model.

    Args:
        df: long frame ``unique_id, ds, y``.
        h: quarters ahead (>= 1).
        models: names, a family, ``"all"`` or None for SeasonalNaive and the default model
            (see `forecasting.methods.catalogue.resolve`).
        level: interval levels in percent.
        season_length: 4 for quarterly data.
        seed: random seed for models that use one (ML models).
        intervals: ``"conformal"`` (default) widens or narrows each model's intervals so that
            they would have covered `level`% of outcomes over the last `calibration_windows`
            rolling-origin windows (see `forecasting.methods.calibration`); ``"model"`` keeps the
            models' own intervals.
        calibration_windows: rolling windows used to calibrate intervals and ensemble weights.
        engine: the executor of the statistical models: None (this process), ``"dask"``, a
            ``dask.distributed.Client`` or another Fugue engine (see
            `forecasting.methods.engines.distributed`); a Dask data frame `df` selects ``"dask"``.
            Results equal the local ones.
        guidance: a `features.guidance.GuidanceBook` for guided models (``GuidedFoster``...);
            they see only what was announced by the day the newest quarter was reported, and
            the calibration windows what was known at each of their cutoffs.
        n_jobs: local worker processes fitting the newest origin and the past windows side by
            side (None: ``FCF_N_JOBS`` or every core; see `forecasting.rolling.parallel`).
        cache: reuse past windows fitted on the same rows by an earlier call, from the
            data-vintage cache (`forecasting.rolling.cache`; None: on unless ``FCF_CACHE=0``).
        default: the default model when `models` is None: a company profile's choice
            (`features.profile.CompanyProfile.default_model`); None: the library's
            (`forecasting.methods.catalogue.LIBRARY_DEFAULT`).

    Returns:
        The long forecast frame described in the module docstring.
    """
    h = check_horizon(h)
    if intervals not in ("conformal", "model"):
        raise OptionError(f"intervals must be 'conformal' or 'model', got '{intervals}'")
    if intervals == "conformal" and h > MAX_HORIZON:
        raise OptionError(f"conformal intervals are calibrated for horizons of 1 to {MAX_HORIZON} quarters, got "
                         f"h={h}; use intervals='model' (--intervals model) for longer horizons")
    df, was_dask = to_pandas_input(df)
    engine = check_engine("dask" if was_dask and engine is None else engine)
    df = check_series_frame(df)
    requested = resolve(models, default=default)
    specs = with_members(requested)
    # Past windows' errors are needed only to calibrate intervals or learn ensemble weights or
    # choices: a mean/median ensemble with the models' own intervals skips the refits.
    needs_past = intervals == "conformal" or any(
        s.kind == "ensemble" and s.options.get("combiner", "median") in PAST_COMBINERS for s in specs)
    if not (needs_past or any(s.kind == "ensemble" for s in specs)):
        now = guidance.at_cutoff(df["ds"].max()) if guidance is not None else None
        out = forecast_base(df, specs, FitSettings(h, tuple(level), season_length, seed), engine=engine, guidance=now)
    else:
        config = BacktestConfig(h=h, n_windows=past_windows(specs, calibration_windows, intervals),
                                level=tuple(level), season_length=season_length, warmup_windows=0,
                                end_offset=1, intervals=intervals, seed=seed)
        raw_config = replace(config, intervals="model")
        windows = []
        # a past window needs a series with 2 quarters before the newest; else keep model intervals
        if needs_past and (df["ds"] < df["ds"].max()).groupby(df["unique_id"]).sum().ge(2).any():
            windows = cutoff_windows(df, cutoffs(df, h, config.n_windows, 1, end_offset=1))
        # the newest origin and the past windows are fitted together (in parallel, see forecasting.rolling.parallel)
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
    return check_forecast_frame(out[output_columns(level)], level)
