"""SEC ingestion on real filings: Amazon's 10-K for fiscal 2022 (XBRL instance, segment and
product axes) and Snowflake's company facts (fiscal years ending in January, year-to-date
cash flows). Every value parsed from Amazon's filing must equal the shipped data files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from features.errors import DataValidationError
from features.loader import read_quarterly, shipped_data_dir
from features.sec import annual_rows, facts_from_companyfacts, facts_from_xbrl, quarterly_rows, read_mapping
from features.sec.facts import FACT_COLUMNS
from features.sec.quarters import missing_metrics, musd, usd_of

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sec"
AMZN = FIXTURES / "amzn-10k-2022"
SNOW_JSON = FIXTURES / "snow-companyfacts-subset.json"
SNOW_DIR = shipped_data_dir() / "companies" / "snowflake"


@pytest.fixture(scope="module")
def amzn_mapping():
    return read_mapping(shipped_data_dir() / "sec_mapping.yaml")


@pytest.fixture(scope="module")
def amzn_facts():
    meta = json.loads((AMZN / "metadata.json").read_text())
    return facts_from_xbrl(AMZN / "amzn-20221231_htm.xml", meta["accession_no"], meta["filing_date"])


@pytest.fixture(scope="module")
def snow_mapping():
    return read_mapping(SNOW_DIR / "sec_mapping.yaml")


@pytest.fixture(scope="module")
def snow_facts(snow_mapping):
    return facts_from_companyfacts(SNOW_JSON, snow_mapping.concepts)


def file_rows(name: str) -> pd.DataFrame:
    raw = pd.read_csv(shipped_data_dir() / name, dtype=str, keep_default_na=False)
    raw["line"] = range(2, len(raw) + 2)
    return raw


def differences(parsed: pd.DataFrame, shipped: pd.DataFrame, key: list[str]) -> list[str]:
    """One line per parsed row whose value is not the shipped one (or that the file lacks)."""
    merged = parsed.merge(shipped, on=key, how="left", suffixes=("", "_file"))
    out = []
    for r in merged.itertuples(index=False):
        where = " ".join(str(getattr(r, k)) for k in key)
        if pd.isna(r.value_musd_file):
            out.append(f"{where}: parsed {r.value_musd}, not in the shipped file")
        elif usd_of(r.value_musd) != usd_of(r.value_musd_file):
            out.append(f"{where}: parsed {r.value_musd} from {r.source}, shipped file line {r.line} has "
                       f"{r.value_musd_file}")
    return out


# ----------------------------------------------------------------------------- Amazon 10-K
def test_instance_facts_keep_periods_and_dimensions(amzn_facts):
    assert list(amzn_facts.columns) == FACT_COLUMNS
    assert set(amzn_facts["form"]) == {"10-K"} and set(amzn_facts["accession"]) == {"0001018724-23-000004"}
    seg = amzn_facts[(amzn_facts["axis"] == "us-gaap:StatementBusinessSegmentsAxis")
                     & (amzn_facts["concept"] == "us-gaap:RevenueFromContractWithCustomerExcludingAssessedTax")
                     & (amzn_facts["end"] == "2022-12-31")]
    assert dict(zip(seg["member"], seg["value"])) == {
        "amzn:NorthAmericaSegmentMember": 315_880_000_000, "amzn:InternationalSegmentMember": 118_007_000_000,
        "amzn:AmazonWebServicesSegmentMember": 80_096_000_000}
    ads = amzn_facts[(amzn_facts["axis"] == "srt:ProductOrServiceAxis")
                     & (amzn_facts["member"] == "us-gaap:AdvertisingMember")]
    assert sorted(ads["value"]) == [19_773_000_000, 31_160_000_000, 37_739_000_000]


def test_every_value_parsed_from_the_10k_equals_the_shipped_annual_file(amzn_facts, amzn_mapping):
    parsed = annual_rows(amzn_facts, amzn_mapping)
    parsed = parsed[parsed["fiscal_year"].isin(["2020", "2021", "2022"])]
    # every metric of the mapping, fiscal 2020-2022: 21 metrics x 3 years, segments from the segment
    # axis, product groups from the product axis, net capex and FCF from their formulas
    assert len(parsed) == 63 and set(parsed["metric"]) == set(amzn_mapping.metrics)
    diffs = differences(parsed, file_rows("amzn_annual.csv"), ["metric", "fiscal_year"])
    assert not diffs, "\n".join(diffs)


def test_q4_from_the_10k_and_the_files_first_three_quarters(amzn_facts, amzn_mapping):
    """Q4 = fiscal year - (Q1 + Q2 + Q3), the first three quarters from the data file.

    The shipped file derived 2020Q4 segment operating income as FY - 9-month YTD (its source
    says so); quarterly figures rounded to millions make those two differ by 1 from FY - (Q1+Q2+Q3).
    """
    rq = read_quarterly()
    known = {(r.metric, r.period): round(r.y * 1e6) for r in rq.itertuples(index=False) if r.period.quarter < 4}
    parsed = quarterly_rows(amzn_facts, amzn_mapping, known=known)
    assert set(parsed["fiscal_quarter"]) == {"2020Q4", "2021Q4", "2022Q4"}
    assert (parsed["source"].str.contains("minus Q1-Q3 \\(data file\\)") | parsed["source"].str.startswith(
        "derived: purchases") | parsed["source"].str.startswith("derived: operating_cash_flow")).all()
    shipped = file_rows("amzn_quarterly.csv")
    diffs = differences(parsed, shipped, ["metric", "fiscal_quarter"])
    by_9m = {f"{m} 2020Q4" for m in ("operating_income_north_america", "operating_income_international")}
    assert {d.split(":")[0] for d in diffs} == by_9m, "\n".join(diffs)
    for m in by_9m:
        metric = m.split()[0]
        row = shipped[(shipped["metric"] == metric) & (shipped["fiscal_quarter"] == "2020Q4")].iloc[0]
        assert "minus 9M YTD" in row["source"]
        got = parsed[(parsed["metric"] == metric) & (parsed["fiscal_quarter"] == "2020Q4")]["value_musd"].item()
        assert abs(usd_of(got) - usd_of(row["value_musd"])) == 1_000_000
    assert len(parsed) == 42  # 14 metrics with a quarterly history in 2020-2022 x 3 fourth quarters


def test_the_10k_has_every_required_metric(amzn_facts, amzn_mapping):
    assert missing_metrics(amzn_facts, amzn_mapping, "0001018724-23-000004") == []


def test_every_mapped_metric_is_a_known_series(amzn_mapping, snow_mapping):
    from features.loader import read_series_config

    assert set(amzn_mapping.metrics) <= set(read_series_config().metrics)
    assert set(snow_mapping.metrics) == set(read_series_config(SNOW_DIR / "series.csv").metrics)


# ----------------------------------------------------------------------------- Snowflake
def test_snowflake_quarters_follow_its_january_fiscal_year(snow_facts, snow_mapping):
    rows = quarterly_rows(snow_facts, snow_mapping)
    rev = rows[rows["metric"] == "revenue"].set_index("fiscal_quarter")
    assert rev.loc["FY2026Q1", "period_end"] == "2025-04-30"
    assert rev.loc["FY2025Q4", "period_end"] == "2025-01-31"
    assert {pd.Timestamp(e).month for e in rows["period_end"]} == {1, 4, 7, 10}
    assert rev.loc["FY2026Q1", "value_musd"] == "1042.074"  # a three-month fact, used as filed
    # Q4 = fiscal year (10-K) - nine months (10-Q): 3,626.396 - 2,639.626
    assert rev.loc["FY2025Q4", "value_musd"] == "986.77"
    assert rev.loc["FY2025Q4", "source"].startswith("derived: FY from 10-K XBRL (accn 0001640147-25-000052) "
                                                     "minus 9M YTD from 10-Q XBRL (accn 0001640147-24-000250)")


def test_snowflake_cash_flows_are_year_to_date_differences(snow_facts, snow_mapping):
    rows = quarterly_rows(snow_facts, snow_mapping)
    ocf = rows[rows["metric"] == "operating_cash_flow"].set_index("fiscal_quarter")
    # FY2025: Q1 355.468 (three months), 6M 425.333, 9M 527.039, FY 959.764 (all year-to-date facts)
    assert [ocf.loc[f"FY2025Q{q}", "value_musd"] for q in (1, 2, 3, 4)] == ["355.468", "69.865", "101.706",
                                                                           "432.725"]
    assert "6M YTD" in ocf.loc["FY2025Q2", "source"] and "minus Q1" in ocf.loc["FY2025Q2", "source"]
    fcf = rows[rows["metric"] == "free_cash_flow"].set_index("fiscal_quarter")
    capex = rows[rows["metric"] == "capex"].set_index("fiscal_quarter")
    for q in fcf.index:
        assert usd_of(fcf.loc[q, "value_musd"]) == usd_of(ocf.loc[q, "value_musd"]) - usd_of(
            capex.loc[q, "value_musd"])
    # the quarters add up to the fiscal year reported in the 10-K
    year = sum(usd_of(ocf.loc[f"FY2024Q{q}", "value_musd"]) for q in (1, 2, 3, 4))
    annual = annual_rows(snow_facts, snow_mapping)
    fy = annual[(annual["metric"] == "operating_cash_flow") & (annual["fiscal_year"] == "2024")]
    assert year == usd_of(fy["value_musd"].item())


def test_the_shipped_snowflake_file_is_rebuilt_from_the_company_facts(tmp_path):
    """data/companies/snowflake/snow_quarterly.csv is exactly what `fcf data update` writes
    from the company facts (no edits by hand)."""
    from experiments.data_update import update_data

    target = tmp_path / "snow_quarterly.csv"
    for name in ("series.csv", "sec_mapping.yaml"):
        shutil.copy(SNOW_DIR / name, tmp_path / name)
    result = update_data(target, companyfacts=SNOW_JSON, say=lambda *_: None)
    assert result.status == "created"
    assert target.read_bytes() == (SNOW_DIR / "snow_quarterly.csv").read_bytes()


def test_a_restating_filing_becomes_a_later_vintage(snow_facts, snow_mapping):
    """A later filing that reports another value for an already filed period (here a copy of the
    FY2025 Q1 revenue fact with a changed value, standing in for a restating 10-Q/A)."""
    fact = snow_facts[(snow_facts["concept"] == "us-gaap:RevenueFromContractWithCustomerExcludingAssessedTax")
                      & (snow_facts["end"] == "2024-04-30") & (snow_facts["start"] == "2024-02-01")].iloc[[0]].copy()
    fact["value"] = fact["value"] + 1_000_000
    fact["form"], fact["accession"], fact["filed"] = "10-Q/A", "0001640147-25-999999", pd.Timestamp("2025-06-15")
    rows = quarterly_rows(pd.concat([snow_facts, fact], ignore_index=True), snow_mapping)
    q1 = rows[(rows["metric"] == "revenue") & (rows["fiscal_quarter"] == "FY2025Q1")]
    assert q1["vintage"].tolist() == ["", "2025-06-15"]
    assert q1["value_musd"].tolist() == ["828.709", "829.709"]
    assert "10-Q/A XBRL (accn 0001640147-25-999999)" in q1["source"].iloc[1]
    # the restated quarter's dependants are restated too, nothing else gets a vintage
    assert set(rows.loc[rows["vintage"] != "", "metric"]) == {"revenue"}
    final = quarterly_rows(pd.concat([snow_facts, fact], ignore_index=True), snow_mapping, history=False)
    assert (final["vintage"] == "").all() and final.duplicated(["metric", "fiscal_quarter"]).sum() == 0


# ----------------------------------------------------------------------------- bad input
def test_musd_is_exact():
    assert musd(108_815_000) == "108.815" and musd(-2_847_000_000) == "-2847" and musd(0) == "0"
    assert usd_of("10,219") == 10_219_000_000 and usd_of("-0.5") == -500_000


@pytest.mark.parametrize(("old", "new", "words"), [
    ("cik: 1018724\n", "cik: 1018724\ntickr: AMZN\n", ["unknown key 'tickr'"]),
    ("formula: operating_cash_flow - purchases_of_property_and_equipment_net_of_proceeds",
     "formula: operating_cash_flow - capx", ["series free_cash_flow", "formula names unknown metric 'capx'"]),
    ("    members: [amzn:NorthAmericaSegmentMember]\n", "", ["series net_sales_north_america",
                                                            "axis and members go together"]),
    ("concepts: [us-gaap:OperatingIncomeLoss]\n", "concepts: [OperatingIncomeLoss]\n",
     ["'OperatingIncomeLoss' is not a prefixed XBRL name like us-gaap:Revenues"]),
])
def test_a_bad_mapping_names_the_metric_and_the_fix(tmp_path, old, new, words):
    text = (shipped_data_dir() / "sec_mapping.yaml").read_text()
    assert old in text
    path = tmp_path / "sec_mapping.yaml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(DataValidationError) as e:
        read_mapping(path)
    for w in words:
        assert w in str(e.value)
    assert "sec_mapping.yaml" in str(e.value)


def test_a_file_that_is_not_an_instance_is_refused(tmp_path):
    path = tmp_path / "report.xml"
    path.write_text("<html><body>not XBRL</body></html>")
    with pytest.raises(DataValidationError, match="report.xml: not an XBRL instance document"):
        facts_from_xbrl(path, "0000000000-00-000000")


def test_a_json_that_is_not_company_facts_is_refused(tmp_path):
    path = tmp_path / "facts.json"
    path.write_text('{"cik": 1}')
    with pytest.raises(DataValidationError, match="facts.json: not an SEC company-facts document"):
        facts_from_companyfacts(path)
