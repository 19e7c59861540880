"""What earlier windows may teach at a cutoff: the no-look-ahead rule for past forecasts.

Learned post-steps (weighted ensembles, selecting ensembles, interval calibration) read the
forecasts of earlier rolling-origin windows with their outcomes. At a series' cutoff C only
rows whose quarter was reported by C (``ds <= C``) and whose own forecast was made before C
(``cutoff < C``) may be used; `known_past` drops everything else, so a caller that passes too
much cannot leak outcomes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting.core.frames import calendar_of


def series_cutoffs(members_fc: pd.DataFrame) -> pd.Series:
    """Per series, the quarter before its first forecast quarter (index ``unique_id``)."""
    first = pd.to_datetime(members_fc.groupby("unique_id")["ds"].min())
    return first - calendar_of(members_fc).offset(1)


def known_past(past: pd.DataFrame | None, cutoffs: pd.Series) -> pd.DataFrame:
    """Rows of `past` usable at each series' cutoff: outcome reported (``ds <= cutoff``),
    forecast made earlier (``cutoff`` column, when present, before it) and ``y`` finite."""
    if past is None or len(past) == 0:
        return pd.DataFrame(columns=["unique_id", "ds", "model", "mean", "y"])
    p = past[past["unique_id"].isin(cutoffs.index)]
    cut = p["unique_id"].map(cutoffs)
    ok = (pd.to_datetime(p["ds"]) <= cut) & np.isfinite(p["y"].to_numpy(dtype=float))
    if "cutoff" in p.columns:
        ok &= pd.to_datetime(p["cutoff"]) < cut
    return p[ok]
