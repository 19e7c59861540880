"""Bring a company's new quarters (and restatements) from SEC EDGAR into its data file.

`update_data` reads the data file and the company's ``sec_mapping.yaml`` beside it, fetches
facts (the company-facts JSON, or the XBRL instances of the newest filings when the mapping
has segment or product-group metrics), turns them into quarter rows
(`features.sec.quarters`), keeps only what is new (`features.sec.merge`: new quarters,
restatements as later vintages, nothing repeated), validates the result with the loader and
replaces the file in one rename. On any error the file is left byte for byte as it was.
Without a data file it writes a new one with the whole history.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from experiments.edgar import QUARTERLY_FORMS, EdgarClient, EdgarError
from experiments.io import atomic_write
from features.errors import DataValidationError, DataWarning, Problem
from features.loader import CONFIG_FILE, default_quarterly_path, read_quarterly
from features.sec.facts import empty_facts, facts_from_companyfacts, facts_from_xbrl
from features.sec.mapping import MAPPING_FILE, CompanyMapping, read_mapping
from features.sec.merge import Merge, merge_rows, read_file_rows, render
from features.sec.quarters import ROW_COLUMNS, missing_metrics, quarterly_rows

NEW_FILE_HEADER = ROW_COLUMNS


@dataclass
class UpdateResult:
    """What `update_data` did: ``status`` is ``created``, ``updated`` or ``unchanged``."""

    status: str
    path: Path
    merge: Merge | None = None
    filings: list[str] = field(default_factory=list)
    message: str = ""


def _known(path: Path) -> dict[tuple[str, pd.Period], int]:
    if not path.is_file():
        return {}
    parsed = read_quarterly(path)  # a bad file stops here, before any request
    return {(r.metric, r.period): round(r.y * 1_000_000) for r in parsed.itertuples(index=False)}


def _fetch(mapping: CompanyMapping, client: EdgarClient, ticker: str | None, n_filings: int,
           say) -> tuple[pd.DataFrame, list[str]]:
    """Facts from EDGAR and a line per filing read."""
    ticker = (ticker or mapping.ticker).upper()
    if not ticker and mapping.cik is None:
        raise EdgarError(f"no ticker: pass --ticker or set ticker in {MAPPING_FILE}")
    if ticker:
        cik, title = client.cik(ticker)
        if mapping.cik is not None and cik != mapping.cik:
            raise EdgarError(f"ticker {ticker} is CIK {cik} ({title}) on EDGAR, but {mapping.path} says cik "
                             f"{mapping.cik}; fix the ticker or the mapping")
    else:
        cik = mapping.cik
    if mapping.source == "companyfacts":
        facts = facts_from_companyfacts(client.company_facts(cik), mapping.concepts)
        say(f"company facts of CIK {cik}: {len(facts)} facts of the mapped concepts")
        return facts, []
    filings = client.filings(cik, limit=n_filings)
    if not filings:
        raise EdgarError(f"SEC EDGAR lists no 10-Q/10-K filing with XBRL for CIK {cik}")
    frames = instance_facts(client, cik, filings, say)
    seen = [f"{f.form} accn {f.accession} filed {f.filed}" for f in filings]
    return pd.concat(frames, ignore_index=True), seen


def instance_facts(client: EdgarClient, cik, filings, say) -> list[pd.DataFrame]:
    """The facts of each filing's XBRL instance (downloaded to a temporary folder, parsed by
    `features.sec.facts.facts_from_xbrl`), in the order of `filings`."""
    frames = []
    with tempfile.TemporaryDirectory(prefix="fcf-edgar-") as tmp:
        for f in filings:
            name, body = client.instance(cik, f)
            local = Path(tmp) / name
            local.write_bytes(body)
            frames.append(facts_from_xbrl(local, f.accession, f.filed, f.form))
            say(f"{f.form} accn {f.accession} (filed {f.filed}): {len(frames[-1])} facts")
    return frames


def check_facts(facts: pd.DataFrame, mapping: CompanyMapping, source: str) -> None:
    """Refuse facts whose newest filing lacks a required metric (a changed tag, a wrong mapping)."""
    if facts.empty:
        raise DataValidationError(Problem(source, "no facts of the mapped concepts at all; check the concepts in "
                                                  f"{mapping.path}"))
    newest = facts.sort_values(["filed", "accession"]).iloc[-1]
    missing = missing_metrics(facts, mapping, newest["accession"])
    if missing:
        what = "; ".join(f"{m.name} ({', '.join(m.concepts)}" + (f" on {m.axis} = {', '.join(m.members)}"
                                                                   if m.axis else "") + ")" for m in missing)
        raise DataValidationError(Problem(
            source, f"{newest['form']} accn {newest['accession']} (filed {pd.Timestamp(newest['filed']).date()}) "
                    f"has none of the expected facts for: {what}. Fix the concepts or members in {mapping.path} "
                    "(or mark the metric required: false)"))


def update_data(path: str | Path | None = None, *, mapping: str | Path | None = None,
                client: EdgarClient | None = None, user_agent: str | None = None, ticker: str | None = None,
                filings: int = 4, companyfacts: str | Path | None = None, dry_run: bool = False,
                say=print) -> UpdateResult:
    """Update (or create) a quarterly data file from SEC EDGAR; see the module docstring.

    Args:
        path: the data file (default: the shipped Amazon file).
        mapping: the SEC mapping (default: ``sec_mapping.yaml`` beside the data file).
        client: an `EdgarClient` (default: one with `user_agent`, else ``$SEC_USER_AGENT``).
        ticker: overrides the mapping's ticker.
        filings: how many of the newest 10-Q/10-K filings to read (XBRL-instance companies).
        companyfacts: a local company-facts JSON instead of fetching one (no network).
        dry_run: compute and report, write nothing.

    Raises `EdgarError` (exit code on it), `DataValidationError`; the file is then unchanged.
    """
    path = Path(path) if path is not None else default_quarterly_path()
    mapping_obj = read_mapping(mapping if mapping is not None else path.parent / MAPPING_FILE)
    known = _known(path)
    if companyfacts is not None:
        facts = facts_from_companyfacts(companyfacts, mapping_obj.concepts)
        source, seen = str(companyfacts), []
    else:
        client = client or EdgarClient(user_agent)
        facts, seen = _fetch(mapping_obj, client, ticker, filings, say)
        source = f"SEC EDGAR ({mapping_obj.ticker or ticker})"
    facts = facts[facts["form"].isin(QUARTERLY_FORMS)] if len(facts) else empty_facts()
    check_facts(facts, mapping_obj, source)
    existing = path.is_file()
    # replay filing by filing, so a restated value's vintage is the date of the filing that restated it
    rows = quarterly_rows(facts, mapping_obj, history=True, known=known)
    if existing:
        header, file_rows, text = read_file_rows(path)
        merged = merge_rows(file_rows, rows)
    else:  # a new file keeps the whole history: originals and restatements
        header, text = NEW_FILE_HEADER, ",".join(NEW_FILE_HEADER) + "\n"
        merged = Merge(rows[ROW_COLUMNS].reset_index(drop=True), rows.iloc[0:0][ROW_COLUMNS], 0,
                       rows.iloc[0:0][ROW_COLUMNS])
    if merged.append.empty:
        msg = f"no new filing: {path} already holds every value the filings give ({merged.unchanged} checked)"
        if len(merged.stale):
            msg += f"; {len(merged.stale)} value(s) differ but the file's vintage is newer"
        return UpdateResult("unchanged", path, merged, seen, msg)
    new_text = render(header, text, merged.append)
    if not dry_run:
        atomic_write(path, lambda tmp: _write_checked(tmp, new_text, path))
    status = "updated" if existing else "created"
    return UpdateResult(status, path, merged, seen, describe(merged, path, status, dry_run))


def _write_checked(tmp: Path, text: str, target: Path) -> None:
    """Write `text` to `tmp` and validate it as the loader would read `target`."""
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    config = target.parent / CONFIG_FILE
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DataWarning)
            read_quarterly(tmp, config if config.is_file() else None)
    except DataValidationError as exc:
        raise DataValidationError([Problem(str(target), f"the updated file would be invalid: {p.problem}",
                                           p.line, p.series) for p in exc.problems]) from None
    for w in caught:  # the loader's warnings, naming the data file rather than the temporary one
        warnings.warn(str(w.message).replace(tmp.name, target.name), w.category, stacklevel=2)


def describe(merged: Merge, path: Path, status: str, dry_run: bool = False) -> str:
    """One paragraph: new quarters, restatements, unchanged rows."""
    verb = "would write" if dry_run else ("wrote" if status == "created" else "appended to")
    parts = [f"{verb} {path}: {len(merged.append)} row(s)"]
    new = merged.new_quarters
    if new:
        parts.append(f"new quarters {', '.join(new)}" if len(new) <= 8 else f"quarters {new[0]} to {new[-1]}")
    for r in merged.restated.itertuples(index=False):
        parts.append(f"restated {r.metric} {r.fiscal_quarter}: {r.value_musd} (was {r.previous_musd}), "
                     f"vintage {r.vintage}")
    if merged.unchanged:
        parts.append(f"{merged.unchanged} unchanged value(s) not repeated")
    return "; ".join(parts)
