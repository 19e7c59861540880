"""Facts from SEC filings, as one table whatever the source.

Two sources, both parsed by edgartools (a maintained EDGAR library):

- an XBRL instance document of one filing (``*_htm.xml`` of an inline-XBRL 10-Q/10-K):
  `edgar.xbrl.XBRL` reads the contexts, so each fact keeps its period and its dimensions
  (segment and product axes);
- the SEC "company facts" JSON of one company (every consolidated fact it ever filed, each
  with its form, accession and filing date, no dimensions): `edgar.entity.parser`.

Output of both (`FACT_COLUMNS`), one row per fact in US dollars::

    concept     str        "us-gaap:OperatingIncomeLoss"
    axis        str        "us-gaap:StatementBusinessSegmentsAxis" or "" (no dimension)
    member      str        "amzn:AmazonWebServicesSegmentMember" or ""
    start, end  Timestamp  the fact's duration (instant facts are dropped)
    value       int        USD
    form        str        "10-Q", "10-K", "10-K/A" ...
    accession   str        "0001018724-23-000004"
    filed       Timestamp  filing date (NaT when unknown)

Facts with two or more dimensions are dropped: no metric is defined on a cross of axes.
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import pandas as pd

from features.errors import DataValidationError, Problem

__all__ = ["empty_facts", "FACT_COLUMNS", "facts_from_companyfacts", "facts_from_xbrl"]

FACT_COLUMNS = ["concept", "axis", "member", "start", "end", "value", "form", "accession", "filed"]


def empty_facts() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="datetime64[ns]" if c in ("start", "end", "filed") else
                                      ("int64" if c == "value" else object)) for c in FACT_COLUMNS})


def _finish(rows: list[dict]) -> pd.DataFrame:
    if not rows:
        return empty_facts()
    df = pd.DataFrame(rows, columns=FACT_COLUMNS)
    for c in ("start", "end", "filed"):
        df[c] = pd.to_datetime(df[c])
    df["value"] = df["value"].astype("int64")
    # the same fact is often tagged twice in one filing (statement and note): keep it once
    return df.drop_duplicates(["concept", "axis", "member", "start", "end", "value", "accession"]).reset_index(
        drop=True)


def _root_tag(path: Path) -> str | None:
    """Local name of the document's root element; None when it is not XML."""
    try:
        for _, elem in ElementTree.iterparse(path, events=("start",)):
            return elem.tag.rsplit("}", 1)[-1]
    except ElementTree.ParseError:
        return None
    return None


def facts_from_xbrl(instance: str | Path, accession: str, filed: str | None = None,
                    form: str | None = None) -> pd.DataFrame:
    """Facts of one filing's XBRL instance document (see the module docstring for the columns).

    Args:
        instance: the instance file (``amzn-20221231_htm.xml``).
        accession: the filing's accession number (the instance does not carry it).
        filed: the filing date, ``YYYY-MM-DD``.
        form: the form type; default: the instance's ``dei:DocumentType``.
    """
    from edgar.xbrl import XBRL

    path = Path(instance)
    if not path.is_file():
        raise DataValidationError(Problem(str(path), f"XBRL instance not found (looked for {path.resolve()})"))
    if _root_tag(path) != "xbrl":
        raise DataValidationError(Problem(str(path), "not an XBRL instance document (no <xbrl> root element)"))
    try:
        xbrl = XBRL.from_files(instance_file=path)
        facts = xbrl.facts.get_facts()
    except Exception as exc:  # edgartools raises its own and lxml's errors
        raise DataValidationError(Problem(str(path), f"cannot parse the XBRL instance ({exc})")) from exc
    if form is None:
        form = next((str(f.get("value")) for f in facts if f.get("concept") == "dei:DocumentType"), "")
    rows = []
    for f in facts:
        if f.get("period_type") != "duration" or f.get("numeric_value") is None:
            continue
        if str(f.get("unit_ref", "")).lower() != "usd":
            continue
        dims = [(k, v) for k, v in f.items() if k.startswith("dim_") and v]
        if len(dims) > 1:
            continue
        axis, member = ("", "")
        if dims:
            key, member = dims[0]
            prefix, _, local = key[len("dim_"):].partition("_")
            axis = f"{prefix}:{local}"
        rows.append({"concept": f["concept"], "axis": axis, "member": str(member), "start": f["period_start"],
                     "end": f["period_end"], "value": round(float(f["numeric_value"])), "form": form,
                     "accession": accession, "filed": filed})
    return _finish(rows)


def facts_from_companyfacts(doc: dict | str | Path, concepts: set[str] | None = None) -> pd.DataFrame:
    """Facts of an SEC company-facts JSON (a parsed dict or a file), USD durations only.

    `concepts` keeps only those concepts (``us-gaap:Revenues`` style). Every filing that
    reported a fact is a row, so restatements stay visible (compare ``filed``).
    """
    from edgar.entity.parser import EntityFactsParser

    name = "<company facts>"
    if not isinstance(doc, dict):
        name = str(doc)
        try:
            doc = json.loads(Path(doc).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataValidationError(Problem(name, f"not a readable company-facts JSON file ({exc})")) from exc
    if not isinstance(doc, dict) or "facts" not in doc:
        raise DataValidationError(Problem(name, "not an SEC company-facts document (no 'facts' key)"))
    parsed = EntityFactsParser.parse_company_facts(doc)
    if parsed is None:
        return empty_facts()
    df = parsed.to_dataframe(include_metadata=True, pit_mode=True)
    df = df[(df["unit"] == "USD") & (df["period_type"] == "duration") & df["numeric_value"].notna()]
    if concepts is not None:
        df = df[df["concept"].isin(concepts)]
    rows = [{"concept": r.concept, "axis": "", "member": "", "start": r.period_start, "end": r.period_end,
             "value": round(float(r.numeric_value)), "form": r.form_type, "accession": r.accession,
             "filed": r.filing_date} for r in df.itertuples(index=False)]
    return _finish(rows)
