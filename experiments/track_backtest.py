"""A backtest in MLflow: one parent run per backtest, one nested child run per model.

The parent run is named by `experiments.tracking.run_name` (data vintage, models, horizon,
windows), carries the data as its dataset input, the backtest settings as params,
``gm_rel_mase.<model>`` / ``mean_mase.<model>`` for comparison, a ``best_run`` tag naming the
best child run (lowest ``gm_rel_mase``) and the artifacts: ``backtest.csv``, ``pointwise.csv``,
``leaderboard.md`` / ``.html``, ``plots/<series>.png`` and, when a selecting ensemble ran,
``choices.csv``. Child runs are created SeasonalNaive first, then in leaderboard order.

Child-run metric keys (``step`` is the horizon in quarters where noted, 0 for scalars):

======================================  =====  ==================================================
key                                     step   value
======================================  =====  ==================================================
``mase.<series>``, ``rel_mase.<series>``  1..h   MASE and MASE / SeasonalNaive's MASE, per series
``smape.<series>``, ``coverage_80.<s>``   1..h   sMAPE (%), share of outcomes in the 80% interval
``series_mase.<s>``, ``series_rel_mase.<s>``  0  the same over all horizons
``mase``, ``rel_mase``, ``smape``         1..h   pooled over series
``step_gm_rel_mase``                      1..h   geometric mean over series of rel. MASE
``step_coverage_80``, ``step_coverage_95`` 1..h  interval coverage pooled over series
``gm_rel_mase``, ``mean_mase``            0      the leaderboard numbers (all horizons)
``coverage_80``, ``coverage_95``          0      interval coverage (all rows)
``series_beating_baseline``               0      series whose MASE is below SeasonalNaive's
``fallback_share``                        0      share of forecasts made by a fallback model
``chosen_share.<candidate>``              0      selecting ensembles: share of series x cutoffs
                                                 where the candidate was chosen
======================================  =====  ==================================================

A selecting ensemble's child run also has a param ``chosen.<series>`` (the candidate chosen at
the last cutoff and its members) and the artifact ``choices.csv``.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.leaderboard import BacktestTables, backtest_tables, leaderboard_html, leaderboard_markdown
from experiments.tracking import (
    MAX_PARAM_LENGTH,
    TrackingError,
    end_run,
    experiment_id,
    get_client,
    log_batch,
    log_dataset,
    log_table,
    metric_key,
    run_group,
    run_name,
    run_tags,
    spec_params,
    tracking_uri,
)
from features.loader import data_vintage
from forecasting.core.metrics import BASELINE, gmean
from forecasting.methods.catalogue import resolve


@dataclass(frozen=True)
class RunContext:
    """Where a run goes and what it records besides its results.

    Attributes:
        experiment: the MLflow experiment (a company's ``<prefix>-backtest``...).
        uri: the tracking URI (None: `experiments.tracking.tracking_uri()`).
        data_path: the data file the run read (None: the shipped one).
        run_name: the parent run's name (None: `experiments.tracking.run_name`).
        params, tags, metrics: more for the parent run (``runtime_s``...).
    """

    experiment: str
    uri: str | None = None
    data_path: str | Path | None = None
    run_name: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)


def model_metrics(tables: BacktestTables, model: str, level: Sequence[int]) -> list[tuple]:
    """``(key, value, step)`` metrics of one model (see the module docstring for the keys)."""
    out: list[tuple] = []
    lo = min(level)
    ss = tables.series_step
    for r in ss[ss["model"] == model].itertuples(index=False):
        d = r._asdict()
        for name in ("mase", "rel_mase", "smape", f"coverage_{lo}"):
            out.append((metric_key(name, r.unique_id), d[name], int(r.step)))
    se = tables.series
    for r in se[se["model"] == model].itertuples(index=False):
        out.append((metric_key("series_mase", r.unique_id), r.mase, 0))
        out.append((metric_key("series_rel_mase", r.unique_id), r.rel_mase, 0))
    st = tables.step
    gm_step = ss[ss["model"] == model].groupby("step")["rel_mase"].apply(gmean)
    for r in st[st["model"] == model].itertuples(index=False):
        d = r._asdict()
        step = int(r.step)
        out += [("mase", r.mase, step), ("rel_mase", r.rel_mase, step), ("smape", r.smape, step),
                ("step_gm_rel_mase", gm_step.get(r.step, np.nan), step)]
        out += [(f"step_coverage_{lv}", d[f"coverage_{lv}"], step) for lv in level]
    lb = tables.leaderboard.set_index("model")
    if model in lb.index:
        row = lb.loc[model]
        out += [("gm_rel_mase", row["gm_rel_mase"], 0), ("mean_mase", row["mean_mase"], 0),
                ("smape_all", row["smape"], 0), ("bias_pct", row["bias_pct"], 0),
                ("yoy_abs_err_pp", row["yoy_abs_err_pp"], 0),
                ("series_beating_baseline", row["series_beating_baseline"], 0)]
        if "fallback_share" in row.index:
            out.append(("fallback_share", row["fallback_share"], 0))
        out += [(f"coverage_{lv}", row[f"coverage_{lv}"], 0) for lv in level]
    return out


def _model_choices(tables: BacktestTables, model: str) -> pd.DataFrame:
    chosen = tables.choices
    if chosen is None or not len(chosen):
        return pd.DataFrame(columns=["model", "unique_id", "cutoff", "chosen", "members"])
    return chosen[chosen["model"] == model]


def choice_metrics(chosen: pd.DataFrame) -> list[tuple]:
    """``chosen_share.<candidate>``: share of series x cutoffs where a selecting ensemble chose it."""
    if not len(chosen):
        return []
    share = chosen["chosen"].value_counts(normalize=True)
    return [(metric_key("chosen_share", c), float(v), 0) for c, v in share.items()]


def choice_params(chosen: pd.DataFrame) -> dict[str, str]:
    """``chosen.<series>``: the candidate chosen at the last cutoff, with its members."""
    if not len(chosen):
        return {}
    last = chosen.sort_values("cutoff").groupby("unique_id").tail(1)
    return {metric_key("chosen", r.unique_id): f"{r.chosen} ({r.members})"[:MAX_PARAM_LENGTH]
            for r in last.itertuples(index=False)}


def write_backtest_artifacts(bt: pd.DataFrame, history: pd.DataFrame, tables: BacktestTables,
                             folder: str | Path, level: Sequence[int] = (80, 95), plots: bool = True) -> Path:
    """Write the parent run's artifacts into `folder` (tables, leaderboards, one PNG per series)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bt.to_csv(folder / "backtest.csv", index=False)
    tables.points.to_csv(folder / "pointwise.csv", index=False)
    tables.leaderboard.to_csv(folder / "leaderboard.csv", index=False)
    if len(tables.choices):
        tables.choices.to_csv(folder / "choices.csv", index=False)
    (folder / "leaderboard.md").write_text(leaderboard_markdown(tables), encoding="utf-8")
    (folder / "leaderboard.html").write_text(leaderboard_html(tables), encoding="utf-8")
    if plots:
        from experiments.plots import save_series_plots

        save_series_plots(bt, history, tables.series, folder / "plots", level=min(level),
                          overall_best=str(tables.leaderboard["model"].iloc[0]))
    return folder


def log_backtest(bt: pd.DataFrame, history: pd.DataFrame, config, context: RunContext, *,
                 tables: BacktestTables | None = None, plots: bool = True) -> str:
    """Log one backtest: a parent run and one nested child run per model; returns the parent id.

    Args:
        bt: `forecasting.rolling.backtest.backtest` output (``unique_id, cutoff, ds, step, y, model,
            model_used, mean, lo-*, hi-*``).
        history: the long frame ``unique_id, ds, y`` the backtest ran on (scales MASE; logged as
            the run's dataset input).
        config: the `forecasting.rolling.backtest.BacktestConfig` used.
        context: experiment, URI, data file, run name and extra params, tags and metrics.
        tables: `experiments.leaderboard.backtest_tables(bt, history, config)` when the caller
            already has them.
    Raises:
        TrackingError: the store failed mid-way (the runs created are marked FAILED).
    """
    from mlflow.exceptions import MlflowException

    if bt.empty:
        raise ValueError("the backtest frame is empty: nothing to log")
    uri = context.uri or tracking_uri()
    try:
        with warnings.catch_warnings():  # SQLAlchemy deprecation noise from MLflow's store
            warnings.simplefilter("ignore", DeprecationWarning)
            return _log_backtest(bt, history, config, context, uri, tables, plots)
    except (MlflowException, OSError) as exc:
        raise TrackingError(f"logging the backtest to {uri} failed: {exc}") from exc


def _log_backtest(bt, history, config, context: RunContext, uri: str, tables, plots) -> str:
    level = tuple(config.level)
    tables = tables or backtest_tables(bt, history, config)
    models = list(tables.leaderboard["model"])
    models = sorted(models, key=lambda m: m != BASELINE)  # stable: baseline first
    specs = {s.name: s for s in resolve(models)}
    client = get_client(uri)
    exp_id = experiment_id(client, context.experiment)
    series = sorted(bt["unique_id"].unique())
    vintage = data_vintage(context.data_path)
    tags = run_tags(context.data_path, context.tags, vintage=vintage)
    name = context.run_name or run_name("backtest", vintage, models, h=config.h, w=config.n_windows)
    parent_tags = {**tags, "run_kind": "backtest", **({"default_model": tables.default} if tables.default else {})}
    children: dict[str, str] = {}
    with run_group(client, exp_id, name, tags=parent_tags) as group:
        parent = group.parent
        log_dataset(client, parent, history, context.data_path, vintage)
        lb = tables.leaderboard.set_index("model")
        params = {**config.as_params(), "n_series": len(series), "series": ",".join(series),
                  "models": ",".join(models), "n_rows": len(bt), **({"default_model": tables.default}
                                                                     if tables.default else {}),
                  **context.params}
        for model in models:
            spec = specs[model]
            run_id = group.child(model, tags={**tags, "run_kind": "backtest-model", "model": model,
                                              "family": spec.family})
            children[model] = run_id
            log_dataset(client, run_id, history, context.data_path, vintage)
            chosen = _model_choices(tables, model)
            log_batch(client, run_id, model_metrics(tables, model, level) + choice_metrics(chosen),
                      params={**spec_params(spec), **config.as_params(), "n_series": len(series),
                              **choice_params(chosen)})
            if len(chosen):
                log_table(client, run_id, chosen, "choices.csv")
            end_run(client, run_id)
        best = lb["gm_rel_mase"].astype(float).idxmin() if lb["gm_rel_mase"].notna().any() else BASELINE
        parent_metrics = []
        for model in models:
            parent_metrics += [(metric_key("gm_rel_mase", model), lb.loc[model, "gm_rel_mase"], 0),
                               (metric_key("mean_mase", model), lb.loc[model, "mean_mase"], 0)]
        parent_metrics += [("best_gm_rel_mase", lb.loc[best, "gm_rel_mase"], 0),
                           ("best_mean_mase", lb.loc[best, "mean_mase"], 0)]
        parent_metrics += [(k, v, 0) for k, v in context.metrics.items()]
        log_batch(client, parent, parent_metrics, params=params,
                  tags={"best_run": children[best], "best_model": best,
                        "baseline_run": children.get(BASELINE, "")})
        with tempfile.TemporaryDirectory(prefix="fcf-artifacts-") as tmp:
            write_backtest_artifacts(bt, history, tables, tmp, level, plots=plots)
            client.log_artifacts(parent, tmp)
    return parent
