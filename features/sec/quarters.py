"""From filed facts to the data file's rows: three-month values per fiscal quarter, with vintages.

Rules, per metric and fiscal year (the same as ``data/SOURCES.md`` for the shipped file):

1. a three-month fact is used as it is;
2. otherwise quarter k = year-to-date(k) - year-to-date(k-1): the 6- and 9-month facts of
   10-Q cash-flow statements give Q2 and Q3, and Q4 = fiscal year (10-K) - 9-month YTD;
3. without the earlier year-to-date fact, quarter k = YTD(k) - (Q1 + ... + Qk-1), the
   earlier quarters taken from the facts or, failing those, from the data file (`known`), so
   the 10-K alone gives Q4 once Q1-Q3 are in the file;
4. formula metrics (``free_cash_flow = operating_cash_flow - capex``) are computed per
   quarter from the other metrics.

Vintages (point in time): the facts are replayed filing date by filing date; at each date
the quarter values are computed from the facts filed by then (the latest value of each
fact). A quarter's first value is the original (``vintage`` empty); a later different value
is a restatement, a new row whose ``vintage`` is the date of the filing that changed it.
Unchanged values are never repeated. `history=False` computes the final state only.

Facts whose period does not line up with the fiscal calendar (a one-month period, a
duration that starts mid-quarter) are ignored. A 52/53-week calendar's periods (whole weeks
ending within a week of a month end: 13 weeks a quarter, 14 in a 53-week year's extra-week
quarter) stand for the fiscal quarter of that month end (`nearest_month_end`); the data file's
``period_end`` is then the month end, and ``source`` names the filing.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

import pandas as pd

from features.calendar import fiscal_quarter, period_end, quarter, quarter_label
from features.sec.mapping import CompanyMapping, MetricMap

__all__ = ["ANNUAL_COLUMNS", "annual_rows", "ASOF", "missing_metrics", "musd", "nearest_month_end", "quarterly_rows",
           "ROW_COLUMNS", "TOLERANCE", "usd_of", "Value", "Version", "WEEK_CALENDAR_DAYS"]

ROW_COLUMNS = ["metric", "fiscal_quarter", "period_end", "value_musd", "source", "vintage"]
#: `quarterly_rows` also returns ``asof``: the filing date at which the row's value was first known,
#: and ``tolerance``: USD by which a value may differ from another derivation by rounding alone.
ASOF = "asof"
TOLERANCE = "tolerance"
ANNUAL_COLUMNS = ["metric", "fiscal_year", "period_end", "value_musd", "source"]
_YTD_LABEL = {1: "Q1", 2: "6M YTD", 3: "9M YTD", 4: "FY"}


@dataclass(frozen=True)
class Version:
    """One value of one fact as a filing reported it."""

    value: int
    form: str
    accession: str
    filed: pd.Timestamp

    def cite(self) -> str:
        return f"{self.form} XBRL (accn {self.accession})"


@dataclass(frozen=True)
class Value:
    """A computed quarter value (USD), where it came from, and its rounding tolerance (USD).

    A value filed as such, or the difference of two filed year-to-date values, is exact
    (``tol`` 0). One derived by subtracting a sum of quarters, each rounded to the filing's
    unit, may differ from a derivation from the nine-month figure by a unit or two (Amazon's
    quarters can differ from its fiscal year by 1-2 million): such a difference is rounding,
    not a restatement.
    """

    usd: int
    source: str
    tol: int = 0


def _unit(values) -> int:
    """The largest power of ten (up to a million) that divides every non-zero value."""
    unit = 1_000_000
    for v in values:
        while v and unit > 1 and v % unit:
            unit //= 10
    return unit


def musd(usd: int) -> str:
    """US dollars -> the file's USD millions text, exact (``108815000`` -> ``"108.815"``)."""
    d = (Decimal(usd) / Decimal(1_000_000)).normalize()
    return format(d, "f")


def usd_of(text: str) -> int:
    """The file's USD millions text -> whole US dollars (``"10,219"`` -> ``10219000000``)."""
    return int(Decimal(text.replace(",", "")) * 1_000_000)


# --------------------------------------------------------------------------- fact selection
def _months(start: pd.Timestamp, end: pd.Timestamp) -> int | None:
    days = (end - start).days + 1
    m = round(days / 30.4375)
    return m if m in (3, 6, 9, 12) and abs(days - m * 30.4375) <= 6 else None


#: how far (days) a 52/53-week period's end may lie from the month end of its fiscal quarter; a
#: year ending on "the Saturday nearest the last day of the month" is at most 3 days away, one
#: ending on "the last Saturday of the month" at most 6
WEEK_CALENDAR_DAYS = 7


def nearest_month_end(day: pd.Timestamp) -> pd.Timestamp | None:
    """The month end nearest `day` when it is within `WEEK_CALENDAR_DAYS`, else None."""
    before = day.normalize() - pd.offsets.MonthEnd(0) if day.is_month_end else day.normalize() - pd.offsets.MonthEnd(1)
    after = day.normalize() + pd.offsets.MonthEnd(0)
    best = min((before, after), key=lambda m: abs((day.normalize() - m).days))
    return best if abs((day.normalize() - best).days) <= WEEK_CALENDAR_DAYS else None


def _week_period(start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp, int | None]:
    """A period of whole weeks (13, 26, 39, 52 or 53 of them, a quarter may have 14) as the
    month-end period it stands for: ``(first day, last day, months)``; months None when the
    period is not one of a 52/53-week fiscal calendar's quarters or year-to-dates."""
    days = (end - start).days + 1
    last = nearest_month_end(end)
    before = nearest_month_end(start - pd.Timedelta(days=1))
    if days % 7 or last is None or before is None:
        return start, end, None
    months = (last.year - before.year) * 12 + last.month - before.month
    if months not in (3, 6, 9, 12) or not 13 * months // 3 <= days // 7 <= 13 * months // 3 + 1:
        return start, end, None
    return before + pd.Timedelta(days=1), last, months


class _MetricFacts:
    """The facts of one metric, indexed by fiscal position, each with its filed versions."""

    def __init__(self, metric: MetricMap, facts: pd.DataFrame, year_end_month: int):
        self.metric = metric
        concept_rank = {c: i for i, c in enumerate(metric.concepts)}
        member_rank = {m: i for i, m in enumerate(metric.members)} if metric.axis else {"": 0}
        sel = facts[facts["concept"].isin(concept_rank) & (facts["axis"] == metric.axis)
                    & facts["member"].isin(member_rank)]
        # (fiscal year, k, is_three_month) -> rank -> versions sorted by filing date
        self.slots: dict[tuple[int, int, bool], dict[tuple[int, int], list[Version]]] = {}
        for r in sel.sort_values("filed", kind="stable").itertuples(index=False):
            if r.end.is_month_end and (r.start - pd.Timedelta(days=1)).is_month_end:
                start, end = r.start, r.end
                months = _months(start, end)
            else:  # a 52/53-week calendar (whose Saturdays may fall on a month end): the nearest month end
                start, end, months = _week_period(r.start, r.end)
            if months is None:
                continue
            p = fiscal_quarter(end, year_end_month)
            k = months // 3
            three = months == 3
            first = p if three else p - (k - 1)
            if (not three and p.quarter != k) or first.start_time.normalize() != start.normalize():
                continue
            key = (p.qyear, p.quarter if three else k, three)
            rank = (concept_rank[r.concept], member_rank[r.member])
            versions = self.slots.setdefault(key, {}).setdefault(rank, [])
            filed = r.filed if pd.notna(r.filed) else pd.Timestamp.min
            if versions and versions[-1].value == r.value:
                continue  # a comparative repeating an unchanged value
            versions.append(Version(int(r.value), str(r.form), str(r.accession), filed))
        self.filed_dates = sorted({v.filed for ranks in self.slots.values() for vs in ranks.values() for v in vs})

    def at(self, key: tuple[int, int, bool], asof: pd.Timestamp) -> Version | None:
        """The value of a slot known at `asof`: the best-ranked concept, its latest version."""
        for rank in sorted(self.slots.get(key, {})):
            versions = self.slots[key][rank]
            i = bisect.bisect_right([v.filed for v in versions], asof)
            if i:
                return versions[i - 1]
        return None

    @property
    def years(self) -> list[int]:
        return sorted({y for (y, _, _) in self.slots})


def _quarter_values(mf: _MetricFacts, asof: pd.Timestamp, year_end_month: int,
                    known: Mapping[pd.Period, int]) -> tuple[dict[pd.Period, Value], dict[int, Value]]:
    """Quarter values (and fiscal-year values) of one metric from the facts known at `asof`."""
    quarters: dict[pd.Period, Value] = {}
    years: dict[int, Value] = {}
    for fy in mf.years:
        ytd = {k: mf.at((fy, k, False), asof) for k in (2, 3, 4)}
        three = {q: mf.at((fy, q, True), asof) for q in (1, 2, 3, 4)}
        ytd[1] = three[1]
        if ytd[4] is not None:
            years[fy] = Value(ytd[4].value, ytd[4].cite())
        for q in (1, 2, 3, 4):
            p = quarter(fy, q, year_end_month)
            if three[q] is not None:
                quarters[p] = Value(three[q].value, three[q].cite())
                continue
            cur = ytd[q]
            if q == 1 or cur is None:
                continue
            prev = ytd[q - 1]
            if prev is not None:
                quarters[p] = Value(cur.value - prev.value, f"derived: {_YTD_LABEL[q]} from {cur.cite()} minus "
                                                            f"{_YTD_LABEL[q - 1]} from {prev.cite()}")
                continue
            earlier = [quarter(fy, j, year_end_month) for j in range(1, q)]
            parts, where = [], set()
            for e in earlier:
                if e in quarters:
                    parts.append(quarters[e].usd)
                    where.add("filings")
                elif e in known:
                    parts.append(known[e])
                    where.add("data file")
            if len(parts) == len(earlier):
                span = "Q1" if q == 2 else f"Q1-Q{q - 1}"
                tol = (len(parts) // 2 + 1) * _unit([cur.value, *parts])
                quarters[p] = Value(cur.value - sum(parts), f"derived: {_YTD_LABEL[q]} from {cur.cite()} minus "
                                                            f"{span} ({' and '.join(sorted(where))})", tol)
    return quarters, years


def _formula(m: MetricMap, values: dict[str, dict]) -> dict:
    inputs = [(sign, values.get(name, {})) for sign, name in m.formula]
    keys = set.intersection(*(set(v) for _, v in inputs)) if inputs else set()
    text = " ".join(("- " if s < 0 else ("+ " if i else "")) + n for i, (s, n) in enumerate(m.formula))
    return {k: Value(sum(s * v[k].usd for s, v in inputs), f"derived: {text}", sum(v[k].tol for _, v in inputs))
            for k in keys}


def _state(mapping: CompanyMapping, indexed: dict[str, _MetricFacts], asof: pd.Timestamp,
           known: Mapping[tuple[str, pd.Period], int]) -> tuple[dict[str, dict], dict[str, dict]]:
    q_values, y_values = {}, {}
    for name, mf in indexed.items():
        own = {p: v for (m, p), v in known.items() if m == name}
        q_values[name], y_values[name] = _quarter_values(mf, asof, mapping.fiscal_year_end_month, own)
    for m in mapping.formula_metrics:
        q_values[m.name] = _formula(m, q_values)
        y_values[m.name] = _formula(m, y_values)
    return q_values, y_values


def _index(facts: pd.DataFrame, mapping: CompanyMapping) -> dict[str, _MetricFacts]:
    return {m.name: _MetricFacts(m, facts, mapping.fiscal_year_end_month) for m in mapping.fact_metrics}


# --------------------------------------------------------------------------- public API
def quarterly_rows(facts: pd.DataFrame, mapping: CompanyMapping, history: bool = True,
                   known: Mapping[tuple[str, pd.Period], int] | None = None) -> pd.DataFrame:
    """The data-file rows (`ROW_COLUMNS`) the facts give, one per metric, quarter and vintage.

    Args:
        facts: `features.sec.facts` output (any mix of filings and sources).
        mapping: the company's `CompanyMapping` (metrics, fiscal-year-end month, label style).
        history: replay filing dates so restatements become later-vintage rows; False: only
            the values known after the last filing, each with an empty vintage.
        known: ``(metric, period) -> USD`` already in the data file; used only to derive a
            quarter from a year-to-date fact when the earlier quarters are not in the facts.

    Returns rows sorted by metric (mapping order), quarter and vintage; ``value_musd`` is exact
    text; column ``asof`` is the filing date from which the row's value was known, ``tolerance``
    the rounding tolerance in USD (see `Value`).
    """
    known = dict(known or {})
    indexed = _index(facts, mapping)
    dates = sorted({d for mf in indexed.values() for d in mf.filed_dates})
    if not history:
        dates = dates[-1:]
    current: dict[tuple[str, pd.Period], int] = {}
    rows = []
    for d in dates:
        q_values, _ = _state(mapping, indexed, d, known)
        for name in mapping.metrics:
            for p, v in q_values.get(name, {}).items():
                before = current.get((name, p))
                if before is not None and abs(before - v.usd) <= v.tol:
                    continue
                current[(name, p)] = v.usd
                vintage = "" if before is None or d == pd.Timestamp.min else d.strftime("%Y-%m-%d")
                rows.append({"metric": name, "period": p, "fiscal_quarter": quarter_label(p, mapping.label_style),
                             "period_end": period_end(p).strftime("%Y-%m-%d"), "value_musd": musd(v.usd),
                             "source": v.source, "vintage": vintage,
                             ASOF: "" if d == pd.Timestamp.min else d.strftime("%Y-%m-%d"), TOLERANCE: v.tol})
    out = pd.DataFrame(rows, columns=["period", *ROW_COLUMNS, ASOF, TOLERANCE])
    if out.empty:
        return out[[*ROW_COLUMNS, ASOF, TOLERANCE]]
    order = {m: i for i, m in enumerate(mapping.metrics)}
    out["order_"] = out["metric"].map(order)
    out = out.sort_values(["order_", "period", ASOF], kind="stable")
    return out[[*ROW_COLUMNS, ASOF, TOLERANCE]].reset_index(drop=True)


def annual_rows(facts: pd.DataFrame, mapping: CompanyMapping) -> pd.DataFrame:
    """Fiscal-year rows (`ANNUAL_COLUMNS`) from the twelve-month facts, as known after the last filing."""
    indexed = _index(facts, mapping)
    dates = sorted({d for mf in indexed.values() for d in mf.filed_dates})
    if not dates:
        return pd.DataFrame(columns=ANNUAL_COLUMNS)
    _, y_values = _state(mapping, indexed, dates[-1], {})
    rows = []
    for name in mapping.metrics:
        for fy, v in sorted(y_values.get(name, {}).items()):
            end = period_end(quarter(fy, 4, mapping.fiscal_year_end_month))
            rows.append({"metric": name, "fiscal_year": str(fy), "period_end": end.strftime("%Y-%m-%d"),
                         "value_musd": musd(v.usd), "source": v.source})
    return pd.DataFrame(rows, columns=ANNUAL_COLUMNS)


def missing_metrics(facts: pd.DataFrame, mapping: CompanyMapping, accession: str) -> list[MetricMap]:
    """Required fact metrics with no usable fact in the filing `accession`."""
    own = facts[facts["accession"] == accession]
    indexed = _index(own, mapping)
    return [mf.metric for mf in indexed.values() if mf.metric.required and not mf.slots]
