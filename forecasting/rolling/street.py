"""The street beside our forecasts: the consensus as a benchmark, and forecasts at the report's eve.

Two forecast times, two uses of the consensus (``consensus``: one estimate per series and
quarter, ``unique_id, ds, value`` and the ``report_day`` of the quarter, e.g.
`features.consensus.ConsensusBook.select`):

1. **Our forecast time** (the day quarter ``c`` is reported, cutoff ``c``): the consensus for
   quarter ``c + 1`` is only final about three months later, on the eve of ``c + 1``'s report.
   `consensus_rows` turns it into backtest rows (model ``Consensus``, step 1) so that it is
   scored beside our one-quarter-ahead forecasts on the *same* quarters; it is a benchmark
   with later information (an oracle at our forecast time), never an input there.
2. **The report's eve** (the day quarter ``q`` is reported, before the release): the
   consensus for ``q`` is known. `eve_forecasts` builds, for every quarter with a consensus,
   from what was known on its eve only (consensus values published by then; outcomes of
   quarters before ``q``; our model's forecast of ``q`` made at cutoff ``q - 1``):

   - ``ConsensusBias``: ``c_q + |c_q| x mean(s)``, ``s = (y - c) / |c|`` the last `window`
     past surprises (the street's systematic miss, learnt from past quarters);
   - ``ConsensusCombo``: ``w x ConsensusBias + (1 - w) x ours``, ``w`` on a 0..1 grid (step
     0.1) minimising the absolute error over the past quarters where both exist;
   - ``StreetEve`` (nested): at each quarter, whichever of ``Consensus``, ``ConsensusBias``
     and ``ConsensusCombo`` had the lowest mean absolute percentage error over the last
     `choice_window` past quarters (the plain consensus while fewer than `min_past` are scored).

   Intervals: the model's point plus ``|c_q|`` times the empirical quantiles of its own past
   errors ``(y - f) / |c|`` (none with fewer than `min_past` of them).

`street_table` scores backtest rows on the quarters that have a consensus: MAPE, MASE relative
to seasonal naive, bias and the share of quarters each model beat the consensus.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.core.frames import LEVELS, calendar_of, interval_columns
from forecasting.core.metrics import BASELINE, pointwise, summarize

__all__ = ["BENCHMARK_NOTE", "CONSENSUS", "CONSENSUS_COLUMNS", "consensus_rows", "eve_backtest_rows",
           "eve_forecasts", "EVE_MODELS", "EveConfig", "on_consensus_quarters", "score_street",
           "street_table", "with_year"]

CONSENSUS = "Consensus"
EVE_MODELS = ("ConsensusBias", "ConsensusCombo", "StreetEve")
#: What the consensus is at our forecast time (the label tables print beside its row).
BENCHMARK_NOTE = "benchmark, later information: final ~3 months after our forecast time"
CONSENSUS_COLUMNS = ["unique_id", "ds", "value", "report_day"]


def consensus_rows(bt: pd.DataFrame, consensus: pd.DataFrame, level: Sequence[int] = LEVELS) -> pd.DataFrame:
    """The consensus as one-quarter-ahead backtest rows beside `bt` (see the module docstring).

    Args:
        bt: backtest frame (`forecasting.rolling.backtest.backtest`); its step-1 rows give the
            (series, cutoff, quarter, outcome) to score.
        consensus: ``unique_id, ds, value`` (one estimate per series and quarter).
    Returns:
        rows in `bt`'s columns with ``model = model_used = "Consensus"``, ``mean`` the estimate,
        no interval; only quarters with an estimate.
    """
    keys = bt.loc[bt["step"] == 1, ["unique_id", "cutoff", "ds", "y"]].drop_duplicates(["unique_id", "cutoff"])
    m = keys.merge(consensus[["unique_id", "ds", "value"]], on=["unique_id", "ds"])
    out = m.rename(columns={"value": "mean"}).assign(model=CONSENSUS, model_used=CONSENSUS, step=1)
    for c in interval_columns(level):
        out[c] = np.nan
    return out.reindex(columns=list(bt.columns)).reset_index(drop=True)


def on_consensus_quarters(rows: pd.DataFrame, consensus: pd.DataFrame) -> pd.DataFrame:
    """The step-1 `rows` whose series and quarter have a consensus estimate."""
    keys = consensus[["unique_id", "ds"]].drop_duplicates()
    return rows[rows["step"] == 1].merge(keys, on=["unique_id", "ds"]).reset_index(drop=True)


def street_table(points: pd.DataFrame, by: Sequence[str] = ("unique_id",), reference: str = CONSENSUS,
                 baseline: str = BASELINE) -> pd.DataFrame:
    """Per group of `by` and model: ``n``, ``mape``, ``rel_mase`` (vs `baseline` on the same
    rows), ``bias_pct`` and ``won`` (share of quarters with a smaller absolute error than
    `reference`'s; NaN for the reference itself).

    Args:
        points: `forecasting.core.metrics.pointwise` rows restricted to the quarters with a
            consensus (`on_consensus_quarters`), the reference's rows among them.
        by: grouping columns (``unique_id``, and e.g. ``year``).
    """
    by = list(by)
    t = summarize(points, (*by, "model"))[[*by, "model", "n", "mape", "mase", "rel_mase", "bias_pct"]]
    ref = points.loc[points["model"] == reference, ["unique_id", "ds", "ae"]].rename(columns={"ae": "ref_ae"})
    m = points.merge(ref, on=["unique_id", "ds"], how="inner")
    m["win_"] = (m["ae"] < m["ref_ae"]).astype(float)
    won = m.groupby([*by, "model"], observed=True)["win_"].mean().rename("won").reset_index()
    t = t.merge(won, on=[*by, "model"], how="left")
    t.loc[t["model"] == reference, "won"] = np.nan
    if baseline not in set(points["model"]):
        t["rel_mase"] = np.nan
    return t.sort_values([*by, "mape"]).reset_index(drop=True)


def with_year(points: pd.DataFrame) -> pd.DataFrame:
    """`points` with ``year``, the fiscal year of each quarter."""
    if points.empty:
        return points.assign(year=pd.Series(dtype=int))
    return points.assign(year=calendar_of(points).fiscal_year(points["ds"]))


@dataclass(frozen=True)
class EveConfig:
    """Settings of the eve models (see the module docstring)."""

    window: int = 8
    min_past: int = 4
    choice_window: int = 8
    weight_step: float = 0.1
    level: tuple[int, ...] = LEVELS


def _interval(f: float, scale: float, past_err: list[float], level, min_past: int) -> dict[str, float]:
    out = {"mean": f}
    e = np.asarray(past_err, dtype=float)
    for lv in level:
        a = (1 - lv / 100) / 2
        ok = len(e) >= min_past
        out[f"lo-{lv}"] = f + scale * float(np.quantile(e, a)) if ok else np.nan
        out[f"hi-{lv}"] = f + scale * float(np.quantile(e, 1 - a)) if ok else np.nan
    return out


def _eve_one(uid: str, cons: pd.DataFrame, y: pd.Series, base: pd.Series, config: EveConfig,
             prev: dict) -> list[dict]:
    """The eve rows of one series, quarter by quarter; only quarters before ``q`` are read."""
    rows, past = [], []  # past: dicts of earlier quarters (consensus, outcome, each model's forecast)
    grid = np.round(np.arange(0, 1 + 1e-9, config.weight_step), 10)
    for r in cons.sort_values("ds").itertuples(index=False):
        q, c = r.ds, float(r.value)
        scale = abs(c) if c != 0 else np.nan
        known = [p for p in past if p["ds"] < q and np.isfinite(p["y"])]
        f = {CONSENSUS: c}
        surprises = [(p["y"] - p[CONSENSUS]) / abs(p[CONSENSUS]) for p in known if p[CONSENSUS] != 0]
        if len(surprises) >= config.min_past:
            f["ConsensusBias"] = c + scale * float(np.mean(surprises[-config.window:]))
        ours = float(base.get(q, np.nan))
        pairs = [p for p in known if np.isfinite(p.get("ConsensusBias", np.nan)) and np.isfinite(p["ours"])]
        if "ConsensusBias" in f and np.isfinite(ours) and len(pairs) >= config.min_past:
            yy = np.array([p["y"] for p in pairs])
            cb = np.array([p["ConsensusBias"] for p in pairs])
            ob = np.array([p["ours"] for p in pairs])
            loss = [np.abs(yy - (w * cb + (1 - w) * ob)).sum() for w in grid]
            w = float(grid[int(np.argmin(loss))])
            f["ConsensusCombo"] = w * f["ConsensusBias"] + (1 - w) * ours
        choice, best = CONSENSUS, np.inf
        for name in (CONSENSUS, "ConsensusBias", "ConsensusCombo"):
            if name not in f:
                continue
            scored = [p for p in known if np.isfinite(p.get(name, np.nan)) and p["y"] != 0][-config.choice_window:]
            if len(scored) < config.min_past:
                continue
            mape = float(np.mean([abs(p["y"] - p[name]) / abs(p["y"]) for p in scored]))
            if mape < best:
                choice, best = name, mape
        f["StreetEve"] = f[choice]
        entry = {"ds": q, "y": float(y.get(q, np.nan)), "ours": ours, **f}
        for name, value in f.items():
            if name == CONSENSUS:
                continue
            errs = [(p["y"] - p[name]) / abs(p[CONSENSUS]) for p in known
                    if np.isfinite(p.get(name, np.nan)) and p[CONSENSUS] != 0]
            row = {"unique_id": uid, "ds": q, "model": name, "model_used": choice if name == "StreetEve" else name,
                   "cutoff": prev[q], "eve": r.report_day, **_interval(value, scale, errs, config.level,
                                                                       config.min_past)}
            rows.append(row)
        past.append(entry)
    return rows


def eve_forecasts(consensus: pd.DataFrame, history: pd.DataFrame, base: pd.DataFrame,
                  config: EveConfig | None = None) -> pd.DataFrame:
    """Forecasts at the report's eve of every quarter with a consensus (the module docstring).

    Args:
        consensus: `CONSENSUS_COLUMNS`: one estimate per series and quarter and the day the
            quarter was reported (``report_day``: the eve's forecasts stand on it).
        history: reported long frame ``unique_id, ds, y``; an outcome is read only for
            quarters before the one forecast.
        base: our one-quarter-ahead forecasts ``unique_id, ds, mean`` (made at the cutoff
            before ``ds``, e.g. a backtest's step-1 rows of one model).
    Returns:
        ``unique_id, ds, model, model_used, cutoff, eve, mean, lo-L, hi-L``: ``cutoff`` the
        quarter before ``ds`` (the last reported one), ``eve`` the report day, ``model_used``
        what `StreetEve` chose.
    """
    config = config or EveConfig()
    cols = ["unique_id", "ds", "model", "model_used", "cutoff", "eve", "mean", *interval_columns(config.level)]
    if consensus.empty:
        return pd.DataFrame(columns=cols)
    cal = calendar_of(consensus)
    rows = []
    for uid, cons in consensus.groupby("unique_id", sort=True):
        y = history.loc[history["unique_id"] == uid].set_index("ds")["y"]
        b = base.loc[base["unique_id"] == uid].set_index("ds")["mean"]
        prev = {q: q - cal.offset(1) for q in cons["ds"]}
        rows += _eve_one(uid, cons, y, b, config, prev)
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values(["unique_id", "model", "ds"]).reset_index(drop=True)


def eve_backtest_rows(eve: pd.DataFrame, history: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """`eve_forecasts` rows as backtest rows (``step = 1``, ``y`` the outcome) in `columns`;
    quarters without an outcome are dropped."""
    out = eve.merge(history[["unique_id", "ds", "y"]], on=["unique_id", "ds"]).assign(step=1)
    return out.reindex(columns=list(columns)).reset_index(drop=True)


def score_street(rows: pd.DataFrame, history: pd.DataFrame, consensus: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(`street_table` per series, the same per series and fiscal year) of backtest `rows`
    (our models, the consensus rows and the eve rows) on the quarters with a consensus."""
    pts = pointwise(on_consensus_quarters(rows, consensus), history)
    return street_table(pts), street_table(with_year(pts), ("unique_id", "year"))
