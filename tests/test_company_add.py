"""``fcf company add`` end to end against a local server answering like SEC EDGAR (`edgar_server`):
Snowflake from its real company facts, Amazon's segments from its real 10-K for fiscal 2022, a
52/53-week company from Snowflake's real facts moved onto a 52/53-week calendar, a company
missing concepts, and the errors that write nothing."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from edgar_server import (AMZN_CIK, SNOW_CIK, SNOW_FACTS, TICKERS, EdgarServer, _json, amazon_routes, companyfacts,
                          facts_from_data_file, on_week_calendar)

from experiments.cli import main
from features.loader import load_quarterly, shipped_data_dir
from features.profile import load_profile, shipped_profile

UA = "fcf-forecasting tests tests@example.com"
SNOW_FULL = SNOW_FACTS  # the real facts of the five concepts used (tests/fixtures/sec/README.md)
NO_FILINGS = _json({"filings": {"recent": {"form": []}}})


def fcf(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["company", "add", *args])
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue() + err.getvalue()


@pytest.fixture
def edgar(monkeypatch):
    """``edgar(routes)`` -> a started server that `fcf` talks to (User-Agent set)."""
    stack = contextlib.ExitStack()

    def start(routes: dict[str, bytes]) -> EdgarServer:
        server = stack.enter_context(EdgarServer(routes))
        monkeypatch.setenv("FCF_SEC_BASE_URL", server.url)
        monkeypatch.setenv("SEC_USER_AGENT", UA)
        return server

    yield start
    stack.close()


def snow_routes(doc: bytes) -> dict[str, bytes]:
    return {"/files/company_tickers.json": _json(TICKERS), f"/api/xbrl/companyfacts/CIK{SNOW_CIK:010d}.json": doc,
            f"/submissions/CIK{SNOW_CIK:010d}.json": NO_FILINGS}


def frame(path: Path):
    return load_quarterly(path).set_index(["unique_id", "ds"])["y"].sort_index()


def test_snowflake_from_its_company_facts_is_the_shipped_snowflake(edgar, tmp_path):
    server = edgar(snow_routes(SNOW_FULL.read_bytes()))
    code, out = fcf("SNOW", "--dir", str(tmp_path))
    assert code == 0, out
    assert all(h.get("User-Agent") == UA for _, h, _ in server.requests)
    profile = load_profile(tmp_path / "snow.yaml")
    shipped = shipped_profile("snowflake")
    assert profile.fiscal_year_end_month == 1 and profile.cash_flow == shipped.cash_flow
    assert profile.core_series == shipped.core_series and profile.backtest == shipped.backtest
    # every quarter of the shipped file (built by `fcf data update` from the same facts), and no other
    made, ship = frame(profile.data), frame(shipped.data)
    assert made.index.equals(ship.index) and (made == ship).all()
    text = (tmp_path / "snow.yaml").read_text()
    assert "# Choices made" in text and "capex = purchases_of_property_and_equipment + capitalized" in text
    assert "segments: no 10-K XBRL instance read; totals only" in out


def test_a_52_53_week_company_gets_the_same_quarters(edgar, tmp_path):
    """Snowflake's real facts on a calendar whose years end on the Saturday nearest 31 January
    (13-week quarters, a 14-week fourth quarter in 53-week years): the same values per fiscal quarter."""
    doc = on_week_calendar(json.loads(SNOW_FULL.read_text()), 1)
    ends = {f["end"] for f in doc["facts"]["us-gaap"]["OperatingIncomeLoss"]["units"]["USD"]}
    off = [e for e in ends if not pd.Timestamp(e).is_month_end]
    assert "2024-02-03" in ends and len(off) >= 0.8 * len(ends)  # a Saturday may fall on a month end
    edgar(snow_routes(json.dumps(doc).encode()))
    code, out = fcf("SNOW", "--dir", str(tmp_path), "--name", "weeks")
    assert code == 0, out
    assert "52/53-week years" in out
    made, ship = frame(tmp_path / "weeks" / "weeks_quarterly.csv"), frame(shipped_profile("snowflake").data)
    assert made.index.equals(ship.index) and (made == ship).all()


def amazon_company_routes() -> dict[str, bytes]:
    """EDGAR for Amazon: the real 10-K for fiscal 2022 (segments) and company facts rebuilt from
    the shipped data file's consolidated quarters (revenue, operating income, operating cash flow,
    gross capex; see `facts_from_data_file`)."""
    concepts = {"net_sales_total": "RevenueFromContractWithCustomerExcludingAssessedTax",
                "operating_income_total": "OperatingIncomeLoss",
                "operating_cash_flow": "NetCashProvidedByUsedInOperatingActivities",
                "purchases_of_property_and_equipment": "PaymentsToAcquireProductiveAssets"}
    facts = facts_from_data_file(shipped_data_dir() / "amzn_quarterly.csv", concepts)
    return {**amazon_routes(), f"/api/xbrl/companyfacts/CIK{AMZN_CIK:010d}.json":
            companyfacts(AMZN_CIK, "AMAZON COM INC", facts)}


def test_amazon_segments_from_its_10k_are_the_hand_written_profiles(edgar, tmp_path):
    edgar(amazon_company_routes())
    code, out = fcf("AMZN", "--dir", str(tmp_path))
    assert code == 0, out
    mapping = yaml.safe_load((tmp_path / "amzn" / "sec_mapping.yaml").read_text())
    members = {m["members"][0] for m in mapping["metrics"].values() if m.get("axis")}
    hand = yaml.safe_load((shipped_data_dir() / "sec_mapping.yaml").read_text())["metrics"]
    shipped_members = {hand[f"net_sales_{s}"]["members"][0] for s in (n.name for n in shipped_profile("amazon").hierarchy.segments)}
    assert members == shipped_members  # the same three reportable segments
    text = (tmp_path / "amzn.yaml").read_text()
    for name in ("north_america", "international", "amazon_web_services"):
        assert f"#     {name}: {{revenue: revenue_{name}" in text
    # a 10-K alone has no segment quarters: the tree is totals only until 10-Qs are read, and it says so
    assert "segment tree: totals only for now" in out
    assert "proceeds_from_property_and_equipment_sales" not in mapping["metrics"]  # Amazon tags it amzn:
    profile = load_profile(tmp_path / "amzn.yaml")
    made = frame(profile.data)
    ship = frame(shipped_data_dir() / "amzn_quarterly.csv")
    assert (made.loc["revenue"] == ship.loc["net_sales_total"]).all()
    assert profile.fiscal_year_end_month == 12


def test_missing_concepts_are_reported_and_the_company_added(edgar, tmp_path):
    doc = json.loads(SNOW_FULL.read_text())
    for c in ("PaymentsToAcquirePropertyPlantAndEquipment", "PaymentsToDevelopSoftware"):
        del doc["facts"]["us-gaap"][c]
    edgar(snow_routes(json.dumps(doc).encode()))
    code, out = fcf("SNOW", "--dir", str(tmp_path))
    assert code == 0, out
    assert "missing: purchases_of_property_and_equipment" in out and "missing: free_cash_flow" in out
    profile = load_profile(tmp_path / "snow.yaml")
    assert profile.cash_flow is None and profile.core_series == ("revenue", "operating_income", "operating_cash_flow")


def test_errors_exit_2_and_write_nothing(edgar, tmp_path, monkeypatch):
    edgar(snow_routes(SNOW_FULL.read_bytes()))
    code, out = fcf("NOPE", "--dir", str(tmp_path))
    assert code == 2 and "unknown ticker 'NOPE'" in out and len(out.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
    assert fcf("SNOW", "--dir", str(tmp_path))[0] == 0
    before = (tmp_path / "snow.yaml").read_bytes()
    code, out = fcf("SNOW", "--dir", str(tmp_path))
    assert code == 2 and "snow.yaml" in out and "--force" in out
    assert (tmp_path / "snow.yaml").read_bytes() == before
    monkeypatch.delenv("SEC_USER_AGENT")
    code, out = fcf("SNOW", "--dir", str(tmp_path / "other"))
    assert code == 2 and "User-Agent" in out and not (tmp_path / "other").exists()
