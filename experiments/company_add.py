"""``fcf company add TICKER``: a new company's data file, series config, SEC mapping and profile from SEC EDGAR.

`add_company` resolves the ticker's CIK (``company_tickers.json``), reads its company facts
(every consolidated fact it filed) and the XBRL instance of its newest 10-K (the segment facts,
which company facts lack), chooses the concepts, the fiscal year end and the reportable
segments (`features.sec.discover`), turns the facts into quarters with the same code as
``fcf data update`` (`features.sec.quarters`: three-month values, year-to-date differences,
restatements as later vintages, 52/53-week periods mapped to their fiscal quarter) and writes::

    <dir>/<name>.yaml                       the profile (the choices as comments)
    <dir>/<name>/<ticker>_quarterly.csv     the quarters
    <dir>/<name>/series.csv                 per metric, the first quarter to model from
    <dir>/<name>/sec_mapping.yaml           the concepts, so ``fcf data update`` keeps it current
    <dir>/<name>/SOURCES.md                 where every number came from

Everything is computed and validated (the data file by the loader, the profile by
`features.profile.load_profile`) in a staging folder beside the target before any file is
moved into place, each with one rename; an existing profile is never overwritten unless
`force`. The HTTP client is `experiments.edgar.EdgarClient` (declared User-Agent, rate limit).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd
import yaml

from experiments.edgar import QUARTERLY_FORMS, EdgarClient, EdgarError
from features.errors import DataValidationError, DataWarning, Problem
from features.loader import CONFIG_FILE, read_quarterly
from features.profile import load_profile, profiles_dir
from features.sec.discover import STANDARD_METRICS, Discovery, discover
from features.sec.facts import empty_facts, facts_from_companyfacts
from features.sec.mapping import MAPPING_FILE, read_mapping
from features.sec.quarters import ROW_COLUMNS, quarterly_rows

_TOTALS = ("revenue", "operating_income", "operating_cash_flow", "capex", "free_cash_flow")
MIN_SEGMENT_QUARTERS = 8


@dataclass
class AddResult:
    """What `add_company` wrote and chose."""

    name: str
    profile: Path
    data: Path
    discovery: Discovery
    quarters: dict[str, int] = field(default_factory=dict)  # metric -> modelled quarters
    tree_segments: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _name_of(ticker: str) -> str:
    name = re.sub(r"[^a-z0-9_]+", "_", ticker.lower()).strip("_")
    if not name:
        raise EdgarError(f"ticker {ticker!r} gives no usable company name; pass --name")
    return name


def _fetch(client: EdgarClient, ticker: str, filings: int, say) -> tuple[int, str, pd.DataFrame, pd.DataFrame, list]:
    cik, title = client.cik(ticker)
    say(f"{ticker.upper()}: CIK {cik} ({title})")
    concepts = {c for cs, _, _ in STANDARD_METRICS.values() for c in cs}
    facts = facts_from_companyfacts(client.company_facts(cik), concepts)
    facts = facts[facts["form"].isin(QUARTERLY_FORMS)] if len(facts) else empty_facts()
    say(f"company facts: {len(facts)} facts of the standard concepts")
    listed = client.filings(cik, forms=("10-K", "10-K/A"), limit=1)
    if filings > 0:
        others = client.filings(cik, forms=QUARTERLY_FORMS, limit=filings)
        listed += [f for f in others if f.accession not in {x.accession for x in listed}]
    from experiments.data_update import instance_facts

    frames, read = instance_facts(client, cik, listed, say), list(listed)
    if not listed:
        say("no 10-K with XBRL listed: no segments")
    instances = pd.concat(frames, ignore_index=True) if frames else empty_facts()
    return cik, title, facts, instances, read


def _model_from(rows: pd.DataFrame, mapping) -> dict[str, pd.Period]:
    """Per metric, the first quarter after its last hole (the loader refuses holes after model_from)."""
    from features.calendar import fiscal_freq

    out = {}
    freq = fiscal_freq(mapping.fiscal_year_end_month)
    for metric, g in rows.groupby("metric", sort=False):
        periods = sorted({pd.Period(pd.Timestamp(e), freq=freq) for e in g["period_end"]})
        start = periods[0]
        for a, b in zip(periods, periods[1:]):
            if (b - a).n > 1:
                start = b
        out[metric] = start
    return out


def _backtest(n: int) -> tuple[dict, str]:
    if n >= 26:
        return {}, f"backtest: the library's default windows (12 + 8 warm-up; the shortest core series has {n} quarters)"
    room = n - 10
    if room < 3:
        return {}, f"backtest: too short to backtest ({n} quarters); fcf forecast works, fcf backtest will refuse"
    windows = min(12, max(2, room * 2 // 3))
    warmup = min(8, room - windows)
    return ({"windows": windows, "warmup": warmup},
            f"backtest: {windows} windows + {warmup} warm-up (the shortest core series has {n} quarters; 10 are "
            "left to fit the first cutoff on)")


def _profile_text(name: str, title: str, ticker: str, data_rel: str, disc: Discovery, present: set[str],
                  tree: list[str], backtest: dict, notes: list[str]) -> str:
    core = [m for m in _TOTALS if m in present]
    for seg in tree:
        core += [f"revenue_{seg}", f"operating_income_{seg}"]
    doc: dict = {"name": name, "title": title, "ticker": ticker.upper(), "data": data_rel,
                 "fiscal_year_end_month": disc.fiscal_year_end_month, "core_series": core}
    if backtest:
        doc["backtest"] = backtest
    if {"revenue", "operating_income"} <= present:
        hierarchy: dict = {"measures": {"revenue": {"total": "revenue", "nonnegative": True},
                                        "operating_income": {"total": "operating_income", "scale": "revenue"}}}
        if tree:
            hierarchy["segments"] = {s: {"revenue": f"revenue_{s}", "operating_income": f"operating_income_{s}"}
                                     for s in tree}
        doc["hierarchy"] = hierarchy
    if set(_TOTALS) <= present:
        cf = {"sales": "revenue", "operating_income": "operating_income", "operating_cash_flow": "operating_cash_flow",
              "capex": "capex", "free_cash_flow": "free_cash_flow", "capex_gross": "purchases_of_property_and_equipment"}
        if "proceeds_from_property_and_equipment_sales" in present:
            cf["capex_proceeds"] = "proceeds_from_property_and_equipment_sales"
        doc["cash_flow"] = cf
        doc["scenario_drivers"] = {"capex": {"kind": "capex"}}
    doc["tracking"] = {"experiment_prefix": name, "model_name": f"{name}-fcf"}
    head = [f"# {title}: generated by `fcf company add {ticker.upper()}` on {date.today().isoformat()} from SEC "
            "EDGAR (features/profile.py describes every key).", "# Choices made (edit them here; the concepts are in "
            f"{name}/{MAPPING_FILE}):"]
    head += [f"#   - {n}" for n in notes]
    head.append("# no default_model: the library default (AutoCombo) applies until one is chosen on this company's "
                "own backtest")
    body = yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=110)
    untree = [s for s in disc.segments if s not in tree]
    if untree:
        body += (f"# segments found in the 10-K but not in the tree (fewer than {MIN_SEGMENT_QUARTERS} quarters, or "
                 "not up to the latest quarter, in the filings read;\n# `fcf data update` reads them from new "
                 "10-Q/10-K instances, `fcf company add --filings N` from the newest N).\n# To put them in the "
                 "tree once their quarters are in the data file, add these lines under `hierarchy:` above:\n"
                 "#   segments:\n")
        body += "".join(f"#     {s}: {{revenue: revenue_{s}, operating_income: operating_income_{s}}}  "
                        f"# {disc.segments[s]}\n" for s in untree)
    return "\n".join(head) + "\n" + body


def add_company(ticker: str, *, out_dir: str | Path | None = None, name: str | None = None,
                client: EdgarClient | None = None, user_agent: str | None = None, filings: int = 0,
                force: bool = False, say=print) -> AddResult:
    """Add a company from SEC EDGAR (see the module docstring); returns what it wrote and chose.

    Raises `EdgarError` (its `exit_code`), `DataValidationError` or `FileExistsError`; nothing
    is written then.
    """
    name = name or _name_of(ticker)
    out = Path(out_dir) if out_dir is not None else profiles_dir()
    profile_path, folder = out / f"{name}.yaml", out / name
    if profile_path.exists() and not force:
        raise FileExistsError(f"{profile_path}: a profile named {name} exists; pass --force to replace it or "
                              "--name to choose another")
    client = client or EdgarClient(user_agent)
    cik, title, facts, instances, read = _fetch(client, ticker, filings, say)
    tenk = instances[instances["form"].str.startswith("10-K")] if len(instances) else instances
    disc = discover(pd.concat([facts, instances[instances["axis"] == ""]], ignore_index=True) if len(instances)
                    else facts, tenk, company=title, ticker=ticker, cik=cik)
    if {"revenue", "operating_income", "operating_cash_flow"} <= set(disc.missing):
        raise DataValidationError(Problem(f"SEC EDGAR ({ticker.upper()})", "none of the standard us-gaap concepts "
                                          "for revenue, operating income or operating cash flow is filed"))
    data_name = f"{name}_quarterly.csv"
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".fcf-add-{name}-", dir=out))
    try:
        (stage / MAPPING_FILE).write_text(
            f"# SEC XBRL facts behind each metric of {data_name}, chosen by `fcf company add {ticker.upper()}`\n"
            + yaml.safe_dump(disc.mapping, sort_keys=False, width=110), encoding="utf-8")
        mapping = read_mapping(stage / MAPPING_FILE)
        rows = quarterly_rows(pd.concat([facts, instances], ignore_index=True), mapping, history=True)
        if rows.empty:
            raise DataValidationError(Problem(f"SEC EDGAR ({ticker.upper()})", "the filings give no quarterly value "
                                              "of any mapped metric"))
        counts = rows[rows["vintage"] == ""].groupby("metric").size()
        starts = _model_from(rows, mapping)
        notes = list(disc.notes)
        last = rows.groupby("metric")["period_end"].max()
        tree = [s for s in disc.segments
                if all(counts.get(f"{m}_{s}", 0) >= MIN_SEGMENT_QUARTERS and last.get(f"{m}_{s}") == last.get(m)
                       for m in ("revenue", "operating_income"))]
        if disc.segments and not tree:
            have = ", ".join(f"{s} {counts.get('revenue_' + s, 0)}" for s in disc.segments)
            notes.append(f"segment tree: totals only for now (segment quarters in the filings read: {have})")
        for m in disc.missing:
            notes.append(f"missing: {m} (the company is added without it)")
        rows[ROW_COLUMNS].to_csv(stage / data_name, index=False)
        from features.calendar import quarter_label

        desc = disc.descriptions
        cfg = pd.DataFrame([{"metric": m, "model_from": quarter_label(starts[m], mapping.label_style),
                             "nonnegative": "true" if desc.get(m, (False, ""))[0] else "false",
                             "description": desc.get(m, (False, m))[1]} for m in mapping.metrics if m in starts])
        cfg.to_csv(stage / CONFIG_FILE, index=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            parsed = read_quarterly(stage / data_name, stage / CONFIG_FILE)
        present = set(parsed["metric"])
        n_core = min((int((parsed["metric"] == m).sum()) for m in _TOTALS if m in present), default=0)
        backtest, why = _backtest(n_core)
        notes.append(why)
        (stage / "SOURCES.md").write_text(_sources(title, ticker, cik, read, data_name), encoding="utf-8")
        text = _profile_text(name, title, ticker, f"{name}/{data_name}", disc, present, tree, backtest, notes)
        (stage / "profile.yaml").write_text(text, encoding="utf-8")
        staged_profile = stage / "profile.yaml"
        # the profile's data path is relative to the profile: validate it where it will live
        check = load_profile(staged_profile)
        del check
        folder.mkdir(parents=True, exist_ok=True)
        for f in (data_name, CONFIG_FILE, MAPPING_FILE, "SOURCES.md"):
            os.replace(stage / f, folder / f)
        os.replace(staged_profile, profile_path)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    quarters = {m: int(n) for m, n in parsed.groupby("metric").size().items()}
    return AddResult(name, profile_path, folder / data_name, disc, quarters, tree, notes)


def _sources(title: str, ticker: str, cik: int, read, data_name: str) -> str:
    lines = [f"# Sources: {title} ({ticker.upper()}, CIK {cik})", "",
             f"`{data_name}` was built by `fcf company add {ticker.upper()}` on {date.today().isoformat()} from SEC "
             f"EDGAR's company facts (`/api/xbrl/companyfacts/CIK{cik:010d}.json`)"
             + (" and the XBRL instances of " + ", ".join(f"{f.form} accn {f.accession} (filed {f.filed})"
                                                          for f in read) if read else "") + ".",
             "Each row's `source` names the filing(s) it came from; quarters are three-month values or "
             "year-to-date differences (docs/sec-ingestion.md); nothing is estimated."]
    return "\n".join(lines) + "\n"
