"""Claims: the file format and its errors, derived quantities on reported data (by hand),
probabilities from sample paths, realised outcomes, and the reliability machinery."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest

from features.loader import load_quarterly, shipped_data_dir
from forecasting.claims.file import ClaimsError, Condition, check_claims, claim_from_dict, claims_from_dict, load_claims, \
    parse_condition
from experiments.claims_text import realised_text, with_text
from forecasting.claims.evaluate import NotEvaluable, Outcomes, evaluate, interval_paths, probability, quantity, realised

SHIPPED = shipped_data_dir() / "claims" / "amazon_2026.yaml"
P = lambda s: pd.Period(s, freq="Q")  # noqa: E731
CLAIM = {"id": "c", "text": "t", "source": "s", "series": "net_sales_aws", "period": "2026Q3", "condition": "> 25%"}


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return load_quarterly()


def claim(**kw):
    return claim_from_dict({**CLAIM, **kw})


# --------------------------------------------------------------------------- the format
def test_shipped_claims_load_as_written():
    cs = load_claims(SHIPPED)
    assert cs.name == "amazon_2026" and len(cs.claims) == 13
    by = {c.id: c for c in cs.claims}
    aws = by["aws_growth_above_25pct_each_quarter_2026"]
    assert aws.measure == "yoy_growth" and aws.holds == "all"
    assert aws.periods == tuple(pd.period_range("2026Q1", "2026Q4", freq="Q"))
    assert aws.condition == Condition(">", low=0.25)
    margin = by["aws_margin_37_38pct_fy2026"]
    assert margin.measure == "ratio" and margin.over == "net_sales_aws" and margin.periods == (pd.Period("2026", freq="Y-DEC"),)
    assert margin.condition == Condition("between", 0.37, 0.38)
    fcf = by["fcf_ttm_doubles_by_2027q4"]
    assert fcf.measure == "ttm" and fcf.relative_to == P("2025Q4") and fcf.holds == "any" and len(fcf.periods) == 8
    assert by["capex_about_220b_fy2026"].condition == Condition("between", 210000.0, 230000.0)
    assert by["operating_income_above_guidance_2026q3"].condition == Condition(">", low=26500.0)
    assert all(c.source for c in cs.claims)


def test_claims_read_quarters_and_years_in_the_company_fiscal_calendar():
    """A January year end (Snowflake's): ``FY2026Q1`` and ``2026Q1`` name the quarter ending in
    April 2025, ``2026`` the fiscal year ending in January 2026, and labels say FY; the
    default calendar keeps calendar quarters. Catches claims parsed with a calendar-year rule."""
    from features.calendar import FiscalCalendar
    from forecasting.claims.file import period_label, quarters_of

    jan = FiscalCalendar(1)
    c = claim_from_dict({**CLAIM, "period": "FY2026Q1..FY2026Q2", "relative_to": "FY2025Q1", "holds": "all",
                         "condition": ">= 1.1"}, calendar=jan)
    assert [q.end_time.normalize() for q in c.periods] == [pd.Timestamp("2025-04-30"), pd.Timestamp("2025-07-31")]
    assert c.periods[0] == claim_from_dict({**CLAIM, "period": "2026Q1"}, calendar=jan).periods[0]
    assert [period_label(q) for q in c.periods] == ["FY2026Q1", "FY2026Q2"] and period_label(c.relative_to) == "FY2025Q1"
    fy = claim_from_dict({**CLAIM, "period": "2026", "condition": "> 20%"}, calendar=jan).periods[0]
    assert period_label(fy) == "FY2026"
    assert [q.end_time.normalize() for q in quarters_of(fy)] == list(pd.date_range("2025-04-30", periods=4, freq="3ME"))
    dec = claim_from_dict({**CLAIM, "period": "2026"}).periods[0]
    assert [str(q) for q in quarters_of(dec)] == ["2026Q1", "2026Q2", "2026Q3", "2026Q4"] and period_label(dec) == "FY2026"
    # reported quarters are read in the same calendar: FY2026 = Feb 2025 .. Jan 2026
    ds = pd.date_range("2024-04-30", periods=8, freq="3ME")
    rep = pd.DataFrame({"unique_id": "net_sales_aws", "ds": ds, "y": np.arange(1.0, 9.0)})
    o = Outcomes(rep, calendar=jan)
    assert float(quantity(claim_from_dict({**CLAIM, "measure": "value", "period": "2026", "condition": "> 1"},
                                          calendar=jan), o, fy)[0]) == 5 + 6 + 7 + 8


@pytest.mark.parametrize("text, expected", [
    (">= 25%", Condition(">=", low=0.25)),
    ("<= 0.12", Condition("<=", high=0.12)),
    ("> 26500", Condition(">", low=26500.0)),
    ("< -1,500", Condition("<", high=-1500.0)),
    ("between 130,000 and 140000", Condition("between", 130000.0, 140000.0)),
    ("Between 37% and 38%", Condition("between", 0.37, 0.38)),
    ({">=": 2}, Condition(">=", low=2.0)),
    ({"between": ["27%", 0.30]}, Condition("between", 0.27, 0.30)),
])
def test_conditions_as_text_or_mapping(text, expected):
    assert parse_condition(text) == expected


def test_condition_semantics_at_the_bounds():
    x = np.array([0.25, 0.2500001, 0.37, 0.38, 0.39])
    assert Condition(">", low=0.25).holds(x).tolist() == [False, True, True, True, True]
    assert Condition(">=", low=0.25).holds(x).tolist() == [True] * 5
    assert Condition("between", 0.37, 0.38).holds(x).tolist() == [False, False, True, True, False]


@pytest.mark.parametrize("change, key, message", [
    ({"serie": "x"}, "serie", "unknown key (did you mean 'series'?)"),
    ({"source": ""}, "source", "missing or empty"),
    ({"id": "aws growth!"}, "id", "may use only letters"),
    ({"measure": "yoy"}, "measure", "unknown measure 'yoy' (did you mean 'yoy_growth'?)"),
    ({"measure": "ratio"}, "over", "a ratio needs 'over'"),
    ({"over": "net_sales_total"}, "over", "only used with measure: ratio"),
    ({"period": "2026Q5"}, "period", "not a quarter like 2026Q3"),
    ({"period": "2026Q4..2026Q1", "holds": "all"}, "period", "ends before it starts"),
    ({"period": "2026..2027Q1", "holds": "all"}, "period", "mixes a quarter and a fiscal year"),
    ({"period": "2026Q1..2026Q4"}, "holds", "needs 'holds: all'"),
    ({"period": "2026Q1..2026Q4", "holds": "each"}, "holds", "'each' is not one of all, any"),
    ({"measure": "ttm", "period": 2026}, "period", "ends at a quarter"),
    ({"measure": "yoy_growth", "relative_to": "2025Q4"}, "relative_to", "already relative"),
    ({"relative_to": "2026Q4"}, "relative_to", "is not before the period"),
    ({"relative_to": 2025}, "relative_to", "must both be quarters or both fiscal years"),
    ({"condition": "about 25%"}, "condition", "cannot read 'about 25%'"),
    ({"condition": "between 0.38 and 0.37"}, "condition", "the low bound is above the high one"),
    ({"measure": "yoy_growth", "condition": "> 25"}, "condition", "write 0.25 or 25% for 25 percent"),
    ({"measure": "ratio", "over": "net_sales_aws", "condition": "between 37 and 38"}, "condition", "write 0.37"),
    ({"relative_to": "2025Q4", "measure": "ttm", "condition": ">= 0"}, "condition", "positive multiple"),
])
def test_bad_claims_are_rejected_naming_claim_and_key(change, key, message):
    item = {**CLAIM, **change}
    with pytest.raises(ClaimsError) as exc:
        claims_from_dict({"claims": [item]}, source="mine.yaml")
    assert exc.value.key == key, str(exc.value)
    assert message in str(exc.value)
    assert str(exc.value).startswith("mine.yaml, claim ")


def test_bad_files(tmp_path):
    def load(text):
        p = tmp_path / "bad.yaml"
        p.write_text(textwrap.dedent(text))
        return load_claims(p)

    with pytest.raises(ClaimsError, match="bad.yaml: file not found"):
        load_claims(tmp_path / "bad.yaml")
    with pytest.raises(ClaimsError, match=r"not valid YAML at line 3.*quote conditions"):
        load("claims:\n  - id: a\n    condition: >= 25%\n    text: x\n")
    with pytest.raises(ClaimsError, match="bad.yaml, key claims: missing or empty"):
        load("name: x\nclaims: []\n")
    with pytest.raises(ClaimsError, match="bad.yaml: expected a mapping"):
        load("- a\n- b\n")
    with pytest.raises(ClaimsError, match=r"bad.yaml, key claim: unknown key \(did you mean 'claims'\?\)"):
        load("claim: []\n")
    with pytest.raises(ClaimsError, match=r"bad.yaml, claim #2: expected a mapping"):
        load("claims:\n  - {id: a, text: t, source: s, series: x, period: 2026, condition: '> 1'}\n  - just text\n")
    dup = dict(CLAIM)
    with pytest.raises(ClaimsError, match=r"claim c, key id: duplicate id \(also claim #1\)"):
        claims_from_dict({"claims": [dup, dup]}, source="bad.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ClaimsError, match="not a text file"):
        load_claims(tmp_path / "bin.yaml")


def test_check_claims_catches_typos_and_units_and_marks_missing_series(df):
    typo = claims_from_dict({"claims": [{**CLAIM, "series": "net_sales_aw"}]}, source="f.yaml")
    with pytest.raises(ClaimsError, match=r"claim c, key series: unknown series 'net_sales_aw' \(did you mean "
                                          r"'net_sales_aws'\?\)"):
        check_claims(typo, df)
    billions = claims_from_dict({"claims": [{**CLAIM, "series": "purchases_of_property_and_equipment_net_of_proceeds",
                                             "period": 2026, "condition": "between 130 and 140"}]}, source="f.yaml")
    with pytest.raises(ClaimsError, match=r"key condition: 130 is .* times below .* USD millions \(e.g. 130,000"):
        check_claims(billions, df)
    net = claims_from_dict({"claims": [{**CLAIM, "series": "net_income", "measure": "ratio",
                                        "over": "net_sales_total", "condition": "between 10% and 12%"}]})
    assert check_claims(net, df) == {"c": "series 'net_income' is neither in the reported data nor simulated by "
                                          "the roll-up"}
    assert check_claims(load_claims(SHIPPED), df, ["free_cash_flow_ttm"]) == {
        "net_margin_10_12pct_fy2027": "series 'net_income' is neither in the reported data nor simulated by the "
                                      "roll-up"}


# --------------------------------------------------------------------------- quantities by hand
def test_derived_quantities_on_reported_data_by_hand(df):
    o = Outcomes(df)  # reported quarters only, up to 2026Q2
    aws = {"2024": [25037, 26281, 27452, 28786], "2025": [29267, 30873, 33006, 35579]}

    def q(**kw) -> float:
        c = claim(**kw)
        return float(quantity(c, o, c.periods[0])[0])

    assert q(measure="yoy_growth", period="2026Q1") == pytest.approx(37587 / 29267 - 1)
    assert q(measure="yoy_growth", period="2026Q2") == pytest.approx(42232 / 30873 - 1)
    assert q(measure="yoy_growth", period=2025, condition="> 0.1") == pytest.approx(
        sum(aws["2025"]) / sum(aws["2024"]) - 1)
    assert q(series="operating_income_aws", measure="ratio", over="net_sales_aws", period=2025,
             condition="> 0.3") == pytest.approx((11547 + 10160 + 11434 + 12465) / sum(aws["2025"]))
    capex = "purchases_of_property_and_equipment_net_of_proceeds"
    assert q(series=capex, period=2025, condition="> 100000") == 24255 + 31368 + 34228 + 38469
    assert q(series="free_cash_flow", measure="ttm", period="2025Q4", condition="> 0") == -7240 + 1147 + 1297 + 15990
    assert q(series="free_cash_flow", measure="ttm", period="2026Q2", relative_to="2025Q4", condition=">= 2") == \
        pytest.approx((1297 + 15990 - 17202 - 7689) / 11194)
    assert q(series="net_sales_advertising", measure="yoy_growth", period="2026Q2") == pytest.approx(19809 / 15694 - 1)
    with pytest.raises(NotEvaluable, match="2026Q3 is not reported yet"):
        quantity(claim(), o, P("2026Q3"))
    with pytest.raises(NotEvaluable, match="net_sales_north_america has no reported value for 2017Q2"):
        quantity(claim(series="net_sales_north_america", period="2017Q2", condition="> 1000"), o, P("2017Q2"))
    with pytest.raises(NotEvaluable, match="growth of free_cash_flow is undefined: the base is not positive"):
        quantity(claim(series="free_cash_flow", measure="yoy_growth", period="2026Q1"), o, P("2026Q1"))


def test_realised_outcomes_decide_ranges_as_soon_as_a_reported_quarter_settles_them(df):
    rep = Outcomes(df)
    each = claim(measure="yoy_growth", period="2026Q1..2026Q4", holds="all")
    vals, held = realised(each, rep)
    assert vals[:2] == pytest.approx([37587 / 29267 - 1, 42232 / 30873 - 1]) and vals[2:] == [None, None]
    assert held is None and realised_text(each, vals) == "2026Q1 28.4%; 2026Q2 36.8%; 2026Q3, 2026Q4 pending"
    above_30 = dict(measure="yoy_growth", period="2026Q1..2026Q4", condition="> 30%")
    assert realised(claim(holds="all", **above_30), rep)[1] is False  # 2026Q1 (28.4%) already failed
    assert realised(claim(holds="any", **above_30), rep)[1] is True   # 2026Q2 (36.8%) already held
    past = claim(measure="yoy_growth", period=2025, condition="between 15% and 20%")
    vals, held = realised(past, rep)
    assert held is True and vals[0] == pytest.approx(128725 / 107556 - 1)


# --------------------------------------------------------------------------- probabilities from paths
def _toy():
    """Reported 2025 quarters of a series X; four hand-made paths for 2026Q1..Q4."""
    ds = pd.date_range("2025-03-31", periods=4, freq="QE")
    reported = pd.DataFrame({"unique_id": "x", "ds": ds, "y": [100.0, 100.0, 100.0, 100.0]})
    paths = {"x": np.array([[110, 120, 100, 100],    # Q1 +10%, Q2 +20%, FY 430
                            [130, 100, 100, 100],    # Q1 +30%, Q2 0%,   FY 430
                            [100, 130, 130, 130],    # Q1 0%,   Q2 +30%, FY 490
                            [90, 90, 90, 90]], float)}  # FY 360
    return Outcomes(reported, paths, pd.date_range("2026-03-31", periods=4, freq="QE"))


def test_probability_is_the_share_of_paths_and_ranges_hold_path_by_path():
    o = _toy()
    grow = lambda **kw: claim_from_dict({**CLAIM, "series": "x", "measure": "yoy_growth", **kw})  # noqa: E731
    assert probability(grow(period=2026, condition="> 5%"), o) == 0.75      # FY 430, 430, 490 vs 400
    assert probability(grow(period=2026, condition="between 7% and 8%"), o) == 0.5
    assert probability(grow(period="2026Q1", condition=">= 10%"), o) == 0.5
    assert probability(grow(period="2026Q2", condition=">= 10%"), o) == 0.5
    # each of Q1, Q2 holds on two paths, both on one path only: not 0.5 x 0.5
    assert probability(grow(period="2026Q1..2026Q2", holds="all", condition=">= 10%"), o) == 0.25
    assert probability(grow(period="2026Q1..2026Q2", holds="any", condition=">= 10%"), o) == 0.75
    t = evaluate([grow(period=2026, condition="> 5%"), grow(id="far", period="2027Q1", condition="> 0")], o,
                 methods={"x": "toy paths"})
    assert t["probability"].iloc[0] == 0.75 and t["median_value"].iloc[0] == pytest.approx(0.075)
    assert t["method"].iloc[0] == "toy paths" and t["medians"].iloc[0] == pytest.approx((0.075,))
    claims = claims_from_dict({"claims": [dict(CLAIM, id="g", series="x", measure="yoy_growth", period="2026",
                                               condition="> 5%"), dict(CLAIM, id="far", series="x",
                                                                      period="2027Q1", condition="> 0")]})
    text = with_text(t.assign(id=["g", "far"]), claims)
    assert text["median"].iloc[0] == "7.5%" and text["claimed"].iloc[0] == "> 5.0% (FY2026)"
    assert list(text.columns[:8]) == ["id", "text", "source", "series", "periods", "claimed", "median", "realised"]
    assert t["status"].iloc[1] == "not evaluable" and "2027Q1 is beyond the forecast horizon (last 2026Q4)" in \
        t["reason"].iloc[1] and np.isnan(t["probability"].iloc[1])


def test_interval_paths_reproduce_the_intervals_and_are_comonotone():
    fc = pd.DataFrame({"mean": [100.0, 110.0], "lo-95": [80.0, 85.0], "lo-80": [90.0, 95.0], "hi-80": [112.0, 126.0],
                       "hi-95": [120.0, 140.0]})
    p = interval_paths(fc, 200_000, seed=1)
    np.testing.assert_allclose(np.quantile(p, [0.025, 0.1, 0.5, 0.9, 0.975], axis=0).T, fc[
        ["lo-95", "lo-80", "mean", "hi-80", "hi-95"]].to_numpy(), rtol=2e-3)
    assert (np.argsort(p[:, 0]) == np.argsort(p[:, 1])).all()  # one uniform per path
    assert p.min() < 80 and p.max() > 140  # tails continue beyond P2.5 / P97.5
    with pytest.raises(ValueError, match="missing"):
        interval_paths(fc.drop(columns="hi-95"), 10)
