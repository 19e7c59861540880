"""End to end: ``fcf rollup`` and ``fcf scenario`` on the shipped data (small settings)."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from experiments.cli import EXIT_BAD_INPUT, EXIT_TRACKING, main

FAST = ["--candidates", "AutoETS,SeasonalNaive", "--guided-candidates", "GuidedAutoETS", "--first-cutoff", "2019Q4",
        "--paths", "200"]


@pytest.mark.slow
def test_rollup_no_track_end_to_end(isolated_cwd, capsys):
    code = main(["rollup", "--no-track", *FAST, "--out", "out", "--backtest", "--backtest-windows", "4"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Trailing-twelve-month FCF" in out and "Quarterly FCF" in out
    assert "2026Q3" in out and "2027Q2" in out and "P10" in out and "P90" in out
    q = pd.read_csv(isolated_cwd / "out" / "rollup_quantiles.csv")
    assert set(q["unique_id"]) == {"free_cash_flow", "free_cash_flow_ttm"} and len(q) == 8
    assert (q["p10"] <= q["p50"]).all() and (q["p50"] <= q["p90"]).all()
    assert "Quarterly FCF: roll-up vs direct models" in out and "SeasonalNaive" in out and "sCRPS" in out
    assert "Nodes one quarter ahead" in out and "GuidanceMidpoint" in out
    scores = pd.read_csv(isolated_cwd / "out" / "rollup_scores.csv")
    assert {"Rollup", "RollupCalibrated", "SeasonalNaive", "FCFChampion"} <= set(scores["model"])
    png = (isolated_cwd / "out" / "fanchart.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (isolated_cwd / "mlflow.db").exists()


def test_rollup_exits_3_when_the_tracking_server_is_down(isolated_cwd, closed_port_uri, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", closed_port_uri)
    t0 = time.perf_counter()
    code = main(["rollup", *FAST, "--out", "out"])
    assert code == EXIT_TRACKING
    assert time.perf_counter() - t0 < 30
    assert "cannot be reached" in capsys.readouterr().err
    assert not (isolated_cwd / "out").exists()  # checked before any computation


def test_rollup_rejects_bad_options(isolated_cwd, capsys):
    assert main(["rollup", "--no-track", "--method", "TopDown"]) == EXIT_BAD_INPUT
    assert "--method TopDown" in capsys.readouterr().err
    assert main(["rollup", "--no-track", "--candidates", "AutoETZ"]) == EXIT_BAD_INPUT
    assert "did you mean 'AutoETS'" in capsys.readouterr().err
    assert main(["rollup", "--no-track", "--cashflow", "sum"]) == EXIT_BAD_INPUT
    assert "--cashflow sum" in capsys.readouterr().err


def test_scenario_bad_file_exits_2_naming_file_and_key(isolated_cwd, capsys):
    bad = isolated_cwd / "oops.yaml"
    bad.write_text("description: d\nsources: [s]\ndrivers:\n  aws_growth: {2026: 25}\n")
    assert main(["scenario", str(bad)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "oops.yaml, key drivers.aws_growth.2026" in err and "0.25" in err
    past = isolated_cwd / "past.yaml"
    past.write_text("description: d\nsources: [s]\ndrivers:\n  capex:\n    fiscal_year: {2025: 150000}\n")
    t0 = time.perf_counter()
    assert main(["scenario", str(past)]) == EXIT_BAD_INPUT
    assert time.perf_counter() - t0 < 20  # rejected before any model is fitted
    err = capsys.readouterr().err
    assert "past.yaml, key drivers.capex.fiscal_year.2025: fiscal year 2025 is fully reported" in err


@pytest.mark.slow
def test_scenario_shipped_files_end_to_end_and_logged(isolated_cwd, capsys):
    from experiments import tracking

    code = main(["scenario", *FAST, "--out", "sc", "--experiment", "scenario-test"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "base" in out and "bull" in out and "capex_heavy" in out and "Fiscal-year FCF" in out
    assert "reported data: capex.fiscal_year.2026: contradicted by reported data" in out
    fy = pd.read_csv(isolated_cwd / "sc" / "scenario_fiscal_years.csv")
    assert set(fy["scenario"]) == {"base", "bull", "capex_heavy", "guidance"}
    assert set(fy["fiscal_year"]) == {2026, 2027}
    for name in ("bull", "capex_heavy", "guidance"):
        assert (isolated_cwd / "sc" / f"fanchart_{name}.png").stat().st_size > 10_000
    client = tracking.get_client(tracking.tracking_uri())
    exp = client.get_experiment_by_name("scenario-test")
    runs = client.search_runs([exp.experiment_id])
    parent = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parent) == 1 and sorted(r.info.run_name for r in children) == ["base", "bull", "capex_heavy",
                                                                              "guidance"]
    guided = next(r for r in children if r.info.run_name == "guidance")
    row = fy[(fy["scenario"] == "guidance") & (fy["fiscal_year"] == 2027)].iloc[0]
    assert guided.data.metrics["fcf_fy.2027.p50"] == pytest.approx(row["p50"])
    bull = next(r for r in children if r.info.run_name == "bull")
    assert "contradicted.capex.fiscal_year.2026" in bull.data.params
    names = {a.path for a in client.list_artifacts(parent[0].info.run_id)}
    assert {"scenario_quantiles.csv", "reported_checks.md", "fanchart_guidance.png"} <= names


@pytest.mark.slow
def test_rollup_logs_quantiles_and_fan_chart_to_mlflow(isolated_cwd, capsys):
    from experiments import tracking

    code = main(["rollup", *FAST, "--out", "out", "--experiment", "rollup-test"])
    out = capsys.readouterr().out
    assert code == 0, out
    client = tracking.get_client(tracking.tracking_uri())
    exp = client.get_experiment_by_name("rollup-test")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params["candidates"] == "AutoETS,SeasonalNaive" and run.data.params["origin"] == "2026Q2"
    assert run.data.tags["run_kind"] == "rollup" and "data_sha256" in run.data.tags
    hist = client.get_metric_history(run.info.run_id, "fcf_ttm.p50")
    assert sorted(m.step for m in hist) == [1, 2, 3, 4]
    q = pd.read_csv(isolated_cwd / "out" / "rollup_quantiles.csv")
    ttm = q[q["unique_id"] == "free_cash_flow_ttm"].sort_values("ds")
    assert [m.value for m in sorted(hist, key=lambda m: m.step)] == pytest.approx(list(ttm["p50"]))
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"rollup_quantiles.csv", "drivers.csv", "fanchart.png", "champions.csv"} <= names


@pytest.mark.parametrize("command", [["rollup"], ["claims", "--no-reliability", "--scenarios", "none"], ["scenario"],
                                     ["backtest", "--models", "SeasonalNaive"], ["retrain"]])
def test_an_out_folder_that_is_a_file_is_refused_before_any_work(isolated_cwd, tmp_path, capsys, command):
    """Catches a bad --out surfacing as a FileExistsError traceback (exit 1) after the whole run
    (90 s for the roll-up), with the backtest's tables half written."""
    blocker = tmp_path / "taken"
    blocker.write_text("x")
    start = time.perf_counter()
    code = main([*command, "--no-track", "--out", str(blocker / "out")] if command[0] != "retrain"
                else [*command, "--out", str(blocker / "out")])
    assert code == EXIT_BAD_INPUT and time.perf_counter() - start < 20
    assert f"{blocker} is a file, not a folder" in capsys.readouterr().err
    assert blocker.read_text() == "x"
