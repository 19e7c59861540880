"""The registered MLflow pyfunc model: the retrain's champions and FCF roll-up, recomputable.

The model's only artifact is ``state.json`` (`experiments.retrain.ChampionState`: the
training frame snapshot, the champion of each series, the seed and calibration settings, the
roll-up settings). `predict` refits each champion on that frame and re-runs the roll-up, so
the same state and input give identical numbers, and a new horizon, levels or scenario give
new forecasts (nothing is a stored copy of an output table). The model needs this project
(``pip install -e .``) where it is loaded.

Input (one row)::

    horizon  int      quarters ahead, 1..8
    levels   str      interval levels in percent, e.g. "80,95"
    scenario str      optional: a scenario YAML path or a JSON object (forecasting/scenarios.py)

Output: ``unique_id, ds, model, model_used, mean, lo-<L>.., hi-<L>..`` (see
`experiments.retrain.predict_from_state`).

Usage::

    import mlflow, pandas as pd
    m = mlflow.pyfunc.load_model("models:/amazon-fcf@champion")
    m.predict(pd.DataFrame({"horizon": [4], "levels": ["80,95"]}))
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import mlflow.pyfunc
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

STATE_ARTIFACT = "state"
INPUT_COLUMNS = ("horizon", "levels", "scenario")


class FcfChampionModel(mlflow.pyfunc.PythonModel):
    """Champion forecasts + FCF roll-up from the ``state`` artifact (see the module docstring)."""

    def load_context(self, context) -> None:
        from experiments.retrain import ChampionState

        path = Path(context.artifacts[STATE_ARTIFACT])
        self.state_ = ChampionState.from_json(path.read_text(encoding="utf-8"))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from experiments.retrain import predict_from_state

        if not hasattr(self, "state_"):
            self.load_context(context)
        frame = pd.DataFrame(model_input)
        if len(frame) != 1:
            raise ValueError("model input must have exactly one row (horizon, levels[, scenario]); "
                             f"got {len(frame)}")
        if "horizon" not in frame.columns:
            raise ValueError(f"model input needs a 'horizon' column; got columns {list(frame.columns)}")
        row = frame.iloc[0]
        return predict_from_state(self.state_, int(row["horizon"]), row.get("levels", "80,95"),
                                  row.get("scenario"))


def input_example(h: int = 4, level: Sequence[int] = (80, 95)) -> pd.DataFrame:
    """The one-row input the retrain's ``forecasts.csv`` answers."""
    return pd.DataFrame({"horizon": [int(h)], "levels": [",".join(str(v) for v in sorted(level))]})


def signature(example_output: pd.DataFrame) -> ModelSignature:
    """Input schema (``scenario`` optional) and the output columns of `example_output`."""
    inputs = Schema([ColSpec("long", "horizon"), ColSpec("string", "levels"),
                     ColSpec("string", "scenario", required=False)])
    kinds = {"unique_id": "string", "model": "string", "model_used": "string", "ds": "datetime"}
    outputs = Schema([ColSpec(kinds.get(c, "double"), c) for c in example_output.columns])
    return ModelSignature(inputs=inputs, outputs=outputs)
