"""A selecting ensemble's choices per series and cutoff, logged to a real MLflow server and read back."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from experiments.track_backtest import RunContext, log_backtest
from forecasting.methods.catalogue import resolve
from forecasting.methods.registry import REGISTRY

pytestmark = pytest.mark.slow


@pytest.fixture()
def selector():
    from forecasting.methods.autocombo import register_selector

    resolve(None)
    before = dict(REGISTRY)
    register_selector("TrackedSelect", ("SeasonalNaive", "Naive"), windows=4, prior_weight=0.0)
    yield "TrackedSelect"
    REGISTRY.clear()
    REGISTRY.update(before)


def _panel() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    ds = pd.date_range(end="2024-12-31", periods=24, freq="QE")
    t = np.arange(24)
    return pd.concat([
        pd.DataFrame({"unique_id": "seasonal", "ds": ds, "y": 200 + 30 * np.sin(np.pi * t / 2) + rng.normal(0, 2, 24)}),
        pd.DataFrame({"unique_id": "trend", "ds": ds, "y": 200 + 10 * t + rng.normal(0, 2, 24)}),
    ], ignore_index=True)


def test_chosen_members_per_series_and_cutoff_are_logged(mlflow_server, selector, tmp_path):
    from mlflow import MlflowClient

    from forecasting.rolling.backtest import BacktestConfig, backtest
    from forecasting.methods.autocombo import choices

    df = _panel()
    config = BacktestConfig(h=2, n_windows=4, warmup_windows=4, models=("SeasonalNaive", selector))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = backtest(df, list(config.models), config, n_jobs=1)
    expected = choices(bt)
    assert len(expected) == 2 * 4  # two series x four evaluated cutoffs
    assert set(expected.loc[expected["unique_id"] == "trend", "chosen"]) == {"Naive"}
    parent_id = log_backtest(bt, df, config, RunContext(experiment="choices-test", uri=mlflow_server), plots=False)

    client = MlflowClient(tracking_uri=mlflow_server)
    parent = client.get_run(parent_id)
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    child = next(c for c in children if c.info.run_name == selector)
    for run_id in (parent_id, child.info.run_id):
        path = client.download_artifacts(run_id, "choices.csv", str(tmp_path / run_id))
        got = pd.read_csv(path, parse_dates=["cutoff"])
        pd.testing.assert_frame_equal(got, expected.assign(cutoff=pd.to_datetime(expected["cutoff"])),
                                      check_dtype=False)
    last = expected.sort_values("cutoff").groupby("unique_id").tail(1).set_index("unique_id")
    assert child.data.params["chosen.trend"] == f"{last.loc['trend', 'chosen']} ({last.loc['trend', 'members']})"
    share = expected["chosen"].value_counts(normalize=True)
    for cand, v in share.items():
        assert np.isclose(child.data.metrics[f"chosen_share.{cand}"], v)
    assert child.data.metrics["fallback_share"] == 0.0, "a choice is not a fallback"
    naive_child = next(c for c in children if c.info.run_name == "SeasonalNaive")
    assert "chosen_share.Naive" not in naive_child.data.metrics
