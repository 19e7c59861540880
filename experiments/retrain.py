"""The quarterly retrain job: backtest the candidates, pick a champion per series, forecast, roll
up, and register the result as a new version of an MLflow model, gated against the current one.

The parts: `experiments.champions` (champions and the gate, pure), `experiments.champion_state`
(what the model stores and how it forecasts), `experiments.flavor` (the pyfunc model and the
registry), `experiments.lock` (one retrain at a time). Everything about the company (its data,
core series, default model, guidance, experiment and model names) comes from its profile.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from experiments import flavor, tracking
from experiments.champion_state import ChampionState, fcf_headline, fit_state
from experiments.champions import DEFAULT_CANDIDATES, MIN_EXTRA_QUARTERS, select_champions, select_series
from forecasting.rolling.champions import gate
from experiments.lock import LOCK_FILE, check_pause_env, pause_point
from experiments.track_backtest import RunContext, log_backtest
from features.guidance import guidance_files, load_guidance_files
from features.loader import data_vintage, load_quarterly
from features.profile import CompanyProfile, shipped_profile
from forecasting.rolling.backtest import BacktestConfig
from forecasting.methods.catalogue import resolve
from forecasting.methods.registry import get_spec
from features.errors import OptionError



def summary_markdown(info: Mapping[str, Any], champions: pd.DataFrame, headline: pd.DataFrame | None) -> str:
    """The end-of-run summary (printed and logged as ``summary.md``)."""
    g = info["gate"]
    lines = [f"# Retrain {info['vintage']}", "",
             f"- data: {info['data']} (last quarter {info['last_quarter']}, sha256 {info['sha256'][:12]})",
             f"- backtest: {info['n_series']} series x {len(info['candidates'])} candidates "
             f"({', '.join(info['candidates'])}), {info['windows']} windows + {info['warmup']} warm-up, "
             f"h={info['h']}",
             f"- gate: **{'passed' if g.passed else 'failed'}**: {g.reason}",
             f"- registered model: `{info['model_name']}` version {info.get('version', '?')}; alias "
             f"`{info['alias']}` -> version {info.get('alias_version', 'none')}",
             f"- MLflow run: {info.get('run_id', '')}",
             (f"- default model of this company (what `fcf forecast` uses): {info['default_model']}, "
              f"{info.get('default_note', '')}" if info.get("default_model") else
              "- default model: the library's AutoCombo (the company profile names none)"),
             f"- run time: {info.get('runtime_s', float('nan')):.1f} s", "",
             "## Champions (MASE over horizons 1-4; rel. = MASE / SeasonalNaive's)", "",
             "| series | champion | MASE | rel. MASE | SeasonalNaive MASE | runner-up |",
             "|---|---|---:|---:|---:|---|"]
    for r in champions.itertuples(index=False):
        ru = f"{r.runner_up} ({r.runner_up_mase:.3f})" if r.runner_up else ""
        lines.append(f"| {r.unique_id} | {r.champion} | {r.mase:.3f} | {r.rel_mase:.3f} | "
                     f"{r.baseline_mase:.3f} | {ru} |")
    if headline is not None:
        lines += ["", f"## FCF headline: trailing-twelve-month FCF, USD billions "
                      f"(roll-up: per-node champions among {info.get('rollup_candidates', '')})", "",
                  "| quarter | P10 | P50 | P90 |", "|---|---:|---:|---:|"]
        for r in headline.itertuples(index=False):
            lines.append(f"| {r.quarter} | {r.P10 / 1e3:,.1f} | {r.P50 / 1e3:,.1f} | {r.P90 / 1e3:,.1f} |")
    else:
        lines += ["", "FCF roll-up: skipped (--no-rollup); the model forecasts the series only."]
    return "\n".join(lines) + "\n"


@dataclass
class RetrainSettings:
    """Options of `retrain` (``fcf retrain`` flags); None: the company profile's."""

    company: CompanyProfile | None = None
    data: str | None = None
    series_config: str | None = None
    series: list[str] | None = None
    models: str = DEFAULT_CANDIDATES
    h: int = 4
    windows: int = 12
    warmup: int = 8
    tolerance: float = 0.02
    model_name: str | None = None
    alias: str = "champion"
    experiment: str | None = None
    rollup: bool = True
    rollup_method: str = "MinTrace-wls_var"
    rollup_candidates: tuple[str, ...] | None = None
    rollup_guided: tuple[str, ...] | None = None
    rollup_first_cutoff: str | None = None
    rollup_paths: int = 1000
    guidance: str = "auto"
    seed: int = 0
    calibration_windows: int = 12
    force: bool = False
    out: str | None = "outputs/retrain"
    lock_path: str = LOCK_FILE
    plots: bool = True

    @property
    def profile(self) -> CompanyProfile:
        return self.company or shipped_profile()



@dataclass
class RetrainResult:
    status: str                      # "noop" | "registered"
    message: str
    run_id: str | None = None
    version: str | None = None
    alias_moved: bool = False
    summary: str = ""


def retrain(s: RetrainSettings, uri: str, say: Callable[[str], None] = print,
            progress: Callable | None = None) -> RetrainResult:
    """Run the retrain job against the tracking store at `uri` (already checked reachable).

    Order: load and validate the data (nothing logged on bad data), skip when a FINISHED
    retrain of this data vintage exists (unless ``force``), backtest, champions, gate,
    forecasts + roll-up, then one parent run with everything, the pyfunc model, a new model
    version and (gate passed) the alias. A failure or interrupt marks the run FAILED / KILLED.
    """
    from forecasting.rollup.config import RollupConfig, RollupSeries
    from forecasting.rollup.pipeline import driver_frame

    t0 = time.perf_counter()
    check_pause_env()
    profile = s.profile
    data = s.data or str(profile.data)
    model_name = s.model_name or profile.model_name
    experiment = s.experiment or profile.experiment("retrain")
    full = load_quarterly(data, s.series_config)  # DataValidationError before anything is logged
    rollup = s.rollup and profile.has_rollup
    book = (load_guidance_files(guidance_files(profile, data, s.guidance), s.series_config,
                                profile.fiscal_year_end_month) if rollup else None)
    vint = data_vintage(data, extra_files=guidance_files(profile, data, s.guidance) if book is not None else ())
    vintage = vint.vintage
    candidates = [sp.name for sp in resolve(s.models)]
    client = tracking.get_client(uri)
    exp_id = tracking.experiment_id(client, experiment)
    if not s.force:
        done = flavor.finished_retrain(client, exp_id, vintage, model_name)
        if done is not None:
            msg = (f"nothing new: retrain run {done.info.run_id} already finished for data vintage {vintage} "
                   f"(model {model_name}); pass --force to retrain anyway")
            return RetrainResult("noop", msg, run_id=done.info.run_id)
    lock_abs = str(Path(s.lock_path).resolve())
    for rid in flavor.close_stale_retrains(client, exp_id, lock_abs):
        say(f"marked run {rid} KILLED: a retrain that died while holding {lock_abs}")
    unknown = [x for x in (s.series or []) if x != "all" and x not in set(full["unique_id"])]
    if unknown:
        raise OptionError(f"--series: unknown series {unknown} in {data}; "
                         f"known: {', '.join(sorted(full['unique_id'].unique()))}")
    min_len = s.windows + s.h + MIN_EXTRA_QUARTERS
    series, skipped = select_series(full, s.series, min_len, profile.core_series)
    if skipped:
        say("series skipped or flagged:\n  " + "\n  ".join(skipped))
    if not series:
        raise OptionError(f"no series to retrain: none has {min_len} quarters; name series with --series")
    df = full[full["unique_id"].isin(series)].reset_index(drop=True)
    if rollup:
        try:
            driver_frame(full, RollupSeries.of(profile))
        except ValueError as exc:
            raise OptionError(f"{exc}; or pass --no-rollup to register the series forecasts only") from None
    elif s.rollup:
        say(f"company profile '{profile.name}' has no roll-up (no hierarchy or cash_flow): registering the "
            "series forecasts only")
    current = flavor.champion_version(client, model_name, s.alias)
    cur_map = None
    if current is not None:
        cur_map = json.loads(current.tags.get(flavor.CHAMPIONS_TAG, "{}"))
        if not cur_map:
            say(f"{model_name}@{s.alias} (version {current.version}) has no {flavor.CHAMPIONS_TAG} tag: "
                "it was not registered by fcf retrain, so the gate has nothing to compare against")
    scored_only = []
    for m in sorted(set((cur_map or {}).values()) - set(candidates)):
        try:
            get_spec(m)
            scored_only.append(m)
        except ValueError:
            say(f"current champion model {m} is no longer registered: its series are left out of the gate")
    config = BacktestConfig(h=s.h, n_windows=s.windows, warmup_windows=s.warmup, seed=s.seed,
                            models=tuple(candidates + scored_only))
    tags = tracking.run_tags(data, {"run_kind": "retrain", flavor.KIND_TAG: "retrain",
                                    flavor.VINTAGE_TAG: vintage, flavor.MODEL_NAME_TAG: model_name,
                                    flavor.LOCK_TAG: lock_abs, "fcf.pid": os.getpid(),
                                    "fcf.host": socket.gethostname(), "company": profile.name,
                                    # set by `mlflow run` (MLproject): its launcher run
                                    **({"fcf.launcher_run": os.environ["MLFLOW_RUN_ID"]}
                                       if os.environ.get("MLFLOW_RUN_ID") else {})}, vintage=vint)
    parent = tracking.start_run(client, exp_id, tracking.run_name("retrain", vint, (model_name,), h=s.h,
                                                                  w=s.windows), tags=tags)
    status = "FAILED"
    try:
        tracking.log_dataset(client, parent, full, data, vint)
        pause_point("started")
        say(f"retrain {vintage}: {len(series)} series x {len(candidates)} candidates"
            + (f" (+ current champions' {', '.join(scored_only)} for the gate)" if scored_only else "")
            + f", {s.windows} windows + {s.warmup} warm-up, h={s.h}; MLflow run {parent}")
        sel = select_champions(df, config, candidates, progress=progress, default=profile.default_model)
        bt, tables, scores, champs = sel.backtest, sel.tables, sel.scores, sel.champions
        new_map = dict(zip(champs["unique_id"], champs["champion"]))
        verdict = gate(scores, new_map, cur_map, s.tolerance)
        rollup_cfg: dict[str, Any] = {}
        if rollup:
            d = RollupConfig().for_company(profile)
            rollup_cfg = {"method": s.rollup_method, "cashflow": d.cashflow, "n_paths": s.rollup_paths,
                          "seed": s.seed, "calibrate": True,
                          "candidates": list(s.rollup_candidates or d.candidates),
                          "guided": list(d.guided if s.rollup_guided is None else s.rollup_guided),
                          "first_cutoff": s.rollup_first_cutoff or d.first_cutoff}
        company = profile.name if profile.path is None or profile.path.parent.name == "companies" else str(profile.path)
        state = ChampionState(history=full, champions=new_map, seed=s.seed, season_length=config.season_length,
                              calibration_windows=s.calibration_windows, rollup=rollup_cfg, vintage=vintage,
                              guidance=ChampionState.guidance_records(book) if rollup else None, company=company)
        fit = fit_state(state, s.h, config.level)  # stored in the model: predict reads it
        fc, sims = fit.predict(s.h, config.level, state=state, return_simulations=True)
        headline = fcf_headline(sims["base"]) if "base" in sims else None
        info = {"vintage": vintage, "data": data, "last_quarter": vint.data_last_quarter,
                "sha256": vint.data_sha256, "n_series": len(series), "candidates": candidates,
                "windows": s.windows, "warmup": s.warmup, "h": s.h, "gate": verdict,
                "model_name": model_name, "alias": s.alias, "run_id": parent,
                "rollup_candidates": ",".join(rollup_cfg.get("candidates", [])),
                "default_model": profile.default_model, "default_note": profile.default_model_note}
        bt_run = log_backtest(bt, df, config, RunContext(
            experiment=experiment, uri=uri, data_path=data, run_name=tracking.run_name("backtest", vint, candidates,
                                                                                       h=s.h, w=s.windows),
            tags={"mlflow.parentRunId": parent}), tables=tables, plots=s.plots)
        pause_point("before-register")
        version = flavor.log_and_register(
            client, parent, state.to_json(), model_name, input_h=s.h, level=config.level,
            example_output=fc, fit=fit.to_bytes(), version_tags={flavor.CHAMPIONS_TAG: json.dumps(new_map),
                                             flavor.VINTAGE_TAG: vintage,
                                             "fcf.gate": "passed" if verdict.passed else "failed"},
            description=f"champions of data vintage {vintage}; {verdict.reason}",
            model_description=f"{profile.title}: segment champions and FCF roll-up (fcf retrain)")
        pause_point("after-register")
        alias_version = current.version if (current is not None and not verdict.passed) else (
            version if verdict.passed else None)
        info.update(version=version, alias_version=alias_version, runtime_s=time.perf_counter() - t0)
        summary = summary_markdown(info, champs, headline)
        fcf_series = (profile.cash_flow.free_cash_flow, profile.cash_flow.fcf_ttm) if rollup else ()
        flavor.log_retrain(client, parent, champions=champs, scores=scores, forecasts=fc,
                           headline=headline, summary=summary, verdict=verdict, version=version,
                           backtest_run=bt_run, fcf_series=fcf_series,
                           extra_metrics={"runtime_s": info["runtime_s"]},
                           params={**config.as_params(), "candidates": ",".join(candidates),
                                   "series": ",".join(series), "tolerance": s.tolerance, "company": profile.name,
                                   "model_name": model_name, "alias": s.alias,
                                   **{f"rollup.{k}": (",".join(v) if isinstance(v, list) else v)
                                      for k, v in rollup_cfg.items()}})
        if s.out:
            from experiments.io import write_csv, write_text

            write_csv(champs, Path(s.out) / "champions.csv")
            write_csv(fc, Path(s.out) / "forecasts.csv")
            write_text(summary, Path(s.out) / "summary.md")
        if verdict.passed:  # last: the alias never points at a version whose run is incomplete
            flavor.set_alias(client, model_name, s.alias, version)
        status = "FINISHED"
        msg = (f"registered {model_name} version {version}; "
               + (f"alias '{s.alias}' -> version {version}" if verdict.passed
                  else f"alias '{s.alias}' stays on version {alias_version} ({verdict.reason})"))
        return RetrainResult("registered", msg, run_id=parent, version=version,
                             alias_moved=verdict.passed, summary=summary)
    except (KeyboardInterrupt, SystemExit):
        status = "KILLED"
        raise
    finally:
        tracking.end_run_status(client, parent, status)
