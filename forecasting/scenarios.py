"""Scenarios: override the roll-up's drivers and compare scenario FCF with the base case.

A scenario is a YAML file (or the same structure as a plain dict)::

    name: capex_heavy                      # optional, default: the file name
    description: one paragraph             # required
    sources: [claims from public analyst commentary ...]   # required, non-empty
    drivers:                               # required, at least one
      capex:                               # net purchases of P&E, USD millions, >= 0
        fiscal_year: {2026: 200000}        #   a fiscal year's total (reported quarters count)
        quarter: {2026Q4: 60000}           #   or single quarters
      aws_growth: {2026: 0.20}             # year-over-year growth of AWS net sales (fraction)
      operating_margin:                    # segment OI / segment net sales (fraction)
        aws: {2026: 0.375}                 #   segments: aws, north_america, international
      advertising_growth: {2026: 0.22}     # year-over-year growth of advertising net sales
      advertising_incremental_margin: 0.5  # OI margin on extra advertising sales (default:
                                           #   North America's margin of the last 4 quarters)
    contradicted_by_reported_data:         # optional: claims kept as stated, marked with the
      capex.fiscal_year.2026: why          #   reported figures that contradict them

With ``carry_forward: true`` (the default) the change a scenario makes in its last quarter
persists afterwards as a ratio to the base forecast of each segment series and capex (e.g. a
2026 capex cut keeps 2027 capex lower by the same proportion, and AWS keeps the models'
growth from its scenario level); ``false`` returns to the base forecasts.

Only quarters after the newest reported one are changed: a fiscal-year value sets the
*remaining* quarters so that reported + remaining = the value. How drivers act on each sample
path (`forecasting.rollup.simulate`), in this order:

- capex: the year's remaining forecast quarters are scaled by one factor so their mean adds
  up to the target (the shape and relative spread of the paths are kept); a quarter value
  scales that quarter;
- AWS growth g: each remaining quarter's AWS sales are scaled so their mean is (1 + g) times
  the same quarter a year earlier (reported, or the scenario's own forecast); AWS operating
  income is scaled by the same factor (margin kept) unless a margin is given;
- operating margin m: segment OI = m x segment sales, path by path;
- advertising growth g: advertising is a revenue category inside the North America and
  International segments, not a segment. Extra advertising sales (target minus the base
  forecast of ``net_sales_advertising``) are added to those two segments in proportion to
  their sales, and extra OI = extra sales x the incremental margin.

`reported_checks` puts each claim beside the reported quarters (for a fiscal-year capex
target: the capex per remaining quarter it implies against the latest reported quarter).

Invalid files raise `ScenarioError` (a `ValueError`, exit code 2 in the CLI) naming the file
and the key, e.g. ``bull.yaml, key drivers.aws_growth.2026: ...``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.bridge import FCF, NET_CAPEX
from forecasting.rollup import FCF_TTM, RollupConfig, RollupInputs, Simulation, rollup, simulate
from forecasting.simulate import QUANTILES

TOP_KEYS = ("name", "description", "sources", "drivers", "carry_forward", "contradicted_by_reported_data")
DRIVER_KEYS = ("capex", "aws_growth", "operating_margin", "advertising_growth",
               "advertising_incremental_margin")
SEGMENT_KEYS = ("aws", "north_america", "international")
ADVERTISING = "net_sales_advertising"
#: Growth outside this range is almost surely a percentage typed as a number (25 for 25%).
GROWTH_BOUNDS = (-0.9, 1.5)
YEAR_BOUNDS = (2000, 2100)
#: An annual net capex below this (USD millions) is probably given in billions.
MIN_ANNUAL_CAPEX = 1000.0


class ScenarioError(ValueError):
    """A scenario file or dict is invalid; the message names the file and the key."""

    def __init__(self, source: str, key: str | None, problem: str):
        self.source, self.key, self.problem = source, key, problem
        where = Path(source).name if source else "<scenario>"
        super().__init__(f"{where}, key {key}: {problem}" if key else f"{where}: {problem}")


@dataclass(frozen=True)
class Scenario:
    """A validated scenario (see the module docstring); years are ints, quarters Periods."""

    name: str
    description: str
    sources: tuple[str, ...]
    capex_year: Mapping[int, float] = field(default_factory=dict)
    capex_quarter: Mapping[pd.Period, float] = field(default_factory=dict)
    aws_growth: Mapping[int, float] = field(default_factory=dict)
    operating_margin: Mapping[str, Mapping[int, float]] = field(default_factory=dict)
    advertising_growth: Mapping[int, float] = field(default_factory=dict)
    advertising_incremental_margin: float | None = None
    carry_forward: bool = True
    contradicted: Mapping[str, str] = field(default_factory=dict)
    source: str = "<dict>"

    @property
    def needs_advertising(self) -> bool:
        return bool(self.advertising_growth)

    def periods(self) -> list[pd.Period]:
        """Every quarter the scenario touches (whole years for yearly drivers)."""
        years = set(self.capex_year) | set(self.aws_growth) | set(self.advertising_growth)
        for m in self.operating_margin.values():
            years |= set(m)
        qs = {pd.Period(year=y, quarter=k, freq="Q") for y in years for k in range(1, 5)}
        return sorted(qs | set(self.capex_quarter))


# --------------------------------------------------------------------------- parsing
def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file."""
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
    return scenario_from_dict(data, source=str(path), default_name=path.stem)


def scenario_from_dict(data, source: str = "<dict>", default_name: str = "scenario") -> Scenario:
    """Validate a scenario given as a dict (the YAML structure)."""
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
        raise ScenarioError(source, "drivers", f"expected a mapping of drivers {list(DRIVER_KEYS)}")
    _unknown(drivers, DRIVER_KEYS, source, "drivers.")
    kw: dict = {}
    if "capex" in drivers:
        capex = _mapping(drivers["capex"], source, "drivers.capex")
        _unknown(capex, ("fiscal_year", "quarter"), source, "drivers.capex.")
        years = _by_year(capex.get("fiscal_year", {}), source, "drivers.capex.fiscal_year")
        for y, v in years.items():
            _check_capex(v, source, f"drivers.capex.fiscal_year.{y}", MIN_ANNUAL_CAPEX)
        quarters = {}
        for k, v in _mapping(capex.get("quarter", {}), source, "drivers.capex.quarter").items():
            key = f"drivers.capex.quarter.{k}"
            try:
                p = pd.Period(str(k).strip(), freq="Q")
                ok = str(p) == str(k).strip().upper()
            except (ValueError, TypeError):
                ok = False
            if not ok:
                raise ScenarioError(source, key, f"'{k}' is not a quarter like 2026Q3")
            quarters[p] = _check_capex(_number(v, source, key), source, key, MIN_ANNUAL_CAPEX / 4)
        both = set(years) & {p.year for p in quarters}
        if both:
            raise ScenarioError(source, "drivers.capex", f"fiscal year {min(both)} is given both as a year "
                                "and by quarter; give one or the other")
        kw["capex_year"], kw["capex_quarter"] = years, quarters
    for name in ("aws_growth", "advertising_growth"):
        if name in drivers:
            vals = _by_year(drivers[name], source, f"drivers.{name}")
            for y, g in vals.items():
                _check_fraction(g, GROWTH_BOUNDS, source, f"drivers.{name}.{y}", "growth")
            kw[name] = vals
    if "operating_margin" in drivers:
        om = _mapping(drivers["operating_margin"], source, "drivers.operating_margin")
        _unknown(om, SEGMENT_KEYS, source, "drivers.operating_margin.")
        margins = {}
        for seg, years in om.items():
            vals = _by_year(years, source, f"drivers.operating_margin.{seg}")
            for y, m in vals.items():
                _check_fraction(m, (-1.0, 1.0), source, f"drivers.operating_margin.{seg}.{y}", "margin")
            margins[seg] = vals
        kw["operating_margin"] = margins
    if "advertising_incremental_margin" in drivers:
        key = "drivers.advertising_incremental_margin"
        kw["advertising_incremental_margin"] = _check_fraction(
            _number(drivers["advertising_incremental_margin"], source, key), (-1.0, 1.0), source, key, "margin")
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
                    source=source, **kw)


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


def reported_checks(scenario: Scenario, history: pd.DataFrame) -> list[str]:
    """What reported quarters say about a scenario's drivers, in words (for the user to read
    beside the claim): the capex the remaining quarters of a fiscal-year target imply against
    the latest reported quarter, and the notes of ``contradicted_by_reported_data``."""
    out = []
    cap = history[history["unique_id"] == NET_CAPEX].set_index("ds")["y"].sort_index()
    for y, target in scenario.capex_year.items():
        rep = cap[cap.index.year == y]
        left = 4 - len(rep)
        if len(rep) and left > 0:
            per_q = (target - rep.sum()) / left
            last = float(cap.iloc[-1])
            out.append(f"capex.fiscal_year.{y}: {target / 1e3:,.1f}B with {rep.sum() / 1e3:,.1f}B reported in "
                       f"{len(rep)} quarter(s) leaves {per_q / 1e3:,.1f}B per remaining quarter, vs "
                       f"{last / 1e3:,.1f}B in {pd.Period(cap.index[-1], freq='Q')} ({per_q / last - 1:+.0%})")
    out += [f"{k}: contradicted by reported data: {why}" for k, why in scenario.contradicted.items()]
    return out


def _unknown(d: Mapping, allowed: Sequence[str], source: str, prefix: str) -> None:
    for k in d:
        if k not in allowed:
            close = difflib.get_close_matches(str(k), list(allowed), n=1, cutoff=0.5)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ScenarioError(source, f"{prefix}{k}", f"unknown key{hint}; allowed: {', '.join(allowed)}")


def _mapping(v, source: str, key: str) -> Mapping:
    if not isinstance(v, Mapping):
        raise ScenarioError(source, key, f"expected a mapping, got {type(v).__name__} {v!r}")
    return v


def _number(v, source: str, key: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
        raise ScenarioError(source, key, f"expected a number, got {v!r}")
    return float(v)


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


# --------------------------------------------------------------------------- applying
def check_periods(scenario: Scenario, origin: pd.Timestamp, ds: pd.DatetimeIndex) -> None:
    """A scenario may only touch years with quarters after `origin`, within the horizon `ds`."""
    last_rep = pd.Period(origin, freq="Q")
    last_fc = pd.Period(ds.max(), freq="Q")
    years = set(scenario.capex_year) | set(scenario.aws_growth) | set(scenario.advertising_growth)
    for m in scenario.operating_margin.values():
        years |= set(m)
    for y in sorted(years):
        if (y == last_rep.year and last_rep.quarter == 4) or y < last_rep.year:
            raise ScenarioError(scenario.source, _key_of(scenario, y), f"fiscal year {y} is fully reported "
                                f"(data end {last_rep}); a scenario can only change future quarters")
        if pd.Period(year=y, quarter=4, freq="Q") > last_fc:
            raise ScenarioError(scenario.source, _key_of(scenario, y),
                                f"fiscal year {y} ends after the forecast horizon ({last_fc}); "
                                f"use a longer horizon")
    for p in scenario.capex_quarter:
        if p <= last_rep or p > last_fc:
            raise ScenarioError(scenario.source, f"drivers.capex.quarter.{p}",
                                f"quarter {p} is not a forecast quarter ({last_rep + 1}..{last_fc})")


def _key_of(s: Scenario, year: int) -> str:
    for name, d in (("capex.fiscal_year", s.capex_year), ("aws_growth", s.aws_growth),
                    ("advertising_growth", s.advertising_growth)):
        if year in d:
            return f"drivers.{name}.{year}"
    for seg, d in s.operating_margin.items():
        if year in d:
            return f"drivers.operating_margin.{seg}.{year}"
    return "drivers"


def adjuster(scenario: Scenario):
    """The `adjust(paths, inputs)` callable `forecasting.rollup.simulate` applies."""

    def adjust(paths: dict, inputs: RollupInputs) -> None:
        check_periods(scenario, inputs.origin, inputs.ds)
        hist = inputs.history.pivot_table(index="ds", columns="unique_id", values="y", aggfunc="first")
        ds = inputs.ds
        years = ds.year
        before = {s: paths[s].mean(axis=0).copy() for s in CARRIED}
        # capex
        for y, target in scenario.capex_year.items():
            cols = np.flatnonzero(years == y)
            reported = float(hist.loc[hist.index.year == y, NET_CAPEX].sum())
            remaining = target - reported
            if remaining < 0:
                raise ScenarioError(scenario.source, f"drivers.capex.fiscal_year.{y}",
                                    f"capex {target:g} is below the {reported:g} already reported for {y}")
            base = paths[NET_CAPEX][:, cols].mean(axis=0).sum()
            paths[NET_CAPEX][:, cols] *= remaining / base if base > 0 else 0.0
            if base <= 0:
                paths[NET_CAPEX][:, cols] += remaining / len(cols)
        for p, v in scenario.capex_quarter.items():
            j = int(np.flatnonzero(pd.PeriodIndex(ds, freq="Q") == p)[0])
            base = paths[NET_CAPEX][:, j].mean()
            paths[NET_CAPEX][:, j] = paths[NET_CAPEX][:, j] * (v / base) if base > 0 else v
        # AWS growth (margin kept), then explicit margins
        _grow(paths, "net_sales_aws", scenario.aws_growth, hist, ds, also="operating_income_aws")
        for seg, by_year in scenario.operating_margin.items():
            for y, m in by_year.items():
                cols = np.flatnonzero(years == y)
                paths[f"operating_income_{seg}"][:, cols] = m * paths[f"net_sales_{seg}"][:, cols]
        # advertising inside North America and International
        if scenario.advertising_growth:
            _advertising(paths, scenario, inputs, hist)
        if scenario.carry_forward:
            _carry_forward(paths, before, scenario, ds)

    return adjust


#: Series whose scenario level shift persists after the last quarter a scenario sets.
CARRIED = ("net_sales_north_america", "net_sales_international", "net_sales_aws",
           "operating_income_north_america", "operating_income_international",
           "operating_income_aws", NET_CAPEX)


def _carry_forward(paths: dict, before: dict, scenario: Scenario, ds) -> None:
    """After the last scenario year, keep each series' change of its last scenario quarter as
    a ratio to the base forecast (the models' own growth continues from the scenario's level)."""
    last_year = max(p.year for p in scenario.periods())
    after = np.flatnonzero(ds.year > last_year)
    inside = np.flatnonzero(ds.year <= last_year)
    if not len(after) or not len(inside):
        return
    j = inside[-1]
    for s in CARRIED:
        b = before[s][j]
        if b != 0 and not (s.startswith("operating_income") and b <= 0):
            paths[s][:, after] *= paths[s][:, j].mean() / b


def _prior_year_mean(paths_or_hist, series: str, hist: pd.DataFrame, ds, j: int, adjusted: np.ndarray | None):
    prev = ds[j] - pd.offsets.QuarterEnd(4)
    if prev in hist.index and np.isfinite(hist.loc[prev, series]):
        return float(hist.loc[prev, series])
    k = int(np.flatnonzero(ds == prev)[0])
    return float(adjusted[k]) if adjusted is not None else float(paths_or_hist[:, k].mean())


def _grow(paths: dict, series: str, growth: Mapping[int, float], hist, ds, also: str | None = None) -> None:
    for j in range(len(ds)):
        g = growth.get(ds[j].year)
        if g is None:
            continue
        target = (1 + g) * _prior_year_mean(paths[series], series, hist, ds, j, None)
        f = target / paths[series][:, j].mean()
        paths[series][:, j] *= f
        if also is not None:
            paths[also][:, j] *= f


def _advertising(paths: dict, scenario: Scenario, inputs: RollupInputs, hist) -> None:
    base = inputs.extra_point.get(ADVERTISING)
    if base is None or not np.isfinite(base).all():
        raise ValueError("advertising_growth needs a base forecast of net_sales_advertising: "
                         "prepare the roll-up with extra=('net_sales_advertising',)")
    ds = inputs.ds
    target = base.copy()
    for j in range(len(ds)):
        g = scenario.advertising_growth.get(ds[j].year)
        if g is not None:
            target[j] = (1 + g) * _prior_year_mean(None, ADVERTISING, hist, ds, j, target)
    extra = target - base
    margin = scenario.advertising_incremental_margin
    if margin is None:
        last = hist[["operating_income_north_america", "net_sales_north_america"]].dropna().iloc[-4:]
        margin = float(last.iloc[:, 0].sum() / last.iloc[:, 1].sum())
    na, intl = paths["net_sales_north_america"], paths["net_sales_international"]
    share = na / np.maximum(na + intl, 1e-9)
    for seg, sh in (("north_america", share), ("international", 1 - share)):
        paths[f"net_sales_{seg}"] += sh * extra[None, :]
        paths[f"operating_income_{seg}"] += margin * sh * extra[None, :]


# --------------------------------------------------------------------------- running
@dataclass
class ScenarioResult:
    """Base and scenario simulations at one origin, and their FCF tables."""

    inputs: RollupInputs
    simulations: dict           # name -> Simulation ("base" first)
    scenarios: dict             # name -> Scenario

    def table(self) -> pd.DataFrame:
        """``scenario, unique_id (free_cash_flow / _ttm), ds, mean, p2.5 .. p97.5``."""
        parts = [sim.table().assign(scenario=name) for name, sim in self.simulations.items()]
        out = pd.concat(parts, ignore_index=True)
        return out[["scenario"] + [c for c in out.columns if c != "scenario"]]

    def fiscal_years(self) -> pd.DataFrame:
        """FCF per fiscal year (reported + simulated quarters), for years the horizon completes:
        ``scenario, fiscal_year, reported_quarters, mean, p2.5 .. p97.5``."""
        parts = [sim.fiscal_years(self.inputs.history).assign(scenario=name) for name, sim in self.simulations.items()]
        parts = [p for p in parts if len(p)]
        if not parts:
            return pd.DataFrame()
        out = pd.concat(parts, ignore_index=True)
        return out[["scenario"] + [c for c in out.columns if c != "scenario"]]

    def drivers(self) -> pd.DataFrame:
        """Mean fiscal-year drivers per scenario (reported + simulated quarters), USD millions:
        capex, AWS sales and growth, AWS margin, total OI, OCF."""
        hist = self.inputs.history.pivot_table(index="ds", columns="unique_id", values="y", aggfunc="first")
        ds = self.inputs.ds
        rows = []
        for name, sim in self.simulations.items():
            for y in sorted(set(ds.year)):
                if pd.Timestamp(year=y, month=12, day=31) > ds.max():
                    continue
                cols = np.flatnonzero(ds.year == y)
                rep = hist[hist.index.year == y]

                def fy(s):  # used within this iteration only
                    return float(rep[s].sum()) + float(sim.paths[s][:, cols].mean(axis=0).sum())  # noqa: B023

                prev_cols = np.flatnonzero(ds.year == y - 1)
                prev = float(hist[hist.index.year == y - 1]["net_sales_aws"].sum()) + float(
                    sim.paths["net_sales_aws"][:, prev_cols].mean(axis=0).sum())
                rows.append({"scenario": name, "fiscal_year": y, "capex": fy(NET_CAPEX),
                             "aws_sales": fy("net_sales_aws"),
                             "aws_growth": fy("net_sales_aws") / prev - 1 if prev > 0 else np.nan,
                             "aws_margin": fy("operating_income_aws") / fy("net_sales_aws"),
                             "operating_income": fy("operating_income_total"),
                             "operating_cash_flow": fy("operating_cash_flow"), "fcf": fy(FCF)})
        return pd.DataFrame(rows)


def as_scenario(s) -> Scenario:
    if isinstance(s, Scenario):
        return s
    if isinstance(s, Mapping):
        return scenario_from_dict(s)
    return load_scenario(s)


def run_scenarios(df: pd.DataFrame, scenarios: Iterable, h: int = 6, config: RollupConfig | None = None,
                  guidance=None, inputs: RollupInputs | None = None, pipeline=None) -> ScenarioResult:
    """Base case and each scenario, from the same sample paths (same seed: common random numbers).

    Args:
        df: long frame of every modelled series (`features.loader.load_quarterly()`).
        scenarios: paths to YAML files, dicts, or `Scenario` objects.
        h: quarters ahead; 6 from a Q2 data end covers fiscal 2027.
        config: roll-up settings (`forecasting.rollup.RollupConfig`; its ``h`` is replaced by
            `h`, and advertising is added to its series when a scenario needs it).
        guidance: `features.guidance.GuidanceBook` for the roll-up's guided models.
        inputs: reuse prepared `RollupInputs` (must include the advertising forecast if a
            scenario sets advertising growth).
        pipeline: reuse a computed `forecasting.rollup.Pipeline` (same data and config).
    """
    parsed = [as_scenario(s) for s in scenarios]
    names = [s.name for s in parsed]
    if len(set(names)) != len(names) or "base" in names:
        raise ValueError(f"scenario names must be unique and not 'base'; got {names}")
    if inputs is None:
        origin = pd.Timestamp(df["ds"].max())
        ds = pd.DatetimeIndex([origin + pd.offsets.QuarterEnd(k) for k in range(1, h + 1)])
        for s in parsed:  # fail before any model is fitted
            check_periods(s, origin, ds)
        config = config or RollupConfig()
        extra = tuple(dict.fromkeys([*config.extra, *((ADVERTISING,) if any(s.needs_advertising for s in parsed)
                                                       else ())]))
        config = config.replace(h=h, extra=extra)
        inputs = rollup(df, config, guidance, pipeline=pipeline).inputs
    for s in parsed:
        check_periods(s, inputs.origin, inputs.ds)
    sims: dict[str, Simulation] = {"base": simulate(inputs)}
    for s in parsed:
        sims[s.name] = simulate(inputs, adjust=adjuster(s))
    return ScenarioResult(inputs=inputs, simulations=sims, scenarios={s.name: s for s in parsed})


def side_by_side(result: ScenarioResult, series: str = FCF_TTM, qs: Sequence[float] = (0.1, 0.5, 0.9)) -> pd.DataFrame:
    """One row per quarter, one column per scenario: ``P50 [P10, P90]`` in USD billions."""
    from forecasting.simulate import quantile_label

    t = result.table()
    t = t[t["unique_id"] == series]
    lo, mid, hi = (quantile_label(q) for q in qs)
    t = t.assign(cell=[f"{m / 1e3:,.1f} [{a / 1e3:,.1f}, {b / 1e3:,.1f}]" for m, a, b in zip(t[mid], t[lo], t[hi])])
    out = t.pivot(index="ds", columns="scenario", values="cell")
    out.index = pd.PeriodIndex(out.index, freq="Q").astype(str)
    return out[list(result.simulations)]


__all__ = ["Scenario", "ScenarioError", "ScenarioResult", "load_scenario", "scenario_from_dict",
           "run_scenarios", "side_by_side", "adjuster", "check_periods", "QUANTILES"]
