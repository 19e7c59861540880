"""A local HTTP server answering like SEC EDGAR, from the shipped filings (no network here).

`EdgarServer` serves a dict ``path -> bytes`` on 127.0.0.1 (a free port) in a thread and
records each request's path, headers and monotonic arrival time, so tests can check the
User-Agent and the request spacing. `amazon_routes` and `snowflake_routes` build the EDGAR
API responses (ticker table, submissions, filing index) around the real instance document and
company facts in ``tests/fixtures/sec``.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sec"
AMZN_INSTANCE = FIXTURES / "amzn-10k-2022" / "amzn-20221231_htm.xml"
SNOW_FACTS = FIXTURES / "snow-companyfacts-subset.json"
AMZN_CIK, SNOW_CIK = 1018724, 1640147
AMZN_10K = {"accession": "0001018724-23-000004", "filed": "2023-02-03", "report": "2022-12-31",
            "primary": "amzn-20221231.htm"}

TICKERS = {"0": {"cik_str": 320193, "ticker": "AAPL", "title": "Apple Inc."},
           "1": {"cik_str": AMZN_CIK, "ticker": "AMZN", "title": "AMAZON COM INC"},
           "2": {"cik_str": SNOW_CIK, "ticker": "SNOW", "title": "Snowflake Inc."}}


class EdgarServer:
    """``with EdgarServer(routes) as s:`` -> ``s.url``; ``s.requests``: ``(path, headers, t)``."""

    def __init__(self, routes: dict[str, bytes]):
        self.routes = routes
        self.requests: list[tuple[str, dict[str, str], float]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                server.requests.append((self.path, dict(self.headers), time.monotonic()))
                body = server.routes.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> EdgarServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def _json(obj) -> bytes:
    return json.dumps(obj).encode()


def submissions(cik: int, name: str, filings: list[dict]) -> bytes:
    """A submissions document (``filings.recent`` columns) listing `filings`, newest first."""
    recent = {"accessionNumber": [], "filingDate": [], "reportDate": [], "form": [], "primaryDocument": [],
              "isXBRL": [], "isInlineXBRL": []}
    for f in filings:
        recent["accessionNumber"].append(f["accession"])
        recent["filingDate"].append(f["filed"])
        recent["reportDate"].append(f.get("report", ""))
        recent["form"].append(f["form"])
        recent["primaryDocument"].append(f.get("primary", ""))
        recent["isXBRL"].append(f.get("xbrl", 1))
        recent["isInlineXBRL"].append(f.get("xbrl", 1))
    return _json({"cik": str(cik), "name": name, "filings": {"recent": recent, "files": []}})


def filing_index(cik: int, accession: str, names: list[str]) -> bytes:
    folder = f"/Archives/edgar/data/{cik}/{accession.replace('-', '')}"
    return _json({"directory": {"item": [{"name": n, "type": "text.gif", "size": ""} for n in names],
                                "name": folder, "parent-dir": f"/Archives/edgar/data/{cik}"}})


def amazon_routes(instance: bytes | None = None) -> dict[str, bytes]:
    """EDGAR as it answers for Amazon's 10-K for fiscal 2022 (an 8-K filed after it is listed too)."""
    accn = AMZN_10K["accession"]
    folder = f"/Archives/edgar/data/{AMZN_CIK}/{accn.replace('-', '')}"
    names = ["amzn-20221231.htm", "amzn-20221231.xsd", "amzn-20221231_cal.xml", "amzn-20221231_def.xml",
             "amzn-20221231_lab.xml", "amzn-20221231_pre.xml", "amzn-20221231_htm.xml", "FilingSummary.xml"]
    filings = [{"form": "8-K", "accession": "0001018724-23-000005", "filed": "2023-02-06", "xbrl": 0},
               {"form": "10-K", **AMZN_10K}]
    return {
        "/files/company_tickers.json": _json(TICKERS),
        f"/submissions/CIK{AMZN_CIK:010d}.json": submissions(AMZN_CIK, "AMAZON COM INC", filings),
        f"{folder}/index.json": filing_index(AMZN_CIK, accn, names),
        f"{folder}/amzn-20221231_htm.xml": instance if instance is not None else AMZN_INSTANCE.read_bytes(),
    }


def snowflake_routes(facts: bytes | None = None) -> dict[str, bytes]:
    """EDGAR's ticker table and Snowflake's company facts (the shipped subset unless `facts`)."""
    return {"/files/company_tickers.json": _json(TICKERS),
            f"/api/xbrl/companyfacts/CIK{SNOW_CIK:010d}.json": facts if facts is not None else SNOW_FACTS.read_bytes()}


def companyfacts(cik: int, name: str, facts: dict[str, list[dict]]) -> bytes:
    """A company-facts document: ``facts`` is us-gaap concept -> USD facts (``start``, ``end``,
    ``val``, ``accn``, ``form``, ``filed``, ``fy``, ``fp``), as EDGAR's XBRL API serves them."""
    return _json({"cik": cik, "entityName": name,
                  "facts": {"us-gaap": {c: {"label": c, "description": "", "units": {"USD": rows}}
                                        for c, rows in facts.items()}}})


def facts_from_data_file(path: Path, concepts: dict[str, str]) -> dict[str, list[dict]]:
    """Three-month facts rebuilt from a shipped quarterly data file's rows (latest vintage of each
    quarter): ``concepts`` is metric -> us-gaap concept. Each fact keeps the accession its row's
    ``source`` names and is dated as filed 40 days after the quarter; a test-side reconstruction of
    real reported values, not an EDGAR response."""
    import re

    import pandas as pd

    rows = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "vintage" in rows:
        rows = rows.sort_values("vintage", kind="stable").drop_duplicates(["metric", "fiscal_quarter"], keep="last")
    out: dict[str, list[dict]] = {}
    for r in rows[rows["metric"].isin(concepts)].itertuples(index=False):
        end = pd.Timestamp(r.period_end)
        start = (end - pd.offsets.MonthEnd(3)) + pd.Timedelta(days=1)
        accn = re.search(r"accn (\d{10}-\d{2}-\d{6})", r.source)
        out.setdefault(concepts[r.metric], []).append(
            {"start": start.strftime("%Y-%m-%d"), "end": end.strftime("%Y-%m-%d"),
             "val": round(float(r.value_musd.replace(",", "")) * 1_000_000),
             "accn": accn.group(1) if accn else "0000000000-00-000000", "form": "10-Q",
             "filed": (end + pd.Timedelta(days=40)).strftime("%Y-%m-%d"), "fy": end.year, "fp": f"Q{end.quarter}"})
    return out


def saturday_nearest(day) -> object:
    """The Saturday nearest `day` (a 52/53-week fiscal calendar's period end)."""
    import pandas as pd

    day = pd.Timestamp(day)
    return day + pd.Timedelta(days=(5 - day.weekday() + 3) % 7 - 3)


def on_week_calendar(doc: dict, year_end_month: int) -> dict:
    """A company-facts document whose month-end periods are moved onto a 52/53-week calendar:
    each fiscal year ends on the Saturday nearest the last day of `year_end_month`, its quarters
    are 13 weeks (the fourth 14 in a 53-week year). Values, forms, accessions and filing dates
    stay as filed; only the period dates change."""
    import copy

    import pandas as pd

    def week_end(month_end: pd.Timestamp) -> pd.Timestamp:
        p = pd.Period(month_end, freq=f"Q-{'JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC'.split()[year_end_month - 1]}")
        fy_end = saturday_nearest((pd.Period(p.qyear, freq="Y-" + p.freqstr[-3:]).end_time).normalize())
        fy_start = saturday_nearest((pd.Period(p.qyear - 1, freq="Y-" + p.freqstr[-3:]).end_time).normalize())
        return fy_end if p.quarter == 4 else fy_start + pd.Timedelta(weeks=13 * p.quarter)

    out = copy.deepcopy(doc)
    for taxonomy in out["facts"].values():
        for concept in taxonomy.values():
            for facts in concept["units"].values():
                for f in facts:
                    f.pop("frame", None)
                    end = pd.Timestamp(f["end"])
                    if not end.is_month_end:
                        continue
                    f["end"] = week_end(end).strftime("%Y-%m-%d")
                    if "start" in f:
                        before = pd.Timestamp(f["start"]) - pd.Timedelta(days=1)
                        f["start"] = (week_end(before) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    return out
