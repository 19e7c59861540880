"""All MLflow code of the library (nothing else imports ``mlflow``).

Where runs go: ``$MLFLOW_TRACKING_URI`` when set (a server such as ``http://host:5000``),
else a SQLite file ``mlflow.db`` in the current working directory with artifacts under
``./mlartifacts``, so nothing has to be started; ``mlflow ui --backend-store-uri
sqlite:///mlflow.db`` shows those runs.

Sections:

- connection: `tracking_uri`, `check_tracking_server` (fails in seconds, not after MLflow's
  minutes of HTTP retries), `get_client`, `experiment_id`;
- generic helpers: `run_tags` (data vintage, library version, git commit), `log_batch`
  (chunks within MLflow's batch limits), `start_run` / `end_run`, `spec_params`;
- backtests: `log_backtest` -- one parent run per backtest, one nested child run per model.
- claims: `log_claims` (``fcf claims``) -- one run per claims file.
- retrain and model registry (end of file): `finished_retrain`, `save_pyfunc`,
  `log_and_register`, `set_alias`, `champion_version`, `log_retrain` (``fcf retrain``).

Backtest metric keys (child run of each model; ``step`` is the horizon in quarters where
noted, 0 for scalars):

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
the last cutoff and its members) and the artifact ``choices.csv`` (``model, unique_id,
cutoff, chosen, members``: every series and cutoff); the parent run holds the same table.

The parent run holds the backtest settings, ``gm_rel_mase.<model>`` / ``mean_mase.<model>``
for comparison, a ``best_run`` tag naming the best child run (lowest ``gm_rel_mase``) and
the artifacts: ``backtest.csv``, ``pointwise.csv``, ``leaderboard.md`` / ``.html``,
``plots/<series>.png`` and, when a selecting ensemble ran, ``choices.csv``.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

DEFAULT_EXPERIMENT = "amazon-backtest"
LOCAL_DB = "mlflow.db"
LOCAL_ARTIFACTS = "mlartifacts"
#: MLflow's per-request limits (mlflow.utils.validation).
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_PARAM_LENGTH = 6000
#: HTTP settings applied (unless already set) once a server answered: fail in ~a minute at
#: worst mid-run instead of MLflow's default of 7 retries with exponential backoff.
FAST_HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


class TrackingError(RuntimeError):
    """The tracking store cannot be reached or written (the CLI exits with code 3)."""


# ------------------------------------------------------------------------------ connection
def tracking_uri(cwd: str | Path | None = None) -> str:
    """``$MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlflow.db`` (absolute path)."""
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if env:
        return env
    base = Path(cwd) if cwd is not None else Path.cwd()
    return f"sqlite:///{(base / LOCAL_DB).resolve()}"


def is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def check_tracking_server(uri: str | None = None, timeout_s: float = 5.0) -> str:
    """Check that the tracking store at `uri` answers; return the URI.

    For ``http(s)`` URIs this is one plain HTTP GET of ``<uri>/health`` (falling back to the
    REST API's experiment search when a proxy hides ``/health``) bounded by `timeout_s`,
    instead of MLflow's client which retries for minutes. For a local SQLite file it checks
    that the folder is writable.

    Raises:
        TrackingError: naming the URI and how to fix it.
    """
    uri = uri or tracking_uri()
    if is_remote(uri):
        base = uri.rstrip("/")
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        for path in ("/health", "/api/2.0/mlflow/experiments/search?max_results=1"):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                with urllib.request.urlopen(base + path, timeout=left) as resp:
                    if resp.status == 200:
                        return _answered(uri)
                    last = f"HTTP {resp.status}"
            except urllib.error.HTTPError as exc:
                if exc.code in (401, 403):  # up, but needs credentials: MLflow's client sends them
                    return _answered(uri)
                last = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError, ValueError) as exc:
                last = str(getattr(exc, "reason", exc))
                break  # connection refused / timed out: the second path will not do better
        raise TrackingError(
            f"MLflow tracking server at {uri} cannot be reached ({last}, checked within "
            f"{timeout_s:g}s). Start it (mlflow server --host 127.0.0.1 --port 5000 "
            "--backend-store-uri sqlite:///mlflow.db), fix MLFLOW_TRACKING_URI, or unset it to "
            "log to ./mlflow.db; pass --no-track to skip tracking."
        )
    db = _sqlite_path(uri)
    if db is not None:
        folder = db.parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise TrackingError(
                f"MLflow tracking store {uri}: folder {folder} does not exist or is not writable; "
                "run from a writable folder or set MLFLOW_TRACKING_URI"
            )
    return uri


def _answered(uri: str) -> str:
    for k, v in FAST_HTTP_ENV.items():
        os.environ.setdefault(k, v)
    return uri


def get_client(uri: str | None = None):
    """An `MlflowClient` bound to `uri` (default `tracking_uri()`); no global state is set."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri or tracking_uri())


def experiment_id(client, name: str = DEFAULT_EXPERIMENT) -> str:
    """Id of experiment `name`, created if missing (local SQLite: artifacts in ./mlartifacts)."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            raise TrackingError(
                f"experiment '{name}' was deleted in {client.tracking_uri}; restore it "
                "(mlflow experiments restore) or pick another name with --experiment"
            )
        return exp.experiment_id
    location = None
    db = _sqlite_path(client.tracking_uri)
    if db is not None:
        location = (db.parent / LOCAL_ARTIFACTS).resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # created meanwhile by a concurrent run
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


# -------------------------------------------------------------------------- generic helpers
def library_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fcf-forecasting")
    except PackageNotFoundError:
        return "unknown"


def git_commit(path: str | Path | None = None) -> str | None:
    """The commit of the source checkout (None outside a git checkout or without git)."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", sha) else None


def run_tags(data_path: str | Path | None = None, extra: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Tags every run gets: data vintage, library version, git commit (when known)."""
    from features.loader import data_vintage

    tags = {k: str(v) for k, v in data_vintage(data_path).items()}
    tags["data_file"] = str(data_path) if data_path else "shipped"
    tags["fcf_version"] = library_version()
    tags["mlflow.source.name"] = "fcf"
    tags["mlflow.source.type"] = "LOCAL"
    commit = git_commit()
    if commit:
        tags["git_commit"] = commit
        tags["mlflow.source.git.commit"] = commit
    tags.update({k: str(v) for k, v in (extra or {}).items()})
    return tags


_KEY_OK = re.compile(r"[^0-9A-Za-z_\-. /]")


def metric_key(*parts: str) -> str:
    """Join parts with '.' and replace characters MLflow rejects in keys by '_'."""
    return _KEY_OK.sub("_", ".".join(str(p) for p in parts))[:250]


def log_batch(
    client,
    run_id: str,
    metrics: Sequence | Iterable = (),
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
) -> int:
    """Log metrics (`mlflow.entities.Metric` or ``(key, value, step)`` tuples), params and tags
    in as few ``log_batch`` calls as MLflow's limits allow; non-finite values are skipped.

    Returns the number of requests made.
    """
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    ms = []
    for m in metrics:
        if not isinstance(m, Metric):
            key, value, step = m
            m = Metric(key, float(value), now, int(step))
        if m.value is not None and math.isfinite(m.value):
            ms.append(m)
    ps = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in (params or {}).items()]
    ts = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
    calls = 0
    while ms or ps or ts:
        p_chunk, ps = ps[:MAX_PARAMS_TAGS_PER_BATCH], ps[MAX_PARAMS_TAGS_PER_BATCH:]
        t_chunk, ts = ts[:MAX_PARAMS_TAGS_PER_BATCH], ts[MAX_PARAMS_TAGS_PER_BATCH:]
        room = MAX_METRICS_PER_BATCH - len(p_chunk) - len(t_chunk)
        m_chunk, ms = ms[:room], ms[room:]
        client.log_batch(run_id, metrics=m_chunk, params=p_chunk, tags=t_chunk)
        calls += 1
    return calls


def start_run(client, exp_id: str, name: str, parent_id: str | None = None,
              tags: Mapping[str, Any] | None = None) -> str:
    """Create a run (nested under `parent_id` when given) and return its id."""
    t = {k: str(v) for k, v in (tags or {}).items()}
    if parent_id:
        t["mlflow.parentRunId"] = parent_id
    return client.create_run(exp_id, tags=t, run_name=name).info.run_id


def end_run(client, run_id: str, ok: bool = True) -> None:
    client.set_terminated(run_id, status="FINISHED" if ok else "FAILED")


def spec_params(spec) -> dict[str, Any]:
    """Run parameters of a `forecasting.models.ModelSpec`."""
    out: dict[str, Any] = {
        "model": spec.name,
        "family": spec.family,
        "engine": spec.engine,
        "min_obs": spec.min_obs,
        "fallback": spec.fallback or "none",
        "complexity": spec.complexity,
    }
    if spec.members:
        out["members"] = ",".join(spec.members)
    out.update({f"model.{k}": v for k, v in dict(spec.params).items()})
    return out


# -------------------------------------------------------------------------------- backtests
def backtest_tables(bt: pd.DataFrame, history: pd.DataFrame, config) -> dict[str, pd.DataFrame]:
    """Everything `log_backtest` logs, computed once: pointwise rows and summaries."""
    from forecasting.metrics import leaderboard, pointwise, summarize

    level = tuple(config.level)
    points = pointwise(bt, history, level, config.season_length)
    board = leaderboard(points, level)
    from forecasting.autocombo import choices

    # share of forecasts a model handed to its fallback (short series, failed or NaN fits); a
    # selecting ensemble's model_used names the candidate it chose, which is no fallback
    chosen = choices(bt)
    selector = bt["model"].isin(set(chosen["model"]))
    fell_back = ((bt["model_used"] != bt["model"]) & ~selector).groupby(bt["model"]).mean()
    board["fallback_share"] = board["model"].map(fell_back).astype(float)
    return {
        "choices": chosen,
        "points": points,
        "leaderboard": board,
        "series": summarize(points, ("unique_id", "model"), level),
        "series_step": summarize(points, ("unique_id", "model", "step"), level),
        "step": summarize(points, ("model", "step"), level),
    }


def _gm(s: pd.Series) -> float:
    v = s.to_numpy(dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.exp(np.log(v).mean())) if len(v) else float("nan")


def model_metrics(tables: Mapping[str, pd.DataFrame], model: str, level: Sequence[int]) -> list[tuple]:
    """``(key, value, step)`` metrics of one model (see the module docstring for the keys)."""
    out: list[tuple] = []
    lo = min(level)
    ss = tables["series_step"]
    for r in ss[ss["model"] == model].itertuples(index=False):
        d = r._asdict()
        for name in ("mase", "rel_mase", "smape", f"coverage_{lo}"):
            out.append((metric_key(name, r.unique_id), d[name], int(r.step)))
    se = tables["series"]
    for r in se[se["model"] == model].itertuples(index=False):
        out.append((metric_key("series_mase", r.unique_id), r.mase, 0))
        out.append((metric_key("series_rel_mase", r.unique_id), r.rel_mase, 0))
    st = tables["step"]
    gm_step = ss[ss["model"] == model].groupby("step")["rel_mase"].apply(_gm)
    for r in st[st["model"] == model].itertuples(index=False):
        d = r._asdict()
        step = int(r.step)
        out += [("mase", r.mase, step), ("rel_mase", r.rel_mase, step), ("smape", r.smape, step),
                ("step_gm_rel_mase", gm_step.get(r.step, np.nan), step)]
        out += [(f"step_coverage_{lv}", d[f"coverage_{lv}"], step) for lv in level]
    lb = tables["leaderboard"].set_index("model")
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


def _model_choices(tables: Mapping[str, pd.DataFrame], model: str) -> pd.DataFrame:
    chosen = tables.get("choices")
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


def log_table(client, run_id: str, table: pd.DataFrame, name: str) -> None:
    """Log `table` as the CSV artifact `name` of run `run_id`."""
    with tempfile.TemporaryDirectory(prefix="fcf-table-") as tmp:
        path = Path(tmp) / name
        table.to_csv(path, index=False)
        client.log_artifact(run_id, str(path))


def write_backtest_artifacts(bt: pd.DataFrame, history: pd.DataFrame, tables: Mapping[str, pd.DataFrame],
                             folder: str | Path, level: Sequence[int] = (80, 95), plots: bool = True) -> Path:
    """Write the parent run's artifacts into `folder` (tables, leaderboards, one PNG per series)."""
    from experiments.leaderboard import leaderboard_html, leaderboard_markdown

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bt.to_csv(folder / "backtest.csv", index=False)
    tables["points"].to_csv(folder / "pointwise.csv", index=False)
    tables["leaderboard"].to_csv(folder / "leaderboard.csv", index=False)
    if len(tables.get("choices", ())):
        tables["choices"].to_csv(folder / "choices.csv", index=False)
    (folder / "leaderboard.md").write_text(leaderboard_markdown(tables), encoding="utf-8")
    (folder / "leaderboard.html").write_text(leaderboard_html(tables), encoding="utf-8")
    if plots:
        from experiments.plots import save_series_plots

        save_series_plots(bt, history, tables["series"], folder / "plots", level=min(level),
                          overall_best=str(tables["leaderboard"]["model"].iloc[0]))
    return folder


def log_backtest(
    bt: pd.DataFrame,
    history: pd.DataFrame,
    config,
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    uri: str | None = None,
    data_path: str | Path | None = None,
    run_name: str | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
    extra_params: Mapping[str, Any] | None = None,
    extra_tags: Mapping[str, Any] | None = None,
    extra_metrics: Mapping[str, float] | None = None,
    plots: bool = True,
) -> str:
    """Log one backtest: a parent run and one nested child run per model; returns the parent id.

    Args:
        bt: `forecasting.backtest.backtest` output (``unique_id, cutoff, ds, step, y, model,
            model_used, mean, lo-*, hi-*``).
        history: the long frame ``unique_id, ds, y`` the backtest ran on (scales MASE).
        config: the `forecasting.backtest.BacktestConfig` used.
        tables: `backtest_tables(bt, history, config)` when the caller already has them.
        extra_params, extra_tags, extra_metrics: more for the parent run (``runtime_s``...).
    Raises:
        TrackingError: the store failed mid-way (the runs created are marked FAILED).
    Child runs are created SeasonalNaive first, then in leaderboard order.
    """
    from mlflow.exceptions import MlflowException

    if bt.empty:
        raise ValueError("the backtest frame is empty: nothing to log")
    uri = uri or tracking_uri()
    try:
        with warnings.catch_warnings():  # SQLAlchemy deprecation noise from MLflow's store
            warnings.simplefilter("ignore", DeprecationWarning)
            return _log_backtest(bt, history, config, experiment, uri, data_path, run_name, tables,
                                 extra_params, extra_tags, extra_metrics, plots)
    except (MlflowException, OSError) as exc:
        raise TrackingError(f"logging the backtest to {uri} failed: {exc}") from exc


def _log_backtest(bt, history, config, experiment, uri, data_path, run_name, tables,
                  extra_params, extra_tags, extra_metrics, plots) -> str:
    from forecasting.metrics import BASELINE
    from forecasting.models import get_spec, resolve

    level = tuple(config.level)
    tables = tables or backtest_tables(bt, history, config)
    models = list(tables["leaderboard"]["model"])
    models = sorted(models, key=lambda m: m != BASELINE)  # stable: baseline first
    resolve(models)  # registers extension specs so get_spec finds every model
    client = get_client(uri)
    exp_id = experiment_id(client, experiment)
    series = sorted(bt["unique_id"].unique())
    tags = run_tags(data_path, extra_tags)
    parent = start_run(client, exp_id, run_name or f"backtest-h{config.h}-w{config.n_windows}",
                       tags={**tags, "run_kind": "backtest"})
    children: dict[str, str] = {}
    ok = False
    try:
        lb = tables["leaderboard"].set_index("model")
        params = {**config.as_params(), "n_series": len(series), "series": ",".join(series),
                  "models": ",".join(models), "n_rows": len(bt), **(extra_params or {})}
        for model in models:
            spec = get_spec(model)
            run_id = start_run(client, exp_id, model, parent_id=parent,
                               tags={**tags, "run_kind": "backtest-model", "model": model,
                                     "family": spec.family})
            children[model] = run_id
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
        parent_metrics += [(k, v, 0) for k, v in (extra_metrics or {}).items()]
        log_batch(client, parent, parent_metrics, params=params,
                  tags={"best_run": children[best], "best_model": best,
                        "baseline_run": children.get(BASELINE, "")})
        with tempfile.TemporaryDirectory(prefix="fcf-artifacts-") as tmp:
            write_backtest_artifacts(bt, history, tables, tmp, level, plots=plots)
            client.log_artifacts(parent, tmp)
        ok = True
    finally:
        if not ok:
            for run_id in children.values():
                _quiet_fail(client, run_id)
        end_run(client, parent, ok)
    return parent


def _quiet_fail(client, run_id: str) -> None:
    try:
        end_run(client, run_id, ok=False)
    except Exception:  # the original error matters more than this one
        pass


# ------------------------------------------------------------------------ FCF roll-up (issue 5)
# Owned by the roll-up engineer. One parent run per `fcf rollup`: parameters of the roll-up,
# FCF quantiles as metrics with ``step`` = quarters ahead (``fcf.p10``, ``fcf_ttm.p50``...),
# and, when the roll-up was backtested, one nested child run per forecaster ("Rollup",
# "SeasonalNaive") with ``mase.<series>``, ``smape.<series>``, ``coverage_80.<series>``,
# ``coverage_95.<series>`` per step (series: free_cash_flow, free_cash_flow_ttm), the same over
# all steps at step 0 (``series_mase.<series>`` ...), and on the parent ``rel_mase.<series>``
# (Rollup / SeasonalNaive) and ``reconciliation.gm_rel_mase.<method>`` (node forecasts'
# MASE relative to the unreconciled ones). Artifacts: ``rollup_quantiles.csv``,
# ``drivers.csv``, ``fanchart.png``, ``rollup_backtest.csv``, ``rollup_scores.csv``,
# ``reconciliation.csv``.
ROLLUP_EXPERIMENT = "amazon-rollup"


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
    """Child-run metrics of one forecaster in the roll-up backtest (see the section comment)."""
    out = []
    names = tuple(n for n in ("mase", "rel_mase", "smape", "coverage_80", "coverage_95", "scaled_crps", "msis_80")
                  if n in by_step.columns)
    for r in by_step[by_step["model"] == model].itertuples(index=False):
        out += [(metric_key(n, r.unique_id), getattr(r, n), int(r.step)) for n in names]
    for r in overall[overall["model"] == model].itertuples(index=False):
        out += [(metric_key("series_" + n, r.unique_id), getattr(r, n), 0) for n in names]
    return out


def rollup_markdown(scores: Mapping[str, pd.DataFrame]) -> str:
    """The roll-up backtest tables as markdown (seasonal naive first in each)."""
    from experiments.leaderboard import rollup_table, to_markdown

    parts = []
    for series in ("free_cash_flow", "free_cash_flow_ttm"):
        t = rollup_table(scores, series).round(3).reset_index()
        parts.append(f"## {series}: MASE relative to seasonal naive by horizon, coverage, scaled CRPS\n\n"
                     + to_markdown(t))
    fy = scores.get("fiscal_years")
    if fy is not None and len(fy):
        parts.append("## fiscal-year FCF\n\n" + to_markdown(fy.round(3)))
    return "\n\n".join(parts) + "\n"


def log_rollup(
    result,
    *,
    scores: Mapping[str, pd.DataFrame] | None = None,
    backtest: pd.DataFrame | None = None,
    fanchart: str | Path | None = None,
    experiment: str = ROLLUP_EXPERIMENT,
    uri: str | None = None,
    data_path: str | Path | None = None,
    run_name: str | None = None,
    extra_params: Mapping[str, Any] | None = None,
) -> str:
    """Log a `forecasting.rollup.RollupResult` (and optionally its backtest scores from
    `forecasting.rollup.score_rollup`) as a parent run; returns its id.

    Raises:
        TrackingError: the store failed mid-way (the runs created are marked FAILED).
    """
    from mlflow.exceptions import MlflowException

    uri = uri or tracking_uri()
    try:
        return _log_rollup(result, scores, backtest, fanchart, experiment, uri, data_path,
                           run_name, extra_params)
    except (MlflowException, OSError) as exc:
        raise TrackingError(f"logging the roll-up to {uri} failed: {exc}") from exc


def _log_rollup(result, scores, backtest, fanchart, experiment, uri, data_path, run_name,
                extra_params) -> str:
    client = get_client(uri)
    exp_id = experiment_id(client, experiment)
    tags = run_tags(data_path, {"run_kind": "rollup"})
    params = {**result.params, **(extra_params or {})}
    parent = start_run(client, exp_id, run_name or f"rollup-{params.get('origin', '')}-h{params.get('h', '')}",
                       tags=tags)
    children: list[str] = []
    ok = False
    try:
        quantiles = pd.concat([result.quarterly, result.ttm], ignore_index=True)
        metrics = rollup_metrics(quantiles)
        if scores is not None:
            overall = scores["overall"]
            for model in overall["model"].unique():
                run_id = start_run(client, exp_id, str(model), parent_id=parent,
                                   tags={**tags, "run_kind": "rollup-backtest", "model": str(model)})
                children.append(run_id)
                log_batch(client, run_id, rollup_backtest_metrics(scores["by_step"], overall, model),
                          params={**params, "forecaster": str(model)})
                end_run(client, run_id)
            for model, prefix in (("Rollup", ""), ("RollupCalibrated", "calibrated.")):
                roll = overall[overall["model"] == model]
                for name in ("rel_mase", "coverage_80", "coverage_95", "scaled_crps", "msis_80"):
                    if name in roll.columns:
                        metrics += [(metric_key(prefix + name, r.unique_id), getattr(r, name), 0)
                                    for r in roll.itertuples()]
            fy = scores.get("fiscal_years")
            if fy is not None and len(fy):
                for r in fy[fy["model"].isin(["Rollup", "RollupCalibrated"])].itertuples():
                    prefix = "fy_" + r.which + (".calibrated" if r.model == "RollupCalibrated" else "")
                    metrics += [(metric_key(prefix, n), getattr(r, n), 0)
                                for n in ("rel_mase", "coverage_80", "scaled_crps") if pd.notna(getattr(r, n))]
            rec = scores.get("reconciliation")
            if rec is not None and len(rec):
                gm = rec.drop_duplicates("method").set_index("method")["gm_rel_to_base"]
                metrics += [(metric_key("reconciliation.gm_rel_mase", m), v, 0) for m, v in gm.items()]
        log_batch(client, parent, metrics, params=params)
        with tempfile.TemporaryDirectory(prefix="fcf-rollup-") as tmp:
            quantiles.to_csv(Path(tmp) / "rollup_quantiles.csv", index=False)
            result.drivers.to_csv(Path(tmp) / "drivers.csv", index=False)
            choices = getattr(result, "choices", None)
            if choices is not None:
                choices.to_csv(Path(tmp) / "champions.csv", index=False)
            if backtest is not None:
                backtest.backtest.to_csv(Path(tmp) / "rollup_backtest.csv", index=False)
                backtest.choices.to_csv(Path(tmp) / "champions_backtest.csv", index=False)
                backtest.factors.to_csv(Path(tmp) / "calibration_factors.csv", index=False)
            if scores is not None:
                for key, name in (("by_step", "rollup_scores"), ("overall", "rollup_overall"),
                                  ("fiscal_years", "fiscal_years"), ("cashflow_by_step", "cashflow_variants"),
                                  ("nodes_by_step", "node_scores"), ("reconciliation", "reconciliation")):
                    if scores.get(key) is not None and len(scores[key]):
                        scores[key].to_csv(Path(tmp) / f"{name}.csv", index=False)
                (Path(tmp) / "rollup_backtest.md").write_text(rollup_markdown(scores), encoding="utf-8")
            client.log_artifacts(parent, tmp)
        if fanchart is not None and Path(fanchart).is_file():
            client.log_artifact(parent, str(fanchart))
        ok = True
    finally:
        if not ok:
            for run_id in children:
                _quiet_fail(client, run_id)
        end_run(client, parent, ok)
    return parent
SCENARIO_EXPERIMENT = "amazon-scenarios"


def log_scenarios(result, *, fanchart_paths=(), checks: Mapping[str, Sequence[str]] | None = None,
                  experiment: str = SCENARIO_EXPERIMENT, uri: str | None = None,
                  data_path: str | Path | None = None, run_name: str | None = None) -> str:
    """Log a `forecasting.scenarios.ScenarioResult`: one parent run, one child per scenario
    (base first) with its fiscal-year FCF quantiles as metrics, the scenario's drivers and
    sources as params, and the tables, checks and fan charts as artifacts; returns the parent id.

    Raises:
        TrackingError: the store failed mid-way (the runs created are marked FAILED).
    """
    from mlflow.exceptions import MlflowException

    uri = uri or tracking_uri()
    try:
        return _log_scenarios(result, fanchart_paths, checks or {}, experiment, uri, data_path, run_name)
    except (MlflowException, OSError) as exc:
        raise TrackingError(f"logging the scenarios to {uri} failed: {exc}") from exc


def _log_scenarios(result, fanchart_paths, checks, experiment, uri, data_path, run_name) -> str:
    client = get_client(uri)
    exp_id = experiment_id(client, experiment)
    tags = run_tags(data_path, {"run_kind": "scenarios"})
    origin = str(pd.Period(result.inputs.origin, freq="Q"))
    names = list(result.simulations)
    params = {**result.inputs.config.as_params(), "origin": origin, "error_scale": result.inputs.error_scale,
              "scenarios": ",".join(n for n in names if n != "base")}
    parent = start_run(client, exp_id, run_name or f"scenarios-{origin}-h{len(result.inputs.ds)}", tags=tags)
    children: list[str] = []
    ok = False
    try:
        fy = result.fiscal_years()
        quant = result.table()
        for name in names:
            run_id = start_run(client, exp_id, name, parent_id=parent, tags={**tags, "scenario": name})
            children.append(run_id)
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
        ok = True
    finally:
        if not ok:
            for run_id in children:
                _quiet_fail(client, run_id)
        end_run(client, parent, ok)
    return parent


# ------------------------------------------------------------------ end of FCF roll-up section


# ------------------------------------------------------------------ claims
# One parent run per `fcf claims` in experiment ``amazon-claims`` (tag ``run_kind=claims``):
# params from the roll-up and the claims run (`forecasting.claims_run.ClaimsReport.params`);
# per claim ``claim.<id>.probability`` (base case), ``claim.<id>.probability.<scenario>``,
# ``claim.<id>.median`` (single-period claims), ``claim.<id>.realised`` and ``claim.<id>.held``
# (1/0, once decided); the reliability table as ``reliability.n``, ``reliability.mean_probability``
# and ``reliability.observed`` with step = probability bin (0: 0.0-0.1 ... 9: 0.9-1.0); Brier
# scores ``brier.<forecaster>`` (rollup, rollup_raw, seasonal_naive, base_rate; all kinds);
# where outcomes landed against guided ranges, ``guidance.<metric>.share_inside`` /
# ``share_above`` (all guided quarters). Artifacts: ``claims.csv``, ``claims.md``,
# ``claims_by_scenario.csv``, ``guidance_outcomes.csv``, ``calibration_claims.csv``,
# ``reliability.csv``, ``brier.csv``.
CLAIMS_EXPERIMENT = "amazon-claims"
BRIER_KEYS = {"probability": "rollup", "probability_raw": "rollup_raw", "probability_sn": "seasonal_naive",
              "probability_base_rate": "base_rate"}


def claims_metrics(report) -> list[tuple]:
    """``(key, value, step)`` of a `forecasting.claims_run.ClaimsReport` (see the section comment)."""
    from forecasting.claims_calibration import FORECASTERS

    out = []
    for r in report.table.itertuples(index=False):
        out.append((metric_key("claim", r.id, "probability"), r.probability, 0))
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
    g = report.guidance
    if len(g):
        for r in g[g["window"] == "all"].itertuples(index=False):
            out += [(metric_key("guidance", r.metric, n), getattr(r, n), 0) for n in ("share_inside", "share_above")]
    return out


def log_claims(report, *, markdown: str = "", experiment: str = CLAIMS_EXPERIMENT, uri: str | None = None,
               data_path: str | Path | None = None, run_name: str | None = None) -> str:
    """Log a `forecasting.claims_run.ClaimsReport` as one run; returns its id.

    Raises:
        TrackingError: the store failed mid-way (the run is marked FAILED).
    """
    from mlflow.exceptions import MlflowException

    uri = uri or tracking_uri()
    client = get_client(uri)
    run_id = None
    try:
        exp_id = experiment_id(client, experiment)
        params = dict(report.params)
        run_id = start_run(client, exp_id, run_name or f"claims-{report.claims.name}-{params.get('origin', '')}",
                           tags=run_tags(data_path, {"run_kind": "claims", "claims": report.claims.name}))
        log_batch(client, run_id, claims_metrics(report), params=params)
        with tempfile.TemporaryDirectory(prefix="fcf-claims-") as tmp:
            report.table.to_csv(Path(tmp) / "claims.csv", index=False)
            report.by_scenario.to_csv(Path(tmp) / "claims_by_scenario.csv", index=False)
            (Path(tmp) / "claims.md").write_text(markdown, encoding="utf-8")
            if len(report.guidance):
                report.guidance.to_csv(Path(tmp) / "guidance_outcomes.csv", index=False)
            if report.reliability is not None:
                report.calibration.to_csv(Path(tmp) / "calibration_claims.csv", index=False)
                report.reliability.to_csv(Path(tmp) / "reliability.csv", index=False)
                report.brier.to_csv(Path(tmp) / "brier.csv", index=False)
            client.log_artifacts(run_id, tmp)
        end_run(client, run_id)
        return run_id
    except (MlflowException, OSError) as exc:
        if run_id is not None:
            _quiet_fail(client, run_id)
        raise TrackingError(f"logging the claims to {uri} failed: {exc}") from exc
# ------------------------------------------------------------------ end of claims section


# ------------------------------------------------------------------ benchmarks (issue 7)
BENCHMARK_EXPERIMENT = "benchmarks"


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
    run_id = None
    try:
        exp_id = experiment_id(client, experiment)
        run_id = start_run(client, exp_id, name, tags=run_tags(None, {"run_kind": "benchmark", "benchmark": name}))
        ms = benchmark_metrics(table) + [(metric_key(k), v, 0) for k, v in (metrics or {}).items()]
        log_batch(client, run_id, ms, params=params)
        if table is not None:
            with tempfile.TemporaryDirectory(prefix="fcf-benchmark-") as tmp:
                table.to_csv(Path(tmp) / f"{name}.csv", index=False)
                client.log_artifacts(run_id, tmp)
        end_run(client, run_id)
        return run_id
    except (MlflowException, OSError) as exc:
        if run_id is not None:
            _quiet_fail(client, run_id)
        raise TrackingError(f"logging benchmark '{name}' to {uri} failed: {exc}") from exc
# ------------------------------------------------------------------ end of benchmarks section


# ------------------------------------------------------------ retrain and model registry (issue 6)
# Owned by the retrain engineer. One parent run per `fcf retrain` in experiment
# ``amazon-retrain`` tagged ``fcf.kind=retrain``, ``fcf.vintage``, ``fcf.model_name``; nested
# under it the backtest run of `log_backtest` (with its child run per model). Parent metrics:
# ``champion_mase.<series>``, ``champion_rel_mase.<series>``, ``gate.new_score``,
# ``gate.current_score``, ``gate.passed``, FCF quantiles (`rollup_metrics`: ``fcf.p10``,
# ``fcf_ttm.p50``... with step = quarter ahead), ``runtime_s``. Tags: ``fcf.gate``,
# ``fcf.gate_reason``, ``fcf.model_version``. Artifacts: ``model/`` (the pyfunc model,
# `experiments.pyfunc_model`), ``champions.csv``, ``scores.csv``, ``forecasts.csv``,
# ``fcf_headline.csv``, ``summary.md``. Each registered version carries the tags
# ``fcf.champions`` (JSON series -> model), ``fcf.vintage`` and ``fcf.gate``.
RETRAIN_EXPERIMENT = "amazon-retrain"
KIND_TAG = "fcf.kind"
VINTAGE_TAG = "fcf.vintage"
MODEL_NAME_TAG = "fcf.model_name"
LOCK_TAG = "fcf.lock"
CHAMPIONS_TAG = "fcf.champions"
MODEL_ARTIFACT = "model"


def finished_retrain(client, exp_id: str, vintage: str, model_name: str):
    """The newest FINISHED retrain run of data `vintage` for `model_name`, or None."""
    flt = (f"tags.`{KIND_TAG}` = 'retrain' and tags.`{VINTAGE_TAG}` = '{vintage}' and "
           f"tags.`{MODEL_NAME_TAG}` = '{model_name}' and attributes.status = 'FINISHED'")
    runs = client.search_runs([exp_id], filter_string=flt, max_results=1,
                              order_by=["attributes.start_time DESC"])
    return runs[0] if runs else None


def close_stale_retrains(client, exp_id: str, lock_path: str) -> list[str]:
    """Mark KILLED the retrain runs still RUNNING under `lock_path`: the caller holds that lock,
    so their process died (e.g. SIGKILL) before it could close them. Returns their ids."""
    flt = (f"tags.`{KIND_TAG}` = 'retrain' and tags.`{LOCK_TAG}` = '{lock_path}' and "
           "attributes.status = 'RUNNING'")
    ids = [r.info.run_id for r in client.search_runs([exp_id], filter_string=flt, max_results=100)]
    for rid in ids:
        client.set_terminated(rid, status="KILLED")
    return ids


def champion_version(client, name: str, alias: str = "champion"):
    """The `ModelVersion` behind ``name@alias``, or None when the model or alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def _pip_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("mlflow", "statsforecast", "mlforecast", "hierarchicalforecast", "utilsforecast",
                "pandas", "numpy", "scikit-learn", "pyyaml", "lightgbm"):
        try:
            out.append(f"{pkg}=={version(pkg)}")
        except PackageNotFoundError:
            pass
    return out


def save_pyfunc(path: str | Path, state_json: str, *, input_h: int, level: Sequence[int],
                example_output: pd.DataFrame) -> Path:
    """Save the retrain's pyfunc model (`experiments.pyfunc_model.FcfChampionModel`) to the
    new folder `path`: the ``state`` artifact, a signature and the one-row input example."""
    import logging

    import mlflow.pyfunc

    from experiments.pyfunc_model import STATE_ARTIFACT, FcfChampionModel, input_example, signature

    path = Path(path)
    mlflow_log = logging.getLogger("mlflow")
    old_level = mlflow_log.level
    with tempfile.TemporaryDirectory(prefix="fcf-state-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # type-hint and cloudpickle advice from MLflow
        mlflow_log.setLevel(logging.ERROR)
        try:
            state = Path(tmp) / "state.json"
            state.write_text(state_json, encoding="utf-8")
            mlflow.pyfunc.save_model(str(path), python_model=FcfChampionModel(),
                                     artifacts={STATE_ARTIFACT: str(state)},
                                     signature=signature(example_output),
                                     input_example=input_example(input_h, level),
                                     pip_requirements=_pip_requirements())
        finally:
            mlflow_log.setLevel(old_level)
    return path


def log_and_register(client, run_id: str, state_json: str, name: str, *, input_h: int,
                     level: Sequence[int], example_output: pd.DataFrame,
                     version_tags: Mapping[str, Any] | None = None, description: str = "") -> str:
    """Save the pyfunc model (`save_pyfunc`) as the run's ``model/`` artifact and register it
    as a new version of `name` (created if missing); returns the version. Previous versions
    and aliases are left as they are."""
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="fcf-model-") as tmp:
        folder = save_pyfunc(Path(tmp) / MODEL_ARTIFACT, state_json, input_h=input_h, level=level,
                             example_output=example_output)
        client.log_artifacts(run_id, str(folder), MODEL_ARTIFACT)
    try:
        client.create_registered_model(
            name, description="Amazon segment champions and FCF roll-up (fcf retrain)")
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    mv = client.create_model_version(name, source=f"runs:/{run_id}/{MODEL_ARTIFACT}", run_id=run_id,
                                     tags={k: str(v) for k, v in (version_tags or {}).items()},
                                     description=description[:5000])
    return str(mv.version)


def set_alias(client, name: str, alias: str, version: str) -> None:
    client.set_registered_model_alias(name, alias, str(version))


def log_retrain(client, run_id: str, *, champions: pd.DataFrame, scores: pd.DataFrame,
                forecasts: pd.DataFrame, headline: pd.DataFrame | None, summary: str,
                verdict: Mapping[str, Any], version: str, backtest_run: str,
                params: Mapping[str, Any], extra_metrics: Mapping[str, float] | None = None) -> None:
    """Metrics, params, tags and table artifacts of a retrain parent run (see the section comment)."""
    from forecasting.bridge import FCF
    from forecasting.rollup import FCF_TTM

    ms = []
    for r in champions.itertuples(index=False):
        ms += [(metric_key("champion_mase", r.unique_id), r.mase, 0),
               (metric_key("champion_rel_mase", r.unique_id), r.rel_mase, 0)]
    ms += [("gate.new_score", verdict["new_score"], 0), ("gate.current_score", verdict["current_score"], 0),
           ("gate.passed", float(bool(verdict["passed"])), 0)]
    ms += [(metric_key(k), v, 0) for k, v in (extra_metrics or {}).items()]
    roll = forecasts[forecasts["model"] == "Rollup"]
    if len(roll):
        q = roll[["unique_id", "ds", "mean"] + [c for c in roll.columns if c.startswith(("lo-", "hi-"))]]
        tail = {c: (100 - int(c[3:])) / 2 for c in q.columns if c.startswith(("lo-", "hi-"))}
        ren = {c: f"p{t:g}" if c.startswith("lo-") else f"p{100 - t:g}" for c, t in tail.items()}
        ms += rollup_metrics(q[q["unique_id"].isin([FCF, FCF_TTM])].rename(columns=ren))
    if headline is not None:
        for step, r in enumerate(headline.itertuples(index=False), start=1):
            ms += [("fcf_ttm_headline.p10", r.P10, step), ("fcf_ttm_headline.p50", r.P50, step),
                   ("fcf_ttm_headline.p90", r.P90, step)]
    log_batch(client, run_id, ms, params=params,
              tags={"fcf.gate": "passed" if verdict["passed"] else "failed",
                    "fcf.gate_reason": verdict["reason"], "fcf.model_version": version,
                    "backtest_run": backtest_run,
                    "mlflow.note.content": summary[:5000]})
    with tempfile.TemporaryDirectory(prefix="fcf-retrain-") as tmp:
        champions.to_csv(Path(tmp) / "champions.csv", index=False)
        scores.to_csv(Path(tmp) / "scores.csv", index=False)
        forecasts.to_csv(Path(tmp) / "forecasts.csv", index=False)
        if headline is not None:
            headline.to_csv(Path(tmp) / "fcf_headline.csv", index=False)
        (Path(tmp) / "summary.md").write_text(summary, encoding="utf-8")
        client.log_artifacts(run_id, tmp)


def is_tracking_error(exc: BaseException) -> bool:
    """True for errors of the tracking store or of the HTTP connection to it (exit code 3)."""
    from mlflow.exceptions import MlflowException

    try:
        from requests.exceptions import ConnectionError as HTTPConnectionError
    except ImportError:  # pragma: no cover
        HTTPConnectionError = OSError
    return isinstance(exc, (TrackingError, MlflowException, HTTPConnectionError))


def end_run_status(client, run_id: str, status: str = "FINISHED") -> None:
    """Close a run as FINISHED, FAILED or KILLED; never masks the error that ended the job."""
    try:
        client.set_terminated(run_id, status=status)
    except Exception:
        if status == "FINISHED":
            raise
# ------------------------------------------------------------ end of retrain and registry section
