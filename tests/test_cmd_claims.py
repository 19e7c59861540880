"""End to end: ``fcf claims`` on the shipped claims file and on a user's file (small settings),
logged to a real MLflow server and read back; bad input fails fast with exit code 2."""

from __future__ import annotations

import textwrap
import time

import numpy as np
import pandas as pd
import pytest

from experiments.cli import EXIT_BAD_INPUT, EXIT_TRACKING, main

FAST = ["--candidates", "AutoETS,SeasonalNaive", "--guided-candidates", "GuidedAutoETS", "--first-cutoff", "2019Q4",
        "--paths", "200"]
SHIPPED_IDS = ["aws_growth_above_25pct_each_quarter_2026", "aws_growth_high_20s_fy2026", "aws_margin_37_38pct_fy2026",
               "capex_130_140b_fy2026", "capex_about_200b_fy2026", "capex_about_220b_fy2026",
               "guided_net_sales_2026q3", "guided_operating_income_2026q3", "operating_income_above_guidance_2026q3",
               "advertising_growth_above_20pct_fy2026", "fcf_ttm_doubles_by_2027q4", "fcf_ttm_doubled_at_2027q4",
               "net_margin_10_12pct_fy2027"]


def _write(path, text: str):
    path.write_text(textwrap.dedent(text))
    return path


def test_bad_claims_scenario_or_option_exit_2_before_any_work(isolated_cwd, capsys):
    bad = _write(isolated_cwd / "oops.yaml", """\
        claims:
          - {id: a, text: t, source: s, series: net_sales_aws, measure: yoy_growth, period: 2026, condition: "> 25"}
        """)
    typo = _write(isolated_cwd / "typo.yaml", """\
        claims:
          - {id: a, text: t, source: s, series: net_sales_aw, period: 2026Q3, condition: "> 1000"}
        """)
    past = _write(isolated_cwd / "past.yaml", "description: d\nsources: [s]\ndrivers:\n  aws_growth: {2025: 0.2}\n")
    far = _write(isolated_cwd / "far.yaml", """\
        claims:
          - {id: far, text: t, source: s, series: net_sales_aws, period: 2031Q1, condition: "> 1000"}
        """)
    cases = [
        (["claims", str(far), "--no-track", "--scenarios", "none"],
         "far: its periods end after the horizon's last quarter 2027Q4 (--horizon 6)"),
        (["claims", str(bad)], "oops.yaml, claim a (#1), key condition: growth 25 is outside"),
        (["claims", str(typo), "--no-track"], "typo.yaml, claim a, key series: unknown series 'net_sales_aw' "
                                              "(did you mean 'net_sales_aws'?)"),
        (["claims", "--no-track", "--scenarios", str(past)], "past.yaml, key drivers.aws_growth.2025: fiscal year "
                                                             "2025 is fully reported"),
        (["claims", "--no-track", "--calibration-horizon", "9"], "--calibration-horizon 9"),
        (["claims", str(isolated_cwd / "missing.yaml")], "missing.yaml: file not found"),
    ]
    for argv, message in cases:
        t0 = time.perf_counter()
        assert main(argv) == EXIT_BAD_INPUT, argv
        assert time.perf_counter() - t0 < 30, argv  # rejected before any model is fitted
        assert message in capsys.readouterr().err, argv
    assert not (isolated_cwd / "outputs").exists()


def test_claims_exits_3_when_the_tracking_server_is_down(isolated_cwd, closed_port_uri, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", closed_port_uri)
    t0 = time.perf_counter()
    assert main(["claims", *FAST, "--out", "out"]) == EXIT_TRACKING
    assert time.perf_counter() - t0 < 30
    assert "cannot be reached" in capsys.readouterr().err
    assert not (isolated_cwd / "out").exists()


@pytest.mark.slow
def test_claims_command_on_the_shipped_file_logged_to_a_real_server(mlflow_server, isolated_cwd, monkeypatch, capsys):
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    code = main(["claims", *FAST, "--out", "out", "--experiment", "claims-test"])
    out = capsys.readouterr().out
    assert code == 0, out
    for cid in SHIPPED_IDS:
        assert cid in out
    assert "P bull" in out and "P capex_heavy" in out and "P guidance" in out and "model median" in out
    assert "NOT EVALUABLE: series 'net_income' is neither in the reported data" in out
    assert "Where reported quarters landed against management's guided ranges" in out
    assert "0.7-0.8" in out and "past claims given a probability of 0.7-0.8" in out
    assert "SeasonalNaive (0/1)" in out and "Rollup (calibrated)" in out
    table = pd.read_csv(isolated_cwd / "out" / "claims.csv")
    assert table["id"].tolist() == SHIPPED_IDS
    rel = pd.read_csv(isolated_cwd / "out" / "reliability.csv")
    cal = pd.read_csv(isolated_cwd / "out" / "calibration_claims.csv")
    assert rel["n"].sum() == len(cal) > 500

    client = MlflowClient(tracking_uri=mlflow_server)
    exp = client.get_experiment_by_name("claims-test")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED" and run.data.tags["run_kind"] == "claims"
    assert run.data.params["origin"] == "2026Q2" and run.data.params["claims"] == "13"
    assert run.data.params["scenarios"] == "bull,capex_heavy,guidance" and run.data.params["evaluated"] == "12"
    m = run.data.metrics
    by = table.set_index("id")
    for cid in ("capex_about_200b_fy2026", "aws_growth_above_25pct_each_quarter_2026"):
        assert m[f"claim.{cid}.probability"] == pytest.approx(by.loc[cid, "probability"])
        assert m[f"claim.{cid}.probability.guidance"] == pytest.approx(by.loc[cid, "p.guidance"])
    assert m["claim.capex_about_200b_fy2026.median"] == pytest.approx(by.loc["capex_about_200b_fy2026", "median_value"])
    assert "claim.net_margin_10_12pct_fy2027.probability" not in m  # not evaluable: nothing logged
    hist = client.get_metric_history(run.info.run_id, "reliability.observed")
    filled = rel[rel["n"] > 0]
    assert sorted(x.step for x in hist) == filled.index.tolist()
    assert [x.value for x in sorted(hist, key=lambda x: x.step)] == pytest.approx(filled["observed"].tolist())
    assert m["brier.rollup"] < m["brier.seasonal_naive"] and {"brier.rollup_raw", "brier.base_rate"} <= set(m)
    assert 0 < m["guidance.operating_income_total.share_above"] <= 1
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"claims.csv", "claims.md", "claims_by_scenario.csv", "guidance_outcomes.csv", "calibration_claims.csv",
            "reliability.csv", "brier.csv", "brier_decomposition.csv", "reliability.png"} <= names
    png = client.download_artifacts(run.info.run_id, "reliability.png", str(isolated_cwd))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    # raw and recalibrated side by side, and what the map rests on
    assert "P paths" in out and "P raw" in out and f"learnt on the {len(cal)} past claims" in out
    assert m[f"claim.{cid}.probability_recal"] == pytest.approx(by.loc[cid, "probability_recal"])
    for part in ("reliability", "resolution", "uncertainty", "ece"):
        assert 0 <= m[f"brier.rollup_recal.{part}"] <= 1
    assert "beats_consensus" in set(cal["kind"])
    md = client.download_artifacts(run.info.run_id, "claims.md", str(isolated_cwd))
    text = open(md, encoding="utf-8").read()
    assert "| claim | P | P paths | P raw | P bull |" in text and "## Reliability of" in text


@pytest.mark.slow
def test_claims_command_on_a_users_file_with_decided_claims(isolated_cwd, capsys):
    mine = _write(isolated_cwd / "mine.yaml", """\
        name: mine
        claims:
          - id: aws_2025
            text: AWS grows 15-20% in 2025
            source: a test
            series: net_sales_aws
            measure: yoy_growth
            period: 2025
            condition: between 15% and 20%
          - id: aws_above_30_each_2026
            text: AWS grows more than 30% in every quarter of 2026
            source: a test
            series: net_sales_aws
            measure: yoy_growth
            period: 2026Q1..2026Q4
            holds: all
            condition: "> 30%"
          - id: ttm_2025q4
            text: TTM FCF above $10B at the end of 2025
            source: a test
            series: free_cash_flow_ttm
            period: 2025Q4
            condition: "> 10000"
          - id: capex_q3
            text: 2026Q3 net capex below $50B
            source: a test
            series: purchases_of_property_and_equipment_net_of_proceeds
            period: 2026Q3
            condition: "< 50000"
        """)
    code = main(["claims", str(mine), *FAST, "--no-track", "--scenarios", "none", "--no-reliability", "--out", "o"])
    out = capsys.readouterr().out
    assert code == 0, out
    t = pd.read_csv(isolated_cwd / "o" / "claims.csv").set_index("id")
    # fully reported: probability 1 and held (19.7% = 128,725 / 107,556 - 1)
    assert t.loc["aws_2025", "probability"] == 1.0 and bool(t.loc["aws_2025", "held"])
    assert t.loc["aws_2025", "realised_value"] == pytest.approx(128725 / 107556 - 1)
    # 2026Q1 grew 28.4%: already failed, probability 0 on every path
    assert t.loc["aws_above_30_each_2026", "probability"] == 0.0 and not bool(t.loc["aws_above_30_each_2026", "held"])
    assert "failed: 2026Q1 28.4%; 2026Q2 36.8%; 2026Q3, 2026Q4 pending" in out
    assert t.loc["ttm_2025q4", "realised_value"] == -7240 + 1147 + 1297 + 15990 and bool(t.loc["ttm_2025q4", "held"])
    assert 0.0 <= t.loc["capex_q3", "probability"] <= 1.0 and np.isnan(t.loc["capex_q3", "realised_value"])
    assert "P bull" not in out and "Reliability" not in out
    assert sorted(p.name for p in (isolated_cwd / "o").iterdir()) == ["claims.csv", "claims.md",
                                                                      "claims_by_scenario.csv",
                                                                      "guidance_outcomes.csv"]
