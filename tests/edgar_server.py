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
