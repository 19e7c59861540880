"""Choose a combination at each forecast origin, from earlier windows' errors only.

A *selecting ensemble* (combiner ``"select"``, registered with `register_selector`) holds a
list of candidates: registered models or mean/median ensembles of them. At a cutoff T it
scores every candidate on the forecasts its members made at earlier cutoffs whose outcomes
were reported by T, and forecasts with the candidate of lowest score. In a backtest the
choice is nested: it is made again at every cutoff, from the windows before it.

Score of candidate c on series i at cutoff T, from the rows of the last `windows` cutoffs
before T whose quarter is on or before T::

    f_c     = the candidate's point forecast (mean or median of its members' points)
    s_ic    = mean over steps k of the mean |y - f_c| at step k     (each horizon counts once)
    P_c     = geometric mean over series j of s_jc / min_c' s_jc'    (pooled: all series)
    L_ic    = (n_i log s_ic + k log P_c) / (n_i + k)        n_i: earlier windows of series i

Every term is free of the series' scale (a series' own errors enter as a log, compared only
with each other; the pooled term as ratios), so series of any size pool fairly.

`k` (``prior_weight``, in windows) sets how far a series' own record counts: ``inf`` (the
default, measured best) makes one choice for all series of the data set, ``argmin_c P_c``;
a finite `k` shrinks each series' record toward the pooled one and lets series differ.
``margin`` favours the first candidate: another is chosen only if its score is lower by more
than that fraction (``L_first + log(1 - margin)`` is compared). Ties go to the earlier
candidate; with no earlier window at all the first candidate is used.

Measured (forecasting the windows after the ones scored, never the scored ones): choosing per
series, even shrunk (k = 2..16), was worse than one pooled choice on the M3 quarterly series
(sMAPE 9.0-9.2 vs 8.7-8.8 at a development origin 8 quarters before the hold-out) and on
the shipped company's 11 core series (relative MASE 0.50-0.55 vs 0.484; a draw on its earlier windows):
eight windows are too few to tell two combinations apart on one series. On M3 the windows before an origin favoured
StatsMLCombo by 1-4% at every development origin while ETS + Theta won the quarters after
it by 6-10% sMAPE, so the first candidate is kept unless another beats it by 5%.

The point forecast and interval bounds are the chosen candidate's (the mean or median of its
members' bounds); the ensemble's intervals are then recalibrated like every model's
(`forecasting.methods.calibration`). The output's ``model_used`` names the chosen candidate, so a
backtest frame records what was chosen for every series and cutoff (`choices`).

Only rows known at each series' cutoff are read (`forecasting.core.past.known_past`): a caller
that passes too much cannot leak outcomes into the choice. The library default, ``AutoCombo``,
is registered in `forecasting.methods.catalogue`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from forecasting.core.frames import LEVELS, SEASON_LENGTH, calendar_of, enforce_order, interval_columns, output_columns
from forecasting.methods.registry import ModelSpec, get_spec, register
from forecasting.core.past import known_past, series_cutoffs, window_scores
from features.errors import OptionError
from forecasting.core.provenance import active, outcomes_read

__all__ = ["candidate_forecasts", "candidate_members", "choices", "choose", "is_selector", "PRIOR_WEIGHT",
           "register_selector", "scores", "select", "WINDOWS"]

#: Default number of earlier cutoffs whose errors count.
WINDOWS = 8
#: Default pseudo-count (in windows) of the pooled score in a series' score: one pooled choice.
PRIOR_WEIGHT = float("inf")


def candidate_members(name: str) -> tuple[tuple[str, ...], str]:
    """``(members, combiner)`` of a candidate: an ensemble's members, or the model itself."""
    spec = get_spec(name)
    if spec.kind != "ensemble":
        return (spec.name,), "mean"
    combiner = spec.options.get("combiner", "median")
    if combiner not in ("mean", "median"):
        raise OptionError(f"candidate '{name}' combines with '{combiner}'; a selecting ensemble takes single "
                         "models and mean or median ensembles (their past forecasts follow from the members')")
    return tuple(spec.members), combiner


def candidate_forecasts(members_fc: pd.DataFrame, candidates: Sequence[str],
                        cols: Sequence[str] = ("mean",)) -> pd.DataFrame:
    """Each candidate's combined `cols` per row key: ``unique_id, ds`` (+ ``cutoff`` if present),
    ``candidate`` and `cols`. A key misses a candidate when one of its members has no row there."""
    keys = ["unique_id", "ds"] + (["cutoff"] if "cutoff" in members_fc.columns else [])
    parts = []
    for name in candidates:
        members, combiner = candidate_members(name)
        m = members_fc[members_fc["model"].isin(members)]
        g = m.groupby(keys, sort=True)
        agg = g[list(cols)].median() if combiner == "median" else g[list(cols)].mean()
        complete = g.size() == len(members)
        agg = agg[complete.to_numpy()].reset_index()
        agg["candidate"] = name
        parts.append(agg)
    return pd.concat(parts, ignore_index=True)


def scores(
    past: pd.DataFrame | None,
    candidates: Sequence[str],
    cutoffs: pd.Series,
    windows: int = WINDOWS,
    prior_weight: float = PRIOR_WEIGHT,
) -> pd.DataFrame:
    """Scores of every candidate for every series of `cutoffs` (see the module docstring).

    Args:
        past: earlier forecasts with outcomes: ``unique_id, ds, cutoff, model, mean, y``.
        candidates: candidate names (order breaks ties).
        cutoffs: per series cutoff (index ``unique_id``); only rows known by then are read.
        windows: only rows of the last `windows` cutoffs before each series' cutoff count.
        prior_weight: `k` of the module docstring.
    Returns:
        ``unique_id, candidate, n_windows, score, pooled, shrunk`` (``score`` = s_ic, ``pooled``
        = P_c, ``shrunk`` = L_ic); one row per series x candidate.
    """
    ids = list(cutoffs.index)
    out = pd.MultiIndex.from_product([ids, list(candidates)], names=["unique_id", "candidate"]).to_frame(index=False)
    p = known_past(past, cutoffs)
    if len(p) and "cutoff" in p.columns:
        p = p[p["model"].isin({m for c in candidates for m in candidate_members(c)[0]})]
        cal = calendar_of(p)
        p = p[cal.steps(p["cutoff"], p["unique_id"].map(cutoffs)) <= int(windows)]
    else:
        p = p.iloc[0:0]
    if active():
        outcomes_read("autocombo.scores", p["unique_id"].map(cutoffs), p["ds"])
    if len(p) == 0:
        out["n_windows"], out["score"], out["pooled"] = 0, np.nan, np.nan
        out["shrunk"] = np.nan
        return out
    y = p.drop_duplicates(["unique_id", "cutoff", "ds"]).set_index(["unique_id", "cutoff", "ds"])["y"]
    fc = candidate_forecasts(p[["unique_id", "ds", "cutoff", "model", "mean"]], candidates)
    fc = fc.join(y, on=["unique_id", "cutoff", "ds"])
    fc["e"] = np.abs(fc["y"].to_numpy(dtype=float) - fc["mean"].to_numpy(dtype=float))
    fc["step"] = calendar_of(fc).steps(fc["cutoff"], fc["ds"])
    fc = fc[np.isfinite(fc["e"])]
    s = window_scores(fc, "e", by=("unique_id", "candidate"), per_step=True).set_index(["unique_id", "candidate"])["e"]
    n = fc.groupby("unique_id")["cutoff"].nunique()
    out = out.join(s.rename("score"), on=["unique_id", "candidate"])
    out["n_windows"] = out["unique_id"].map(n).fillna(0).astype(int)
    best = out.groupby("unique_id")["score"].transform("min")
    rel = np.log(out["score"] / best)
    pooled = np.exp(rel[np.isfinite(rel)].groupby(out["candidate"]).mean())
    out["pooled"] = out["candidate"].map(pooled).astype(float)
    n_i = out["n_windows"].to_numpy(dtype=float)
    own = np.log(out["score"].to_numpy(dtype=float))
    prior = np.log(out["pooled"].to_numpy(dtype=float))
    own_ok = np.isfinite(own) & (n_i > 0)
    if np.isinf(prior_weight):  # pooled: one choice for all series
        shrunk = prior
    else:
        with np.errstate(invalid="ignore"):
            shrunk = np.where(own_ok, (n_i * np.where(own_ok, own, 0) + prior_weight * prior)
                              / (n_i + prior_weight), prior)
    out["shrunk"] = shrunk
    return out


def choose(table: pd.DataFrame, candidates: Sequence[str], margin: float = 0.0) -> pd.Series:
    """The chosen candidate per series (index ``unique_id``) from a `scores` table; another
    candidate than the first must score lower by more than the fraction `margin`."""
    if not 0 <= margin < 1:
        raise OptionError(f"margin must be in [0, 1), got {margin}")
    order = {c: i for i, c in enumerate(candidates)}
    key = table["shrunk"].fillna(np.inf)
    if margin:
        key = key.where(table["candidate"] != candidates[0], key + np.log1p(-margin))
    t = table.assign(rank=table["candidate"].map(order), key=key)
    t = t.sort_values(["unique_id", "key", "rank"], kind="stable")
    return t.groupby("unique_id", sort=False)["candidate"].first()


def select(
    members_fc: pd.DataFrame,
    spec: ModelSpec,
    level: Sequence[int] = LEVELS,
    history: pd.DataFrame | None = None,
    past: pd.DataFrame | None = None,
    season_length: int = SEASON_LENGTH,
) -> pd.DataFrame:
    """The selecting ensemble `spec` at one cutoff: each series forecast by its chosen candidate.

    Args:
        members_fc: this cutoff's forecasts of every member of every candidate.
        spec: a spec registered by `register_selector`.
        history, season_length: the rows up to the cutoff and the seasonal period (unused: the
            scores are scale-free; part of the combiner interface).
        past: earlier windows' member forecasts with outcomes (only known rows are read).
    Returns:
        ``output_columns(level)`` with ``model`` = `spec.name` and ``model_used`` = the chosen
        candidate.
    """
    candidates = list(spec.options["candidates"])
    cuts = series_cutoffs(members_fc)
    table = scores(past, candidates, cuts, int(spec.options.get("windows", WINDOWS)),
                   float(spec.options.get("prior_weight", PRIOR_WEIGHT)))
    chosen = choose(table, candidates, float(spec.options.get("margin", 0.0)))
    cols = ["mean"] + interval_columns(level)
    fc = members_fc[["unique_id", "ds", "model"] + cols]
    parts = []
    for name, ids in chosen.groupby(chosen).groups.items():
        sub = fc[fc["unique_id"].isin(set(ids))]
        comb = candidate_forecasts(sub, [name], cols)
        parts.append(comb)
    out = pd.concat(parts, ignore_index=True).rename(columns={"candidate": "model_used"})
    out["model"] = spec.name
    out = out.sort_values(["unique_id", "ds"]).reset_index(drop=True)
    return enforce_order(out[output_columns(level)], level)


def register_selector(
    name: str,
    candidates: Sequence[str],
    windows: int = WINDOWS,
    prior_weight: float = PRIOR_WEIGHT,
    margin: float = 0.0,
    description: str = "",
) -> ModelSpec:
    """Register a selecting ensemble over `candidates` (registered models or mean/median
    ensembles; the first is the prior kept within `margin`); see the module docstring."""
    if int(windows) < 1 or not float(prior_weight) >= 0 or not 0 <= float(margin) < 1:
        raise OptionError(f"selecting ensemble '{name}': windows must be >= 1, prior_weight >= 0 and "
                         f"margin in [0, 1); got {windows}, {prior_weight}, {margin}")
    candidates = list(dict.fromkeys(candidates))
    if not candidates:
        raise OptionError(f"selecting ensemble '{name}' needs candidates")
    members = list(dict.fromkeys(m for c in candidates for m in candidate_members(c)[0]))
    return register(
        ModelSpec(name=name, kind="ensemble", family="ensemble", members=tuple(members), min_obs=1,
                  fallback=None, complexity=10,
                  params={"candidates": ",".join(candidates), "combiner": "select", "windows": int(windows),
                          "prior_weight": float(prior_weight), "margin": float(margin)},
                  options={"combiner": "select", "candidates": tuple(candidates), "windows": int(windows),
                           "prior_weight": float(prior_weight), "margin": float(margin)},
                  description=description or f"per series, the best of {', '.join(candidates)} on earlier windows"),
        replace=True,
    )


def is_selector(name: str) -> bool:
    """True if `name` is a registered selecting ensemble."""
    try:
        return get_spec(name).options.get("combiner") == "select"
    except ValueError:
        return False


def choices(fc: pd.DataFrame) -> pd.DataFrame:
    """What each selecting ensemble chose, per series and cutoff, from a forecast or backtest frame.

    Returns ``model, unique_id, cutoff, chosen, members`` (``cutoff``: the frame's column, else
    the quarter before the first forecast quarter; ``members``: the chosen candidate's members,
    comma-separated), sorted by model, series and cutoff; empty when no row is of a selector.
    """
    cols = ["model", "unique_id", "cutoff", "chosen", "members"]
    rows = fc[fc["model"].astype(str).map(is_selector)]
    if rows.empty:
        return pd.DataFrame(columns=cols)
    rows = rows.copy()
    if "cutoff" not in rows.columns:
        first = rows.groupby(["model", "unique_id"])["ds"].transform("min")
        rows["cutoff"] = pd.to_datetime(first) - calendar_of(rows).offset(1)
    out = rows.drop_duplicates(["model", "unique_id", "cutoff"])[["model", "unique_id", "cutoff", "model_used"]]
    out = out.rename(columns={"model_used": "chosen"})
    out["members"] = out["chosen"].map(lambda c: ",".join(candidate_members(c)[0]))
    return out[cols].sort_values(["model", "unique_id", "cutoff"]).reset_index(drop=True)
