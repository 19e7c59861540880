"""MLflow plumbing every tracked command shares: the store, experiments, runs, batches, tags.

Where runs go: ``$MLFLOW_TRACKING_URI`` when set (a server such as ``http://host:5000``),
else a SQLite file ``mlflow.db`` in the current working directory with artifacts under
``./mlartifacts``, so nothing has to be started; ``mlflow ui --backend-store-uri
sqlite:///mlflow.db`` shows those runs.

- connection: `tracking_uri`, `check_tracking_server` (fails in seconds, not after MLflow's
  minutes of HTTP retries), `get_client`, `experiment_id` (experiments are created as
  model-training experiments, ``mlflow.experimentKind = custom_model_development``, so the UI
  opens them on the runs table);
- runs: `run_tags` (data vintage, library version, git commit), `log_dataset` (the data
  vintage as the run's dataset input), `log_batch` (chunks within MLflow's batch limits),
  `start_run` / `end_run` / `end_run_status`, `run_name`, `spec_params`, `log_table`.

The MLflow code of the library lives in this module and the modules built on it:
`experiments.track_backtest` (backtests), `experiments.track_runs` (roll-up, scenarios,
claims, benchmarks) and `experiments.flavor` (the registered pyfunc model and the registry).
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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from features.loader import DataVintage, data_vintage

LOCAL_DB = "mlflow.db"
LOCAL_ARTIFACTS = "mlartifacts"
#: MLflow's per-request limits (mlflow.utils.validation).
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_PARAM_LENGTH = 6000
#: HTTP settings applied (unless already set) once a server answered: fail in ~a minute at
#: worst mid-run instead of MLflow's default of 7 retries with exponential backoff.
FAST_HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
#: The experiment tag MLflow 3's UI reads to open an experiment on its runs table (model
#: training) instead of its GenAI overview (traces).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"


# ------------------------------------------------------------------------------ connection
class TrackingError(RuntimeError):
    """The tracking store cannot be reached or written (the CLI exits with code 3)."""


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


def experiment_id(client, name: str) -> str:
    """Id of experiment `name`, created if missing (local SQLite: artifacts in ./mlartifacts) and
    marked as a model-training experiment (`EXPERIMENT_KIND_TAG`)."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            raise TrackingError(
                f"experiment '{name}' was deleted in {client.tracking_uri}; restore it "
                "(mlflow experiments restore) or pick another name with --experiment"
            )
        if exp.tags.get(EXPERIMENT_KIND_TAG) != MODEL_TRAINING:
            client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
        return exp.experiment_id
    location = None
    db = _sqlite_path(client.tracking_uri)
    if db is not None:
        location = (db.parent / LOCAL_ARTIFACTS).resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=location,
                                        tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING})
    except MlflowException:  # created meanwhile by a concurrent run
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id



# -------------------------------------------------------------------------------------- runs
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


def run_tags(data_path: str | Path | None = None, extra: Mapping[str, Any] | None = None,
             vintage: DataVintage | None = None) -> dict[str, str]:
    """Tags every run gets: data vintage, library version, git commit (when known)."""
    vintage = vintage or data_vintage(data_path)
    tags = vintage.as_tags()
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


def log_dataset(client, run_id: str, frame: pd.DataFrame, data_path: str | Path | None = None,
                vintage: DataVintage | None = None, context: str = "training") -> None:
    """Log the data a run used as its MLflow dataset input: the long frame, named by the data
    file and its vintage (``amzn_quarterly@2026Q2-7f3a91c2d0e4``), sourced from the file, with
    the vintage's sha256 as digest, so the runs table shows which data each run read."""
    import mlflow.data
    from mlflow.entities import DatasetInput, InputTag

    vintage = vintage or data_vintage(data_path)
    path = Path(data_path) if data_path else vintage.path
    frame = frame[[c for c in ("unique_id", "ds", "y") if c in frame.columns]].reset_index(drop=True)
    with warnings.catch_warnings():  # MLflow registers its local-file source twice ("" and "file" schemes)
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        ds = mlflow.data.from_pandas(frame, source=str(path), targets="y" if "y" in frame.columns else None,
                                     name=f"{path.stem}@{vintage.vintage}", digest=vintage.data_sha256[:12])
    client.log_inputs(run_id, datasets=[DatasetInput(dataset=ds._to_mlflow_entity(),
                                                     tags=[InputTag(key="mlflow.data.context", value=context)])])


def run_name(kind: str, vintage: DataVintage | str, models: Sequence[str] = (), **settings) -> str:
    """A parent run name that tells two runs apart, most telling first (the MLflow UI's run
    name column shows about 25 characters): kind, the models (SeasonalNaive, in every
    backtest, left out), settings, data vintage.

    ``run_name("backtest", v, ["SeasonalNaive", "StatsMLCombo"], h=4, w=12)`` ->
    ``backtest StatsMLCombo h4 w12 2026Q2-7f3a91c2`` (more than three models: the first two
    and the count)."""
    label = vintage.vintage if isinstance(vintage, DataVintage) else str(vintage)
    label = label[: label.find("-") + 9] if "-" in label else label
    shown = [m for m in models if m != "SeasonalNaive"] or list(models)
    names = "+".join(shown) if len(shown) <= 3 else "+".join(shown[:2]) + f"+{len(shown) - 2} more"
    parts = [kind, *([names] if names else []), *(f"{k}{v}" for k, v in settings.items()), label]
    return " ".join(parts)[:250]


def runs_url(base: str, experiment_id: str) -> str:
    """The address of an experiment's runs table in the MLflow UI at `base`. MLflow 3.17's UI
    opens experiments on its GenAI overview unless the workflow is model training, a choice it
    keeps per browser (the sidebar toggle) or reads from ``?workflowType=machine_learning``."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"



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


class RunGroup:
    """A parent run and the child runs started under it (`run_group`)."""

    def __init__(self, client, exp_id: str, parent: str):
        self.client, self.exp_id, self.parent = client, exp_id, parent
        self.children: list[str] = []

    def child(self, name: str, tags: Mapping[str, Any] | None = None) -> str:
        """Start a child run of the parent; returns its id."""
        run_id = start_run(self.client, self.exp_id, name, parent_id=self.parent, tags=tags)
        self.children.append(run_id)
        return run_id


@contextmanager
def run_group(client, exp_id: str, name: str, tags: Mapping[str, Any] | None = None) -> Iterator[RunGroup]:
    """A parent run for the ``with`` block: FINISHED when the block ends, FAILED (and every
    child with it) when it raises; a failure to mark them never hides the block's error."""
    group = RunGroup(client, exp_id, start_run(client, exp_id, name, tags=tags))
    try:
        yield group
    except BaseException:
        for run_id in [*group.children, group.parent]:
            quiet_fail(client, run_id)
        raise
    end_run(client, group.parent)


def end_run(client, run_id: str, ok: bool = True) -> None:
    client.set_terminated(run_id, status="FINISHED" if ok else "FAILED")


def quiet_fail(client, run_id: str) -> None:
    try:
        end_run(client, run_id, ok=False)
    except Exception:  # the original error matters more than this one
        pass


def end_run_status(client, run_id: str, status: str = "FINISHED") -> None:
    """Close a run as FINISHED, FAILED or KILLED; never masks the error that ended the job."""
    try:
        client.set_terminated(run_id, status=status)
    except Exception:
        if status == "FINISHED":
            raise


def is_tracking_error(exc: BaseException) -> bool:
    """True for errors of the tracking store or of the HTTP connection to it (exit code 3)."""
    from mlflow.exceptions import MlflowException

    try:
        from requests.exceptions import ConnectionError as HTTPConnectionError
    except ImportError:  # pragma: no cover
        HTTPConnectionError = OSError
    return isinstance(exc, (TrackingError, MlflowException, HTTPConnectionError))


def spec_params(spec) -> dict[str, Any]:
    """Run parameters of a `forecasting.methods.registry.ModelSpec` (``kind``: the engine that fits it)."""
    out: dict[str, Any] = {
        "model": spec.name,
        "family": spec.family,
        "kind": spec.kind,
        "min_obs": spec.min_obs,
        "fallback": spec.fallback or "none",
        "complexity": spec.complexity,
    }
    if spec.members:
        out["members"] = ",".join(spec.members)
    out.update({f"model.{k}": v for k, v in dict(spec.params).items()})
    return out


def log_table(client, run_id: str, table: pd.DataFrame, name: str) -> None:
    """Log `table` as the CSV artifact `name` of run `run_id`."""
    with tempfile.TemporaryDirectory(prefix="fcf-table-") as tmp:
        path = Path(tmp) / name
        table.to_csv(path, index=False)
        client.log_artifact(run_id, str(path))
