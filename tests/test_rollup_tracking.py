"""``fcf rollup --backtest`` against a real MLflow server: the roll-up vs direct models vs
seasonal naive table, by horizon, quarterly and TTM, with coverage and the proper scores."""

from __future__ import annotations

import pandas as pd
import pytest

from experiments.cli import main

SMALL = ["--candidates", "AutoETS,SeasonalNaive", "--guided-candidates", "GuidedAutoETS", "--first-cutoff", "2019Q4",
         "--paths", "200", "--backtest", "--backtest-windows", "4"]


@pytest.mark.slow
def test_rollup_backtest_tables_are_read_back_from_the_server(mlflow_server, isolated_cwd, monkeypatch, capsys):
    from experiments import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    code = main(["rollup", *SMALL, "--out", "out", "--experiment", "rollup-backtest-test"])
    out = capsys.readouterr().out
    assert code == 0, out
    client = tracking.get_client(mlflow_server)
    exp = client.get_experiment_by_name("rollup-backtest-test")
    runs = client.search_runs([exp.experiment_id])
    parent = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.data.tags.get("model"): r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert len(parent) == 1
    assert {"Rollup", "RollupCalibrated", "SeasonalNaive", "FCFChampion"} <= set(children)
    p = parent[0]
    for key in ("rel_mase.free_cash_flow", "calibrated.rel_mase.free_cash_flow_ttm",
                "calibrated.coverage_80.free_cash_flow", "calibrated.scaled_crps.free_cash_flow"):
        assert key in p.data.metrics, key
    # per-horizon metrics of a child: step = quarters ahead, equal to the scores file
    scores = pd.read_csv(isolated_cwd / "out" / "rollup_scores.csv")
    hist = client.get_metric_history(children["RollupCalibrated"].info.run_id, "rel_mase.free_cash_flow")
    by_step = {m.step: m.value for m in hist}
    expected = scores[(scores["model"] == "RollupCalibrated") & (scores["unique_id"] == "free_cash_flow")]
    assert sorted(by_step) == [1, 2, 3, 4]
    for r in expected.itertuples():
        assert by_step[int(r.step)] == pytest.approx(r.rel_mase)
    names = {a.path for a in client.list_artifacts(p.info.run_id)}
    assert {"rollup_backtest.md", "fiscal_years.csv", "cashflow_variants.csv", "node_scores.csv",
            "champions_backtest.csv", "calibration_factors.csv"} <= names
    md = client.download_artifacts(p.info.run_id, "rollup_backtest.md", str(isolated_cwd))
    text = open(md).read()
    assert "SeasonalNaive" in text and "RollupCalibrated" in text and "sCRPS" in text
