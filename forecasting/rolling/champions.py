"""Champions per series, chosen from a backtest, and the gate a new set must pass.

Champion rule, per series: the candidate with the lowest MASE averaged over horizons 1..4 of
the backtest windows (`series_scores`, through the past-window scorer
`forecasting.core.past.window_scores`); ties (within 1e-9 relative) go to the lower
`ModelSpec.complexity`; a candidate whose MASE is not below SeasonalNaive's is never
champion, so SeasonalNaive is champion where nothing beats it (`choose_champions`).

Gate: the new champions' geometric mean over series of MASE / SeasonalNaive's MASE on this
backtest's windows must be at most the current champion's on the same windows (the current
champions' models are backtested too) times ``1 + tolerance``; otherwise the new version is
registered without the alias (`GateVerdict`, `gate`). The retrain (`experiments.retrain`)
runs the backtest, calls these and registers the result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from forecasting.core.metrics import BASELINE, gmean
from forecasting.core.past import window_scores

__all__ = ["CHAMPION_STEPS", "GateVerdict", "choose_champions", "gate", "portfolio_score", "series_scores"]

#: Horizons (quarters ahead) whose MASE chooses the champion.
CHAMPION_STEPS = 4


def series_scores(points: pd.DataFrame, steps: int = CHAMPION_STEPS) -> pd.DataFrame:
    """Per series and model, MASE over horizons ``1..steps`` of `forecasting.core.metrics.pointwise` rows.

    Returns ``unique_id, model, n, mase, baseline_mase, rel_mase`` (baseline: SeasonalNaive).
    """
    t = window_scores(points, "ase", steps=steps).rename(columns={"ase": "mase"})
    t = t[["unique_id", "model", "n", "mase"]]
    base = t[t["model"] == BASELINE].set_index("unique_id")["mase"]
    if base.empty:
        raise ValueError(f"the backtest has no {BASELINE} rows: champions are measured against it")
    t["baseline_mase"] = t["unique_id"].map(base)
    t["rel_mase"] = t["mase"] / t["baseline_mase"]
    return t.sort_values(["unique_id", "mase"]).reset_index(drop=True)


def choose_champions(scores: pd.DataFrame, candidates: Sequence[str],
                     complexity: Mapping[str, int]) -> pd.DataFrame:
    """One champion per series (see the module docstring for the rule).

    Returns ``unique_id, champion, complexity, mase, baseline_mase, rel_mase, runner_up,
    runner_up_mase``.
    """
    rows = []
    allowed = set(candidates) | {BASELINE}
    for uid, g in scores[scores["model"].isin(allowed)].groupby("unique_id", sort=True):
        g = g[np.isfinite(g["mase"])]
        base = g[g["model"] == BASELINE]
        if base.empty:
            raise ValueError(f"series {uid}: no finite {BASELINE} MASE in the backtest")
        base_mase = float(base["mase"].iloc[0])
        ok = g[(g["model"] == BASELINE) | (g["mase"] < base_mase)]
        best = float(ok["mase"].min())
        tied = ok[ok["mase"] <= best * (1 + 1e-9) + 1e-12].copy()
        tied["complexity"] = [complexity.get(m, 99) for m in tied["model"]]
        win = tied.sort_values(["complexity", "mase", "model"]).iloc[0]
        rest = g[g["model"] != win["model"]].sort_values("mase")
        rows.append({"unique_id": uid, "champion": win["model"], "complexity": int(win["complexity"]),
                     "mase": float(win["mase"]), "baseline_mase": base_mase,
                     "rel_mase": float(win["mase"]) / base_mase,
                     "runner_up": rest["model"].iloc[0] if len(rest) else "",
                     "runner_up_mase": float(rest["mase"].iloc[0]) if len(rest) else np.nan})
    return pd.DataFrame(rows)


def portfolio_score(scores: pd.DataFrame, champions: Mapping[str, str]) -> tuple[float, list[str]]:
    """Geometric mean over series of rel. MASE of the model `champions` names on each series;
    also the series for which that model has no score (left out)."""
    idx = scores.set_index(["unique_id", "model"])["rel_mase"]
    vals, missing = [], []
    for uid, model in champions.items():
        v = idx.get((uid, model), np.nan)
        (vals if np.isfinite(v) else missing).append(v if np.isfinite(v) else uid)
    return gmean(vals), missing


@dataclass(frozen=True)
class GateVerdict:
    """Whether a new champion set earns the alias (`gate`).

    Attributes:
        passed: the new set is at most ``1 + tolerance`` times the current one's score.
        new_score, current_score: geometric mean over the common series of relative MASE.
        tolerance, n_series: the settings and how many series were compared; reason: in words.
    """

    passed: bool
    new_score: float
    current_score: float
    tolerance: float
    n_series: int
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def gate(scores: pd.DataFrame, new: Mapping[str, str], current: Mapping[str, str] | None,
         tolerance: float = 0.02) -> GateVerdict:
    """Does the new champion set earn the alias? Both sets are scored on the same windows
    (`scores`), over the series both cover."""
    if not current:
        score, _ = portfolio_score(scores, new)
        return GateVerdict(True, score, float("nan"), tolerance, len(new),
                           "no current champion: the first version takes the alias")
    common = sorted(set(new) & set(current))
    have = set(zip(scores["unique_id"], scores["model"]))
    common = [s for s in common if (s, new[s]) in have and (s, current[s]) in have]
    if not common:
        return GateVerdict(True, float("nan"), float("nan"), tolerance, 0,
                           "the current champion covers none of these series: nothing to compare, alias moves")
    new_score, _ = portfolio_score(scores, {s: new[s] for s in common})
    cur_score, _ = portfolio_score(scores, {s: current[s] for s in common})
    limit = cur_score * (1 + tolerance)
    passed = bool(new_score <= limit)
    verdict = "passed" if passed else "failed"
    reason = (f"gate {verdict}: new gm rel. MASE {new_score:.4f} vs current {cur_score:.4f} "
              f"(limit {limit:.4f} = current x (1 + {tolerance:g})) on the same windows, "
              f"{len(common)} series")
    return GateVerdict(passed, new_score, cur_score, tolerance, len(common), reason)
