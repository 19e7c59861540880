"""The company as data: profiles are validated, and a company the code has never seen (two
segments, no revenue category, a fiscal year ending in March) runs through ``fcf forecast``,
``fcf backtest``, ``fcf rollup`` and ``fcf scenario`` from its data file and profile alone."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.cli import EXIT_BAD_INPUT, main
from features.profile import ProfileError, load_profile, profile_for_data, shipped_profile, shipped_profiles

SERIES = ("revenue_total", "revenue_cloud", "revenue_devices", "profit_total", "profit_cloud", "profit_devices",
          "cash_from_operations", "capital_spending", "free_cash")
PROFILE = """
name: synthco
title: Synthetic Co.
data: synth_quarterly.csv
fiscal_year_end_month: 3
default_model: AutoETS
default_model_note: the only model this test fits
core_series: [revenue_total, profit_total, free_cash]
hierarchy:
  measures:
    revenue: {total: revenue_total, nonnegative: true}
    profit: {total: profit_total, scale: revenue}
  segments:
    cloud: {revenue: revenue_cloud, profit: profit_cloud}
    devices: {revenue: revenue_devices, profit: profit_devices}
cash_flow:
  sales: revenue_total
  operating_income: profit_total
  operating_cash_flow: cash_from_operations
  capex: capital_spending
  free_cash_flow: free_cash
scenario_drivers:
  capex: {kind: capex}
  cloud_growth: {kind: segment_growth, segment: cloud}
  operating_margin: {kind: segment_margin}
rollup:
  first_cutoff: FY2019Q4
tracking:
  experiment_prefix: synthco
  model_name: synthco-fcf
"""


def synthetic_company(folder: Path, n: int = 40) -> Path:
    """A two-segment company whose fiscal year ends in March: quarterly CSV, series config and
    profile in `folder`; identities hold exactly (total = segments, FCF = OCF - capex)."""
    rng = np.random.default_rng(7)
    t = np.arange(n)
    season = np.array([0.95, 1.0, 1.12, 0.93])[(t + 1) % 4]
    cloud = 200 * 1.035 ** t * season + rng.normal(0, 4, n)
    devices = 500 * 1.01 ** t * season[::-1] + rng.normal(0, 8, n)
    p_cloud = 0.25 * cloud + rng.normal(0, 3, n)
    p_devices = 0.08 * devices + rng.normal(0, 4, n)
    revenue, profit = cloud + devices, p_cloud + p_devices
    ocf = profit + np.array([0.05, 0.12, 0.2, -0.02])[(t + 1) % 4] * revenue + rng.normal(0, 5, n)
    capex = 0.1 * revenue * 1.01 ** t + rng.normal(0, 3, n)
    ends = pd.date_range("2016-06-30", periods=n, freq="QE-MAR")  # FY2017Q1 ends 2016-06-30
    values = {"revenue_total": revenue, "revenue_cloud": cloud, "revenue_devices": devices, "profit_total": profit,
              "profit_cloud": p_cloud, "profit_devices": p_devices, "cash_from_operations": ocf,
              "capital_spending": capex, "free_cash": ocf - capex}
    rows = []
    for metric, v in values.items():
        for d, x in zip(ends, np.round(v, 3)):
            p = pd.Period(d, freq="Q-MAR")
            rows.append((metric, f"FY{p.qyear}Q{p.quarter}", d.date().isoformat(), x, "synthetic"))
    pd.DataFrame(rows, columns=["metric", "fiscal_quarter", "period_end", "value_musd", "source"]).to_csv(
        folder / "synth_quarterly.csv", index=False)
    nonneg = {"revenue_total", "revenue_cloud", "revenue_devices", "capital_spending"}
    pd.DataFrame({"metric": SERIES, "model_from": "FY2017Q1", "nonnegative": [s in nonneg for s in SERIES]}).to_csv(
        folder / "series.csv", index=False)
    (folder / "synth.yaml").write_text(PROFILE)
    return folder / "synth.yaml"


@pytest.fixture
def company(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return synthetic_company(tmp_path)


def test_the_shipped_profiles_load():
    assert set(shipped_profiles()) >= {"amazon", "snowflake"}
    amazon = shipped_profile("amazon")
    assert amazon.default_model == "StatsMLCombo" and amazon.calendar.year_end_month == 12
    assert amazon.hierarchy.bottom_series()[:3] == ["net_sales_north_america", "net_sales_international",
                                                     "net_sales_aws"]
    assert amazon.hierarchy.known_residuals[("net_sales", "2019Q4")].startswith("off by 1")
    assert profile_for_data(amazon.data) == amazon and profile_for_data(None) == amazon
    snow = shipped_profile("snowflake")
    assert snow.calendar.year_end_month == 1 and snow.default_model is None
    assert profile_for_data(snow.data) == snow


def test_a_bad_profile_names_the_file_and_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(PROFILE.replace("segments:\n    cloud", "segmnts:\n    cloud"))
    with pytest.raises(ProfileError, match=r"bad.yaml, key hierarchy.segmnts: unknown key \(did you mean 'segments'"):
        load_profile(bad)
    bad.write_text(PROFILE.replace("fiscal_year_end_month: 3", "fiscal_year_end_month: 13"))
    with pytest.raises(ProfileError, match="key fiscal_year_end_month: expected a month number 1..12"):
        load_profile(bad)
    bad.write_text(PROFILE.replace("cloud_growth: {kind: segment_growth, segment: cloud}",
                                   "cloud_growth: {kind: segment_growth, segment: clod}"))
    with pytest.raises(ProfileError, match="scenario_drivers.cloud_growth.segment: unknown segment 'clod'"):
        load_profile(bad)
    with pytest.raises(ProfileError, match="did you mean 'snowflake'"):
        shipped_profile("snowflak")


def test_an_unknown_company_exits_2(capsys):
    assert main(["forecast", "--company", "nosuchco"]) == EXIT_BAD_INPUT
    assert "no shipped company profile 'nosuchco'" in capsys.readouterr().err


@pytest.mark.slow
def test_a_new_company_runs_end_to_end_from_its_profile(company, capsys):
    """No code names this company: its tree (two segments, no category), its series names, its
    fiscal year (ending in March) and its default model come from synth.yaml."""
    profile = str(company)
    assert main(["forecast", "--company", profile, "-H", "2", "--intervals", "model", "--out", "fc.csv"]) == 0
    out = capsys.readouterr().out
    fc = pd.read_csv("fc.csv", parse_dates=["ds"])
    assert set(fc["model"]) == {"SeasonalNaive", "AutoETS"}  # the profile's default model
    assert set(fc["unique_id"]) == set(SERIES)
    assert "FY2026Q4" in out and "FY2027Q1" in out  # the company's own quarter labels
    assert list(fc["ds"].drop_duplicates()) == list(pd.to_datetime(["2026-06-30", "2026-09-30"]))

    assert main(["backtest", "--company", profile, "--models", "SeasonalNaive,AutoETS", "--windows", "4",
                 "--warmup", "2", "--no-track", "--out", "bt"]) == 0
    out = capsys.readouterr().out
    board = pd.read_csv("bt/leaderboard.csv")
    assert set(board["model"]) == {"SeasonalNaive", "AutoETS"} and board["n_series"].eq(3).all()
    assert "AutoETS (default)" in out

    assert main(["rollup", "--company", profile, "--candidates", "AutoETS,SeasonalNaive", "--guided-candidates",
                 "none", "--paths", "200", "--no-track", "--out", "roll"]) == 0
    out = capsys.readouterr().out
    q = pd.read_csv("roll/rollup_quantiles.csv")
    assert set(q["unique_id"]) == {"free_cash", "free_cash_ttm"} and len(q) == 8
    assert (q["p10"] <= q["p50"]).all() and (q["p50"] <= q["p90"]).all()
    assert "Synthetic Co. TTM free cash flow" not in out  # the title goes to the chart, not the table
    drivers = pd.read_csv("roll/drivers.csv")
    assert {"revenue_cloud", "revenue_devices", "profit_total", "capital_spending"} <= set(drivers["unique_id"])

    scenario = Path("grow.yaml")
    scenario.write_text(textwrap.dedent("""
        description: the cloud segment grows 40% in fiscal 2027
        sources: [a test]
        drivers:
          cloud_growth: {2027: 0.4}
          capex: {quarter: {FY2027Q1: 400}}
        carry_forward: false
    """))
    assert main(["scenario", str(scenario), "--company", profile, "--candidates", "AutoETS,SeasonalNaive",
                 "--guided-candidates", "none", "--paths", "200", "-H", "4", "--no-track", "--out", "sc"]) == 0
    table = pd.read_csv("sc/scenario_quantiles.csv")
    assert set(table["scenario"]) == {"base", "grow"}
    drivers = pd.read_csv("sc/scenario_drivers.csv").set_index(["scenario", "fiscal_year"])
    assert drivers.loc[("grow", 2027), "cloud_growth"] == pytest.approx(0.4)
    assert drivers.loc[("base", 2027), "cloud_growth"] < 0.3
