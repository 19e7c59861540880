"""Scenario files: what a scenario may change, read and validated against a company profile.

A scenario is a YAML file (or the same structure as a plain dict)::

    name: capex_heavy                      # optional, default: the file name
    description: one paragraph             # required
    sources: [claims from public analyst commentary ...]   # required, non-empty
    drivers:                               # required, at least one; keys from the profile
      capex:                               # kind capex: capex, USD millions, >= 0
        fiscal_year: {2026: 200000}        #   a fiscal year's total (reported quarters count)
        quarter: {2026Q4: 60000}           #   or single quarters
      <segment>_growth: {2026: 0.20}       # kind segment_growth: year-over-year growth of the
                                           #   segment's sales (fraction)
      operating_margin:                    # kind segment_margin: segment OI / segment sales
        <segment>: {2026: 0.375}
      <category>_growth: {2026: 0.22}      # kind category_growth: growth of a revenue category
      <category>_incremental_margin: 0.5   # kind category_margin: OI margin on the category's
                                           #   extra sales (default: its default_from segment's
                                           #   margin of the last 4 quarters)
    carry_forward: true                    # optional (see forecasting.scenarios.run)
    contradicted_by_reported_data:         # optional: claims kept as stated, marked with the
      capex.fiscal_year.2026: why          #   reported figures that contradict them

The driver keys and what each acts on are the company profile's ``scenario_drivers``
(`features.profile.Driver`); years are fiscal years and quarters the company's own labels.
Invalid files raise `ScenarioError` (a `ValueError`, exit code 2 in the CLI) naming the file
and the key, e.g. ``bull.yaml, key drivers.<segment>_growth.2026: ...``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from features.yamlcheck import as_mapping, as_number, check_keys
from features.errors import InputError
from features.profile import CompanyProfile

__all__ = ["CategoryDriver", "GROWTH_BOUNDS", "load_scenario", "MIN_ANNUAL_CAPEX", "reported_checks",
           "Scenario", "scenario_from_dict", "ScenarioError", "TOP_KEYS", "YEAR_BOUNDS"]

TOP_KEYS = ("name", "description", "sources", "drivers", "carry_forward", "contradicted_by_reported_data")
#: Growth outside this range is almost surely a percentage typed as a number (25 for 25%).
GROWTH_BOUNDS = (-0.9, 1.5)
YEAR_BOUNDS = (2000, 2100)
#: An annual capex below this (USD millions) is probably given in billions.
MIN_ANNUAL_CAPEX = 1000.0


class ScenarioError(InputError):
    """A scenario file or dict is invalid; the message names the file and the key."""

    def __init__(self, source: str, key: str | None, problem: str):
        self.source, self.key, self.problem = source, key, problem
        where = Path(source).name if source else "<scenario>"
        super().__init__(f"{where}, key {key}: {problem}" if key else f"{where}: {problem}")


@dataclass(frozen=True)
class CategoryDriver:
    """A revenue category's scenario: growth by fiscal year, the segments that carry its sales
    (in proportion to their sales) and the incremental OI margin (None: `margin_from`'s recent
    margin)."""

    series: str
    segments: tuple[str, ...]
    growth: Mapping[int, float] = field(default_factory=dict)
    margin: float | None = None
    margin_from: str | None = None


@dataclass(frozen=True)
class Scenario:
    """A validated scenario; years are fiscal years (ints), quarters fiscal `pd.Period`s.

    Attributes:
        capex_year, capex_quarter: capex targets by fiscal year / quarter.
        growth: segment -> fiscal year -> sales growth (OI scaled along, margin kept).
        margin: segment -> fiscal year -> operating margin.
        categories: category -> `CategoryDriver` (only categories whose growth is set).
        keys: ``(what, name)`` -> the driver key of the file (for messages).
    """

    name: str
    description: str
    sources: tuple[str, ...]
    capex_year: Mapping[int, float] = field(default_factory=dict)
    capex_quarter: Mapping[pd.Period, float] = field(default_factory=dict)
    growth: Mapping[str, Mapping[int, float]] = field(default_factory=dict)
    margin: Mapping[str, Mapping[int, float]] = field(default_factory=dict)
    categories: Mapping[str, CategoryDriver] = field(default_factory=dict)
    carry_forward: bool = True
    contradicted: Mapping[str, str] = field(default_factory=dict)
    keys: Mapping[tuple[str, str], str] = field(default_factory=dict)
    source: str = "<dict>"

    @property
    def category_series(self) -> list[str]:
        """Series forecast outside the roll-up that the scenario needs (its categories')."""
        return [c.series for c in self.categories.values()]

    def years(self) -> set[int]:
        """Every fiscal year a yearly driver sets."""
        years = set(self.capex_year)
        for d in (*self.growth.values(), *self.margin.values(), *(c.growth for c in self.categories.values())):
            years |= set(d)
        return years

    def last_year(self) -> int:
        """The last fiscal year the scenario touches (quarters included)."""
        return max(self.years() | {int(p.qyear) for p in self.capex_quarter})

    def key_of(self, year: int) -> str:
        """The file key that sets fiscal year `year` (for messages)."""
        if year in self.capex_year:
            return f"drivers.{self.keys.get(('capex', ''), 'capex')}.fiscal_year.{year}"
        for seg, d in self.growth.items():
            if year in d:
                return f"drivers.{self.keys[('growth', seg)]}.{year}"
        for name, c in self.categories.items():
            if year in c.growth:
                return f"drivers.{self.keys[('category', name)]}.{year}"
        for seg, d in self.margin.items():
            if year in d:
                return f"drivers.{self.keys.get(('margin', ''), 'operating_margin')}.{seg}.{year}"
        return "drivers"


# --------------------------------------------------------------------------- parsing
def load_scenario(path: str | Path, profile: CompanyProfile) -> Scenario:
    """Read and validate a scenario YAML file against the company's `profile`."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ScenarioError(str(path), None, "file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ScenarioError(str(path), None, f"not valid YAML{where} ({getattr(exc, 'problem', exc)})") from exc
    except UnicodeDecodeError as exc:
        raise ScenarioError(str(path), None, f"not a text file ({exc})") from exc
    return scenario_from_dict(data, profile, source=str(path), default_name=path.stem)


def scenario_from_dict(data, profile: CompanyProfile, source: str = "<dict>", default_name: str = "scenario"
                       ) -> Scenario:
    """Validate a scenario given as a dict (the YAML structure) against the company's `profile`."""
    drivers_of = profile.scenario_drivers
    if not drivers_of:
        raise ScenarioError(source, None, f"company profile '{profile.name}' defines no scenario_drivers")
    if not isinstance(data, Mapping):
        raise ScenarioError(source, None, f"expected a mapping with keys {list(TOP_KEYS)}, "
                                          f"got {type(data).__name__}")
    _unknown(data, TOP_KEYS, source, "")
    for key in ("description", "sources", "drivers"):
        if key not in data or data[key] in (None, "", [], {}):
            raise ScenarioError(source, key, "missing or empty; every scenario needs a description, "
                                             "its sources and at least one driver")
    sources = data["sources"]
    sources = (sources,) if isinstance(sources, str) else tuple(str(s) for s in sources)
    drivers = data["drivers"]
    if not isinstance(drivers, Mapping):
        raise ScenarioError(source, "drivers", f"expected a mapping of drivers {list(drivers_of)}")
    _unknown(drivers, tuple(drivers_of), source, "drivers.")
    segments = [s.name for s in profile.hierarchy.segments] if profile.hierarchy else []
    cal = profile.calendar
    kw: dict = {"growth": {}, "margin": {}}
    keys: dict[tuple[str, str], str] = {}
    categories: dict[str, dict] = {}
    for key, value in drivers.items():
        d = drivers_of[key]
        where = f"drivers.{key}"
        if d.kind == "capex":
            keys[("capex", "")] = key
            capex = _mapping(value, source, where)
            _unknown(capex, ("fiscal_year", "quarter"), source, f"{where}.")
            years = _by_year(capex.get("fiscal_year", {}), source, f"{where}.fiscal_year")
            for y, v in years.items():
                _check_capex(v, source, f"{where}.fiscal_year.{y}", MIN_ANNUAL_CAPEX)
            quarters = {}
            for k, v in _mapping(capex.get("quarter", {}), source, f"{where}.quarter").items():
                qkey = f"{where}.quarter.{k}"
                try:
                    p = cal.parse(str(k))
                except ValueError:
                    raise ScenarioError(source, qkey, f"'{k}' is not a quarter like 2026Q3 (or FY2026Q3)") from None
                quarters[p] = _check_capex(_number(v, source, qkey), source, qkey, MIN_ANNUAL_CAPEX / 4)
            both = set(years) & {int(p.qyear) for p in quarters}
            if both:
                raise ScenarioError(source, where, f"fiscal year {min(both)} is given both as a year "
                                    "and by quarter; give one or the other")
            kw["capex_year"], kw["capex_quarter"] = years, quarters
        elif d.kind == "segment_growth":
            keys[("growth", d.segment)] = key
            vals = _by_year(value, source, where)
            for y, g in vals.items():
                _check_fraction(g, GROWTH_BOUNDS, source, f"{where}.{y}", "growth")
            kw["growth"][d.segment] = vals
        elif d.kind == "segment_margin":
            keys[("margin", "")] = key
            om = _mapping(value, source, where)
            _unknown(om, tuple(segments), source, f"{where}.")
            for seg, years in om.items():
                vals = _by_year(years, source, f"{where}.{seg}")
                for y, m in vals.items():
                    _check_fraction(m, (-1.0, 1.0), source, f"{where}.{seg}.{y}", "margin")
                kw["margin"][str(seg)] = vals
        elif d.kind == "category_growth":
            keys[("category", d.category)] = key
            vals = _by_year(value, source, where)
            for y, g in vals.items():
                _check_fraction(g, GROWTH_BOUNDS, source, f"{where}.{y}", "growth")
            categories.setdefault(d.category, {})["growth"] = vals
        else:  # category_margin
            m = _check_fraction(_number(value, source, where), (-1.0, 1.0), source, where, "margin")
            categories.setdefault(d.category, {})["margin"] = m
    for name in list(categories):
        if "growth" not in categories[name]:
            del categories[name]  # a margin without growth changes nothing
    margin_from = {d.category: d.default_from for d in drivers_of.values() if d.kind == "category_margin"}
    kw["categories"] = {name: CategoryDriver(profile.categories[name].series, profile.categories[name].segments,
                                             c["growth"], c.get("margin"), margin_from.get(name))
                        for name, c in categories.items()}
    contradicted = {}
    for k, why in _mapping(data.get("contradicted_by_reported_data") or {}, source,
                           "contradicted_by_reported_data").items():
        key = f"contradicted_by_reported_data.{k}"
        if not _driver_key_exists(drivers, str(k)):
            raise ScenarioError(source, key, f"'{k}' is not a driver of this scenario (write its path, "
                                             "e.g. capex.fiscal_year.2026)")
        if not isinstance(why, str) or not why.strip():
            raise ScenarioError(source, key, "say which reported figures contradict the claim")
        contradicted[str(k)] = why.strip()
    kw["contradicted"] = contradicted
    carry = data.get("carry_forward", True)
    if not isinstance(carry, bool):
        raise ScenarioError(source, "carry_forward", f"expected true or false, got {carry!r}")
    kw["carry_forward"] = carry
    name = str(data.get("name") or default_name)
    return Scenario(name=name, description=str(data["description"]).strip(), sources=sources,
                    source=source, keys=keys, **kw)


def _driver_key_exists(drivers: Mapping, path: str) -> bool:
    node = drivers
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return False
        match = [k for k in node if str(k) == part]
        if not match:
            return False
        node = node[match[0]]
    return True


def reported_checks(scenario: Scenario, history: pd.DataFrame, profile: CompanyProfile) -> list[str]:
    """What reported quarters say about a scenario's drivers, in words (for the user to read
    beside the claim): the capex the remaining quarters of a fiscal-year target imply against
    the latest reported quarter, and the notes of ``contradicted_by_reported_data``."""
    out = []
    cal = profile.calendar
    cap = history[history["unique_id"] == profile.cash_flow.capex].set_index("ds")["y"].sort_index()
    cap_year = cal.fiscal_year(cap.index)
    key = scenario.keys.get(("capex", ""), "capex")
    for y, target in scenario.capex_year.items():
        rep = cap[cap_year == y]
        left = 4 - len(rep)
        if len(rep) and left > 0:
            per_q = (target - rep.sum()) / left
            last = float(cap.iloc[-1])
            out.append(f"{key}.fiscal_year.{y}: {target / 1e3:,.1f}B with {rep.sum() / 1e3:,.1f}B reported in "
                       f"{len(rep)} quarter(s) leaves {per_q / 1e3:,.1f}B per remaining quarter, vs "
                       f"{last / 1e3:,.1f}B in {cal.label(cap.index[-1])} ({per_q / last - 1:+.0%})")
    out += [f"{k}: contradicted by reported data: {why}" for k, why in scenario.contradicted.items()]
    return out


def _unknown(d: Mapping, allowed: Sequence[str], source: str, prefix: str) -> None:
    check_keys(d, allowed, lambda k, msg: ScenarioError(source, f"{prefix}{k}", msg))


def _mapping(v, source: str, key: str) -> Mapping:
    return as_mapping(v, lambda msg: ScenarioError(source, key, msg))


def _number(v, source: str, key: str) -> float:
    return as_number(v, lambda msg: ScenarioError(source, key, msg))


def _by_year(v, source: str, key: str) -> dict[int, float]:
    out = {}
    for y, x in _mapping(v, source, key).items():
        try:
            year = int(str(y))
        except ValueError:
            year = None
        if year is None or not YEAR_BOUNDS[0] <= year <= YEAR_BOUNDS[1]:
            raise ScenarioError(source, f"{key}.{y}", f"'{y}' is not a fiscal year like 2026")
        out[year] = _number(x, source, f"{key}.{y}")
    return out


def _check_capex(v: float, source: str, key: str, minimum: float) -> float:
    if v < 0:
        raise ScenarioError(source, key, f"capex {v:g} is negative; net purchases of P&E are >= 0")
    if 0 < v < minimum:
        raise ScenarioError(source, key, f"capex {v:g} looks like USD billions; give USD millions "
                                         f"(e.g. {v * 1000:.0f})")
    return v


def _check_fraction(v: float, bounds: tuple[float, float], source: str, key: str, what: str) -> float:
    if not bounds[0] <= v <= bounds[1]:
        hint = f"; write {v / 100:g} for {v:g}%" if abs(v) > 1 else ""
        raise ScenarioError(source, key, f"{what} {v:g} is outside [{bounds[0]:g}, {bounds[1]:g}]: "
                                         f"give it as a fraction{hint}")
    return v
