"""Scenario files: the shipped ones load and act as stated; bad ones are rejected by key."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest

from features.calendar import FiscalCalendar
from features.loader import load_quarterly, shipped_data_dir
from features.profile import shipped_profile
from forecasting.rollup.paths import rollup, simulate
from forecasting.rollup.config import RollupConfig
from forecasting.scenarios.file import ScenarioError, load_scenario, reported_checks, scenario_from_dict
from experiments.cmd_scenario import side_by_side
from forecasting.scenarios.run import adjuster, check_periods, run_scenarios

AMAZON = shipped_profile("amazon")
NET_CAPEX = AMAZON.cash_flow.capex
CAL = FiscalCalendar(12)

SHIPPED = shipped_data_dir() / "scenarios"
GOOD = {"description": "d", "sources": ["analyst claims"], "drivers": {"aws_growth": {2026: 0.2}}}


def test_shipped_scenarios_load():
    bull = load_scenario(SHIPPED / "bull.yaml", AMAZON)
    heavy = load_scenario(SHIPPED / "capex_heavy.yaml", AMAZON)
    assert bull.name == "bull" and heavy.name == "capex_heavy"
    assert bull.capex_year == {2026: 135000.0} and bull.growth == {"aws": {2026: 0.28}}
    assert bull.margin == {"aws": {2026: 0.375}} and bull.categories["advertising"].growth == {2026: 0.22}
    assert bull.categories["advertising"].series == "net_sales_advertising"
    assert heavy.capex_year == {2026: 200000.0} and heavy.growth == {"aws": {2026: 0.2}}
    for s in (bull, heavy):
        assert s.description and any("not our numbers" in x for x in s.sources)


def _write(tmp_path, text: str):
    p = tmp_path / "bad.yaml"
    p.write_text(textwrap.dedent(text))
    return p


@pytest.mark.parametrize(
    "text, key, message",
    [
        ("description: d\nsources: [s]\ndrivers:\n  aws_grwth: {2026: 0.2}\n", "drivers.aws_grwth",
         "unknown key (did you mean 'aws_growth'?)"),
        ("description: d\nsources: [s]\ndrivers:\n  capex:\n    quarter: {2026Q5: 50000}\n",
         "drivers.capex.quarter.2026Q5", "not a quarter like 2026Q3"),
        ("description: d\nsources: [s]\ndrivers:\n  aws_growth: {twenty26: 0.2}\n",
         "drivers.aws_growth.twenty26", "not a fiscal year"),
        ("description: d\nsources: [s]\ndrivers:\n  capex:\n    fiscal_year: {2026: -5000}\n",
         "drivers.capex.fiscal_year.2026", "negative"),
        ("description: d\nsources: [s]\ndrivers:\n  capex:\n    fiscal_year: {2026: 200}\n",
         "drivers.capex.fiscal_year.2026", "looks like USD billions"),
        ("description: d\nsources: [s]\ndrivers:\n  aws_growth: {2026: 25}\n",
         "drivers.aws_growth.2026", "write 0.25 for 25%"),
        ("description: d\nsources: [s]\ndrivers:\n  operating_margin:\n    aws: {2026: 37.5}\n",
         "drivers.operating_margin.aws.2026", "give it as a fraction"),
        ("description: d\nsources: [s]\ndrivers:\n  operating_margin:\n    advertising: {2026: 0.3}\n",
         "drivers.operating_margin.advertising", "unknown key"),
        ("sources: [s]\ndrivers:\n  aws_growth: {2026: 0.2}\n", "description", "missing or empty"),
        ("description: d\nsources: [s]\ndrivers:\n  aws_growth: {2026: high}\n",
         "drivers.aws_growth.2026", "expected a number"),
    ],
)
def test_bad_scenario_files_name_the_file_and_key(tmp_path, text, key, message):
    with pytest.raises(ScenarioError) as err:
        load_scenario(_write(tmp_path, text), AMAZON)
    assert err.value.key == key
    assert str(err.value).startswith(f"bad.yaml, key {key}: ")
    assert message in str(err.value)


def test_malformed_yaml_names_the_file_and_line(tmp_path):
    with pytest.raises(ScenarioError, match=r"bad.yaml: not valid YAML at line 3, column 1"):
        load_scenario(_write(tmp_path, "description: d\nsources: [s]\n\tdrivers: {}\n"), AMAZON)
    with pytest.raises(ScenarioError, match="expected a mapping"):
        load_scenario(_write(tmp_path, "- just\n- a list\n"), AMAZON)
    with pytest.raises(ScenarioError, match="file not found"):
        load_scenario(tmp_path / "missing.yaml", AMAZON)


def test_scenario_errors_are_value_errors_for_the_cli():
    assert issubclass(ScenarioError, ValueError)


def test_periods_must_be_future_and_within_the_horizon():
    origin = pd.Timestamp("2026-06-30")
    ds = pd.date_range("2026-09-30", periods=6, freq="QE")
    check_periods(scenario_from_dict(GOOD, AMAZON), origin, ds, CAL)
    with pytest.raises(ScenarioError, match="fiscal year 2025 is fully reported"):
        check_periods(scenario_from_dict({**GOOD, "drivers": {"aws_growth": {2025: 0.2}}}, AMAZON), origin, ds,
                      CAL)
    with pytest.raises(ScenarioError, match="ends after the forecast horizon"):
        check_periods(scenario_from_dict({**GOOD, "drivers": {"aws_growth": {2028: 0.2}}}, AMAZON), origin, ds,
                      CAL)
    with pytest.raises(ScenarioError, match="key drivers.capex.quarter.2026Q2: quarter 2026Q2 is not a forecast"):
        check_periods(scenario_from_dict({**GOOD, "drivers": {"capex": {"quarter": {"2026Q2": 50000}}}}, AMAZON),
                      origin, ds, CAL)


@pytest.fixture(scope="module")
def inputs():
    df = load_quarterly()
    cfg = RollupConfig(h=6, candidates=("AutoETS", "SeasonalNaive"), guided=(), first_cutoff="2019Q4",
                       error_windows=4, n_paths=1000, extra=("net_sales_advertising",))
    return rollup(df, AMAZON, cfg).inputs


def test_scenario_drivers_hit_their_targets(inputs):
    s = scenario_from_dict({**GOOD, "drivers": {
        "capex": {"fiscal_year": {2026: 200000}}, "aws_growth": {2026: 0.2},
        "operating_margin": {"aws": {2027: 0.3}}}}, AMAZON)
    sim = simulate(inputs, seed=0, adjust=adjuster(s))
    hist = inputs.history.pivot(index="ds", columns="unique_id", values="y")
    ds = inputs.ds
    h2 = np.flatnonzero(ds.year == 2026)
    reported = hist.loc["2026", NET_CAPEX].sum()
    assert reported + sim.paths[NET_CAPEX][:, h2].mean(axis=0).sum() == pytest.approx(200000)
    for j in h2:
        prev = hist.loc[ds[j] - pd.offsets.QuarterEnd(4), "net_sales_aws"]
        assert sim.paths["net_sales_aws"][:, j].mean() / prev - 1 == pytest.approx(0.2)
    y27 = np.flatnonzero(ds.year == 2027)
    np.testing.assert_allclose(sim.paths["operating_income_aws"][:, y27],
                               0.3 * sim.paths["net_sales_aws"][:, y27])


def test_capex_below_what_is_already_reported_is_rejected(inputs):
    s = scenario_from_dict({**GOOD, "drivers": {"capex": {"fiscal_year": {2026: 50000}}}}, AMAZON)
    with pytest.raises(ScenarioError, match="below the 96310 already reported for 2026"):
        simulate(inputs, n_paths=100, adjust=adjuster(s))


def test_run_scenarios_side_by_side_with_common_random_numbers(inputs):
    res = run_scenarios(None, AMAZON, [SHIPPED / "bull.yaml", SHIPPED / "capex_heavy.yaml", SHIPPED / "guidance.yaml"],
                        inputs=inputs)
    assert list(res.simulations) == ["base", "bull", "capex_heavy", "guidance"]
    t = side_by_side(res)
    assert list(t.columns) == ["base", "bull", "capex_heavy", "guidance"] and list(t.index)[0] == "2026Q3"
    fy = res.fiscal_years()
    assert set(fy["fiscal_year"]) == {2026, 2027}
    assert (fy.loc[fy["fiscal_year"] == 2026, "reported_quarters"] == 2).all()
    d = res.drivers().set_index(["scenario", "fiscal_year"])
    assert d.loc[("bull", 2026), "capex"] == pytest.approx(135000)
    assert d.loc[("capex_heavy", 2026), "capex"] == pytest.approx(200000)
    assert d.loc[("guidance", 2026), "capex"] == pytest.approx(220000)
    # less capex, same everything else: more FCF in 2026 than the heavy-capex scenario
    assert d.loc[("bull", 2026), "fcf"] > d.loc[("capex_heavy", 2026), "fcf"]
    with pytest.raises(ValueError, match="unique and not 'base'"):
        run_scenarios(None, AMAZON, [{**GOOD, "name": "base"}], inputs=inputs)


def test_claims_reported_data_contradict_are_kept_and_marked():
    """Bug caught: a scenario file that silently drops or rewrites an analyst's claim that the
    reported quarters already rule out (bull.yaml's 135B of 2026 capex after 96.3B in H1)."""
    bull = load_scenario(SHIPPED / "bull.yaml", AMAZON)
    assert bull.capex_year == {2026: 135000}
    assert set(bull.contradicted) == {"capex.fiscal_year.2026"}
    checks = reported_checks(bull, load_quarterly(), AMAZON)
    # 135,000 - 96,310 reported = 38,690 for two quarters: 19.3B each vs 53.1B in 2026Q2
    assert any("19.3B per remaining quarter" in c and "53.1B in 2026Q2" in c and "-64%" in c for c in checks)
    assert any("contradicted by reported data" in c for c in checks)
    with pytest.raises(ScenarioError, match="key contradicted_by_reported_data.capex.fiscal_year.2027"):
        scenario_from_dict({**GOOD, "drivers": {"capex": {"fiscal_year": {2026: 200000}}},
                            "contradicted_by_reported_data": {"capex.fiscal_year.2027": "x"}}, AMAZON)
