"""Forecast combinations: median, mean, weighted by past errors, or selected per series
(weights and choices learnt leak-free).

`combine` takes the members' forecasts at one cutoff and returns the ensemble's forecast:

- ``median``: per series and quarter, the median over members of the point forecast and of
  each interval bound;
- ``mean``: the equal-weight mean of the same;
- ``weighted``: per series, weights over members proportional to 1 / MAE of the member's
  forecasts in *earlier* windows whose outcome was reported by the cutoff (`past`), shrunk
  towards equal weights when few such rows exist::

      w_m = n / (n + k) * (1/MAE_m) / sum_j (1/MAE_j)  +  k / (n + k) * 1 / M

  with n the number of past rows per member of that series and k = `SHRINKAGE`. With no
  past rows the weights are equal (the plain mean). Point forecasts and interval bounds are
  combined with the same weights; intervals are recalibrated afterwards
  (`forecasting.methods.calibration`);
- ``select``: per series, the candidate combination with the lowest error on earlier windows
  (`forecasting.methods.autocombo`).

The cutoff of each series is the quarter before its first forecast quarter. `combine` never
reads the ``y`` column of the members' forecasts, and reads `past` only through
`forecasting.core.past.known_past`, so a caller that passes too much cannot leak realised outcomes
into the weights. The built-in ensembles are registered in `forecasting.methods.catalogue`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from forecasting.methods.autocombo import select
from forecasting.core.frames import LEVELS, SEASON_LENGTH, enforce_order, interval_columns, output_columns
from forecasting.methods.registry import ModelSpec, register
from forecasting.core.past import known_past, series_cutoffs
from features.errors import OptionError
from forecasting.core.provenance import active, outcomes_read

__all__ = ["combine", "COMBINERS", "member_weights", "register_ensemble", "SHRINKAGE"]

#: Pseudo-count of past rows pulling the learnt weights toward equal weights.
SHRINKAGE = 8.0
COMBINERS = ("median", "mean", "weighted", "select")


def member_weights(
    past: pd.DataFrame | None,
    members: Sequence[str],
    cutoffs: pd.Series,
    shrinkage: float = SHRINKAGE,
) -> pd.DataFrame:
    """Inverse-MAE weights per series and member, shrunk to equal (see module docstring).

    Args:
        past: earlier forecasts with outcomes: ``unique_id, ds, model, mean, y`` (+ ``cutoff``).
        members: member model names.
        cutoffs: per series cutoff (from `series_cutoffs`); only rows known by then are used.
    Returns:
        ``unique_id, model, n, mae, weight`` (weights of a series sum to 1).
    """
    members = list(members)
    p = known_past(past, cutoffs)
    p = p[p["model"].isin(members)]
    if active():
        outcomes_read("ensemble.weights", p["unique_id"].map(cutoffs), p["ds"])
    err = (p["y"].astype(float) - p["mean"].astype(float)).abs()
    stats = err.groupby([p["unique_id"], p["model"]]).agg(["size", "mean"])
    rows = []
    for uid in cutoffs.index:
        n = np.array([stats["size"].get((uid, m), 0) for m in members], dtype=float)
        mae = np.array([stats["mean"].get((uid, m), np.nan) for m in members], dtype=float)
        equal = np.full(len(members), 1 / len(members))
        if n.min() == 0 or not np.isfinite(mae).all():
            w = equal
        else:
            inv = 1 / np.maximum(mae, 1e-9 * max(float(np.nanmax(mae)), 1e-12))
            lam = n.min() / (n.min() + shrinkage)
            w = lam * inv / inv.sum() + (1 - lam) * equal
        rows += [(uid, m, int(k), e, x) for m, k, e, x in zip(members, n, mae, w)]
    return pd.DataFrame(rows, columns=["unique_id", "model", "n", "mae", "weight"])


def combine(
    members_fc: pd.DataFrame,
    spec: ModelSpec,
    level: Sequence[int] = LEVELS,
    history: pd.DataFrame | None = None,
    past: pd.DataFrame | None = None,
    season_length: int = SEASON_LENGTH,
) -> pd.DataFrame:
    """Combine the members' forecasts at one cutoff into the ensemble `spec`.

    Args:
        members_fc: forecasts of the members, ``unique_id, ds, model, mean, lo-*, hi-*``
            (other columns, including a realised ``y``, are ignored).
        spec: an ensemble spec; ``options["combiner"]`` is ``median`` (default), ``mean``,
            ``weighted`` or ``select`` (`forecasting.methods.autocombo`).
        history: the training frame (scales the errors ``select`` compares).
        past: earlier windows' forecasts with outcomes, for ``weighted`` and ``select``.
        season_length: seasonal period of the MASE scale used by ``select``.
    Returns:
        ``output_columns(level)`` with ``model`` = ``model_used`` = ``spec.name`` (``select``:
        ``model_used`` = the candidate chosen for the series).
    """
    combiner = spec.options.get("combiner", "median")
    if combiner not in COMBINERS:
        raise OptionError(f"ensemble '{spec.name}': combiner must be one of {COMBINERS}, got '{combiner}'")
    cols = ["mean"] + interval_columns(level)
    fc = members_fc[members_fc["model"].isin(spec.members)]
    missing = sorted(set(spec.members) - set(fc["model"]))
    if missing:
        raise ValueError(f"ensemble '{spec.name}': no forecasts of member(s) {missing}; "
                         "run the members first (forecasting.methods.registry.with_members)")
    if combiner == "select":
        return select(fc, spec, level, history=history, past=past, season_length=season_length)
    fc = fc[["unique_id", "ds", "model"] + cols]
    if combiner == "median":
        out = fc.groupby(["unique_id", "ds"], sort=True)[cols].median().reset_index()
    else:
        cuts = series_cutoffs(fc)
        if combiner == "weighted":
            w = member_weights(past, spec.members, cuts)
        else:
            w = member_weights(None, spec.members, cuts)
        fc = fc.merge(w[["unique_id", "model", "weight"]], on=["unique_id", "model"], how="left")
        fc["weight"] = fc["weight"] / fc.groupby(["unique_id", "ds"])["weight"].transform("sum")
        weighted = fc[cols].mul(fc["weight"], axis=0)
        out = weighted.groupby([fc["unique_id"], fc["ds"]], sort=True).sum().reset_index()
    out["model"] = spec.name
    out["model_used"] = spec.name
    return enforce_order(out[output_columns(level)], level)


def register_ensemble(
    name: str, members: Sequence[str], combiner: str = "median", description: str = ""
) -> ModelSpec:
    """Register an ensemble of registered models (one line per ensemble)."""
    if combiner == "select":
        raise OptionError(f"ensemble '{name}': a selecting ensemble is registered with "
                         "forecasting.methods.autocombo.register_selector (it needs candidates)")
    if combiner not in COMBINERS:
        raise OptionError(f"ensemble '{name}': combiner must be one of {COMBINERS}, got '{combiner}'")
    return register(
        ModelSpec(name=name, kind="ensemble", family="ensemble", members=tuple(members), min_obs=1,
                  fallback=None, complexity=9, params={"members": ",".join(members), "combiner": combiner},
                  options={"combiner": combiner},
                  description=description or f"{combiner} of {', '.join(members)}"),
        replace=True,
    )
