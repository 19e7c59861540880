"""The registered model: the MLflow pyfunc flavour of a retrain and the model registry.

Everything MLflow needs to register, load and serve the retrain's result lives here, as
mlforecast keeps its MLflow code in one ``flavor.py``:

- `FcfChampionModel`, a ``mlflow.pyfunc.PythonModel``. Artifacts: ``state.json``
  (`experiments.champion_state.ChampionState`: the training frame snapshot, the champion of
  each series, the seed and calibration settings, the company profile and roll-up settings)
  and ``fit.pkl`` (`experiments.champion_state.StoredFit`: the champions' forecasts and the
  roll-up's inputs computed at training time). `predict` for the trained horizon and levels
  (or a subset of them) reads the stored fit, a scenario re-simulates the stored roll-up
  inputs (well under a second); another horizon or level set needs ``params={"refit": True}``,
  which refits every champion and re-runs the roll-up from the state (minutes; the same numbers
  as the stored fit for its horizon and levels). A model saved without ``fit.pkl`` refits.
  The model needs this project (``pip install -e .``) where it is loaded. Input, one row::

      horizon  int      quarters ahead, 1..8
      levels   str      interval levels in percent, e.g. "80,95"
      scenario str      optional: a scenario YAML path or a JSON object (forecasting/scenarios/file.py)

  Params: ``refit`` (bool, default False).

  Output: ``unique_id, ds, model, model_used, mean, lo-<L>.., hi-<L>..``
  (`experiments.champion_state.predict_from_state`). Usage::

      import mlflow, pandas as pd
      m = mlflow.pyfunc.load_model("models:/amazon-fcf@champion")
      m.predict(pd.DataFrame({"horizon": [4], "levels": ["80,95"]}))            # stored fit
      m.predict(pd.DataFrame({"horizon": [6], "levels": ["50"]}), params={"refit": True})

- the registry: `save_pyfunc`, `log_and_register` (a new version, signature and input example
  logged), `set_alias`, `champion_version`, and the retrain runs' bookkeeping:
  `finished_retrain`, `close_stale_retrains`, `log_retrain`.

A retrain parent run (experiment ``<company>-retrain``) is tagged ``fcf.kind=retrain``,
``fcf.vintage``, ``fcf.model_name``; nested under it the backtest run. Parent metrics:
``champion_mase.<series>``, ``champion_rel_mase.<series>``, ``gate.new_score``,
``gate.current_score``, ``gate.passed``, FCF quantiles (``fcf.p10``, ``fcf_ttm.p50``... with
step = quarter ahead), ``runtime_s``. Tags: ``fcf.gate``, ``fcf.gate_reason``,
``fcf.model_version``. Artifacts: ``model/``, ``champions.csv``, ``scores.csv``,
``forecasts.csv``, ``fcf_headline.csv``, ``summary.md``. Each registered version carries the
tags ``fcf.champions`` (JSON series -> model), ``fcf.vintage`` and ``fcf.gate``.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

from forecasting.rolling.champions import GateVerdict
from experiments.track_runs import rollup_metrics
from experiments.tracking import log_batch, metric_key
from forecasting.core.frames import interval_quantiles, quantile_label
from features.errors import OptionError

STATE_ARTIFACT = "state"
FIT_ARTIFACT = "fit"
INPUT_COLUMNS = ("horizon", "levels", "scenario")
KIND_TAG = "fcf.kind"
VINTAGE_TAG = "fcf.vintage"
MODEL_NAME_TAG = "fcf.model_name"
LOCK_TAG = "fcf.lock"
CHAMPIONS_TAG = "fcf.champions"
MODEL_ARTIFACT = "model"


class FcfChampionModel(mlflow.pyfunc.PythonModel):
    """Champion forecasts + FCF roll-up from the ``state`` artifact (see the module docstring)."""

    def load_context(self, context) -> None:
        from experiments.champion_state import ChampionState, StoredFit

        path = Path(context.artifacts[STATE_ARTIFACT])
        self.state_ = ChampionState.from_json(path.read_text(encoding="utf-8"))
        fit = context.artifacts.get(FIT_ARTIFACT)
        self.fit_ = StoredFit.from_bytes(Path(fit).read_bytes()) if fit else None

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from experiments.champion_state import predict_from_state

        if not hasattr(self, "state_"):
            self.load_context(context)
        frame = pd.DataFrame(model_input)
        if len(frame) != 1:
            raise OptionError("model input must have exactly one row (horizon, levels[, scenario]); "
                             f"got {len(frame)}")
        if "horizon" not in frame.columns:
            raise OptionError(f"model input needs a 'horizon' column; got columns {list(frame.columns)}")
        row = frame.iloc[0]
        refit = (params or {}).get("refit", False)
        if not isinstance(refit, (bool, np.bool_)):
            raise OptionError(f"params refit must be true or false; got {refit!r}")
        horizon, levels, scenario = int(row["horizon"]), row.get("levels", "80,95"), row.get("scenario")
        if self.fit_ is None or refit:
            return predict_from_state(self.state_, horizon, levels, scenario)
        return self.fit_.predict(horizon, levels, scenario, state=self.state_)


def input_example(h: int = 4, level: Sequence[int] = (80, 95)) -> pd.DataFrame:
    """The one-row input the retrain's ``forecasts.csv`` answers."""
    return pd.DataFrame({"horizon": [int(h)], "levels": [",".join(str(v) for v in sorted(level))]})


def signature(example_output: pd.DataFrame) -> ModelSignature:
    """Input schema (``scenario`` optional) and the output columns of `example_output`."""
    inputs = Schema([ColSpec("long", "horizon"), ColSpec("string", "levels"),
                     ColSpec("string", "scenario", required=False)])
    kinds = {"unique_id": "string", "model": "string", "model_used": "string", "ds": "datetime"}
    outputs = Schema([ColSpec(kinds.get(c, "double"), c) for c in example_output.columns])
    return ModelSignature(inputs=inputs, outputs=outputs,
                          params=ParamSchema([ParamSpec("refit", "boolean", False)]))


# ------------------------------------------------------------------------------ registry
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
                example_output: pd.DataFrame, fit: bytes | None = None) -> Path:
    """Save the retrain's pyfunc model (`FcfChampionModel`) to the new folder `path`: the
    ``state`` artifact, the stored ``fit`` (`experiments.champion_state.StoredFit.to_bytes`;
    None: every predict refits), a signature and the one-row input example."""
    import logging

    path = Path(path)
    mlflow_log = logging.getLogger("mlflow")
    old_level = mlflow_log.level
    with tempfile.TemporaryDirectory(prefix="fcf-state-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # type-hint and cloudpickle advice from MLflow
        mlflow_log.setLevel(logging.ERROR)
        try:
            state = Path(tmp) / "state.json"
            state.write_text(state_json, encoding="utf-8")
            artifacts = {STATE_ARTIFACT: str(state)}
            if fit is not None:
                (Path(tmp) / "fit.pkl").write_bytes(fit)
                artifacts[FIT_ARTIFACT] = str(Path(tmp) / "fit.pkl")
            mlflow.pyfunc.save_model(str(path), python_model=FcfChampionModel(),
                                     artifacts=artifacts,
                                     signature=signature(example_output),
                                     input_example=input_example(input_h, level),
                                     pip_requirements=_pip_requirements())
        finally:
            mlflow_log.setLevel(old_level)
    return path


def log_and_register(client, run_id: str, state_json: str, name: str, *, input_h: int,
                     level: Sequence[int], example_output: pd.DataFrame, fit: bytes | None = None,
                     version_tags: Mapping[str, Any] | None = None, description: str = "",
                     model_description: str = "Segment champions and FCF roll-up (fcf retrain)") -> str:
    """Save the pyfunc model (`save_pyfunc`) as the run's ``model/`` artifact and register it
    as a new version of `name` (created if missing); returns the version. Previous versions
    and aliases are left as they are."""
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="fcf-model-") as tmp:
        folder = save_pyfunc(Path(tmp) / MODEL_ARTIFACT, state_json, input_h=input_h, level=level,
                             example_output=example_output, fit=fit)
        client.log_artifacts(run_id, str(folder), MODEL_ARTIFACT)
    try:
        client.create_registered_model(name, description=model_description)
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
                verdict: GateVerdict, version: str, backtest_run: str, fcf_series: Sequence[str] = (),
                params: Mapping[str, Any], extra_metrics: Mapping[str, float] | None = None) -> None:
    """Metrics, params, tags and table artifacts of a retrain parent run (see the module
    docstring); `fcf_series`: the FCF and TTM FCF series of the roll-up rows of `forecasts`."""
    ms = []
    for r in champions.itertuples(index=False):
        ms += [(metric_key("champion_mase", r.unique_id), r.mase, 0),
               (metric_key("champion_rel_mase", r.unique_id), r.rel_mase, 0)]
    ms += [("gate.new_score", verdict.new_score, 0), ("gate.current_score", verdict.current_score, 0),
           ("gate.passed", float(bool(verdict.passed)), 0)]
    ms += [(metric_key(k), v, 0) for k, v in (extra_metrics or {}).items()]
    roll = forecasts[forecasts["model"] == "Rollup"]
    if len(roll):
        q = roll[["unique_id", "ds", "mean"] + [c for c in roll.columns if c.startswith(("lo-", "hi-"))]]
        levels = sorted({int(c[3:]) for c in q.columns if c.startswith(("lo-", "hi-"))})
        ren = {c: quantile_label(p) for c, p in interval_quantiles(levels).items()}
        ms += rollup_metrics(q[q["unique_id"].isin(list(fcf_series))].rename(columns=ren))
    if headline is not None:
        for step, r in enumerate(headline.itertuples(index=False), start=1):
            ms += [("fcf_ttm_headline.p10", r.P10, step), ("fcf_ttm_headline.p50", r.P50, step),
                   ("fcf_ttm_headline.p90", r.P90, step)]
    log_batch(client, run_id, ms, params=params,
              tags={"fcf.gate": "passed" if verdict.passed else "failed",
                    "fcf.gate_reason": verdict.reason, "fcf.model_version": version,
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
