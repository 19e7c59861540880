"""A claims file against the roll-up's forecast distribution, in one call (`run_claims`).

1. The claims are checked against the data before any model is fitted
   (`forecasting.claims.file.check_claims`: typos in series names, amounts in the wrong unit; a
   series the data does not have makes its claim "not evaluable").
2. The roll-up (`forecasting.rollup.paths`) gives sample paths of the segments, totals, capex,
   OCF, FCF and TTM FCF after the newest reported quarter, with its calibrated spread.
3. A claim about a reported series the roll-up does not simulate (a revenue category) gets paths
   from `forecasting.rolling.forecast.forecast`'s calibrated 80/95% intervals
   (`forecasting.claims.evaluate.interval_paths`: quarters perfectly correlated, independent of
   the roll-up's paths), and its ``method`` column says so: such probabilities are weaker.
4. Each claim's probability, median and realised outcome (`forecasting.claims.evaluate.evaluate`),
   under the base case and under each scenario (`forecasting.scenarios.run`, same paths and
   seed). Under a scenario that sets a driver of a series simulated outside the roll-up
   (a revenue category's growth), claims on that series are not evaluated.
5. Where outcomes landed against management's guided ranges, and the reliability of claims
   generated at past cutoffs (`forecasting.claims.calibration`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from features.aggregates import trailing_twelve_months
from features.profile import CompanyProfile
from forecasting.claims.file import ClaimSet, check_claims, quarters_of
from forecasting.claims.calibration import (
    brier_scores,
    calibration_claims,
    decompositions,
    guidance_outcomes,
    reliability,
)
from forecasting.claims.evaluate import Outcomes, consensus_values, evaluate, interval_paths
from forecasting.claims.recalibrate import map_at
from forecasting.rolling.forecast import forecast
from forecasting.core.frames import ShortSeriesWarning
from forecasting.rollup.paths import RollupResult, rollup, simulate
from forecasting.rollup.config import RollupConfig, RollupSeries
from forecasting.rollup.pipeline import prepare_pipeline
from forecasting.scenarios.run import as_scenario, check_periods, run_scenarios
from features.errors import OptionError

__all__ = ["ClaimsReport", "run_claims", "extra_paths", "rollup_series", "with_ttm"]


def rollup_series(series: RollupSeries) -> tuple[str, ...]:
    """Series the roll-up simulates path by path (the tree's nodes, capex, OCF, FCF, TTM FCF)."""
    return tuple(dict.fromkeys([*series.simulated, *series.tree.nodes(), series.fcf, series.fcf_ttm]))


#: The ``method`` of claims evaluated on the roll-up's own paths.
ROLLUP_METHOD = "roll-up paths"
#: Guided quarters shown in the recent window of the guidance table.
RECENT_GUIDED = 12


@dataclass
class ClaimsReport:
    """Everything `run_claims` computed.

    Attributes:
        claims: the claims.
        table: `forecasting.claims.evaluate.RESULT_COLUMNS` for the base case (``probability``:
            on the roll-up's calibrated paths), ``probability_raw`` (on its raw paths),
            ``probability_recal`` (the raw one through the recalibration map learnt on the
            past claims of the reliability study, `forecasting.claims.recalibrate.map_at`;
            ``probability`` when there is none), ``map_claims`` (claims that map rests on, 0:
            none), plus one ``p.<scenario>`` column per scenario.
        by_scenario: ``id, scenario, probability, median, median_value, status, reason`` (base
            first).
        methods: series -> how its paths were made, for series not simulated by the roll-up.
        guidance: `guidance_outcomes` over all guided quarters and the last `RECENT_GUIDED`
            (column ``window``); empty without guidance.
        calibration: claims generated at past cutoffs (`calibration_claims`), or None.
        reliability, brier: their reliability table (of the recalibrated probabilities) and
            Brier scores, or None.
        reliability_paths: the reliability table of the roll-up paths' probabilities, or None.
        scores: Brier score, its decomposition and the expected calibration error per
            forecaster (`forecasting.claims.calibration.decompositions`), or None.
        params: settings and sizes (run parameters).
        result: the roll-up at the origin.
    """

    claims: ClaimSet
    table: pd.DataFrame
    by_scenario: pd.DataFrame
    methods: dict
    guidance: pd.DataFrame
    calibration: pd.DataFrame | None
    reliability: pd.DataFrame | None
    brier: pd.DataFrame | None
    params: dict
    result: RollupResult
    reliability_paths: pd.DataFrame | None = None
    scores: pd.DataFrame | None = None

    @property
    def scenarios(self) -> list[str]:
        return [s for s in self.by_scenario["scenario"].unique() if s != "base"]


def extra_paths(df: pd.DataFrame, series: Iterable[str], ds: pd.DatetimeIndex, n_paths: int,
                seed: int = 0, default: str | None = None) -> tuple[dict, dict]:
    """Paths of reported series the roll-up does not simulate, from `forecast`'s calibrated
    intervals (the default model: `default`, a company profile's, or the library's). A series
    whose last reported quarter is not the one before ``ds[0]`` gets none.

    Returns:
        ``(paths, methods)``: series -> (n_paths, len(ds)); series -> how they were made.
    """
    origin = ds[0] - pd.offsets.QuarterEnd(1, startingMonth=ds[0].month)
    todo = [s for s in series if df.loc[df["unique_id"] == s, "ds"].max() == origin]
    if not todo:
        return {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShortSeriesWarning)
        fc = forecast(df[df["unique_id"].isin(todo)], h=len(ds), default=default)
    paths, methods = {}, {}
    for s in todo:
        rows = fc[fc["unique_id"] == s]
        models = [m for m in rows["model"].unique() if m != "SeasonalNaive"] or ["SeasonalNaive"]
        rows = rows[rows["model"] == models[0]].set_index("ds").reindex(ds)
        if rows["mean"].isna().any():
            continue
        paths[s] = interval_paths(rows, n_paths, seed)
        used = ",".join(dict.fromkeys(rows["model_used"]))
        methods[s] = (f"{s}: {used} forecast with calibrated 80/95% intervals, quarters perfectly correlated, "
                      "independent of the roll-up's paths (weaker)")
    return paths, methods


def with_ttm(df: pd.DataFrame, series: RollupSeries) -> pd.DataFrame:
    """`df` with the reported trailing-twelve-month FCF, which the roll-up's paths carry, so
    claims written on that series have reported values too."""
    ids = set(df["unique_id"])
    if series.fcf not in ids or series.fcf_ttm in ids:
        return df
    return pd.concat([df, trailing_twelve_months(df, series.fcf)], ignore_index=True)


def run_claims(df: pd.DataFrame, profile: CompanyProfile, claims: ClaimSet, config: RollupConfig | None = None,
               guidance=None, scenarios: Sequence = (), calibration_h: int | None = 4, pipeline=None,
               progress: Callable[[Iterable], Iterable] | None = None, consensus=None) -> ClaimsReport:
    """Probabilities of `claims` under the roll-up's forecast distribution (module docstring).

    Args:
        df: every modelled series (`features.loader.load_quarterly()`); its newest quarter
            is the origin, and it holds the realised outcomes.
        profile: the company's profile (roll-up series, scenario drivers, default model).
        claims: a `ClaimSet` (`forecasting.claims.file.load_claims`).
        config: roll-up settings; ``h`` quarters are simulated (claims beyond are not
            evaluable); a revenue category is added to ``extra`` when a scenario sets its growth.
        guidance: `features.guidance.GuidanceBook` (guided models, guidance table, guided
            claims at past cutoffs) or None.
        scenarios: scenario files, dicts or `Scenario` objects.
        calibration_h: quarters ahead of the claims generated at past cutoffs (None: skip
            the reliability table).
        pipeline: a computed `forecasting.rollup.pipeline.Pipeline` (same data and config) to reuse.
        consensus: a `features.consensus.ConsensusBook` (claims ``relative_to: consensus`` and the
            ``beats_consensus`` claims at past cutoffs) or None.
    """
    rs = RollupSeries.of(profile)
    street = consensus_values(consensus.select(), rs.calendar) if consensus is not None else {}
    config = (config or RollupConfig()).for_company(profile)
    parsed = [as_scenario(s, profile) for s in scenarios]
    origin = pd.Timestamp(df["ds"].max())
    ds = pd.DatetimeIndex([origin + rs.calendar.offset(k) for k in range(1, config.h + 1)])
    for s in parsed:  # fail before any model is fitted
        check_periods(s, origin, ds, rs.calendar)
    simulated = rollup_series(rs)
    not_evaluable = check_claims(claims, df, simulated)
    last = rs.calendar.period(ds[-1])
    beyond = {c.id for c in claims.claims if all(q > last for p in c.periods for q in quarters_of(p))}
    if claims.claims and {c.id for c in claims.claims} <= set(not_evaluable) | beyond:
        raise OptionError(f"{claims.source}: no claim can be evaluated before any model is fitted: "
                         + "; ".join(f"{c.id}: " + (not_evaluable.get(c.id) or f"its periods end after the "
                                                    f"horizon's last quarter {last} (--horizon {config.h})")
                                     for c in claims.claims))
    needed = [x for s in parsed for x in s.category_series if x not in config.extra]
    if needed:
        config = config.replace(extra=tuple(dict.fromkeys([*config.extra, *needed])))
    pipe = pipeline or prepare_pipeline(df, profile, config, guidance)
    res = rollup(df, profile, config, guidance, pipeline=pipe)
    wanted = {s for c in claims.claims if c.id not in not_evaluable for s in c.series_used}
    extra, methods = extra_paths(df, sorted(wanted - set(simulated)), res.simulation.ds, config.n_paths,
                                 config.seed, profile.default_model)
    sims = {"base": res.simulation}
    if parsed:
        sims = run_scenarios(df, profile, parsed, h=config.h, config=config, guidance=guidance,
                             inputs=res.inputs).simulations
    known = with_ttm(df, rs)
    reported = Outcomes(known, consensus=street, calendar=rs.calendar)
    tables = {}
    for name, sim in sims.items():
        sc = next((s for s in parsed if s.name == name), None)
        paths, skip = {**sim.paths, **extra}, dict(not_evaluable)
        for series in (sc.category_series if sc is not None else []):
            if series not in extra:
                continue
            del paths[series]
            skip.update({c.id: f"scenario {name} sets the growth of {series}, which is not simulated path by path"
                         for c in claims.claims if series in c.series_used and c.id not in skip})
        outcomes = Outcomes(known, paths, sim.ds, consensus=street, calendar=rs.calendar)
        tables[name] = evaluate(claims, outcomes, reported, methods, skip,
                                default_method=ROLLUP_METHOD)
    raw = simulate(replace(res.inputs, error_scale=1.0, node_scale=None)) if config.calibrate else res.simulation
    raw_outcomes = Outcomes(known, {**raw.paths, **extra}, raw.ds, consensus=street, calendar=rs.calendar)
    raw_table = evaluate(claims, raw_outcomes, None, methods,
                         not_evaluable, default_method=ROLLUP_METHOD)
    table = tables["base"].copy()
    table["probability_raw"] = raw_table["probability"].to_numpy()
    for name in sims:
        if name != "base":
            table[f"p.{name}"] = tables[name]["probability"].to_numpy()
    cols = ["id", "probability", "medians", "median_value", "status", "reason"]
    by_scenario = pd.concat([t[cols].assign(scenario=name) for name, t in tables.items()], ignore_index=True)
    by_scenario = by_scenario[["id", "scenario", *cols[1:]]]
    gtab = pd.DataFrame()
    if guidance is not None:
        gtab = pd.concat([guidance_outcomes(guidance, df).assign(window="all"),
                          guidance_outcomes(guidance, df, last=RECENT_GUIDED).assign(window=f"last {RECENT_GUIDED}")],
                         ignore_index=True)
    cal = rel = brier = paths_rel = scores = None
    table["probability_recal"], table["map_claims"] = table["probability"], 0
    if calibration_h is not None:
        cal = calibration_claims(pipe, guidance, h=calibration_h, progress=progress, consensus=street)
        if len(cal):
            rel, brier = reliability(cal, "probability_recal"), brier_scores(cal)
            cmap = map_at(cal, origin)  # every claim of the study: all are resolved by the origin
            p = table["probability_raw"].to_numpy(dtype=float)
            ok = np.isfinite(p) & cmap.fitted  # too few past claims: the paths' probability stands
            table.loc[ok, "probability_recal"] = cmap(p[ok])
            table["map_claims"] = cmap.n if cmap.fitted else 0
            paths_rel, scores = reliability(cal, "probability"), decompositions(cal)
    params = {**res.params, "claims_file": claims.source, "claims": len(claims.claims),
              "evaluated": int((table["status"] == "evaluated").sum()),
              "scenarios": ",".join(s.name for s in parsed) or "none",
              "calibration_h": calibration_h if calibration_h is not None else "none",
              "calibration_claims": len(cal) if cal is not None else 0,
              "calibration_cutoffs": int(cal["cutoff"].nunique()) if cal is not None and len(cal) else 0}
    return ClaimsReport(claims=claims, table=table, by_scenario=by_scenario, methods=methods, guidance=gtab,
                        calibration=cal, reliability=rel, brier=brier, params=params, result=res,
                        reliability_paths=paths_rel, scores=scores)

