"""Claims: checkable statements about future quarters, turned into probabilities.

A claims file is YAML::

    name: company_2026                    # optional, default: the file name
    description: one paragraph            # optional
    claims:                               # required, at least one
      - id: cloud_growth_each_quarter_2026  # letters, digits, _ . - (used as an MLflow metric key)
        text: cloud segment net sales grow more than 25% year over year in every quarter of 2026
        source: who said it, where, when  # free text
        series: net_sales_cloud           # a series of the data (or of the roll-up's paths)
        measure: yoy_growth               # value (default) | yoy_growth | ratio | ttm
        over: net_sales_cloud             # ratio only: the denominator (operating margin:
                                          #   series operating_income_cloud over net_sales_cloud)
        relative_to: 2025Q4               # optional: the quantity divided by its value then
                                          #   (a ratio to an earlier period: doubling is ">= 2"),
                                          #   or "consensus": a quarter's value divided by the
                                          #   street's estimate for it ("beats": "> 1")
        period: 2026Q1..2026Q4            # a quarter (2026Q3 or FY2026Q3), a fiscal year (2026) or a range
        holds: all                        # ranges only: all (every period) or any (at least one)
        condition: ">= 25%"               # ">= x", "<= x", "> x", "< x", "between a and b"
        note: how the claim was read      # optional

Quantities of a series S in a period p:

- ``value``: S in quarter p; in fiscal year p, the sum of its four quarters. Quarters and
  fiscal years are the company's (`features.calendar.FiscalCalendar`, read from its profile):
  ``2026Q3`` and ``FY2026Q3`` both name fiscal quarter 3 of the fiscal year ending in 2026,
  ``2026`` that fiscal year (for a December year end, the calendar quarters and year).
- ``yoy_growth``: value(p) / value(p one year earlier) - 1 (quarter or fiscal year).
- ``ratio``: value(S, p) / value(over, p), e.g. an operating margin (fiscal year: sum / sum).
- ``ttm``: the trailing-twelve-month sum of S ending at quarter p.
- with ``relative_to: b``: the quantity at p divided by the same quantity at b.
- with ``relative_to: consensus`` (``measure: value``, quarters only): value(S, p) divided by
  the consensus estimate of S for p (`features.consensus`); without one the claim is not
  evaluable.

Numbers are USD millions (as in the data) or fractions; ``25%`` is read as 0.25. Quote a
condition in YAML (``">= 25%"``): a bare ``>`` starts a YAML block scalar.

This module reads and validates the format (`load_claims`, `claims_from_dict`) and checks
claims against the data before any computation (`check_claims`); `forecasting.claims.evaluate`
computes the quantities, probabilities and realised outcomes. Invalid files raise
`ClaimsError` (a `ValueError`) naming the file, the claim and the key.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.calendar import FiscalCalendar, parse_quarter_label, quarter_label
from features.yamlcheck import check_keys
from features.errors import InputError

__all__ = ["check_claims", "Claim", "claim_from_dict", "CLAIM_KEYS", "claims_from_dict", "ClaimsError",
           "ClaimSet", "Condition", "CONSENSUS", "fiscal_year", "GROWTH_BOUNDS", "HOLDS", "is_quarter",
           "load_claims", "MAX_RATIO", "MEASURES", "OPERATORS", "parse_condition", "period_label",
           "quarters_of", "REQUIRED", "TOP_KEYS", "TYPO_CUTOFF", "UNIT_RATIO"]

MEASURES = ("value", "yoy_growth", "ratio", "ttm")
TOP_KEYS = ("name", "description", "sources", "claims")
CLAIM_KEYS = ("id", "text", "source", "series", "measure", "over", "relative_to", "period", "holds",
              "condition", "note")
REQUIRED = ("id", "text", "source", "series", "period", "condition")
OPERATORS = (">=", "<=", ">", "<", "between")
HOLDS = ("all", "any")
_ID = re.compile(r"^[A-Za-z0-9_.\-]+$")
_YEAR = re.compile(r"^\d{4}$")
_NUMBER = r"[-+]?(?:\d[\d,_]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?%?"
_CONDITION = re.compile(rf"^\s*(>=|<=|>|<)\s*({_NUMBER})\s*$")
_BETWEEN = re.compile(rf"^\s*between\s+({_NUMBER})\s+and\s+({_NUMBER})\s*$", re.IGNORECASE)
#: Growth thresholds outside this range are almost surely percentages typed as numbers.
GROWTH_BOUNDS = (-1.0, 3.0)
#: Ratio thresholds above this (in absolute value) are almost surely percentages.
MAX_RATIO = 10.0
#: A money threshold this many times below the series' reported level is in the wrong unit.
UNIT_RATIO = 200.0
#: How close an unknown series name must be to a known one to be called a typo.
TYPO_CUTOFF = 0.8

Period = pd.Period  # a fiscal quarter (freq Q-<year-end month>) or a fiscal year (freq Y-<month>)
#: ``relative_to`` of a claim against the street's estimate of the same quarter.
CONSENSUS = "consensus"


class ClaimsError(InputError):
    """A claims file or mapping is invalid; the message names the file, the claim and the key."""

    def __init__(self, source: str, claim: str | None, key: str | None, problem: str):
        self.source, self.claim, self.key, self.problem = source, claim, key, problem
        where = [Path(source).name if source else "<claims>"]
        if claim:
            where.append(f"claim {claim}")
        if key:
            where.append(f"key {key}")
        super().__init__(f"{', '.join(where)}: {problem}")


# --------------------------------------------------------------------------- the format
@dataclass(frozen=True)
class Condition:
    """``op`` one of `OPERATORS`; ``low``/``high`` the bounds (one of them for >=, <=, >, <)."""

    op: str
    low: float | None = None
    high: float | None = None

    @property
    def bounds(self) -> list[float]:
        return [b for b in (self.low, self.high) if b is not None]

    def holds(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if self.op == ">=":
            return x >= self.low
        if self.op == ">":
            return x > self.low
        if self.op == "<=":
            return x <= self.high
        if self.op == "<":
            return x < self.high
        return (x >= self.low) & (x <= self.high)


@dataclass(frozen=True)
class Claim:
    """A validated claim (see the module docstring); periods are quarters or fiscal years."""

    id: str
    text: str
    source: str
    series: str
    measure: str
    periods: tuple
    condition: Condition
    holds: str = "all"
    over: str | None = None
    relative_to: Period | None = None
    note: str = ""

    @property
    def series_used(self) -> list[str]:
        return [s for s in (self.series, self.over) if s]

    @property
    def unit(self) -> str:
        """How values of the quantity read: ``fraction`` (growth, ratio), ``multiple``
        (relative to an earlier period) or ``usd`` (USD millions)."""
        if self.relative_to is not None:
            return "multiple"
        return "fraction" if self.measure in ("yoy_growth", "ratio") else "usd"

    def quarters_needed(self) -> list[pd.Period]:
        """Every quarter whose value enters the claim."""
        out: set[pd.Period] = set()
        base = [self.relative_to] if self.relative_to not in (None, CONSENSUS) else []
        for p in [*self.periods, *base]:
            qs = quarters_of(p)
            if self.measure == "ttm":
                qs = [q - k for q in qs for k in range(4)]
            if self.measure == "yoy_growth":
                qs = qs + [q - 4 for q in qs]
            out |= set(qs)
        return sorted(out)


@dataclass(frozen=True)
class ClaimSet:
    name: str
    description: str
    claims: tuple[Claim, ...]
    source: str = "<dict>"

    def ids(self) -> list[str]:
        return [c.id for c in self.claims]


def is_quarter(period) -> bool:
    """True for a fiscal quarter, False for a fiscal year (or ``consensus``)."""
    return isinstance(period, pd.Period) and period.freqstr.startswith("Q")


def fiscal_year(year: int, calendar: FiscalCalendar) -> pd.Period:
    """Fiscal year `year` of `calendar` as an annual period ending in its year-end month."""
    return pd.Period(year=int(year), freq=calendar.period_freq.replace("Q-", "Y-"))


def quarters_of(period: Period) -> list[pd.Period]:
    """The quarters of a quarter (itself) or of a fiscal year (its four fiscal quarters)."""
    if is_quarter(period):
        return [period]
    qfreq = period.freqstr.replace("Y-", "Q-")
    return list(pd.period_range(period.asfreq(qfreq, "s"), period.asfreq(qfreq, "e"), freq=qfreq))


def period_label(period: Period) -> str:
    """``2026Q3`` / ``FY2026`` for a December year end; ``FY2026Q3`` / ``FY2026`` otherwise
    (`features.calendar.FiscalCalendar.label`'s style)."""
    if period == CONSENSUS:
        return CONSENSUS
    if not is_quarter(period):
        return f"FY{period.year}"
    return quarter_label(period, "calendar" if period.freqstr == "Q-DEC" else "fiscal")


def load_claims(path: str | Path, calendar: FiscalCalendar | None = None) -> ClaimSet:
    """Read and validate a claims YAML file; quarters and fiscal years are read in `calendar`
    (the company's fiscal calendar; default calendar quarters)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ClaimsError(str(path), None, None, "file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ClaimsError(str(path), None, None, f"not a text file ({exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        line = text.splitlines()[mark.line] if mark is not None and mark.line < len(text.splitlines()) else ""
        hint = '; quote conditions, e.g. condition: ">= 25%"' if re.search(r":\s*[<>]", line) else ""
        raise ClaimsError(str(path), None, None,
                          f"not valid YAML{where} ({getattr(exc, 'problem', exc)}){hint}") from exc
    return claims_from_dict(data, source=str(path), default_name=path.stem, calendar=calendar)


def claims_from_dict(data, source: str = "<dict>", default_name: str = "claims",
                     calendar: FiscalCalendar | None = None) -> ClaimSet:
    """Validate a claims mapping (the YAML structure)."""
    if not isinstance(data, Mapping):
        raise ClaimsError(source, None, None, f"expected a mapping with keys {list(TOP_KEYS)}, "
                                              f"got {type(data).__name__}")
    _unknown(data, TOP_KEYS, source, None, "")
    items = data.get("claims")
    if not isinstance(items, list) or not items:
        raise ClaimsError(source, None, "claims", "missing or empty: give a list of claims, each with "
                                                  f"{', '.join(REQUIRED)}")
    claims, seen = [], {}
    for i, item in enumerate(items, start=1):
        c = claim_from_dict(item, source, i, calendar)
        if c.id in seen:
            raise ClaimsError(source, c.id, "id", f"duplicate id (also claim #{seen[c.id]}); ids must be unique")
        seen[c.id] = i
        claims.append(c)
    name = str(data.get("name") or default_name)
    return ClaimSet(name=name, description=str(data.get("description") or "").strip(), claims=tuple(claims),
                    source=source)


def claim_from_dict(item, source: str = "<dict>", index: int = 1, calendar: FiscalCalendar | None = None) -> Claim:
    """Validate one claim mapping (`index`: its 1-based position, named in errors)."""
    label = f"#{index}"
    if not isinstance(item, Mapping):
        raise ClaimsError(source, label, None, f"expected a mapping with keys {', '.join(REQUIRED)}, "
                                               f"got {type(item).__name__} {item!r}")
    if isinstance(item.get("id"), str) and item["id"].strip():
        label = f"{item['id'].strip()} (#{index})"
    _unknown(item, CLAIM_KEYS, source, label, "")
    for key in REQUIRED:
        if key not in item or item[key] is None or (isinstance(item[key], str) and not item[key].strip()):
            raise ClaimsError(source, label, key, "missing or empty; every claim needs "
                                                  f"{', '.join(REQUIRED)}")
    cid = str(item["id"]).strip()
    if not _ID.match(cid):
        raise ClaimsError(source, label, "id", f"'{cid}' may use only letters, digits, '_', '.' and '-'")
    err = lambda key, msg: ClaimsError(source, label, key, msg)  # noqa: E731
    measure = str(item.get("measure", "value")).strip()
    if measure not in MEASURES:
        close = [m for m in MEASURES if measure and measure.lower() in m] or difflib.get_close_matches(
            measure, MEASURES, n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise err("measure", f"unknown measure '{measure}'{hint}; choose from {', '.join(MEASURES)}")
    over = item.get("over")
    if measure == "ratio" and not over:
        raise err("over", "a ratio needs 'over': the denominator series (e.g. a segment's net sales for its margin)")
    if measure != "ratio" and over:
        raise err("over", f"'over' is only used with measure: ratio (this claim's measure is {measure})")
    cal = calendar or FiscalCalendar()
    periods = _periods(item["period"], err, cal)
    if measure == "ttm" and not all(is_quarter(p) for p in periods):
        raise err("period", "a trailing-twelve-month sum ends at a quarter: give a quarter like 2025Q4")
    holds = item.get("holds")
    if len(periods) > 1 and holds is None:
        raise err("holds", "a range of periods needs 'holds: all' (the claim holds in every period) "
                           "or 'holds: any' (in at least one)")
    if holds is not None and str(holds) not in HOLDS:
        raise err("holds", f"'{holds}' is not one of {', '.join(HOLDS)}")
    relative_to = None
    if str(item.get("relative_to", "")).strip().lower() == CONSENSUS:
        if measure != "value" or not all(is_quarter(p) for p in periods):
            raise err("relative_to", "relative_to: consensus compares a quarter's value with the street's estimate "
                                     "of it: use measure: value and quarters (e.g. period: 2026Q3)")
        relative_to = CONSENSUS
    elif item.get("relative_to") is not None:
        if measure == "yoy_growth":
            raise err("relative_to", "yoy_growth is already relative to the year before; drop relative_to "
                                     "or use measure: value")
        (relative_to,) = _periods(item["relative_to"], lambda k, m: err("relative_to", m), cal)
        if is_quarter(relative_to) != is_quarter(periods[0]):
            raise err("relative_to", f"{period_label(relative_to)} and the period {period_label(periods[0])} "
                                     "must both be quarters or both fiscal years")
        if relative_to >= periods[0]:
            raise err("relative_to", f"{period_label(relative_to)} is not before the period "
                                     f"{period_label(periods[0])}")
    condition = parse_condition(item["condition"], err)
    unit = "multiple" if relative_to is not None else ("fraction" if measure in ("yoy_growth", "ratio") else "usd")
    for b in condition.bounds:
        if unit == "fraction" and measure == "yoy_growth" and not GROWTH_BOUNDS[0] <= b <= GROWTH_BOUNDS[1]:
            raise err("condition", f"growth {b:g} is outside [{GROWTH_BOUNDS[0]:g}, {GROWTH_BOUNDS[1]:g}]: "
                                   f"write {b / 100:g} or {b:g}% for {b:g} percent")
        if unit == "fraction" and measure == "ratio" and abs(b) > MAX_RATIO:
            raise err("condition", f"ratio {b:g} is above {MAX_RATIO:g}: write {b / 100:g} or {b:g}% "
                                   f"for {b:g} percent")
        if unit == "multiple" and b <= 0:
            raise err("condition", f"a ratio to an earlier period must be compared with a positive "
                                   f"multiple (2 = doubled), got {b:g}")
    return Claim(id=cid, text=str(item["text"]).strip(), source=str(item["source"]).strip(),
                 series=str(item["series"]).strip(), measure=measure, periods=periods, condition=condition,
                 holds=str(holds or "all"), over=str(over).strip() if over else None, relative_to=relative_to,
                 note=str(item.get("note") or "").strip())


def _one_period(text: str, err, cal: FiscalCalendar) -> Period:
    t = text.strip().upper()
    if parse_quarter_label(t) is not None:
        return cal.parse(t)
    if _YEAR.match(t.removeprefix("FY")):
        return fiscal_year(int(t.removeprefix("FY")), cal)
    raise err("period", f"'{text}' is not a quarter like 2026Q3 (FY2026Q3) or a fiscal year like 2026")


def _periods(v, err, cal: FiscalCalendar) -> tuple:
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise err("period", f"expected a quarter (2026Q3), a fiscal year (2026) or a range (2026Q1..2026Q4), "
                            f"got {v!r}")
    text = str(v)
    if ".." not in text:
        return (_one_period(text, err, cal),)
    a, _, b = text.partition("..")
    start, end = _one_period(a, err, cal), _one_period(b, err, cal)
    if is_quarter(start) != is_quarter(end):
        raise err("period", f"range '{text}' mixes a quarter and a fiscal year")
    if end < start:
        raise err("period", f"range '{text}' ends before it starts")
    return tuple(pd.period_range(start, end, freq=start.freqstr))


def _number(text, err) -> float:
    if isinstance(text, bool):
        raise err("condition", f"expected a number, got {text!r}")
    if isinstance(text, (int, float)):
        v = float(text)
    else:
        t = str(text).strip().replace(",", "").replace("_", "")
        pct = t.endswith("%")
        try:
            v = float(t[:-1] if pct else t)
        except ValueError:
            raise err("condition", f"'{text}' is not a number") from None
        v = v / 100 if pct else v
    if not np.isfinite(v):
        raise err("condition", f"expected a finite number, got {text!r}")
    return v


def parse_condition(v, err=None) -> Condition:
    """``">= 25%"``, ``"<= 0.12"``, ``"between 130000 and 140000"``, or a mapping
    ``{">=": 0.25}`` / ``{"between": [a, b]}``."""
    err = err or (lambda key, msg: ClaimsError("<claims>", None, key, msg))
    forms = '">= 25%", "<= 0.12", "> 26500", "between 130000 and 140000"'
    if isinstance(v, Mapping):
        if len(v) != 1 or str(next(iter(v))) not in OPERATORS:
            raise err("condition", f"a condition mapping has one key among {', '.join(OPERATORS)}; "
                                   f"or write it as text: {forms}")
        op, arg = str(next(iter(v))), next(iter(v.values()))
        if op == "between":
            if not isinstance(arg, (list, tuple)) or len(arg) != 2:
                raise err("condition", f"between needs two bounds [low, high], got {arg!r}")
            low, high = _number(arg[0], err), _number(arg[1], err)
        else:
            low = high = _number(arg, err)
    elif isinstance(v, str) and (m := _CONDITION.match(v)):
        op = m.group(1)
        low = high = _number(m.group(2), err)
    elif isinstance(v, str) and (m := _BETWEEN.match(v)):
        op = "between"
        low, high = _number(m.group(1), err), _number(m.group(2), err)
    else:
        raise err("condition", f"cannot read {v!r}; write one of {forms} (quoted in YAML)")
    if op == "between":
        if low > high:
            raise err("condition", f"between {low:g} and {high:g}: the low bound is above the high one")
        return Condition("between", low, high)
    return Condition(op, low=low if op in (">=", ">") else None, high=high if op in ("<=", "<") else None)


def _unknown(d: Mapping, allowed: Sequence[str], source: str, claim: str | None, prefix: str) -> None:
    check_keys(d, allowed, lambda k, msg: ClaimsError(source, claim, f"{prefix}{k}", msg))


def check_claims(claims: ClaimSet, reported: pd.DataFrame, simulated: Iterable[str] = ()) -> dict[str, str]:
    """Check claims against the data before any computation.

    A series name close to a known one (reported or simulated) is a typo and raises
    `ClaimsError` with the closest name; a money threshold far below the series' reported
    level (USD billions given for millions) raises too. A series the data does not have at
    all makes its claim not evaluable: returns ``{claim id: reason}`` for those.
    """
    known = set(reported["unique_id"]) | set(simulated)
    out = {}
    for c in claims.claims:
        for key, s in (("series", c.series), ("over", c.over)):
            if s is None or s in known:
                continue
            close = difflib.get_close_matches(s, sorted(known), n=1, cutoff=TYPO_CUTOFF)
            if close:
                raise ClaimsError(claims.source, c.id, key, f"unknown series '{s}' (did you mean '{close[0]}'?)")
            out[c.id] = f"series '{s}' is neither in the reported data nor simulated by the roll-up"
        if c.id in out or c.unit != "usd":
            continue
        y = reported.loc[reported["unique_id"] == c.series].sort_values("ds")["y"].to_numpy(dtype=float)[-4:]
        if not len(y):
            continue
        level = float(np.abs(y).mean()) * (4 if c.measure == "ttm" or not is_quarter(c.periods[0]) else 1)
        for b in c.condition.bounds:
            if 0 < abs(b) < level / UNIT_RATIO:
                raise ClaimsError(claims.source, c.id, "condition",
                                  f"{b:g} is {level / abs(b):,.0f} times below the reported level of {c.series} "
                                  f"({level:,.0f}); amounts are USD millions (e.g. {b * 1000:,.0f} for {b:g}B)")
    return out
