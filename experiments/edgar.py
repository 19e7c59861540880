"""A small client for SEC EDGAR's public JSON APIs and filing archives, within its fair-access rules.

Plain HTTPS (the standard library's urllib) rather than edgartools' own HTTP layer, so that
the rules are explicit and testable here: every request declares the User-Agent the SEC asks
for (a name and a contact e-mail), requests are spaced to at most `max_per_second` (the SEC
allows 10 per second), there is one timeout per request and no retry loop, and every failure
becomes an `EdgarError` with an exit code and a message that says what to do. The facts are
parsed by edgartools (`features.sec.facts`).

Endpoints (``base_url`` replaces both hosts, for a mirror or a test server)::

    https://www.sec.gov/files/company_tickers.json                 ticker -> CIK
    https://data.sec.gov/submissions/CIK##########.json            a company's filings
    https://data.sec.gov/api/xbrl/companyfacts/CIK##########.json  its company facts
    https://www.sec.gov/Archives/edgar/data/<cik>/<accession>/     a filing's files
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import re
import socket
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from features.errors import OptionError

USER_AGENT_ENV = ("SEC_USER_AGENT", "EDGAR_IDENTITY")
BASE_URL_ENV = "FCF_SEC_BASE_URL"
MAX_PER_SECOND = 8.0
_CONTACT = re.compile(r"\S+@\S+\.\S+")
_LINKBASE = re.compile(r"_(cal|def|lab|pre)\.xml$", re.I)
QUARTERLY_FORMS = ("10-Q", "10-K", "10-Q/A", "10-K/A", "10-KT")


class EdgarError(Exception):
    """A failure talking to EDGAR; `exit_code` 2 (fix the input) or 3 (EDGAR cannot be reached)."""

    exit_code = 2


class UserAgentMissing(EdgarError):
    pass


class UnknownTicker(EdgarError):
    pass


class EdgarUnreachable(EdgarError):
    exit_code = 3


@dataclass(frozen=True)
class Filing:
    """One filing of a company, as the submissions API lists it."""

    form: str
    accession: str
    filed: str
    report_date: str
    primary_document: str


def add_edgar_options(parser) -> None:
    """The SEC fair-access options every command that reads EDGAR takes: ``--user-agent`` and
    ``--max-per-second``."""
    parser.add_argument("--user-agent", help="User-Agent with a contact, e.g. 'Jane Doe jane@example.com' "
                                             "(default: $SEC_USER_AGENT or $EDGAR_IDENTITY)")
    parser.add_argument("--max-per-second", type=float, default=MAX_PER_SECOND,
                        help=f"request rate limit (default {MAX_PER_SECOND:g}; at most 10)")


def resolve_user_agent(flag: str | None = None) -> str:
    """The User-Agent to declare: `flag`, else ``$SEC_USER_AGENT``, else ``$EDGAR_IDENTITY``.

    Raises `UserAgentMissing` unless it names a contact e-mail address.
    """
    value = flag or next((os.environ[v] for v in USER_AGENT_ENV if os.environ.get(v)), "")
    if not value.strip():
        raise UserAgentMissing(
            "SEC EDGAR requires a declared User-Agent with a contact: set SEC_USER_AGENT (or EDGAR_IDENTITY) "
            "to 'Your Name you@example.com', or pass --user-agent")
    if not _CONTACT.search(value):
        raise UserAgentMissing(
            f"User-Agent {value!r} has no contact e-mail address; SEC EDGAR's fair-access policy asks for one, "
            "e.g. 'Your Name you@example.com'")
    return value.strip()


class EdgarClient:
    """Rate-limited GETs against EDGAR with a declared User-Agent (see the module docstring)."""

    def __init__(self, user_agent: str, base_url: str | None = None, max_per_second: float = MAX_PER_SECOND,
                 timeout: float = 20.0):
        if not 0 < max_per_second <= 10:
            raise OptionError(f"max_per_second {max_per_second}: SEC EDGAR allows at most 10 requests per second")
        self.user_agent = resolve_user_agent(user_agent)
        base = (base_url or os.environ.get(BASE_URL_ENV) or "").rstrip("/")
        self.www = base or "https://www.sec.gov"
        self.data = base or "https://data.sec.gov"
        self.min_interval = 1.0 / max_per_second
        self.timeout = timeout
        self.requests: list[float] = []  # monotonic start time of every request made
        self._last = -float("inf")

    # ------------------------------------------------------------------ transport
    def get(self, url: str) -> bytes:
        """GET `url` (spaced by the rate limit); `EdgarError` on any failure."""
        wait = self._last + self.min_interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._last = time.monotonic()
        self.requests.append(self._last)
        req = urllib.request.Request(url, headers={"User-Agent": self.user_agent,
                                                   "Accept-Encoding": "gzip, deflate"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                body = resp.read()
                encoding = (resp.headers.get("Content-Encoding") or "").lower()
        except urllib.error.HTTPError as exc:
            raise self._http_error(url, exc.code) from None
        except (urllib.error.URLError, socket.timeout, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise EdgarUnreachable(f"cannot reach SEC EDGAR at {url} ({reason}); check the network connection "
                                   f"(or ${BASE_URL_ENV})") from None
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        return body

    def _http_error(self, url: str, code: int) -> EdgarError:
        if code == 403:
            return EdgarError(f"SEC EDGAR refused {url} (HTTP 403): its fair-access policy requires a User-Agent "
                              f"naming you and a contact e-mail (now {self.user_agent!r}) and at most 10 requests "
                              "per second")
        if code == 429 or code >= 500:
            err = EdgarUnreachable(f"SEC EDGAR answered HTTP {code} for {url}; try again later")
            return err
        return EdgarError(f"SEC EDGAR answered HTTP {code} for {url}")

    def get_json(self, url: str):
        body = self.get(url)
        try:
            return json.loads(body)
        except ValueError:
            raise EdgarError(f"SEC EDGAR sent something that is not JSON for {url}") from None

    # ------------------------------------------------------------------ endpoints
    def cik(self, ticker: str) -> tuple[int, str]:
        """``(CIK, company name)`` of a ticker; `UnknownTicker` when EDGAR does not list it."""
        table = self.get_json(f"{self.www}/files/company_tickers.json")
        rows = table.values() if isinstance(table, dict) else table
        want = ticker.strip().upper()
        for row in rows:
            if str(row.get("ticker", "")).upper() == want:
                return int(row["cik_str"]), str(row.get("title", ""))
        raise UnknownTicker(f"unknown ticker '{ticker}': SEC EDGAR's company_tickers.json does not list it "
                            "(check the spelling, or give the company's cik in its sec_mapping.yaml)")

    def company_facts(self, cik: int) -> dict:
        url = f"{self.data}/api/xbrl/companyfacts/CIK{cik:010d}.json"
        try:
            return self.get_json(url)
        except EdgarError as exc:
            if "HTTP 404" in str(exc):
                raise EdgarError(f"SEC EDGAR has no company facts for CIK {cik} ({url}): the company files no "
                                 "XBRL, or the CIK is wrong") from None
            raise

    def filings(self, cik: int, forms: tuple[str, ...] = QUARTERLY_FORMS, limit: int = 4) -> list[Filing]:
        """The company's newest `limit` filings of `forms` with XBRL, newest first."""
        url = f"{self.data}/submissions/CIK{cik:010d}.json"
        try:
            doc = self.get_json(url)
        except EdgarError as exc:
            if "HTTP 404" in str(exc):
                raise EdgarError(f"SEC EDGAR lists no company with CIK {cik} ({url})") from None
            raise
        recent = (doc.get("filings") or {}).get("recent") or {}
        cols = ("form", "accessionNumber", "filingDate", "reportDate", "primaryDocument")
        n = len(recent.get("form", []))
        out = []
        for i in range(n):
            form, accn, filed, report, primary = (recent.get(c, [""] * n)[i] for c in cols)
            xbrl = recent.get("isXBRL", [1] * n)[i]
            if form in forms and xbrl:
                out.append(Filing(form, accn, filed, report, primary))
        out.sort(key=lambda f: (f.filed, f.accession), reverse=True)
        return out[:limit]

    def instance(self, cik: int, filing: Filing) -> tuple[str, bytes]:
        """``(file name, bytes)`` of a filing's XBRL instance document."""
        folder = f"{self.www}/Archives/edgar/data/{cik}/{filing.accession.replace('-', '')}"
        listing = self.get_json(f"{folder}/index.json")
        names = [item.get("name", "") for item in (listing.get("directory") or {}).get("item", [])]
        xml = [n for n in names if n.lower().endswith(".xml") and not _LINKBASE.search(n)
               and n.lower() not in ("filingsummary.xml",)]
        inline = [n for n in xml if n.lower().endswith("_htm.xml")]
        chosen = (inline or xml or [None])[0]
        if chosen is None:
            raise EdgarError(f"{filing.form} accn {filing.accession} (filed {filing.filed}) has no XBRL instance "
                             f"document in {folder}/")
        return chosen, self.get(f"{folder}/{chosen}")
