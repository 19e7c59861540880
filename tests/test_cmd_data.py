"""``fcf data update`` end to end against a local server that answers like SEC EDGAR
(`edgar_server`, serving the shipped filings; the parsing is the real one), and against a
closed port for "no network". Every failure exits 2 or 3 and leaves the data file byte for
byte as it was."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from edgar_server import AMZN_10K, SNOW_FACTS, EdgarServer, amazon_routes, snowflake_routes

from experiments.cli import main
from experiments.edgar import EdgarClient, UserAgentMissing
from features.loader import data_vintage, load_quarterly, shipped_data_dir

UA = "fcf-forecasting tests tests@example.com"
NA_Q4 = "net_sales_north_america,2022Q4,2022-12-31,"


def fcf(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["data", "update", *args])
        except SystemExit as exc:  # --help
            code = exc.code
    return code, out.getvalue() + err.getvalue()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def env(monkeypatch):
    for var in ("SEC_USER_AGENT", "EDGAR_IDENTITY", "FCF_SEC_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


@pytest.fixture
def amzn(tmp_path) -> Path:
    """A copy of the shipped Amazon data whose 2022Q4 North America sales are an earlier,
    different figure (93,000 instead of the 93,363 that the 10-K implies)."""
    for name in ("amzn_quarterly.csv", "series.csv", "sec_mapping.yaml"):
        shutil.copy(shipped_data_dir() / name, tmp_path / name)
    path = tmp_path / "amzn_quarterly.csv"
    text = path.read_text()
    assert text.count(NA_Q4 + "93363,") == 1
    path.write_text(text.replace(NA_Q4 + "93363,", NA_Q4 + "93000,"))
    return path


@pytest.fixture
def snow(tmp_path) -> Path:
    """Snowflake's data as built from the facts filed up to 2024-12-31 (before its FY2025 10-K)."""
    folder = tmp_path / "snow"
    folder.mkdir()
    src = shipped_data_dir() / "companies" / "snowflake"
    for name in ("series.csv", "sec_mapping.yaml"):
        shutil.copy(src / name, folder / name)
    doc = json.loads(SNOW_FACTS.read_text())
    for concept in doc["facts"]["us-gaap"].values():
        concept["units"]["USD"] = [f for f in concept["units"]["USD"] if f["filed"] <= "2024-12-31"]
    early = tmp_path / "early.json"
    early.write_text(json.dumps(doc))
    path = folder / "snow_quarterly.csv"
    code, out = fcf("--data", str(path), "--companyfacts", str(early))
    assert code == 0, out
    return path


def test_help_documents_the_command():
    code, out = fcf("--help")
    assert code == 0
    for words in ("SEC EDGAR", "User-Agent", "SEC_USER_AGENT", "rate limited", "vintage", "Q4 = fiscal year",
                  "sec_mapping.yaml", "Exit codes", "--companyfacts", "--dry-run"):
        assert words in out, words


def test_a_restated_value_becomes_a_new_vintage_row(env, amzn):
    before_text, before_vintage = amzn.read_text(), data_vintage(amzn)
    with EdgarServer(amazon_routes()) as server:
        env.setenv("FCF_SEC_BASE_URL", server.url)
        env.setenv("SEC_USER_AGENT", UA)
        code, out = fcf("--data", str(amzn))
        assert code == 0, out
        assert "restated net_sales_north_america 2022Q4: 93363 (was 93000), vintage 2023-02-03" in out
        after = amzn.read_text().splitlines()
        # the old rows are all still there (with an empty vintage), one row is added
        assert after[0] == before_text.splitlines()[0] + ",vintage"
        assert after[1:-1] == [ln + "," for ln in before_text.splitlines()[1:]]
        assert after[-1].startswith(NA_Q4 + "93363,derived: FY from 10-K XBRL (accn 0001018724-23-000004) "
                                    "minus Q1-Q3 (data file),2023-02-03")
        # the loader takes the later vintage, and the file is a new data vintage for the retrain
        df = load_quarterly(amzn, series=["net_sales_north_america"])
        assert df.loc[df["ds"] == "2022-12-31", "y"].item() == 93363.0
        vintage = data_vintage(amzn)
        assert vintage.data_last_quarter == before_vintage.data_last_quarter == "2026Q2"
        assert vintage.vintage != before_vintage.vintage
        # the same filing again: nothing new, not a byte changed
        digest = sha(amzn)
        code, out = fcf("--data", str(amzn))
        assert code == 0 and "no new filing" in out, out
        assert sha(amzn) == digest
    paths = [p for p, _, _ in server.requests]
    assert paths[:3] == ["/files/company_tickers.json", "/submissions/CIK0001018724.json",
                         "/Archives/edgar/data/1018724/000101872423000004/index.json"]
    assert all(h.get("User-Agent") == UA for _, h, _ in server.requests)


def test_requests_are_spaced_by_the_rate_limit(env, amzn):
    with EdgarServer(amazon_routes()) as server:
        client = EdgarClient(UA, base_url=server.url, max_per_second=4)
        from experiments.data_update import update_data

        update_data(amzn, client=client, say=lambda *_: None)
    starts = client.requests
    assert len(starts) == len(server.requests) == 4
    assert min(b - a for a, b in zip(starts, starts[1:])) >= 0.25 - 1e-3
    with pytest.raises(ValueError, match="at most 10 requests per second"):
        EdgarClient(UA, max_per_second=20)


def test_snowflake_gets_its_new_quarters_from_the_company_facts(env, snow):
    before = pd.read_csv(snow, dtype=str, keep_default_na=False)
    assert before["fiscal_quarter"].max() == "FY2025Q3"
    with EdgarServer(snowflake_routes()) as server:
        env.setenv("FCF_SEC_BASE_URL", server.url)
        code, out = fcf("--data", str(snow), "--user-agent", UA, "--ticker", "snow")
        assert code == 0, out
    assert "new quarters FY2025Q4, FY2026Q1" in out
    after = pd.read_csv(snow, dtype=str, keep_default_na=False)
    new = after.iloc[len(before):]
    assert len(new) == 14 and set(new["metric"]) == set(before["metric"])  # 7 metrics x 2 quarters
    assert after.iloc[: len(before)].equals(before)
    q4 = new[(new["metric"] == "operating_cash_flow") & (new["fiscal_quarter"] == "FY2025Q4")].iloc[0]
    assert q4["period_end"] == "2025-01-31" and q4["value_musd"] == "432.725" and q4["vintage"] == ""
    assert [p for p, _, _ in server.requests] == ["/files/company_tickers.json",
                                                  "/api/xbrl/companyfacts/CIK0001640147.json"]
    # the updated file equals the one built from all the facts at once
    shipped = pd.read_csv(shipped_data_dir() / "companies" / "snowflake" / "snow_quarterly.csv", dtype=str,
                          keep_default_na=False)
    key = ["metric", "fiscal_quarter"]
    assert after.sort_values(key)[[*key, "value_musd"]].reset_index(drop=True).equals(
        shipped.sort_values(key)[[*key, "value_musd"]].reset_index(drop=True))


# ----------------------------------------------------------------------- errors: exit 2 or 3
def test_missing_user_agent_exits_2(env, amzn):
    digest = sha(amzn)
    code, out = fcf("--data", str(amzn))
    assert code == 2, out
    assert "requires a declared User-Agent" in out and "SEC_USER_AGENT" in out and "--user-agent" in out
    assert "the data file is unchanged" in out and sha(amzn) == digest
    code, out = fcf("--data", str(amzn), "--user-agent", "just-a-name")
    assert code == 2 and "no contact e-mail address" in out
    with pytest.raises(UserAgentMissing):
        EdgarClient("")


def test_unknown_ticker_exits_2(env, amzn):
    digest = sha(amzn)
    with EdgarServer(amazon_routes()) as server:
        env.setenv("FCF_SEC_BASE_URL", server.url)
        code, out = fcf("--data", str(amzn), "--user-agent", UA, "--ticker", "AMZNX")
        assert len(server.requests) == 1
    assert code == 2, out
    assert "unknown ticker 'AMZNX'" in out and sha(amzn) == digest


def test_a_filing_without_the_expected_facts_exits_2(env, amzn):
    """A filing whose instance has its cover page but no financial facts."""
    instance = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<xbrl xmlns="http://www.xbrl.org/2003/instance" xmlns:dei="http://xbrl.sec.gov/dei/2022" '
        'xmlns:link="http://www.xbrl.org/2003/linkbase" xmlns:xlink="http://www.w3.org/1999/xlink">\n'
        '<context id="c1"><entity><identifier scheme="http://www.sec.gov/CIK">0001018724</identifier></entity>'
        '<period><startDate>2022-01-01</startDate><endDate>2022-12-31</endDate></period></context>\n'
        '<dei:DocumentType contextRef="c1">10-K</dei:DocumentType>\n'
        '<dei:EntityRegistrantName contextRef="c1">AMAZON.COM, INC.</dei:EntityRegistrantName>\n'
        '</xbrl>\n').encode()
    digest = sha(amzn)
    with EdgarServer(amazon_routes(instance)) as server:
        env.setenv("FCF_SEC_BASE_URL", server.url)
        code, out = fcf("--data", str(amzn), "--user-agent", UA)
    assert code == 2, out
    assert "no facts of the mapped concepts" in out and "sec_mapping.yaml" in out
    assert sha(amzn) == digest


def test_a_filing_lacking_one_metric_names_it(env, amzn):
    """The real 10-K with the segment operating-income facts removed."""
    text = (Path(__file__).parent / "fixtures" / "sec" / "amzn-10k-2022" / "amzn-20221231_htm.xml").read_text()
    cut = text.replace("<us-gaap:OperatingIncomeLoss", "<us-gaap:OperatingIncomeLossRemoved").replace(
        "</us-gaap:OperatingIncomeLoss>", "</us-gaap:OperatingIncomeLossRemoved>")
    digest = sha(amzn)
    with EdgarServer(amazon_routes(cut.encode())) as server:
        env.setenv("FCF_SEC_BASE_URL", server.url)
        code, out = fcf("--data", str(amzn), "--user-agent", UA)
    assert code == 2, out
    assert f"10-K accn {AMZN_10K['accession']} (filed 2023-02-03) has none of the expected facts for" in out
    assert "operating_income_aws (us-gaap:OperatingIncomeLoss on us-gaap:StatementBusinessSegmentsAxis" in out
    assert "operating_income_total (us-gaap:OperatingIncomeLoss)" in out and sha(amzn) == digest


def test_no_network_exits_3(env, amzn, closed_port_uri):
    digest = sha(amzn)
    env.setenv("FCF_SEC_BASE_URL", closed_port_uri)
    code, out = fcf("--data", str(amzn), "--user-agent", UA)
    assert code == 3, out
    assert "cannot reach SEC EDGAR" in out and "the data file is unchanged" in out and sha(amzn) == digest


def test_an_invalid_result_is_not_written(env, snow):
    """A mapped metric the series config does not list: the loader refuses the updated file."""
    for path in (snow.parent / "series.csv", snow):
        path.write_text("".join(ln for ln in path.read_text().splitlines(keepends=True)
                                if not ln.startswith("capex,")))
    digest = sha(snow)
    with EdgarServer(snowflake_routes()) as server:
        env.setenv("FCF_SEC_BASE_URL", server.url)
        code, out = fcf("--data", str(snow), "--user-agent", UA)
    assert code == 2, out
    assert "the updated file would be invalid" in out and "unknown metric 'capex'" in out
    assert sha(snow) == digest and not list(snow.parent.glob(".*.tmp"))
