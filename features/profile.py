"""The company as data: one profile per company, read from ``data/companies/<name>.yaml``.

A profile names everything the generic code needs to know about one company, so that adding a
company is a data file and a profile, never a code change:

- ``data``: its quarterly file (relative to the profile), and ``fiscal_year_end_month``;
- ``default_model``: the model `forecast()` and the commands use when none is named, chosen on
  this company's own backtest (empty: the library default), and ``default_model_note``, why;
- ``core_series``: the series ``fcf backtest`` and ``fcf retrain`` score by default, and
  ``backtest`` (``windows``, ``warmup``): their default windows when the history is short;
- ``hierarchy``: the segment tree the roll-up reconciles (``measures``: each measure's total
  series and the measure whose level scales its errors; ``segments``: each segment's series per
  measure; ``groups``: intermediate nodes, derived as the total minus the other segments where
  reported; ``known_residuals``: documented differences between a total and its segments);
- ``cash_flow``: the series of the free-cash-flow bridge (sales, operating income, operating
  cash flow, capex, free cash flow; optionally gross capex and proceeds);
- ``categories``: revenue categories inside segments (not part of the tree), for scenarios;
- ``scenario_drivers``: the keys a scenario file may set and what each acts on;
- ``rollup``: roll-up settings that depend on the company's history (``first_cutoff``);
- ``guidance``: management's guidance files; ``claims`` and ``scenarios``: shipped files;
- ``consensus``: the street's estimates (``file``, read by `features.consensus`) and the
  company's stock ``splits`` (``effective`` date and ``ratio``) that put per-share estimates on
  today's share count; a bare path is the file alone;
- ``tracking``: the MLflow experiment prefix and the registered model's name.

`load_profile` validates a profile (a `ProfileError` names the file, the key and the fix);
`shipped_profile("amazon")` reads a shipped one and `profile_for_data(path)` finds the shipped
profile whose data file is `path`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from features.yamlcheck import as_mapping, check_keys
from features.calendar import FiscalCalendar
from features.errors import InputError

__all__ = ["CASH_FLOW_KEYS", "CASH_FLOW_REQUIRED", "CashFlow", "Category", "CompanyProfile",
           "DEFAULT_COMPANY", "Driver", "DRIVER_KINDS", "Hierarchy", "load_profile", "Measure", "Node",
           "PROFILE_DIR", "profile_for_data", "profile_from_dict", "ProfileError", "profiles_dir",
           "shipped_profile", "shipped_profiles", "TOP_KEYS"]

PROFILE_DIR = "companies"
DEFAULT_COMPANY = "amazon"
TOP_KEYS = ("name", "title", "ticker", "data", "fiscal_year_end_month", "default_model", "default_model_note",
            "core_series", "backtest", "hierarchy", "cash_flow", "categories", "scenario_drivers", "rollup",
            "guidance", "consensus", "claims", "scenarios", "tracking")
CASH_FLOW_KEYS = ("sales", "operating_income", "operating_cash_flow", "capex", "free_cash_flow", "capex_gross",
                  "capex_proceeds")
CASH_FLOW_REQUIRED = CASH_FLOW_KEYS[:5]
DRIVER_KINDS = ("capex", "segment_growth", "segment_margin", "category_growth", "category_margin")


class ProfileError(InputError):
    """A company profile is invalid; the message names the file and the key."""

    def __init__(self, source: str, key: str | None, problem: str):
        where = Path(source).name if source else "<profile>"
        super().__init__(f"{where}, key {key}: {problem}" if key else f"{where}: {problem}")


@dataclass(frozen=True)
class Measure:
    """One tree of the hierarchy: a measure (net sales, operating income) and its total series.

    ``scale``: the measure whose level scales this one's errors (operating income passes near
    zero, so its errors are read as margin points of sales); None: itself."""

    name: str
    total: str
    scale: str | None = None
    nonnegative: bool = False


@dataclass(frozen=True)
class Node:
    """A segment (``segments`` empty) or a group of segments; ``series``: measure -> series."""

    name: str
    series: Mapping[str, str]
    segments: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hierarchy:
    """The segment tree, one per measure, all of the same shape.

    Per measure: total = sum of the segments; a group = sum of its segments. With no segments
    the totals are the bottom series (nothing to reconcile)."""

    measures: tuple[Measure, ...]
    segments: tuple[Node, ...] = ()
    groups: tuple[Node, ...] = ()
    known_residuals: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def measure(self, name: str) -> Measure:
        return next(m for m in self.measures if m.name == name)

    def segment_series(self, measure: str) -> list[str]:
        return [s.series[measure] for s in self.segments]

    def group_series(self, measure: str) -> list[str]:
        return [g.series[measure] for g in self.groups]

    def bottom_series(self) -> list[str]:
        """The simulated bottom of every tree: the segments, or the totals without segments."""
        if not self.segments:
            return [m.total for m in self.measures]
        return [s.series[m.name] for m in self.measures for s in self.segments]

    def nodes(self) -> list[str]:
        """Every node: per measure the total, the groups, then the segments."""
        out = []
        for m in self.measures:
            out += [m.total, *self.group_series(m.name), *self.segment_series(m.name)]
        return out

    def derived(self) -> list[str]:
        """Series computed from others (the groups), not read from the data."""
        return [g.series[m.name] for m in self.measures for g in self.groups]

    def scale_of(self, series: str) -> str:
        """The series whose level scales `series`' errors (itself unless its measure has a scale)."""
        for m in self.measures:
            if m.scale is None:
                continue
            if series == m.total:
                return self.measure(m.scale).total
            for node in (*self.segments, *self.groups):
                if node.series.get(m.name) == series:
                    return node.series[m.scale]
        return series

    def is_nonnegative(self, series: str) -> bool:
        for m in self.measures:
            if series == m.total or series in self.segment_series(m.name) or series in self.group_series(m.name):
                return m.nonnegative
        return False


@dataclass(frozen=True)
class CashFlow:
    """The series of the free-cash-flow bridge (FCF = OCF - capex; OCF = OI + gamma x sales)."""

    sales: str
    operating_income: str
    operating_cash_flow: str
    capex: str
    free_cash_flow: str
    capex_gross: str | None = None
    capex_proceeds: str | None = None

    @property
    def fcf_ttm(self) -> str:
        return self.free_cash_flow + "_ttm"


@dataclass(frozen=True)
class Category:
    """A revenue category inside segments (advertising inside retail segments), not a node."""

    series: str
    segments: tuple[str, ...]


@dataclass(frozen=True)
class Driver:
    """What a scenario key acts on: `kind` (`DRIVER_KINDS`) and its segment or category."""

    kind: str
    segment: str | None = None
    category: str | None = None
    default_from: str | None = None


@dataclass(frozen=True)
class CompanyProfile:
    """One company's structure and settings (see the module docstring)."""

    name: str
    title: str
    data: Path
    fiscal_year_end_month: int = 12
    ticker: str | None = None
    default_model: str | None = None
    default_model_note: str = ""
    core_series: tuple[str, ...] = ()
    backtest: Mapping[str, int] = field(default_factory=dict)
    hierarchy: Hierarchy | None = None
    cash_flow: CashFlow | None = None
    categories: Mapping[str, Category] = field(default_factory=dict)
    scenario_drivers: Mapping[str, Driver] = field(default_factory=dict)
    rollup: Mapping[str, object] = field(default_factory=dict)
    guidance: Mapping[str, Path] = field(default_factory=dict)
    consensus: Path | None = None
    splits: tuple = ()
    claims: Path | None = None
    scenarios: tuple[Path, ...] = ()
    experiment_prefix: str = ""
    model_name: str = ""
    path: Path | None = None

    @property
    def calendar(self) -> FiscalCalendar:
        return FiscalCalendar(self.fiscal_year_end_month)

    @property
    def has_rollup(self) -> bool:
        """True when the profile has what the roll-up needs: a hierarchy and a cash-flow bridge."""
        return self.hierarchy is not None and self.cash_flow is not None

    def experiment(self, kind: str) -> str:
        """The MLflow experiment of a kind of run (``backtest``, ``rollup``, ``retrain``...)."""
        return f"{self.experiment_prefix or self.name}-{kind}"

    def segment(self, name: str) -> Node:
        return next(s for s in self.hierarchy.segments if s.name == name)


# --------------------------------------------------------------------------- reading
def profiles_dir() -> Path:
    from features.loader import shipped_data_dir

    return shipped_data_dir() / PROFILE_DIR


def shipped_profiles() -> dict[str, Path]:
    """Name -> path of every shipped profile (``data/companies/*.yaml``)."""
    folder = profiles_dir()
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}


def shipped_profile(name: str = DEFAULT_COMPANY) -> CompanyProfile:
    """A shipped profile by name (``amazon``, ``snowflake``)."""
    known = shipped_profiles()
    if name not in known:
        close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ProfileError("", None, f"no shipped company profile '{name}'{hint}; shipped: {', '.join(known)}")
    return load_profile(known[name])


def profile_for_data(data: str | Path | None) -> CompanyProfile | None:
    """The shipped profile whose data file is `data` (None: the default company's), or None."""
    if data is None:
        return shipped_profile(DEFAULT_COMPANY)
    target = Path(data).resolve()
    for path in shipped_profiles().values():
        profile = load_profile(path)
        if profile.data.resolve() == target:
            return profile
    return None


def load_profile(path: str | Path) -> CompanyProfile:
    """Read and validate a profile YAML file."""
    import yaml

    path = Path(path)
    src = str(path)
    if not path.is_file():
        raise ProfileError(src, None, f"file not found (looked for {path.resolve()})")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ProfileError(src, None, f"not valid YAML ({exc})") from exc
    return profile_from_dict(raw, source=src, base=path.parent)


def profile_from_dict(raw, source: str = "<dict>", base: Path | None = None) -> CompanyProfile:
    """Validate a profile given as a dict (the YAML structure); paths are relative to `base`."""
    base = base or Path.cwd()
    if not isinstance(raw, Mapping):
        raise ProfileError(source, None, "expected a mapping of profile keys")
    _unknown(raw, TOP_KEYS, source, "")
    for key in ("name", "data"):
        if not raw.get(key):
            raise ProfileError(source, key, "missing; every profile names the company and its data file")
    month = raw.get("fiscal_year_end_month", 12)
    if not isinstance(month, int) or not 1 <= month <= 12:
        raise ProfileError(source, "fiscal_year_end_month", f"expected a month number 1..12, got {month!r}")
    hierarchy = _hierarchy(raw.get("hierarchy"), source)
    cash_flow = None
    if raw.get("cash_flow"):
        cf = _mapping(raw["cash_flow"], source, "cash_flow")
        _unknown(cf, CASH_FLOW_KEYS, source, "cash_flow.")
        missing = [k for k in CASH_FLOW_REQUIRED if not cf.get(k)]
        if missing:
            raise ProfileError(source, "cash_flow", f"missing {missing}; the bridge needs {list(CASH_FLOW_REQUIRED)}")
        cash_flow = CashFlow(**{k: str(v) for k, v in cf.items()})
    segments = {s.name for s in hierarchy.segments} if hierarchy else set()
    categories = {}
    for name, c in _mapping(raw.get("categories") or {}, source, "categories").items():
        c = _mapping(c, source, f"categories.{name}")
        bad = [s for s in c.get("segments", []) if s not in segments]
        if bad or not c.get("series"):
            raise ProfileError(source, f"categories.{name}", f"needs a series and segments of the hierarchy "
                               f"(unknown: {bad})")
        categories[str(name)] = Category(str(c["series"]), tuple(c.get("segments", [])))
    drivers = {}
    for key, d in _mapping(raw.get("scenario_drivers") or {}, source, "scenario_drivers").items():
        d = _mapping(d, source, f"scenario_drivers.{key}")
        _unknown(d, ("kind", "segment", "category", "default_from"), source, f"scenario_drivers.{key}.")
        kind = d.get("kind")
        if kind not in DRIVER_KINDS:
            raise ProfileError(source, f"scenario_drivers.{key}.kind", f"one of {DRIVER_KINDS}, got {kind!r}")
        if d.get("segment") and d["segment"] not in segments:
            raise ProfileError(source, f"scenario_drivers.{key}.segment", f"unknown segment {d['segment']!r}")
        if d.get("category") and d["category"] not in categories:
            raise ProfileError(source, f"scenario_drivers.{key}.category", f"unknown category {d['category']!r}")
        drivers[str(key)] = Driver(kind, d.get("segment"), d.get("category"), d.get("default_from"))
    backtest = _mapping(raw.get("backtest") or {}, source, "backtest")
    _unknown(backtest, ("windows", "warmup"), source, "backtest.")
    for k, v in backtest.items():
        if not isinstance(v, int) or v < (1 if k == "windows" else 0):
            raise ProfileError(source, f"backtest.{k}", f"expected a whole number of windows, got {v!r}")
    tracking = _mapping(raw.get("tracking") or {}, source, "tracking")
    _unknown(tracking, ("experiment_prefix", "model_name"), source, "tracking.")
    guidance = {k: (base / v).resolve() for k, v in _mapping(raw.get("guidance") or {}, source, "guidance").items()}
    _unknown(guidance, ("quarterly", "annual"), source, "guidance.")
    consensus, splits = _consensus(raw.get("consensus"), source, base)
    name = str(raw["name"])
    return CompanyProfile(
        name=name, title=str(raw.get("title") or name), data=(base / str(raw["data"])).resolve(),
        fiscal_year_end_month=month, ticker=raw.get("ticker"), default_model=raw.get("default_model") or None,
        default_model_note=str(raw.get("default_model_note") or ""),
        core_series=tuple(raw.get("core_series") or ()), backtest=dict(backtest), hierarchy=hierarchy,
        cash_flow=cash_flow,
        categories=categories, scenario_drivers=drivers, rollup=dict(raw.get("rollup") or {}), guidance=guidance,
        consensus=consensus, splits=splits,
        claims=(base / raw["claims"]).resolve() if raw.get("claims") else None,
        scenarios=tuple((base / s).resolve() for s in raw.get("scenarios") or ()),
        experiment_prefix=str(tracking.get("experiment_prefix") or name),
        model_name=str(tracking.get("model_name") or f"{name}-fcf"), path=Path(source) if base else None)


def _consensus(raw, source: str, base: Path) -> tuple[Path | None, tuple]:
    """``consensus``: a path, or ``{file: path, splits: [{effective: 2022-06-06, ratio: 20}]}``."""
    import datetime

    import pandas as pd

    from features.consensus import Split

    if not raw:
        return None, ()
    if isinstance(raw, str):
        return (base / raw).resolve(), ()
    c = _mapping(raw, source, "consensus")
    _unknown(c, ("file", "splits"), source, "consensus.")
    if not c.get("file"):
        raise ProfileError(source, "consensus.file", "missing: the consensus CSV, relative to the profile")
    splits = []
    for i, s in enumerate(c.get("splits") or []):
        s = _mapping(s, source, f"consensus.splits[{i}]")
        _unknown(s, ("effective", "ratio"), source, f"consensus.splits[{i}].")
        day, ratio = s.get("effective"), s.get("ratio")
        if not isinstance(day, (datetime.date, str)) or not isinstance(ratio, (int, float)) or ratio <= 0:
            raise ProfileError(source, f"consensus.splits[{i}]", "needs effective (a date like 2022-06-06) and a "
                               f"positive ratio (20 for 20-for-1), got {dict(s)!r}")
        try:
            splits.append(Split(pd.Timestamp(day), float(ratio)))
        except ValueError:
            raise ProfileError(source, f"consensus.splits[{i}].effective", f"not a date: {day!r}") from None
    return (base / str(c["file"])).resolve(), tuple(sorted(splits, key=lambda x: x.effective))


def _hierarchy(raw, source: str) -> Hierarchy | None:
    if not raw:
        return None
    h = _mapping(raw, source, "hierarchy")
    _unknown(h, ("measures", "segments", "groups", "known_residuals"), source, "hierarchy.")
    measures = []
    for name, m in _mapping(h.get("measures") or {}, source, "hierarchy.measures").items():
        m = _mapping(m, source, f"hierarchy.measures.{name}")
        _unknown(m, ("total", "scale", "nonnegative"), source, f"hierarchy.measures.{name}.")
        if not m.get("total"):
            raise ProfileError(source, f"hierarchy.measures.{name}.total", "missing: the measure's total series")
        measures.append(Measure(str(name), str(m["total"]), m.get("scale"), bool(m.get("nonnegative", False))))
    if not measures:
        raise ProfileError(source, "hierarchy.measures", "at least one measure (e.g. net_sales)")
    names = {m.name for m in measures}
    for m in measures:
        if m.scale is not None and m.scale not in names:
            raise ProfileError(source, f"hierarchy.measures.{m.name}.scale", f"unknown measure {m.scale!r}")
    segments = []
    for name, series in _mapping(h.get("segments") or {}, source, "hierarchy.segments").items():
        series = _mapping(series, source, f"hierarchy.segments.{name}")
        if set(series) != names:
            raise ProfileError(source, f"hierarchy.segments.{name}", f"give one series per measure {sorted(names)}")
        segments.append(Node(str(name), {k: str(v) for k, v in series.items()}))
    seg_names = {s.name for s in segments}
    groups = []
    for name, g in _mapping(h.get("groups") or {}, source, "hierarchy.groups").items():
        g = _mapping(g, source, f"hierarchy.groups.{name}")
        members = tuple(g.get("segments") or ())
        series = _mapping(g.get("series") or {}, source, f"hierarchy.groups.{name}.series")
        if not members or set(members) - seg_names or set(series) != names:
            raise ProfileError(source, f"hierarchy.groups.{name}", "needs segments of the hierarchy and one "
                               f"series per measure {sorted(names)}")
        groups.append(Node(str(name), {k: str(v) for k, v in series.items()}, members))
    residuals = {}
    for i, r in enumerate(h.get("known_residuals") or []):
        r = _mapping(r, source, f"hierarchy.known_residuals[{i}]")
        if r.get("measure") not in names or not r.get("quarters") or not r.get("reason"):
            raise ProfileError(source, f"hierarchy.known_residuals[{i}]", "needs measure, quarters and reason")
        for q in r["quarters"]:
            residuals[(str(r["measure"]), str(q))] = str(r["reason"])
    return Hierarchy(tuple(measures), tuple(segments), tuple(groups), residuals)


def _mapping(v, source: str, key: str) -> Mapping:
    return as_mapping(v, lambda msg: ProfileError(source, key, msg))


def _unknown(d: Mapping, allowed, source: str, prefix: str) -> None:
    check_keys(d, allowed, lambda k, msg: ProfileError(source, f"{prefix}{k}", msg))
