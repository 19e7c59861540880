"""Base forecasts at one origin: every statistical, ML and guided spec, each by its engine.

`forecast_base` is what a backtest runs at each cutoff and `forecast()` at the newest quarter;
ensembles are combined afterwards from these (`forecasting.methods.ensemble`), since weighted and
selecting ensembles learn from earlier windows.
"""

from __future__ import annotations


import pandas as pd

from forecasting.methods.engines.ml import forecast_ml
from forecasting.methods.engines.stats import forecast_stats
from forecasting.core.frames import FitSettings, output_columns
from forecasting.methods.guided import forecast_guided
from forecasting.methods.registry import ModelSpec

__all__ = ["forecast_base"]


def forecast_base(
    df: pd.DataFrame,
    specs: list[ModelSpec],
    settings: FitSettings,
    engine=None,
    guidance=None,
) -> pd.DataFrame:
    """Forecasts of the statistical, ML and guided specs in `specs` (ensembles are skipped).

    Args:
        df: long frame ``unique_id, ds, y`` (checked, gap-free).
        settings: horizon, levels, season length and seed (`forecasting.core.frames.FitSettings`).
        engine: the executor of the statistical models: None (this process) or a cluster (see
            `forecasting.methods.engines.distributed`).
        guidance: the `features.guidance.GuidanceBook` known at the origin (guided specs).
    Returns:
        ``output_columns(level)``: statistical specs first, then ML, then guided.
    """
    h, level, season_length, seed = settings.h, settings.level, settings.season_length, settings.seed
    parts = []
    stats = [s for s in specs if s.kind == "stats"]
    if stats:
        parts.append(forecast_stats(df, h, stats, level, season_length, engine=engine))
    ml = [s for s in specs if s.kind == "ml"]
    if ml:
        parts.append(forecast_ml(df, h, ml, level, season_length, seed))
    guided = [s for s in specs if s.kind == "guided"]
    if guided:
        # a guided model's base at this origin: the stats/ML rows just made, if there (not refitted)
        known = pd.concat(parts, ignore_index=True) if parts else None
        parts.append(forecast_guided(df, h, guided, level, season_length, seed, guidance, known=known))
    if not parts:
        return pd.DataFrame(columns=output_columns(level))
    return pd.concat(parts, ignore_index=True)
