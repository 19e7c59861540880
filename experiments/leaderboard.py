"""A backtest's tables, and their readable forms (plain text, markdown, HTML): SeasonalNaive
always beside each model, the default model marked.

`backtest_tables` computes them once from a backtest frame (`BacktestTables`: pointwise rows,
the leaderboard, per series, per horizon, per series and horizon, what selecting ensembles
chose); the commands print them and `experiments.track_backtest` logs them. No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from forecasting.methods.autocombo import choices
from forecasting.core.metrics import BASELINE, leaderboard, pointwise, summarize


@dataclass
class BacktestTables:
    """Everything computed from one backtest frame (see `backtest_tables`).

    Attributes:
        points: `forecasting.core.metrics.pointwise` rows; leaderboard: one row per model, best first
            (with ``fallback_share``); series, step, series_step: `forecasting.core.metrics.summarize`
            by series, by horizon, by both; choices: what each selecting ensemble chose per
            series and cutoff; guidance_h1: the guidance midpoint beside the models one quarter
            ahead (empty without guidance); consensus_h1: the street's consensus beside the models
            one quarter ahead on the quarters that have one (empty without a consensus file);
            default: the default model of the run (marked).
    """

    points: pd.DataFrame
    leaderboard: pd.DataFrame
    series: pd.DataFrame
    step: pd.DataFrame
    series_step: pd.DataFrame
    choices: pd.DataFrame
    guidance_h1: pd.DataFrame = field(default_factory=pd.DataFrame)
    consensus_h1: pd.DataFrame = field(default_factory=pd.DataFrame)
    default: str | None = None


def backtest_tables(bt: pd.DataFrame, history: pd.DataFrame, config, default: str | None = None) -> BacktestTables:
    """The tables of a backtest frame `bt` run with `config` (`forecasting.rolling.backtest.BacktestConfig`)
    on `history`; `default` names the model the run's tables mark as the default."""
    level = tuple(config.level)
    points = pointwise(bt, history, level, config.season_length)
    board = leaderboard(points, level)
    # share of forecasts a model handed to its fallback (short series, failed or NaN fits); a
    # selecting ensemble's model_used names the candidate it chose, which is no fallback
    chosen = choices(bt)
    selector = bt["model"].isin(set(chosen["model"]))
    fell_back = ((bt["model_used"] != bt["model"]) & ~selector).groupby(bt["model"]).mean()
    board["fallback_share"] = board["model"].map(fell_back).astype(float)
    return BacktestTables(points=points, leaderboard=board, series=summarize(points, ("unique_id", "model"), level),
                          step=summarize(points, ("model", "step"), level),
                          series_step=summarize(points, ("unique_id", "model", "step"), level),
                          choices=chosen, default=default)


def label(model: str, default: str | None) -> str:
    """A model's name as tables show it: ``StatsMLCombo (default)`` for the default model."""
    return f"{model} (default)" if default and model == default else model


def model_order(models: Sequence[str], baseline: str = BASELINE) -> list[str]:
    """Baseline first, then the others in the given order."""
    models = list(dict.fromkeys(models))
    return ([baseline] if baseline in models else []) + [m for m in models if m != baseline]


def leaderboard_view(board: pd.DataFrame, default: str | None = None) -> pd.DataFrame:
    """The leaderboard as printed: one row per model, best first, the default model marked."""
    cov = sorted(c for c in board.columns if c.startswith("coverage_"))
    out = board[["model", "gm_rel_mase", "mean_mase"] + cov].copy()
    out["model"] = [label(m, default) for m in out["model"]]
    out["beats_SeasonalNaive_on"] = [f"{int(k)}/{int(n)} series" for k, n in
                                     zip(board["series_beating_baseline"], board["n_series"])]
    if "fallback_share" in board.columns:
        out["fallback"] = [f"{v:.0%}" for v in board["fallback_share"]]
    return out


def versus_baseline(table: pd.DataFrame, key: str, models: Sequence[str]) -> pd.DataFrame:
    """Wide table: one row per `key` value, one column per model, ``"MASE (rel)"`` cells.

    The SeasonalNaive column shows its MASE; other columns MASE and MASE relative to it.
    """
    wide_m = table.pivot(index=key, columns="model", values="mase")
    wide_r = table.pivot(index=key, columns="model", values="rel_mase")
    out = pd.DataFrame(index=wide_m.index)
    for m in model_order(models):
        if m not in wide_m.columns:
            continue
        if m == BASELINE:
            out[m] = [_num(v) for v in wide_m[m]]
        else:
            out[m] = [f"{_num(a)} ({_num(r)})" for a, r in zip(wide_m[m], wide_r[m])]
    return out.reset_index()


def horizon_table(series_step: pd.DataFrame, leader: str, steps: Sequence[int] = (1, 4)) -> pd.DataFrame:
    """Per series, at each of `steps`: SeasonalNaive's MASE, `leader`'s relative MASE, and the
    series' own best model with its relative MASE."""
    rows = []
    for uid, g in series_step.groupby("unique_id"):
        row: dict[str, object] = {"series": uid}
        for s in steps:
            gs = g[g["step"] == s]
            base = gs[gs["model"] == BASELINE]["mase"]
            lead = gs[gs["model"] == leader]["rel_mase"]
            row[f"h{s} SN MASE"] = _num(base.iloc[0]) if len(base) else "-"
            if leader != BASELINE:
                row[f"h{s} {leader} rel"] = _num(lead.iloc[0]) if len(lead) else "-"
            if gs["mase"].notna().any():
                best = gs.loc[gs["mase"].idxmin()]
                row[f"h{s} best (rel)"] = f"{best['model']} ({_num(best['rel_mase'])})"
            else:
                row[f"h{s} best (rel)"] = "-"
        rows.append(row)
    return pd.DataFrame(rows)


def series_without_winner(series: pd.DataFrame) -> list[str]:
    """Series on which no model's MASE (all horizons) is below SeasonalNaive's."""
    others = series[series["model"] != BASELINE]
    if others.empty:
        return sorted(series["unique_id"].unique())
    best = others.groupby("unique_id")["rel_mase"].min()
    return sorted(best[~(best < 1)].index)


def _num(v) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{v:.3f}"


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub markdown table (floats with 3 decimals)."""
    cols = [str(c) for c in df.columns]
    cells = [[_num(v) if isinstance(v, float) else str(v) for v in row] for row in df.itertuples(index=False)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in cells]
    return "\n".join(lines)


def sections(tables: BacktestTables) -> list[tuple[str, str, pd.DataFrame]]:
    """(title, explanation, table) of every leaderboard section."""
    board = tables.leaderboard
    models = list(board["model"])
    leader = models[0]
    steps = sorted(tables.step["step"].unique())
    show = sorted({steps[0], steps[-1]}) if steps else []
    return [
        ("Models", "gm_rel_mase: geometric mean over series of MASE / SeasonalNaive's MASE (below 1 "
                   "beats the baseline); coverage: share of outcomes inside the interval; fallback: "
                   "share of forecasts made by the model's simpler fallback (short series, failed fits)."
                   + (f" {tables.default} is the default model of this run." if tables.default else ""),
         leaderboard_view(board, tables.default)),
        ("Per series", "MASE over all horizons; in brackets relative to SeasonalNaive.",
         versus_baseline(tables.series, "unique_id", models)),
        ("Per horizon", "MASE pooled over series at each horizon (quarters ahead); in brackets "
                        "relative to SeasonalNaive.",
         versus_baseline(tables.step, "step", models)),
        (f"Per series at horizons {', '.join(str(s) for s in show)}",
         f"SeasonalNaive's MASE, the leader {leader}'s relative MASE and each series' best model.",
         horizon_table(tables.series_step, leader, show)),
    ] + ([("One quarter ahead vs the guidance midpoint",
           "MASE relative to SeasonalNaive at h=1 on the series management guides: the middle of the "
           "guided range, and each model (what the models add to or take from what management said).",
           tables.guidance_h1)] if len(tables.guidance_h1) else []) + (
        [("One quarter ahead vs the street's consensus",
          "On the quarters with a consensus only (n per series): MAPE in percent and MASE relative to "
          "SeasonalNaive on those quarters. The consensus is final about three months after our forecast "
          "time: a benchmark with later information, not an input.",
          tables.consensus_h1)] if len(tables.consensus_h1) else [])


def leaderboard_markdown(tables: BacktestTables) -> str:
    parts = ["# Backtest leaderboard", ""]
    for title, text, df in sections(tables):
        parts += [f"## {title}", "", text, "", to_markdown(df), ""]
    beaten = series_without_winner(tables.series)
    parts.append("No model beats SeasonalNaive on: " + (", ".join(beaten) if beaten else "(none)"))
    return "\n".join(parts) + "\n"


def leaderboard_html(tables: BacktestTables) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Backtest leaderboard</title>",
             "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style></head><body>",
             "<h1>Backtest leaderboard</h1>"]
    for title, text, df in sections(tables):
        parts += [f"<h2>{title}</h2><p>{text}</p>",
                  df.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-")]
    beaten = series_without_winner(tables.series)
    parts.append(f"<p>No model beats SeasonalNaive on: {', '.join(beaten) if beaten else '(none)'}</p>")
    return "\n".join(parts) + "</body></html>\n"


def rollup_table(scores, series: str) -> pd.DataFrame:
    """Rows: models of `series` (seasonal naive first); columns: relative MASE h1..h4 and over
    all steps, coverage at 80/95, scaled CRPS, 80% interval score (`scores`: a
    `forecasting.rollup.backtest.RollupScores`)."""
    bs, ov = scores.by_step, scores.overall
    t = bs[bs["unique_id"] == series].pivot_table(index="model", columns="step", values="rel_mase")
    t.columns = [f"h{c}" for c in t.columns]
    o = ov[ov["unique_id"] == series].set_index("model")
    t["all"] = o["rel_mase"]
    for c, name in (("coverage_80", "cov80"), ("coverage_95", "cov95"), ("scaled_crps", "sCRPS"),
                    ("msis_80", "MSIS80")):
        t[name] = o[c]
    order = ["SeasonalNaive"] + [m for m in t.sort_values("all").index if m != "SeasonalNaive"]
    return t.loc[order]


def guidance_table(points: pd.DataFrame) -> pd.DataFrame:
    """Relative MASE at h=1 per guided series (columns) and model (rows), the guidance midpoint
    and SeasonalNaive first, from `forecasting.core.metrics.pointwise` rows of step 1."""
    t = summarize(points[points["step"] == 1], ("unique_id", "model"))
    w = t.pivot_table(index="model", columns="unique_id", values="rel_mase")
    first = [m for m in ("SeasonalNaive", "GuidanceMidpoint") if m in w.index]
    rest = list(w.drop(index=first).mean(axis=1).sort_values().index)
    return w.loc[first + rest].reset_index()


def street_view(table: pd.DataFrame, notes: Mapping[str, str] | None = None) -> pd.DataFrame:
    """A `forecasting.rolling.street.street_table` for reading: per series the models best first, MAPE
    in percent, the share of quarters won vs the consensus, and a note per model (`notes`)."""
    notes = notes or {}
    t = table.copy()
    out = pd.DataFrame({
        "series": t["unique_id"], "model": t["model"] + t["model"].map(lambda m: f" ({notes[m]})" if m in notes else ""),
        "quarters": t["n"].astype(int), "MAPE %": t["mape"].round(2), "rel. MASE": t["rel_mase"].round(3),
        "bias %": t["bias_pct"].round(2),
        "won vs consensus": t["won"].map(lambda v: "" if pd.isna(v) else f"{v:.0%}"),
    })
    return out.reset_index(drop=True)


def street_years_view(by_year: pd.DataFrame, models) -> pd.DataFrame:
    """MAPE (percent) per series and fiscal year for `models` (columns), with the quarter count
    and the share of quarters each non-consensus model won."""
    t = by_year[by_year["model"].isin(list(models))]
    mape = t.pivot_table(index=["unique_id", "year"], columns="model", values="mape").round(2)
    won = t.pivot_table(index=["unique_id", "year"], columns="model", values="won")
    won = won.drop(columns=[c for c in won.columns if won[c].isna().all()])
    won.columns = [f"won {c}" for c in won.columns]
    n = t.groupby(["unique_id", "year"])["n"].max().rename("quarters")
    cols = [m for m in models if m in mape.columns]
    out = pd.concat([n, mape[cols], won.map(lambda v: "" if pd.isna(v) else f"{v:.0%}")], axis=1)
    return out.reset_index().rename(columns={"unique_id": "series"})


def consensus_h1_table(bt: pd.DataFrame, extra: pd.DataFrame, history: pd.DataFrame,
                       consensus: pd.DataFrame) -> pd.DataFrame:
    """Per series with a consensus and model (the ``Consensus`` row first): quarters, MAPE and
    MASE relative to SeasonalNaive at h=1, on the quarters with a consensus only; `extra`: more
    backtest rows (the guidance midpoint), kept where the midpoint was used."""
    from forecasting.rolling.street import CONSENSUS, consensus_rows, on_consensus_quarters, street_table

    rows = pd.concat([bt, extra], ignore_index=True)
    rows = rows[(rows["model"] != "GuidanceMidpoint") | (rows["model_used"] == "GuidanceMidpoint")]
    cons = consensus_rows(rows, consensus[consensus["unique_id"].isin(set(rows["unique_id"]))])
    if cons.empty:
        return pd.DataFrame()
    t = street_table(pointwise(on_consensus_quarters(pd.concat([rows, cons], ignore_index=True), consensus),
                               history))
    t["first_"] = t["model"] != CONSENSUS
    t = t.sort_values(["unique_id", "first_", "mape"])
    return t[["unique_id", "model", "n", "mape", "rel_mase", "won"]].rename(
        columns={"unique_id": "series", "n": "quarters", "mape": "MAPE %", "rel_mase": "rel. MASE",
                 "won": "won vs consensus"}).reset_index(drop=True)
