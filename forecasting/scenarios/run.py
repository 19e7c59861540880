"""Scenarios: override the roll-up's drivers and compare scenario FCF with the base case.

A scenario (`forecasting.scenarios.file`: a YAML file checked against the company profile)
sets capex, a segment's sales growth, segment operating margins or a revenue category's growth.
With ``carry_forward: true`` (the default) the change a scenario makes in its last quarter
persists afterwards as a ratio to the base forecast of each segment series and capex (e.g. a
capex cut keeps the next year's capex lower by the same proportion, and a segment keeps the
models' growth from its scenario level); ``false`` returns to the base forecasts.

Only quarters after the newest reported one are changed: a fiscal-year value sets the
*remaining* quarters so that reported + remaining = the value. How drivers act on each sample
path (`forecasting.rollup.paths.simulate`), in this order:

- capex: the year's remaining forecast quarters are scaled by one factor so their mean adds
  up to the target (the shape and relative spread of the paths are kept); a quarter value
  scales that quarter;
- segment growth g: each remaining quarter's segment sales are scaled so their mean is (1 + g)
  times the same quarter a year earlier (reported, or the scenario's own forecast); the
  segment's operating income is scaled by the same factor (margin kept) unless a margin is given;
- operating margin m: segment OI = m x segment sales, path by path;
- category growth g: a revenue category inside segments is not a node of the tree. Extra
  category sales (target minus the base forecast of the category's series) are added to its
  segments in proportion to their sales, and extra OI = extra sales x the incremental margin.

`forecasting.scenarios.file.reported_checks` puts each claim beside the reported quarters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.profile import CompanyProfile
from forecasting.rollup.paths import RollupInputs, Simulation, rollup, simulate
from forecasting.rollup.config import RollupConfig
from forecasting.scenarios.file import Scenario, ScenarioError, load_scenario, scenario_from_dict
from features.errors import OptionError

__all__ = ["Scenario", "ScenarioError", "ScenarioResult", "adjuster", "as_scenario", "check_periods", "load_scenario",
           "run_scenarios", "scenario_from_dict"]


# --------------------------------------------------------------------------- applying
def check_periods(scenario: Scenario, origin: pd.Timestamp, ds: pd.DatetimeIndex, calendar) -> None:
    """A scenario may only touch fiscal years with quarters after `origin`, within the horizon `ds`."""
    last_rep = calendar.period(origin)
    last_fc = calendar.period(ds.max())
    for y in sorted(scenario.years()):
        if (y == last_rep.qyear and last_rep.quarter == 4) or y < last_rep.qyear:
            raise ScenarioError(scenario.source, scenario.key_of(y), f"fiscal year {y} is fully reported "
                                f"(data end {calendar.label(origin)}); a scenario can only change future quarters")
        if calendar.periods([calendar.year_end(y)])[0] > last_fc:
            raise ScenarioError(scenario.source, scenario.key_of(y),
                                f"fiscal year {y} ends after the forecast horizon ({calendar.label(ds.max())}); "
                                f"use a longer horizon")
    key = scenario.keys.get(("capex", ""), "capex")
    for p in scenario.capex_quarter:
        if p <= last_rep or p > last_fc:
            raise ScenarioError(scenario.source, f"drivers.{key}.quarter.{calendar.label(p.end_time)}",
                                f"quarter {calendar.label(p.end_time)} is not a forecast quarter "
                                f"({calendar.label((last_rep + 1).end_time)}..{calendar.label(ds.max())})")


def adjuster(scenario: Scenario):
    """The `adjust(paths, inputs)` callable `forecasting.rollup.paths.simulate` applies."""

    def adjust(paths: dict, inputs: RollupInputs) -> None:
        rs = inputs.series
        cal, tree, capex = rs.calendar, rs.tree, rs.cash.capex
        check_periods(scenario, inputs.origin, inputs.ds, cal)
        hist = inputs.history.pivot_table(index="ds", columns="unique_id", values="y", aggfunc="first")
        hist_year = cal.fiscal_year(hist.index)
        ds = inputs.ds
        years = cal.fiscal_year(ds)
        carried = [*tree.bottom_series(), capex]
        before = {s: paths[s].mean(axis=0).copy() for s in carried}
        key = scenario.keys.get(("capex", ""), "capex")
        for y, target in scenario.capex_year.items():
            cols = np.flatnonzero(years == y)
            reported = float(hist.loc[hist_year == y, capex].sum())
            remaining = target - reported
            if remaining < 0:
                raise ScenarioError(scenario.source, f"drivers.{key}.fiscal_year.{y}",
                                    f"capex {target:g} is below the {reported:g} already reported for {y}")
            base = paths[capex][:, cols].mean(axis=0).sum()
            paths[capex][:, cols] *= remaining / base if base > 0 else 0.0
            if base <= 0:
                paths[capex][:, cols] += remaining / len(cols)
        for p, v in scenario.capex_quarter.items():
            j = int(np.flatnonzero(cal.periods(ds) == p)[0])
            base = paths[capex][:, j].mean()
            paths[capex][:, j] = paths[capex][:, j] * (v / base) if base > 0 else v
        sales_m, oi_m = _measures(inputs)
        for seg, growth in scenario.growth.items():  # sales growth, margin kept
            node = next(s for s in tree.segments if s.name == seg)
            _grow(paths, node.series[sales_m], growth, hist, ds, cal, also=node.series[oi_m] if oi_m else None)
        for seg, by_year in scenario.margin.items():
            node = next(s for s in tree.segments if s.name == seg)
            for y, m in by_year.items():
                cols = np.flatnonzero(years == y)
                paths[node.series[oi_m]][:, cols] = m * paths[node.series[sales_m]][:, cols]
        for name, category in scenario.categories.items():
            _category(paths, name, category, inputs, hist)
        if scenario.carry_forward:
            _carry_forward(paths, before, scenario, ds, rs)

    return adjust


def _measures(inputs: RollupInputs) -> tuple[str, str | None]:
    """The sales measure (the cash-flow bridge's sales total) and the operating-income measure."""
    tree, cash = inputs.series.tree, inputs.series.cash
    sales = next(m.name for m in tree.measures if m.total == cash.sales)
    oi = next((m.name for m in tree.measures if m.total == cash.operating_income), None)
    return sales, oi


def _carry_forward(paths: dict, before: dict, scenario: Scenario, ds, rs) -> None:
    """After the last scenario year, keep each series' change of its last scenario quarter as
    a ratio to the base forecast (the models' own growth continues from the scenario's level)."""
    years = rs.calendar.fiscal_year(ds)
    last_year = scenario.last_year()
    after = np.flatnonzero(years > last_year)
    inside = np.flatnonzero(years <= last_year)
    if not len(after) or not len(inside):
        return
    j = inside[-1]
    for s in before:
        b = before[s][j]
        if b != 0 and not (not rs.nonnegative(s) and b <= 0):
            paths[s][:, after] *= paths[s][:, j].mean() / b


def _prior_year_mean(paths_or_hist, series: str, hist: pd.DataFrame, ds, j: int, adjusted: np.ndarray | None,
                     cal):
    prev = ds[j] - cal.offset(4)
    if prev in hist.index and np.isfinite(hist.loc[prev, series]):
        return float(hist.loc[prev, series])
    k = int(np.flatnonzero(ds == prev)[0])
    return float(adjusted[k]) if adjusted is not None else float(paths_or_hist[:, k].mean())


def _grow(paths: dict, series: str, growth: Mapping[int, float], hist, ds, cal, also: str | None = None) -> None:
    years = cal.fiscal_year(ds)
    for j in range(len(ds)):
        g = growth.get(int(years[j]))
        if g is None:
            continue
        target = (1 + g) * _prior_year_mean(paths[series], series, hist, ds, j, None, cal)
        f = target / paths[series][:, j].mean()
        paths[series][:, j] *= f
        if also is not None:
            paths[also][:, j] *= f


def _category(paths: dict, name: str, category, inputs: RollupInputs, hist) -> None:
    base = inputs.extra_point.get(category.series)
    if base is None or not np.isfinite(base).all():
        raise OptionError(f"{name} growth needs a base forecast of {category.series}: prepare the roll-up "
                         f"with extra=('{category.series}',)")
    rs = inputs.series
    cal, tree = rs.calendar, rs.tree
    sales_m, oi_m = _measures(inputs)
    ds = inputs.ds
    years = cal.fiscal_year(ds)
    target = base.copy()
    for j in range(len(ds)):
        g = category.growth.get(int(years[j]))
        if g is not None:
            target[j] = (1 + g) * _prior_year_mean(None, category.series, hist, ds, j, target, cal)
    extra = target - base
    nodes = [next(s for s in tree.segments if s.name == n) for n in category.segments]
    margin = category.margin
    if margin is None:
        src = next(s for s in tree.segments if s.name == (category.margin_from or category.segments[0]))
        last = hist[[src.series[oi_m], src.series[sales_m]]].dropna().iloc[-4:]
        margin = float(last.iloc[:, 0].sum() / last.iloc[:, 1].sum())
    sales = [paths[n.series[sales_m]] for n in nodes]
    total = sales[0]
    for s in sales[1:]:
        total = total + s
    shares = [s / np.maximum(total, 1e-9) for s in sales[:-1]]
    shares.append(1 - sum(shares) if len(shares) > 1 else (1 - shares[0] if shares else np.ones_like(total)))
    for n, sh in zip(nodes, shares):
        paths[n.series[sales_m]] += sh * extra[None, :]
        paths[n.series[oi_m]] += margin * sh * extra[None, :]


# --------------------------------------------------------------------------- running
@dataclass
@dataclass
class ScenarioResult:
    """Base and scenario simulations at one origin, and their FCF tables."""

    inputs: RollupInputs
    simulations: dict           # name -> Simulation ("base" first)
    scenarios: dict             # name -> Scenario
    grown_segments: tuple = ()  # segments a scenario file of the company may grow (drivers table)

    def table(self) -> pd.DataFrame:
        """``scenario, unique_id (free_cash_flow / _ttm), ds, mean, p2.5 .. p97.5``."""
        parts = [sim.table().assign(scenario=name) for name, sim in self.simulations.items()]
        out = pd.concat(parts, ignore_index=True)
        return out[["scenario"] + [c for c in out.columns if c != "scenario"]]

    def fiscal_years(self) -> pd.DataFrame:
        """FCF per fiscal year (reported + simulated quarters), for years the horizon completes:
        ``scenario, fiscal_year, reported_quarters, mean, p2.5 .. p97.5``."""
        parts = [sim.fiscal_years(self.inputs.history).assign(scenario=name)
                 for name, sim in self.simulations.items()]
        parts = [p for p in parts if len(p)]
        if not parts:
            return pd.DataFrame()
        out = pd.concat(parts, ignore_index=True)
        return out[["scenario"] + [c for c in out.columns if c != "scenario"]]

    def drivers(self) -> pd.DataFrame:
        """Mean fiscal-year drivers per scenario (reported + simulated quarters), USD millions:
        capex; for each segment a scenario file may grow, its sales, growth and margin; total
        OI, OCF and FCF."""
        rs = self.inputs.series
        cal, tree, cash = rs.calendar, rs.tree, rs.cash
        sales_m, oi_m = _measures(self.inputs)
        grown = [s for s in tree.segments if s.name in self.grown_segments]
        hist = self.inputs.history.pivot_table(index="ds", columns="unique_id", values="y", aggfunc="first")
        hist_year = cal.fiscal_year(hist.index)
        ds = self.inputs.ds
        years = cal.fiscal_year(ds)
        rows = []
        for name, sim in self.simulations.items():
            for y in sorted(set(years)):
                if cal.year_end(y) > ds.max():
                    continue
                cols = np.flatnonzero(years == y)
                prev_cols = np.flatnonzero(years == y - 1)

                def fy(s, year_cols=cols, year=y, paths=sim.paths):
                    return (float(hist.loc[hist_year == year, s].sum())
                            + float(paths[s][:, year_cols].mean(axis=0).sum()))

                row = {"scenario": name, "fiscal_year": y, "capex": fy(cash.capex)}
                for seg in grown:
                    sales, oi = seg.series[sales_m], seg.series.get(oi_m)
                    prev = fy(sales, prev_cols, y - 1)
                    row[f"{seg.name}_sales"] = fy(sales)
                    row[f"{seg.name}_growth"] = fy(sales) / prev - 1 if prev > 0 else np.nan
                    if oi:
                        row[f"{seg.name}_margin"] = fy(oi) / fy(sales)
                row.update({"operating_income": fy(cash.operating_income),
                            "operating_cash_flow": fy(cash.operating_cash_flow), "fcf": fy(rs.fcf)})
                rows.append(row)
        return pd.DataFrame(rows)


def as_scenario(s, profile: CompanyProfile) -> Scenario:
    """A `Scenario` from a `Scenario`, a dict or a YAML path, checked against `profile`."""
    if isinstance(s, Scenario):
        return s
    if isinstance(s, Mapping):
        return scenario_from_dict(s, profile)
    return load_scenario(s, profile)


def run_scenarios(df: pd.DataFrame, profile: CompanyProfile, scenarios: Iterable, h: int = 6,
                  config: RollupConfig | None = None, guidance=None, inputs: RollupInputs | None = None,
                  pipeline=None) -> ScenarioResult:
    """Base case and each scenario, from the same sample paths (same seed: common random numbers).

    Args:
        df: long frame of every modelled series (`features.loader.load_quarterly()`).
        profile: the company's profile (roll-up series, scenario drivers, calendar).
        scenarios: paths to YAML files, dicts, or `Scenario` objects.
        h: quarters ahead; 6 from a second-quarter data end covers the next fiscal year.
        config: roll-up settings (`forecasting.rollup.config.RollupConfig`; its ``h`` is
            replaced by `h`, and a revenue category is added to its series when a scenario
            needs it).
        guidance: `features.guidance.GuidanceBook` for the roll-up's guided models.
        inputs: reuse prepared `RollupInputs` (must include the advertising forecast if a
            scenario sets advertising growth).
        pipeline: reuse a computed `forecasting.rollup.pipeline.Pipeline` (same data and config).
    """
    parsed = [as_scenario(s, profile) for s in scenarios]
    cal = profile.calendar
    names = [s.name for s in parsed]
    if len(set(names)) != len(names) or "base" in names:
        raise OptionError(f"scenario names must be unique and not 'base'; got {names}")
    if inputs is None:
        origin = pd.Timestamp(df["ds"].max())
        ds = pd.DatetimeIndex([origin + cal.offset(k) for k in range(1, h + 1)])
        for s in parsed:  # fail before any model is fitted
            check_periods(s, origin, ds, cal)
        config = config or RollupConfig()
        extra = tuple(dict.fromkeys([*config.extra, *(x for s in parsed for x in s.category_series)]))
        config = config.replace(h=h, extra=extra)
        inputs = rollup(df, profile, config, guidance, pipeline=pipeline).inputs
    for s in parsed:
        check_periods(s, inputs.origin, inputs.ds, cal)
    sims: dict[str, Simulation] = {"base": simulate(inputs)}
    for s in parsed:
        sims[s.name] = simulate(inputs, adjust=adjuster(s))
    grown = tuple(d.segment for d in profile.scenario_drivers.values() if d.kind == "segment_growth")
    return ScenarioResult(inputs=inputs, simulations=sims, scenarios={s.name: s for s in parsed},
                          grown_segments=grown)
