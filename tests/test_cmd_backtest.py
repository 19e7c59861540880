"""``fcf backtest`` end to end on a small subset, in a temporary working directory."""

from __future__ import annotations

import re
import time

import numpy as np
import pandas as pd
import pytest

from experiments.cli import EXIT_BAD_INPUT, EXIT_TRACKING, main
from experiments.champions import select_series
from features.profile import shipped_profile

CORE_SERIES = shipped_profile("amazon").core_series

SMALL = ["backtest", "--series", "net_sales_aws,free_cash_flow", "--models", "Naive",
         "--windows", "2", "--horizon", "2", "--warmup", "2"]
RUN_ID = re.compile(r"MLflow parent run ([0-9a-f]{32})")


def test_backtest_command_logs_to_local_store(isolated_cwd, capsys):
    assert main(SMALL) == 0
    out = capsys.readouterr().out
    assert "Leaderboard" in out and "SeasonalNaive" in out and "Naive" in out
    assert "h2 SN MASE" in out  # the per-series table at horizons 1 and 2
    assert "fallback" in out
    run_id = RUN_ID.search(out).group(1)
    assert "mlflow ui --backend-store-uri sqlite:///" in out
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{isolated_cwd / 'mlflow.db'}")
    parent = client.get_run(run_id)
    assert parent.data.params["series"] == "free_cash_flow,net_sales_aws"
    assert parent.data.metrics["runtime_s"] > 0


def _gm_rel_mase_by_hand(bt: pd.DataFrame, history: pd.DataFrame) -> pd.Series:
    """Per model: geometric mean over series of MASE / SeasonalNaive's MASE, each error scaled
    by the series' in-sample seasonal-naive MAE up to its own cutoff."""
    scale = {}
    for (uid, cut), _ in bt.groupby(["unique_id", "cutoff"]):
        y = history[(history["unique_id"] == uid) & (history["ds"] <= cut)].sort_values("ds")["y"].to_numpy()
        scale[(uid, cut)] = np.abs(y[4:] - y[:-4]).mean()
    ase = (bt["y"] - bt["mean"]).abs() / [scale[k] for k in zip(bt["unique_id"], bt["cutoff"])]
    mase = ase.groupby([bt["model"], bt["unique_id"]]).mean().unstack("unique_id")
    rel = mase / mase.loc["SeasonalNaive"]
    return np.exp(np.log(rel).mean(axis=1))


def test_best_model_is_the_lowest_gm_relative_mase_computed_by_hand(isolated_cwd, capsys):
    """The ``best_model`` tag and the logged ``gm_rel_mase.<model>`` metrics against MASE
    computed here from the backtest table the run logged. (The earlier assertion accepted either
    of the only two models run.) Catches: the highest score tagged best, the first model tagged,
    a relative MASE against the wrong baseline or averaged arithmetically."""
    args = ["backtest", "--series", "net_sales_aws,free_cash_flow,operating_income_aws", "--models",
            "Naive,RandomWalkWithDrift,AutoETS", "--windows", "3", "--horizon", "2", "--warmup", "0",
            "--out", "tables"]
    assert main(args) == 0
    run_id = RUN_ID.search(capsys.readouterr().out).group(1)
    from mlflow import MlflowClient

    from features.loader import load_quarterly

    bt = pd.read_csv(isolated_cwd / "tables" / "backtest.csv", parse_dates=["cutoff", "ds"])
    gm = _gm_rel_mase_by_hand(bt, load_quarterly(series=["net_sales_aws", "free_cash_flow",
                                                          "operating_income_aws"]))
    run = MlflowClient(tracking_uri=f"sqlite:///{isolated_cwd / 'mlflow.db'}").get_run(run_id)
    assert run.data.tags["best_model"] == gm.idxmin() == "AutoETS"
    assert gm.idxmax() == "Naive" and gm["SeasonalNaive"] == 1.0
    for model, value in gm.items():
        assert run.data.metrics[f"gm_rel_mase.{model}"] == pytest.approx(value, rel=1e-9)


def test_no_track_writes_tables_and_no_store(isolated_cwd, capsys):
    assert main(SMALL + ["--no-track", "--out", "tables"]) == 0
    out = capsys.readouterr().out
    assert "Leaderboard" in out and "MLflow parent run" not in out
    assert not (isolated_cwd / "mlflow.db").exists()
    board = pd.read_csv(isolated_cwd / "tables" / "leaderboard.csv")
    assert set(board["model"]) == {"SeasonalNaive", "Naive"}
    bt = pd.read_csv(isolated_cwd / "tables" / "backtest.csv")
    assert set(bt["step"]) == {1, 2} and bt["cutoff"].nunique() == 2
    assert (isolated_cwd / "tables" / "leaderboard.md").read_text().startswith("# Backtest leaderboard")


def test_unreachable_server_exits_3_before_any_work(isolated_cwd, closed_port_uri, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", closed_port_uri)
    t0 = time.monotonic()
    assert main(SMALL) == EXIT_TRACKING
    assert time.monotonic() - t0 < 8
    captured = capsys.readouterr()
    assert closed_port_uri in captured.err and "--no-track" in captured.err
    assert "Leaderboard" not in captured.out


def test_bad_horizon_is_bad_input(isolated_cwd, capsys):
    assert main(["backtest", "--horizon", "9", "--no-track"]) == EXIT_BAD_INPUT
    assert "--horizon" in capsys.readouterr().err


def test_default_series_are_the_long_core_series(small_frame):
    from features.loader import load_quarterly

    df = load_quarterly()
    keep, skipped = select_series(df, None, 12 + 4 + 10, CORE_SERIES)
    assert keep == list(CORE_SERIES)
    assert any(s.startswith("not core series") and "net_sales_advertising" in s for s in skipped)
    keep_all, skipped_all = select_series(df, ["all"], 26, CORE_SERIES)
    assert set(CORE_SERIES) < set(keep_all)
    assert any(s.startswith("net_sales_advertising: 14 quarters") for s in skipped_all)
    named, flagged = select_series(df, ["net_sales_advertising"], 26, CORE_SERIES)
    assert named == ["net_sales_advertising"] and "kept because it was named" in flagged[0]


@pytest.mark.slow
def test_backtest_command_against_real_server(mlflow_server, isolated_cwd, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    assert main(SMALL + ["--experiment", "cmd-test"]) == 0
    out = capsys.readouterr().out
    run_id = RUN_ID.search(out).group(1)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).name == "cmd-test"
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'")
    assert {c.info.run_name for c in children} == {"SeasonalNaive", "Naive"}
    assert not (isolated_cwd / "mlflow.db").exists()


def test_guidance_midpoint_is_shown_beside_the_models_one_quarter_ahead(isolated_cwd, capsys):
    """The shipped guidance is found beside the shipped data and passed to every cutoff; the
    midpoint of the guided range is scored at h=1 beside the models on the guided series."""
    from experiments.cli import main

    code = main(["backtest", "--no-track", "--series", "net_sales_total,operating_income_total",
                 "--models", "SeasonalNaive,GuidedAutoETS", "--windows", "4", "--warmup", "1", "--out", "bt"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "One quarter ahead on the guided series" in out and "GuidanceMidpoint" in out
    md = (isolated_cwd / "bt" / "leaderboard.md").read_text()
    assert "One quarter ahead vs the guidance midpoint" in md
    bt = pd.read_csv(isolated_cwd / "bt" / "backtest.csv")
    assert set(bt.loc[bt["model"] == "GuidedAutoETS", "model_used"]) == {"GuidedAutoETS"}  # guidance reached it
    code = main(["backtest", "--no-track", "--series", "net_sales_total", "--models", "GuidedAutoETS",
                 "--windows", "2", "--warmup", "0", "--guidance", "none"])
    out = capsys.readouterr().out
    assert code == 0 and "guidance midpoint" not in out
