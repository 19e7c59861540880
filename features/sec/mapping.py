"""Which SEC XBRL facts make each metric of a company's data file: a small YAML file per company.

The mapping is data, not code: adding a company or a metric means editing a file beside the
data file (``sec_mapping.yaml``), never a branch in the parser. Shape::

    company: Amazon.com, Inc.
    ticker: AMZN
    cik: 1018724
    fiscal_year_end_month: 12      # 1 for a fiscal year ending in January
    label_style: calendar          # "2024Q3" labels; "fiscal": "FY2026Q1" labels
    source: xbrl                   # update from filing instances (xbrl) or from companyfacts
    metrics:
      net_sales_aws:
        concepts: [us-gaap:RevenueFromContractWithCustomerExcludingAssessedTax]
        axis: us-gaap:StatementBusinessSegmentsAxis
        members: [amzn:AmazonWebServicesSegmentMember]
      operating_cash_flow:
        concepts: [us-gaap:NetCashProvidedByUsedInOperatingActivities]
      free_cash_flow:
        formula: operating_cash_flow - purchases_of_property_and_equipment_net_of_proceeds

A fact matches a metric when its concept is one of ``concepts`` (earlier ones win when a
period has several, for companies that changed tags over the years) and its only dimension
is ``axis`` with one of ``members`` (no dimension at all when ``axis`` is absent). A
``formula`` metric is a sum and difference of other metrics of the same quarter.
``required: false`` lets a filing lack the metric without an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from features.errors import DataValidationError, Problem

__all__ = ["CompanyMapping", "formula_order", "LABEL_STYLES", "MAPPING_FILE", "MetricMap", "parse_formula",
           "read_mapping", "SOURCES"]

MAPPING_FILE = "sec_mapping.yaml"
SOURCES = ("xbrl", "companyfacts")
LABEL_STYLES = ("calendar", "fiscal")
_QNAME = re.compile(r"^[A-Za-z][\w.-]*:[A-Za-z_][\w.-]*$")
_TERM = re.compile(r"\s*([+-])?\s*([a-z_][a-z0-9_]*)\s*")


@dataclass(frozen=True)
class MetricMap:
    """One metric: either facts (`concepts`, optional `axis` + `members`) or a `formula`.

    `formula` is a tuple of ``(sign, metric)`` pairs, sign +1 or -1.
    """

    name: str
    concepts: tuple[str, ...] = ()
    axis: str = ""
    members: tuple[str, ...] = ()
    formula: tuple[tuple[int, str], ...] = ()
    required: bool = True

    @property
    def is_formula(self) -> bool:
        return bool(self.formula)


@dataclass(frozen=True)
class CompanyMapping:
    """A company's identity, fiscal calendar and metric map (see the module docstring)."""

    company: str
    ticker: str
    cik: int | None
    fiscal_year_end_month: int
    label_style: str
    source: str
    metrics: dict[str, MetricMap] = field(default_factory=dict)
    path: Path | None = None

    @property
    def fact_metrics(self) -> list[MetricMap]:
        return [m for m in self.metrics.values() if not m.is_formula]

    @property
    def formula_metrics(self) -> list[MetricMap]:
        """Formula metrics in an order where each one's inputs come first."""
        return formula_order(self.metrics)

    @property
    def concepts(self) -> set[str]:
        return {c for m in self.fact_metrics for c in m.concepts}

    @property
    def freq(self) -> str:
        """The pandas quarterly frequency of the fiscal calendar (``Q-DEC``, ``Q-JAN`` ...)."""
        return "Q-" + ("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()[self.fiscal_year_end_month - 1])


def formula_order(metrics: dict[str, MetricMap]) -> list[MetricMap]:
    """The formula metrics, each after the metrics it uses; ValueError on a cycle."""
    done = {m.name for m in metrics.values() if not m.is_formula}
    todo = [m for m in metrics.values() if m.is_formula]
    ordered = []
    while todo:
        ready = [m for m in todo if all(x in done for _, x in m.formula)]
        if not ready:
            raise ValueError(f"formulas refer to each other in a cycle: {', '.join(m.name for m in todo)}")
        for m in ready:
            ordered.append(m)
            done.add(m.name)
            todo.remove(m)
    return ordered


def parse_formula(text: str) -> tuple[tuple[int, str], ...] | None:
    """``"a - b + c"`` -> ``((1, "a"), (-1, "b"), (1, "c"))``; None when it is not such a sum."""
    pos, terms = 0, []
    while pos < len(text):
        m = _TERM.match(text, pos)
        if not m or (terms and not m.group(1)):
            return None
        terms.append((-1 if m.group(1) == "-" else 1, m.group(2)))
        pos = m.end()
    return tuple(terms) or None


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def read_mapping(path: str | Path) -> CompanyMapping:
    """Read and check a mapping file; every problem is reported with the metric it concerns."""
    path = Path(path)
    name = str(path)
    if not path.is_file():
        raise DataValidationError(Problem(name, f"SEC mapping not found (looked for {path.resolve()}); "
                                                f"write a {MAPPING_FILE} beside the data file"))
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DataValidationError(Problem(name, f"not a readable YAML file ({exc})")) from exc
    if not isinstance(doc, dict):
        raise DataValidationError(Problem(name, "expected a mapping with keys company, ticker, metrics, ..."))
    problems: list[Problem] = []
    known = {"company", "ticker", "cik", "fiscal_year_end_month", "label_style", "source", "metrics"}
    for key in doc:
        if key not in known:
            problems.append(Problem(name, f"unknown key '{key}' (known: {', '.join(sorted(known))})"))
    month = doc.get("fiscal_year_end_month", 12)
    if not isinstance(month, int) or not 1 <= month <= 12:
        problems.append(Problem(name, f"fiscal_year_end_month {month!r} is not a month number 1..12"))
        month = 12
    style = doc.get("label_style", "calendar")
    if style not in LABEL_STYLES:
        problems.append(Problem(name, f"label_style {style!r} is not one of {', '.join(LABEL_STYLES)}"))
    if style == "calendar" and month != 12:
        problems.append(Problem(name, "label_style calendar needs fiscal_year_end_month 12; use label_style "
                                      "fiscal for FY2026Q1-style labels"))
    source = doc.get("source", "xbrl")
    if source not in SOURCES:
        problems.append(Problem(name, f"source {source!r} is not one of {', '.join(SOURCES)}"))
    cik = doc.get("cik")
    if cik is not None and not (isinstance(cik, int) and cik > 0):
        problems.append(Problem(name, f"cik {cik!r} is not a positive whole number"))
    raw_metrics = doc.get("metrics") or {}
    if not isinstance(raw_metrics, dict) or not raw_metrics:
        problems.append(Problem(name, "no metrics: add a 'metrics' section naming each metric's concepts"))
        raw_metrics = {}
    metrics: dict[str, MetricMap] = {}
    for metric, spec in raw_metrics.items():
        m, errs = _read_metric(str(metric), spec)
        problems += [Problem(name, e, series=str(metric)) for e in errs]
        if m is not None:
            metrics[m.name] = m
    for m in metrics.values():
        for _, other in m.formula:
            if other not in metrics:
                problems.append(Problem(name, f"formula names unknown metric '{other}'", series=m.name))
    if problems:
        raise DataValidationError(problems)
    try:
        formula_order(metrics)
    except ValueError as exc:
        raise DataValidationError(Problem(name, str(exc))) from None
    return CompanyMapping(company=str(doc.get("company", "")), ticker=str(doc.get("ticker", "")).upper(),
                          cik=cik, fiscal_year_end_month=month, label_style=style, source=source,
                          metrics=metrics, path=path)


def _read_metric(metric: str, spec) -> tuple[MetricMap | None, list[str]]:
    if not isinstance(spec, dict):
        return None, ["expected concepts (and axis, members) or a formula"]
    errs = []
    unknown = set(spec) - {"concepts", "axis", "members", "formula", "required"}
    if unknown:
        errs.append(f"unknown key(s) {', '.join(sorted(unknown))} (known: concepts, axis, members, formula, required)")
    required = spec.get("required", True)
    if not isinstance(required, bool):
        errs.append(f"required {required!r} is not true/false")
    if "formula" in spec:
        if set(spec) & {"concepts", "axis", "members"}:
            errs.append("a metric has either a formula or concepts, not both")
        terms = parse_formula(str(spec["formula"]))
        if terms is None:
            errs.append(f"formula {spec['formula']!r} is not a sum of metric names like 'a - b + c'")
            return None, errs
        return MetricMap(metric, formula=terms, required=bool(required)), errs
    concepts = [str(c) for c in _as_list(spec.get("concepts"))]
    members = [str(c) for c in _as_list(spec.get("members"))]
    axis = str(spec.get("axis") or "")
    if not concepts:
        errs.append("no concepts: name the XBRL concept(s), e.g. us-gaap:Revenues")
    for q in concepts + members + ([axis] if axis else []):
        if not _QNAME.match(q):
            errs.append(f"'{q}' is not a prefixed XBRL name like us-gaap:Revenues")
    if bool(axis) != bool(members):
        errs.append("axis and members go together: name the axis and its member(s), or neither")
    return MetricMap(metric, tuple(concepts), axis, tuple(members), required=bool(required)), errs
