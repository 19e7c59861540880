"""Claims on the real roll-up: the shipped file end to end in Python, claims generated at past
cutoffs (thresholds by hand, no look-ahead), the reliability table, guidance outcomes.

A reduced roll-up (two candidate models, one guided model, node cutoffs from 2019Q4) keeps
this fast; `fcf claims` with the default settings gives the README numbers.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from features.guidance import GuidanceBook, load_guidance
from features.loader import load_quarterly, shipped_data_dir
from features.profile import shipped_profile
from forecasting.claims.file import Condition, claim_from_dict, load_claims
from forecasting.claims.calibration import (
    KINDS,
    auto_claims,
    base_rates,
    brier_scores,
    claims_at_cutoffs,
    default_subjects,
    guidance_outcomes,
    reliability,
)
from features.consensus import profile_consensus
from forecasting.claims.evaluate import Outcomes, consensus_values, quantity
from forecasting.claims.run import run_claims
from forecasting.core.frames import ShortSeriesWarning
from forecasting.rollup.config import RollupConfig, RollupSeries
from forecasting.rollup.pipeline import prepare_pipeline
from forecasting.rollup.selection import SelectionSettings
from leakage import KNOWN_AT_CUTOFF, MADE_AFTER_CUTOFF, assert_no_leak, rows_at_or_before

SMALL = RollupConfig(h=6, candidates=("AutoETS", "SeasonalNaive"), guided=("GuidedAutoETS",), first_cutoff="2019Q4",
                     selection=SelectionSettings(window=8, min_windows=3), n_paths=400, error_windows=6,
                     calibration_window=4)
AMAZON = shipped_profile("amazon")
FCF, NET_CAPEX, FCF_TTM = AMAZON.cash_flow.free_cash_flow, AMAZON.cash_flow.capex, AMAZON.cash_flow.fcf_ttm
SUBJECTS = RollupSeries.of(AMAZON)
SCENARIOS = sorted((shipped_data_dir() / "scenarios").glob("*.yaml"))
CLAIMS = shipped_data_dir() / "claims" / "amazon_2026.yaml"


@pytest.fixture(scope="module")
def df():
    return load_quarterly()


@pytest.fixture(scope="module")
def book():
    return load_guidance()


@pytest.fixture(scope="module")
def street():
    return profile_consensus(AMAZON)


@pytest.fixture(scope="module")
def report(df, book, street):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShortSeriesWarning)
        return run_claims(df, AMAZON, load_claims(CLAIMS), SMALL, book, SCENARIOS, calibration_h=4, consensus=street)


# --------------------------------------------------------------------------- the shipped claims
def test_shipped_claims_under_the_rollup_base_and_scenarios(report):
    t = report.table.set_index("id")
    assert report.scenarios == ["bull", "capex_heavy", "guidance"]
    assert t.loc["net_margin_10_12pct_fy2027", "status"] == "not evaluable"
    assert "net_income" in t.loc["net_margin_10_12pct_fy2027", "reason"]
    evaluated = t[t["status"] == "evaluated"]
    assert len(evaluated) == 12 and evaluated["probability"].between(0, 1).all()
    assert "weaker" in t.loc["advertising_growth_above_20pct_fy2026", "method"]
    assert (t.drop(index="advertising_growth_above_20pct_fy2026")["method"].isin(["roll-up paths", ""])).all()
    # advertising is not simulated path by path: not evaluated under the scenario that sets its growth
    bull = report.by_scenario.set_index(["id", "scenario"])
    assert bull.loc[("advertising_growth_above_20pct_fy2026", "bull"), "status"] == "not evaluable"
    reason = bull.loc[("advertising_growth_above_20pct_fy2026", "bull"), "reason"]
    assert "sets the growth of net_sales_advertising" in reason
    assert bull.loc[("advertising_growth_above_20pct_fy2026", "guidance"), "probability"] == \
        t.loc["advertising_growth_above_20pct_fy2026", "probability"]
    # the scenarios act as stated: bull's 135B and guidance's 220B fiscal-2026 capex
    assert t.loc["capex_130_140b_fy2026", "p.bull"] > 0.5 > 0.05 > t.loc["capex_130_140b_fy2026", "probability"]
    assert 130_000 < bull.loc[("capex_130_140b_fy2026", "bull"), "median_value"] < 140_000
    assert t.loc["capex_about_220b_fy2026", "p.guidance"] > t.loc["capex_about_220b_fy2026", "probability"]
    assert 210_000 < bull.loc[("capex_about_220b_fy2026", "guidance"), "median_value"] < 230_000
    # AWS growth in 2026Q1-Q2 is reported (28.4%, 36.8%): the claim is pending, not decided
    aws = t.loc["aws_growth_above_25pct_each_quarter_2026"]
    assert aws["held"] is None and aws["realised_values"][:2] == pytest.approx((37587 / 29267 - 1, 42232 / 30873 - 1))
    assert aws["realised_values"][2:] == (None, None)


def test_claim_probabilities_are_computed_path_by_path_from_the_rollup(report, df):
    sim = report.result.simulation
    paths, ds = sim.paths, pd.PeriodIndex(sim.ds, freq="Q")
    # fiscal-2026 capex: the reported first half plus each path's second half
    h1 = 43234 + 53076
    cols = [list(ds).index(pd.Period(q, freq="Q")) for q in ("2026Q3", "2026Q4")]
    fy = h1 + paths[NET_CAPEX][:, cols].sum(axis=1)
    t = report.table.set_index("id")
    assert t.loc["capex_about_200b_fy2026", "probability"] == pytest.approx(((fy >= 190000) & (fy <= 210000)).mean())
    assert t.loc["capex_about_200b_fy2026", "median_value"] == pytest.approx(np.median(fy))
    # TTM from the claim engine = the roll-up's own TTM FCF paths
    o = Outcomes(df, paths, sim.ds)
    for j, q in enumerate(ds):
        c = claim_from_dict({"id": "t", "text": "t", "source": "s", "series": FCF, "measure": "ttm",
                             "period": str(q), "condition": "> 0"})
        np.testing.assert_allclose(quantity(c, o, q), paths[FCF_TTM][:, j], rtol=1e-12)
    doubling = t.loc["fcf_ttm_doubles_by_2027q4", "probability"]
    assert doubling == pytest.approx((paths[FCF_TTM] >= 2 * 11194).any(axis=1).mean())


def test_guidance_outcomes_count_where_quarters_landed(df, book):
    g = guidance_outcomes(book, df, last=12).set_index("metric")
    # operating income 2023Q3..2026Q2: inside only in 2025Q3 (17,422 in 15.5-20.5B) and 2025Q4 (24,977 in 21-26B)
    assert g.loc["operating_income_total", ["first", "last", "n", "below", "inside", "above"]].tolist() == \
        ["2023Q3", "2026Q2", 12, 0, 2, 10]
    small = GuidanceBook(pd.DataFrame({"metric": "x", "ds": pd.to_datetime(["2025-03-31", "2025-06-30", "2025-09-30"]),
                                       "announced_on": pd.to_datetime(["2025-01-01", "2025-04-01", "2025-07-01"]),
                                       "low": [10.0, 10.0, 10.0], "high": [20.0, 20.0, 20.0], "quality": ""}))
    rep = pd.DataFrame({"unique_id": "x", "ds": pd.to_datetime(["2025-03-31", "2025-06-30", "2025-09-30"]),
                        "y": [9.0, 20.0, 21.0]})
    r = guidance_outcomes(small, rep).iloc[0]
    assert (r["below"], r["inside"], r["above"]) == (1, 1, 1) and r["share_inside"] == pytest.approx(1 / 3)


# --------------------------------------------------------------------------- claims at past cutoffs
def test_auto_claims_thresholds_by_hand_from_what_was_known(df, book, street):
    estimates = consensus_values(street.select())
    claims = auto_claims(df, "2024-12-31", 4, default_subjects(SUBJECTS), book, estimates)
    made = {cl.id: (kind, step, cl) for kind, step, cl in claims}
    assert {k for k, _, _ in made.values()} == set(KINDS)
    growth = lambda new, old: new / old - 1  # noqa: E731
    cases = {
        "growth_above_last_year.net_sales_aws.2025Q1": growth(25037, 21354),    # 2024Q1 over 2023Q1
        "growth_above_latest.net_sales_aws.2025Q3": growth(28786, 24204),       # 2024Q4 over 2023Q4
        "margin_above_last_year.operating_income_aws.2025Q2": 9334 / 26281,     # 2024Q2
        f"ttm_above_current.{FCF}.2025Q4": 5054 + 8888 + 4693 + 19584,          # TTM FCF at 2024Q4
        "fy_growth_above_last_year.net_sales_aws.2025": growth(107556, 21354 + 22140 + 23059 + 24204),
    }
    for cid, threshold in cases.items():
        kind, step, cl = made[cid]
        assert cl.condition == Condition(">", low=pytest.approx(threshold)), cid
    assert made["fy_growth_above_last_year.net_sales_aws.2025"][1] == 4
    # guidance for 2025Q1 was announced with the 2024Q4 results (2025-02-06): known at that cutoff
    assert made["inside_guided_range.net_sales_total.2025Q1"][2].condition == Condition("between", 151000, 155500)
    assert made["above_guided_range.operating_income_total.2025Q1"][2].condition == Condition(">", low=18000)
    # the street's estimate for 2025Q1 net sales stands in the claim's relative_to (value / consensus > 1)
    beat = made["beats_consensus.net_sales_total.2025Q1"][2]
    assert beat.relative_to == "consensus" and beat.condition == Condition(">", low=1.0)
    assert ("net_sales_total", pd.Period("2025Q1")) in estimates
    # thresholds read nothing after the cutoff
    later = df["ds"] > "2024-12-31"
    poisoned = df.assign(y=np.where(later, -1e9, df["y"]))
    assert auto_claims(poisoned, "2024-12-31", 4, default_subjects(SUBJECTS), book) == \
        auto_claims(df, "2024-12-31", 4, default_subjects(SUBJECTS), book)


def test_calibration_claims_rows_and_reliability(report):
    cal = report.calibration
    assert set(cal["kind"]) == set(KINDS)
    assert cal["cutoff"].nunique() >= 10 and (cal["resolved"] > cal["cutoff"]).all()
    assert (cal["resolved"] <= pd.Timestamp("2026-06-30")).all() and cal["held"].dtype == bool
    for col in ("probability", "probability_raw", "probability_sn", "probability_base_rate"):
        assert cal[col].between(0, 1).all(), col
    assert set(cal["probability_sn"]) <= {0.0, 1.0}
    rel = report.reliability
    assert rel["n"].sum() == len(cal) and len(rel) == 10
    filled = rel[rel["n"] > 0]
    assert (filled["observed_lo"] <= filled["observed"] + 1e-12).all()
    assert (filled["observed"] <= filled["observed_hi"] + 1e-12).all()
    # the nested recalibration: no map at the first cutoff (too few resolved claims), then maps on more
    assert cal["probability_recal"].between(0, 1).all()
    per_cut = cal.groupby("cutoff")["map_claims"].first()
    assert per_cut.iloc[0] == 0 and per_cut.is_monotonic_increasing and per_cut.iloc[-1] > 500
    assert (cal["map_claims"] <= [((cal["resolved"] <= c)).sum() for c in cal["cutoff"]]).all()
    # the claims file: the map of every resolved past claim, applied to the raw paths' probabilities
    t = report.table.set_index("id")
    assert (t.loc[t["status"] == "evaluated", "map_claims"] == len(cal)).all()
    assert t.loc["guided_net_sales_2026q3", "probability_recal"] > 0.05  # not a 0.00 against its record
    scores = report.scores.set_index("forecaster")
    b = report.brier[report.brier["kind"] == "all"].set_index("forecaster")
    assert scores.loc["Rollup (recalibrated)", "brier"] == pytest.approx(b.loc["Rollup (recalibrated)", "brier"])
    assert report.reliability_paths["n"].sum() == len(cal)
    sse = ((cal["probability"] - cal["held"]) ** 2).mean()
    assert b.loc["Rollup (calibrated)", "brier"] == pytest.approx(sse)
    assert b.loc["SeasonalNaive (0/1)", "brier"] == pytest.approx((cal["probability_sn"] != cal["held"]).mean())


def test_reliability_brier_and_base_rates_by_hand():
    cut = pd.to_datetime(["2020-03-31"] * 4 + ["2020-06-30"] * 4)
    rows = pd.DataFrame({"cutoff": cut, "kind": ["a", "a", "b", "b"] * 2,
                         "probability": [0.05, 0.72, 0.75, 0.95, 0.71, 0.79, 0.15, 1.0],
                         "held": [False, True, False, True, True, True, False, True],
                         "resolved": pd.to_datetime(["2020-06-30", "2020-09-30"] * 2
                                                    + ["2020-09-30", "2020-12-31"] * 2)})
    rel = reliability(rows, n_boot=200).set_index("bin")
    assert rel.loc["0.7-0.8", "n"] == 4 and rel.loc["0.7-0.8", "observed"] == 0.75
    assert rel.loc["0.7-0.8", "mean_probability"] == pytest.approx((0.72 + 0.75 + 0.71 + 0.79) / 4)
    assert rel.loc["0.9-1.0", "n"] == 2 and rel.loc["0.9-1.0", "observed"] == 1.0  # 1.0 falls in the last bin
    assert rel.loc["0.4-0.5", "n"] == 0 and np.isnan(rel.loc["0.4-0.5", "observed"])
    # base rate: at the second cutoff only the first cutoff's claims resolved by 2020-06-30 count
    br = base_rates(rows)
    assert br[:4].tolist() == [0.5] * 4
    assert br[4:].tolist() == [0.0, 0.0, 0.0, 0.0]  # kind a: row 0 (False); kind b: row 2 (False)
    rows["probability_raw"] = rows["probability"]
    rows["probability_sn"] = rows["held"].astype(float)
    rows["probability_base_rate"] = br
    b = brier_scores(rows, n_boot=200)
    all_ = b[b["kind"] == "all"].set_index("forecaster")["brier"]
    expected = np.mean((rows["probability"] - rows["held"]) ** 2)
    assert all_["Rollup (calibrated)"] == pytest.approx(expected) and all_["SeasonalNaive (0/1)"] == 0.0


@pytest.mark.slow
def test_claims_at_past_cutoffs_ignore_every_quarter_and_statement_after_the_cutoff(df, book):
    """Every series after a cutoff and every guidance row announced after the day its quarter
    was reported are poisoned: the claims generated at and before the cutoff (thresholds,
    guided ranges) and their probabilities from the roll-up's calibrated and raw paths and
    seasonal naive must not move. Catches a threshold, a guided range, the paths or the
    spread calibration reading a later quarter."""
    config = RollupConfig(h=2, candidates=("AutoETS", "SeasonalNaive"), guided=("GuidedAutoETS",),
                          first_cutoff="2021Q2", selection=SelectionSettings(window=8, min_windows=3), n_paths=200,
                          error_windows=4, calibration_window=4)
    cut = pd.Timestamp("2024-09-30")
    day = book.release_date(cut)

    def run(d):
        b = GuidanceBook(d["quarterly"], d["annual"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ShortSeriesWarning)
            pipe = prepare_pipeline(d["series"], AMAZON, config, b)
        return claims_at_cutoffs(pipe, b, h=2)

    inputs = {"series": df, "quarterly": book.quarterly, "annual": book.annual}
    check = assert_no_leak(run, inputs, cut, rows_at_or_before("cutoff", drop=()), MADE_AFTER_CUTOFF,
                           known_until={"quarterly": day, "annual": day}, values={"annual": ["low", "high"]})
    clean = KNOWN_AT_CUTOFF(check.clean, cut)
    assert clean["cutoff"].nunique() >= 3 and (clean["error_scale"] != 1.0).any()  # the calibration acted
    assert {"inside_guided_range", "growth_above_last_year", "margin_above_last_year"} <= set(clean["kind"])
