"""The other tracked runs: the FCF roll-up, scenarios, claims and benchmarks.

- roll-up (`log_rollup`, ``fcf rollup``): one parent run with the roll-up's parameters and the
  FCF quantiles as metrics with ``step`` = quarters ahead (``fcf.p10``, ``fcf_ttm.p50``...);
  when the roll-up was backtested, one nested child run per forecaster ("Rollup",
  "SeasonalNaive", the direct models) with ``mase.<series>``, ``rel_mase.<series>``,
  ``coverage_80.<series>``... per step and over all steps at step 0 (``series_mase.<series>``),
  and on the parent ``rel_mase.<series>``, ``calibrated.<metric>.<series>``, ``fy_<which>...``
  and ``reconciliation.gm_rel_mase.<method>``. Artifacts: ``rollup_quantiles.csv``,
  ``drivers.csv``, ``champions.csv``, ``fanchart.png`` and the backtest tables.
- scenarios (`log_scenarios`, ``fcf scenario``): a parent run, one child per scenario (base
  first) with its fiscal-year FCF quantiles as metrics and its drivers and sources as params.
- claims (`log_claims`, ``fcf claims``): one run per claims file: ``claim.<id>.probability``
  (base case), ``claim.<id>.probability.<scenario>``, ``claim.<id>.median``,
  ``claim.<id>.realised`` and ``claim.<id>.held`` (1/0, once decided); the reliability table
  as ``reliability.n``, ``reliability.mean_probability``, ``reliability.observed`` with step =
  probability bin; Brier scores ``brier.<forecaster>``; ``guidance.<metric>.share_inside``.
- benchmarks (`log_benchmark`, ``fcf benchmark``): one run in experiment ``benchmarks``.

Every parent run gets the data it read as its dataset input and a name that tells two runs
apart (`experiments.tracking.run_name`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from experiments.leaderboard import rollup_table, to_markdown
from experiments.track_backtest import RunContext
from experiments.tracking import (
    TrackingError,
    end_run,
    experiment_id,
    get_client,
    log_batch,
    log_dataset,
    metric_key,
    run_group,
    run_name,
    run_tags,
    tracking_uri,
)
from features.loader import data_vintage

BENCHMARK_EXPERIMENT = "benchmarks"


# ------------------------------------------------------------------------------ roll-up
def rollup_metrics(quantiles: pd.DataFrame) -> list[tuple]:
    """``(key, value, step)`` of a quantile table (``unique_id, ds, mean, p2.5 ..``), step =
    position of the quarter in the horizon (1..h)."""
    out = []
    for uid, g in quantiles.groupby("unique_id"):
        g = g.sort_values("ds")
        cols = [c for c in g.columns if c == "mean" or (c.startswith("p") and c[1:].replace(".", "").isdigit())]
        name = "fcf_ttm" if uid.endswith("_ttm") else "fcf"
        for step, (_, row) in enumerate(g.iterrows(), start=1):
            out += [(metric_key(name, c), row[c], step) for c in cols]
    return out


def rollup_backtest_metrics(by_step: pd.DataFrame, overall: pd.DataFrame, model: str) -> list[tuple]:
    """Child-run metrics of one forecaster in the roll-up backtest (see the module docstring)."""
    out = []
    names = tuple(n for n in ("mase", "rel_mase", "smape", "coverage_80", "coverage_95", "scaled_crps", "msis_80")
                  if n in by_step.columns)
    for r in by_step[by_step["model"] == model].itertuples(index=False):
        out += [(metric_key(n, r.unique_id), getattr(r, n), int(r.step)) for n in names]
    for r in overall[overall["model"] == model].itertuples(index=False):
        out += [(metric_key("series_" + n, r.unique_id), getattr(r, n), 0) for n in names]
    return out


def rollup_markdown(scores, series: Sequence[str]) -> str:
    """The roll-up backtest tables as markdown (seasonal naive first in each); `scores`: a
    `forecasting.rollup.backtest.RollupScores`, `series`: FCF and TTM FCF."""
    parts = []
    for name in series:
        t = rollup_table(scores, name).round(3).reset_index()
        parts.append(f"## {name}: MASE relative to seasonal naive by horizon, coverage, scaled CRPS\n\n"
                     + to_markdown(t))
    fy = scores.fiscal_years
    if fy is not None and len(fy):
        parts.append("## fiscal-year FCF\n\n" + to_markdown(fy.round(3)))
    return "\n\n".join(parts) + "\n"


def log_rollup(result, context: RunContext, *, scores=None, backtest=None, fanchart: str | Path | None = None) -> str:
    """Log a `forecasting.rollup.paths.RollupResult` (and optionally its backtest and the scores of
    `forecasting.rollup.backtest.score_rollup`) as a parent run; returns its id.

    Raises:
        TrackingError: the store failed mid-way (the runs created are marked FAILED).
    """
    from mlflow.exceptions import MlflowException

    uri = context.uri or tracking_uri()
    try:
        return _log_rollup(result, context, uri, scores, backtest, fanchart)
    except (MlflowException, OSError) as exc:
        raise TrackingError(f"logging the roll-up to {uri} failed: {exc}") from exc


def _log_rollup(result, context: RunContext, uri: str, scores, backtest, fanchart) -> str:
    client = get_client(uri)
    exp_id = experiment_id(client, context.experiment)
    vintage = data_vintage(context.data_path)
    tags = run_tags(context.data_path, {"run_kind": "rollup", **context.tags}, vintage=vintage)
    params = {**result.params, **context.params}
    kind = "rollup backtest" if scores is not None else "rollup"
    name = context.run_name or run_name(kind, vintage, (), h=params.get("h", ""), paths=params.get("n_paths", ""))
    with run_group(client, exp_id, name, tags=tags) as group:
        parent = group.parent
        log_dataset(client, parent, result.pipeline.history, context.data_path, vintage)
        quantiles = pd.concat([result.quarterly, result.ttm], ignore_index=True)
        metrics = rollup_metrics(quantiles)
        if scores is not None:
            overall = scores.overall
            for model in overall["model"].unique():
                run_id = group.child(str(model), tags={**tags, "run_kind": "rollup-backtest", "model": str(model)})
                log_batch(client, run_id, rollup_backtest_metrics(scores.by_step, overall, model),
                          params={**params, "forecaster": str(model)})
                end_run(client, run_id)
            for model, prefix in (("Rollup", ""), ("RollupCalibrated", "calibrated.")):
                roll = overall[overall["model"] == model]
                for metric in ("rel_mase", "coverage_80", "coverage_95", "scaled_crps", "msis_80"):
                    if metric in roll.columns:
                        metrics += [(metric_key(prefix + metric, r.unique_id), getattr(r, metric), 0)
                                    for r in roll.itertuples()]
            fy = scores.fiscal_years
            if fy is not None and len(fy):
                for r in fy[fy["model"].isin(["Rollup", "RollupCalibrated"])].itertuples():
                    prefix = "fy_" + r.which + (".calibrated" if r.model == "RollupCalibrated" else "")
                    metrics += [(metric_key(prefix, n), getattr(r, n), 0)
                                for n in ("rel_mase", "coverage_80", "scaled_crps") if pd.notna(getattr(r, n))]
            rec = scores.reconciliation
            if rec is not None and len(rec):
                gm = rec.drop_duplicates("method").set_index("method")["gm_rel_to_base"]
                metrics += [(metric_key("reconciliation.gm_rel_mase", m), v, 0) for m, v in gm.items()]
        log_batch(client, parent, metrics, params=params)
        with tempfile.TemporaryDirectory(prefix="fcf-rollup-") as tmp:
            quantiles.to_csv(Path(tmp) / "rollup_quantiles.csv", index=False)
            result.drivers.to_csv(Path(tmp) / "drivers.csv", index=False)
            result.choices.to_csv(Path(tmp) / "champions.csv", index=False)
            if backtest is not None:
                backtest.backtest.to_csv(Path(tmp) / "rollup_backtest.csv", index=False)
                backtest.choices.to_csv(Path(tmp) / "champions_backtest.csv", index=False)
                backtest.factors.to_csv(Path(tmp) / "calibration_factors.csv", index=False)
            if scores is not None:
                for key, fname in (("by_step", "rollup_scores"), ("overall", "rollup_overall"),
                                   ("fiscal_years", "fiscal_years"), ("cashflow_by_step", "cashflow_variants"),
                                   ("nodes_by_step", "node_scores"), ("reconciliation", "reconciliation")):
                    table = getattr(scores, key)
                    if table is not None and len(table):
                        table.to_csv(Path(tmp) / f"{fname}.csv", index=False)
                series = (result.pipeline.series.fcf, result.pipeline.series.fcf_ttm)
                (Path(tmp) / "rollup_backtest.md").write_text(rollup_markdown(scores, series), encoding="utf-8")
            client.log_artifacts(parent, tmp)
        if fanchart is not None and Path(fanchart).is_file():
            client.log_artifact(parent, str(fanchart))
    return parent


# ------------------------------------------------------------------------------ scenarios
def log_scenarios(result, context: RunContext, *, fanchart_paths=(),
                  checks: Mapping[str, Sequence[str]] | None = None) -> str:
    """Log a `forecasting.scenarios.run.ScenarioResult`: one parent run, one child per scenario
    (base first) with its fiscal-year FCF quantiles as metrics, the scenario's drivers and
    sources as params, and the tables, checks and fan charts as artifacts; returns the parent id.

    Raises:
        TrackingError: the store failed mid-way (the runs created are marked FAILED).
    """
    from mlflow.exceptions import MlflowException

    uri = context.uri or tracking_uri()
    try:
        return _log_scenarios(result, context, uri, fanchart_paths, checks or {})
    except (MlflowException, OSError) as exc:
        raise TrackingError(f"logging the scenarios to {uri} failed: {exc}") from exc


def _log_scenarios(result, context: RunContext, uri: str, fanchart_paths, checks) -> str:
    client = get_client(uri)
    exp_id = experiment_id(client, context.experiment)
    vintage = data_vintage(context.data_path)
    tags = run_tags(context.data_path, {"run_kind": "scenarios", **context.tags}, vintage=vintage)
    origin = result.inputs.series.calendar.label(result.inputs.origin)
    names = list(result.simulations)
    params = {**result.inputs.config.as_params(), "origin": origin, "error_scale": result.inputs.spread_scale,
              "scenarios": ",".join(n for n in names if n != "base"), **context.params}
    name = context.run_name or run_name("scenarios", vintage, names, h=len(result.inputs.ds))
    with run_group(client, exp_id, name, tags=tags) as group:
        parent = group.parent
        log_dataset(client, parent, result.inputs.history, context.data_path, vintage)
        fy = result.fiscal_years()
        quant = result.table()
        for name in names:
            run_id = group.child(name, tags={**tags, "scenario": name})
            sc = result.scenarios.get(name)
            p = {"scenario": name}
            if sc is not None:
                p.update({"description": sc.description[:490], "sources": "; ".join(sc.sources)[:490],
                          **{f"contradicted.{k}": v[:490] for k, v in sc.contradicted.items()}})
            metrics = rollup_metrics(quant[quant["scenario"] == name].drop(columns="scenario"))
            if len(fy):
                for r in fy[fy["scenario"] == name].itertuples():
                    metrics += [(metric_key("fcf_fy", str(r.fiscal_year), c), getattr(r, c), 0)
                                for c in ("mean", "p10", "p50", "p90")]
            log_batch(client, run_id, metrics, params=p)
            end_run(client, run_id)
        log_batch(client, parent, [], params=params)
        with tempfile.TemporaryDirectory(prefix="fcf-scenarios-") as tmp:
            quant.to_csv(Path(tmp) / "scenario_quantiles.csv", index=False)
            if len(fy):
                fy.to_csv(Path(tmp) / "scenario_fiscal_years.csv", index=False)
                result.drivers().to_csv(Path(tmp) / "scenario_drivers.csv", index=False)
            lines = [f"- {n}: {c}" for n, cs in checks.items() for c in cs]
            (Path(tmp) / "reported_checks.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
            client.log_artifacts(parent, tmp)
        for chart in fanchart_paths:
            if Path(chart).is_file():
                client.log_artifact(parent, str(chart))
    return parent


# ------------------------------------------------------------------------------ claims
BRIER_KEYS = {"probability_recal": "rollup_recal",
              "probability": "rollup", "probability_raw": "rollup_raw", "probability_sn": "seasonal_naive",
              "probability_base_rate": "base_rate"}


def claims_metrics(report) -> list[tuple]:
    """``(key, value, step)`` of a `forecasting.claims.run.ClaimsReport` (see the module docstring)."""
    from forecasting.claims.calibration import FORECASTERS

    out = []
    for r in report.table.itertuples(index=False):
        out.append((metric_key("claim", r.id, "probability"), r.probability, 0))
        out.append((metric_key("claim", r.id, "probability_recal"), r.probability_recal, 0))
        out.append((metric_key("claim", r.id, "median"), r.median_value, 0))
        out.append((metric_key("claim", r.id, "realised"), r.realised_value, 0))
        if r.held is not None and not pd.isna(r.held):
            out.append((metric_key("claim", r.id, "held"), float(bool(r.held)), 0))
    for r in report.by_scenario[report.by_scenario["scenario"] != "base"].itertuples(index=False):
        out.append((metric_key("claim", r.id, "probability", r.scenario), r.probability, 0))
    if report.reliability is not None:
        for step, r in enumerate(report.reliability.itertuples(index=False)):
            out += [(metric_key("reliability", n), getattr(r, n), step) for n in ("n", "mean_probability", "observed")]
        names = {v: BRIER_KEYS[k] for k, v in FORECASTERS.items()}
        b = report.brier[report.brier["kind"] == "all"]
        out += [(metric_key("brier", names[r.forecaster]), r.brier, 0) for r in b.itertuples(index=False)]
        for r in report.scores.itertuples(index=False):
            out += [(metric_key("brier", names[r.forecaster], n), getattr(r, n), 0)
                    for n in ("reliability", "resolution", "uncertainty", "ece")]
    g = report.guidance
    if len(g):
        for r in g[g["window"] == "all"].itertuples(index=False):
            out += [(metric_key("guidance", r.metric, n), getattr(r, n), 0) for n in ("share_inside", "share_above")]
    return out


def log_claims(report, context: RunContext, *, markdown: str = "") -> str:
    """Log a `forecasting.claims.run.ClaimsReport` as one run; returns its id.

    Raises:
        TrackingError: the store failed mid-way (the run is marked FAILED).
    """
    from mlflow.exceptions import MlflowException

    from experiments.plots import claims_reliability_png

    uri = context.uri or tracking_uri()
    client = get_client(uri)
    try:
        exp_id = experiment_id(client, context.experiment)
        params = {**report.params, **context.params}
        vintage = data_vintage(context.data_path)
        name = context.run_name or run_name(f"claims {report.claims.name}", vintage, (),
                                             origin=params.get("origin", ""))
        tags = run_tags(context.data_path, {"run_kind": "claims", "claims": report.claims.name, **context.tags},
                        vintage=vintage)
        with run_group(client, exp_id, name, tags=tags) as group:
            run_id = group.parent
            log_dataset(client, run_id, report.result.pipeline.history, context.data_path, vintage)
            log_batch(client, run_id, claims_metrics(report), params=params)
            with tempfile.TemporaryDirectory(prefix="fcf-claims-") as tmp:
                from experiments.claims_text import with_text

                with_text(report.table, report.claims).to_csv(Path(tmp) / "claims.csv", index=False)
                with_text(report.by_scenario, report.claims).to_csv(Path(tmp) / "claims_by_scenario.csv", index=False)
                (Path(tmp) / "claims.md").write_text(markdown, encoding="utf-8")
                if len(report.guidance):
                    report.guidance.to_csv(Path(tmp) / "guidance_outcomes.csv", index=False)
                if report.reliability is not None:
                    report.calibration.to_csv(Path(tmp) / "calibration_claims.csv", index=False)
                    report.reliability.to_csv(Path(tmp) / "reliability.csv", index=False)
                    report.brier.to_csv(Path(tmp) / "brier.csv", index=False)
                    report.scores.to_csv(Path(tmp) / "brier_decomposition.csv", index=False)
                    claims_reliability_png(report, Path(tmp) / "reliability.png")
                client.log_artifacts(run_id, tmp)
        return run_id
    except (MlflowException, OSError) as exc:
        raise TrackingError(f"logging the claims to {uri} failed: {exc}") from exc


# ------------------------------------------------------------------------------ benchmarks
def benchmark_metrics(table: pd.DataFrame | None) -> list[tuple]:
    """``smape.<method>``, ``mase.<method>``, ``mape.<method>``, ``seconds.<method>`` of the methods we ran
    (rows of `experiments.benchmarks.m3.benchmark`'s table whose ``kind`` is not ``published``)."""
    if table is None or not len(table) or not {"kind", "method", "sMAPE", "MASE"} <= set(table.columns):
        return []
    ran = table[table["kind"] != "published"]
    out = []
    for r in ran.itertuples():
        out += [(metric_key("smape", r.method), r.sMAPE, 0), (metric_key("mase", r.method), r.MASE, 0),
                (metric_key("seconds", r.method), r.seconds, 0)]
        if "MAPE" in table.columns:
            out.append((metric_key("mape", r.method), r.MAPE, 0))
    return out


def log_benchmark(
    name: str,
    table: pd.DataFrame | None,
    params: Mapping[str, Any],
    metrics: Mapping[str, float] | None = None,
    experiment: str = BENCHMARK_EXPERIMENT,
    uri: str | None = None,
) -> str:
    """Log one benchmark run (``fcf benchmark m3`` / ``speed``) in one batch plus the table as
    ``<name>.csv``; returns the run id.

    Raises:
        TrackingError: the store failed (the run is marked FAILED).
    """
    from mlflow.exceptions import MlflowException

    uri = uri or tracking_uri()
    client = get_client(uri)
    try:
        exp_id = experiment_id(client, experiment)
        with run_group(client, exp_id, name, tags=run_tags(None, {"run_kind": "benchmark", "benchmark": name})) as g:
            ms = benchmark_metrics(table) + [(metric_key(k), v, 0) for k, v in (metrics or {}).items()]
            log_batch(client, g.parent, ms, params=params)
            if table is not None:
                with tempfile.TemporaryDirectory(prefix="fcf-benchmark-") as tmp:
                    table.to_csv(Path(tmp) / f"{name}.csv", index=False)
                    client.log_artifacts(g.parent, tmp)
        return g.parent
    except (MlflowException, OSError) as exc:
        raise TrackingError(f"logging benchmark '{name}' to {uri} failed: {exc}") from exc


# ------------------------------------------------------------------------------ the street
def street_metrics(table: pd.DataFrame, by_year: pd.DataFrame) -> list[tuple]:
    """``mape.<series>.<model>``, ``rel_mase.<series>.<model>``, ``won.<series>.<model>`` and
    ``n.<series>.<model>`` (step 0), and the per-year MAPE / won with step = the fiscal year."""
    out = []
    for r in table.itertuples(index=False):
        for name in ("mape", "rel_mase", "won", "n", "bias_pct"):
            v = getattr(r, name)
            if not pd.isna(v):
                out.append((metric_key(name, r.unique_id, r.model), float(v), 0))
    for r in by_year.itertuples(index=False):
        for name in ("mape", "won"):
            v = getattr(r, name)
            if not pd.isna(v):
                out.append((metric_key("year", name, r.unique_id, r.model), float(v), int(r.year)))
    return out


def log_street(table: pd.DataFrame, by_year: pd.DataFrame, context: RunContext, *,
               artifacts: Mapping[str, pd.DataFrame] | None = None, markdown: str = "") -> str:
    """Log ``fcf street`` as one run (metrics of `street_metrics`, the tables as artifacts);
    returns its id.

    Raises:
        TrackingError: the store failed mid-way (the run is marked FAILED).
    """
    from mlflow.exceptions import MlflowException

    uri = context.uri or tracking_uri()
    client = get_client(uri)
    try:
        exp_id = experiment_id(client, context.experiment)
        vintage = data_vintage(context.data_path)
        name = context.run_name or run_name("street", vintage, sorted(set(table["model"])))
        tags = run_tags(context.data_path, {"run_kind": "street", **context.tags}, vintage=vintage)
        with run_group(client, exp_id, name, tags=tags) as group:
            run_id = group.parent
            metrics = street_metrics(table, by_year) + [(metric_key(k), v, 0) for k, v in context.metrics.items()]
            log_batch(client, run_id, metrics, params=dict(context.params))
            with tempfile.TemporaryDirectory(prefix="fcf-street-") as tmp:
                for fname, frame in (artifacts or {}).items():
                    frame.to_csv(Path(tmp) / fname, index=False)
                if markdown:
                    (Path(tmp) / "street.md").write_text(markdown, encoding="utf-8")
                client.log_artifacts(run_id, tmp)
        return run_id
    except (MlflowException, OSError) as exc:
        raise TrackingError(f"logging the street comparison to {uri} failed: {exc}") from exc
