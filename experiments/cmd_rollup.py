"""``fcf rollup``: consolidated FCF forecast (quarterly, TTM and fiscal-year quantiles), fan chart, MLflow.

Forecasts every node (segments, totals, capex, OCF, FCF) with its own nested champion
(guidance-aware where management guides), reconciles the segments and the cash-flow identity,
simulates sample paths from the pipeline's own past errors and calibrates their spread
(`forecasting.rollup.paths`). ``--backtest`` also scores the roll-up at past cutoffs against
reported FCF, beside the direct FCF models and seasonal naive (`forecasting.rollup.backtest`).
The tracking server is checked before any computation (exit 3 when unreachable).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from experiments.cli import (
    check_horizon_option,
    EXIT_TRACKING,
    CommandError,
    add_data_options,
    add_guidance_option,
    check_out_folder,
    checked_tracking_uri,
    company_profile,
    data_path,
    guidance_for,
    split_list,
)

DEFAULT_OUT = "outputs/rollup"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "rollup",
        help="roll segment forecasts up to consolidated FCF with quantiles and a fan chart",
        description="Consolidated free cash flow: P5..P95 per quarter, trailing twelve months and "
                    "fiscal year, from per-node champion forecasts (guidance-aware), reconciled "
                    "segments, the cash-flow identity and Monte Carlo paths of past errors.",
    )
    add_data_options(p)
    add_rollup_options(p, horizon=4)
    p.add_argument("--backtest", action="store_true",
                   help="also backtest the roll-up at past cutoffs (MASE vs seasonal-naive FCF and the "
                        "direct FCF models, coverage, scaled CRPS)")
    p.add_argument("--backtest-windows", type=int, default=12, help="evaluated cutoffs of --backtest (default 12)")
    p.add_argument("--experiment", default=None, help="MLflow experiment (default <company>-rollup)")
    p.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    p.set_defaults(func=run)


def add_rollup_options(p: argparse.ArgumentParser, horizon: int) -> None:
    """Options `fcf rollup` and `fcf scenario` share."""
    p.add_argument("--horizon", "-H", type=int, default=horizon, help=f"quarters ahead (default {horizon})")
    p.add_argument("--method", default="MinTrace-wls_var",
                   help="segment reconciliation: MinTrace-wls_var (default: weights from past errors), "
                        "MinTrace-mint_shrink, MinTrace-wls_struct, MinTrace-ols, BottomUp or base")
    p.add_argument("--cashflow", default="wls_var",
                   help="FCF = OCF - capex reconciliation of the direct, bridged and component forecasts: "
                        "wls_var (default), mint_shrink, ols; or bridge / direct (no reconciliation)")
    p.add_argument("--candidates", default=None,
                   help="comma-separated models each node's champion is chosen from (default: "
                        "AutoETS, Foster, StatsCombo, AutoARIMALog, SeasonalNaive, RandomWalkWithDrift, StatsMLCombo)")
    p.add_argument("--guided-candidates", default=None,
                   help="comma-separated guided models for the guided nodes (default: GuidedFoster, "
                        "GuidedStatsCombo, GuidedAutoARIMALog, GuidedStatsMLCombo; 'none': no guided models)")
    p.add_argument("--first-cutoff", default=None,
                   help="earliest cutoff of the node forecasts, a quarter of the company's calendar, e.g. 2016Q2 "
                        "(default: the company profile's); later is faster, with fewer past windows to choose "
                        "champions and draw errors from")
    p.add_argument("--paths", type=int, default=1000, help="Monte Carlo sample paths (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed: same quantiles)")
    p.add_argument("--no-calibrate", action="store_true",
                   help="keep the raw bootstrap spread (default: scale it by the roll-up's own recent misses)")
    p.add_argument("--calibrate-by", choices=("fcf", "node"), default="fcf",
                   help="fcf (default): one factor from FCF's recent misses scales every path; node: a factor per "
                        "simulated node and quarter ahead from that node's own misses")
    add_guidance_option(p)
    p.add_argument("--out", default=DEFAULT_OUT, help=f"folder for tables and the fan chart (default {DEFAULT_OUT})")


def check_options(args):
    """Check the roll-up options before any work; returns the company profile (which must have a
    roll-up: a hierarchy and cash-flow series)."""
    from forecasting.reconcile.cashflow import METHODS as CASHFLOW
    from forecasting.methods.catalogue import resolve
    from forecasting.reconcile.hierarchy import ERROR_METHODS, METHODS
    from forecasting.methods.registry import get_spec

    check_out_folder(args.out)
    profile = company_profile(args)
    if not profile.has_rollup:
        raise CommandError(f"the roll-up needs a company profile with a hierarchy and cash_flow series (company "
                           f"profile '{profile.name}' has none); pass --company or see data/companies/")
    resolve([])  # loads every registered model so that names can be checked
    for name in [*(split_list(args.candidates) or []), *(split_list(args.guided_candidates) or [])]:
        if name != "none":
            get_spec(name)
    if args.first_cutoff is not None:
        try:
            profile.calendar.parse(args.first_cutoff)
        except ValueError:
            raise CommandError(f"--first-cutoff {args.first_cutoff}: give a quarter like "
                               f"{profile.calendar.label(profile.calendar.year_end(2016))}") from None
    if getattr(args, "series", None):
        raise CommandError("--series: the roll-up always uses the segment, capex, OCF and FCF series; "
                           "drop --series")
    if args.method not in ("base", *METHODS, *ERROR_METHODS):
        raise CommandError(f"--method {args.method}: choose from base, {', '.join([*ERROR_METHODS, *METHODS])}")
    if args.cashflow not in (*CASHFLOW, "bridge", "direct"):
        raise CommandError(f"--cashflow {args.cashflow}: choose from {', '.join([*CASHFLOW, 'bridge', 'direct'])}")
    check_horizon_option(args.horizon)
    if args.paths < 100:
        raise CommandError(f"--paths {args.paths}: use at least 100 sample paths")
    return profile


def rollup_config(args):
    from forecasting.rollup.config import RollupConfig

    kw = {}
    if args.candidates:
        kw["candidates"] = tuple(split_list(args.candidates))
    if args.guided_candidates:
        guided = split_list(args.guided_candidates)
        kw["guided"] = () if guided == ["none"] else tuple(guided)
    if args.first_cutoff:
        kw["first_cutoff"] = args.first_cutoff.strip().upper()
    return RollupConfig(h=args.horizon, method=args.method, cashflow=args.cashflow, n_paths=args.paths,
                        seed=args.seed, calibrate=not args.no_calibrate,
                        calibrate_by=getattr(args, "calibrate_by", "fcf"), **kw)


def billions(v: float) -> str:
    return f"{v / 1e3:,.1f}"


def format_quantiles(q: pd.DataFrame, calendar, cols=("p5", "p10", "p50", "p90", "p95")) -> str:
    t = pd.DataFrame({"quarter": calendar.labels(q["ds"])})
    for c in ("mean", *cols):
        t[c.upper() if c != "mean" else "mean"] = [billions(v) for v in q[c]]
    return t.to_string(index=False)


def print_backtest(result, scores) -> None:
    rs = result.pipeline.series
    cuts = sorted(result.backtest["cutoff"].unique())
    span = f"{rs.calendar.label(cuts[0])}..{rs.calendar.label(cuts[-1])}"
    from experiments.leaderboard import rollup_table

    for series, label in ((rs.fcf, "Quarterly FCF"), (rs.fcf_ttm, "Trailing-twelve-month FCF")):
        print(f"\n{label}: roll-up vs direct models, {len(cuts)} cutoffs {span}; MASE relative to seasonal naive")
        print(rollup_table(scores, series).round(3).to_string())
    fy = scores.fiscal_years
    if len(fy):
        print("\nFiscal-year FCF (reported + forecast quarters of the current / next fiscal year)")
        print(fy.round(3).to_string(index=False))
    cf = scores.cashflow_by_step.pivot_table(index="model", columns="step", values="rel_mase")
    cf.columns = [f"h{c}" for c in cf.columns]
    cf["all"] = scores.cashflow_overall.set_index("model")["rel_mase"]
    print("\nFCF point forecasts of each cash-flow variant (MASE relative to seasonal naive)")
    print(cf.sort_values("all").round(3).to_string())
    nb = scores.nodes_by_step
    h1 = nb[nb["step"] == 1].pivot_table(index="model", columns="unique_id", values="rel_mase")
    print("\nNodes one quarter ahead (MASE relative to seasonal naive): the roll-up, the nested champion, "
          "the guidance midpoint and each candidate")
    print(h1.round(3).to_string())
    rec = scores.reconciliation.drop_duplicates("method")[["method", "gm_rel_to_base"]]
    print("\nSegment reconciliation: node MASE relative to the champions' (geometric mean over nodes)")
    print(rec.round(4).to_string(index=False))


def run(args: argparse.Namespace) -> int:
    from experiments.fanchart import fan_chart
    from experiments.io import write_csv
    from experiments.track_backtest import RunContext
    from experiments.track_runs import log_rollup
    from experiments.tracking import TrackingError
    from features.aggregates import trailing_twelve_months
    from features.loader import load_quarterly
    from forecasting.rollup.paths import rollup
    from forecasting.rollup.backtest import RollupBacktestConfig, backtest_rollup, score_rollup
    from forecasting.rollup.pipeline import prepare_pipeline

    profile = check_options(args)
    uri = checked_tracking_uri(args.no_track)
    t0 = time.perf_counter()
    data = data_path(args, profile)
    df = load_quarterly(data, args.series_config)
    book = guidance_for(args, profile)
    config = rollup_config(args)
    pipe = prepare_pipeline(df, profile, config, book)
    res = rollup(df, profile, config, book, pipeline=pipe)
    cal = profile.calendar
    origin = res.params["origin"]
    scale = (f"spread x{res.inputs.spread_scale:.2f} from the roll-up's recent misses"
             if config.calibrate else "raw bootstrap spread, not calibrated")
    print(f"Free cash flow roll-up from {origin} ({config.n_paths} paths, errors of {len(res.inputs.windows)} "
          f"past windows, {scale}; guidance: {res.params['guidance']}), USD billions\n")
    print("Trailing-twelve-month FCF")
    print(format_quantiles(res.ttm, cal))
    print("\nQuarterly FCF")
    print(format_quantiles(res.quarterly, cal))
    fy = res.simulation.fiscal_years(res.inputs.history)
    if len(fy):
        print("\nFiscal-year FCF (reported + simulated quarters)")
        shown = fy.assign(**{c: fy[c].map(billions) for c in ("mean", "p10", "p50", "p90")})
        shown["P10..P90 width"] = (fy["p90"] - fy["p10"]).map(billions)
        print(shown[["fiscal_year", "reported_quarters", "mean", "p10", "p50", "p90", "P10..P90 width"]]
              .to_string(index=False))
    ch = res.choices[["unique_id", "model", "lam", "score"]]
    print("\nPer-node champions at the origin (model, share of the latest miss added, past scaled error)")
    print(ch.round(3).to_string(index=False))
    out = Path(args.out)
    quant = pd.concat([res.quarterly, res.ttm], ignore_index=True)
    write_csv(quant, out / "rollup_quantiles.csv")
    write_csv(res.drivers, out / "drivers.csv")
    write_csv(res.choices, out / "champions.csv")
    fcf_hist = trailing_twelve_months(df, profile.cash_flow.free_cash_flow).set_index("ds")["y"]
    chart = fan_chart(fcf_hist, {"TTM FCF": res.ttm}, out / "fanchart.png",
                      title=f"{profile.title} TTM free cash flow: reported and roll-up from {origin}")
    scores = bt = None
    if args.backtest:
        bt = backtest_rollup(df, profile, config, book, RollupBacktestConfig(n_windows=args.backtest_windows),
                             pipeline=pipe)
        scores = score_rollup(bt)
        print_backtest(bt, scores)
        write_csv(bt.backtest, out / "rollup_backtest.csv")
        write_csv(scores.by_step, out / "rollup_scores.csv")
        write_csv(scores.fiscal_years, out / "rollup_fiscal_years.csv")
        write_csv(scores.cashflow_by_step, out / "cashflow_variants.csv")
        write_csv(scores.nodes_by_step, out / "node_scores.csv")
        write_csv(bt.choices, out / "champions_backtest.csv")
    print(f"\nwrote {out}/rollup_quantiles.csv, drivers.csv, champions.csv, {chart.name}; "
          f"{time.perf_counter() - t0:.1f}s")
    if uri is not None:
        try:
            context = RunContext(experiment=args.experiment or profile.experiment("rollup"), uri=uri,
                                 data_path=data, tags={"company": profile.name})
            run_id = log_rollup(res, context, scores=scores, backtest=bt, fanchart=chart)
        except TrackingError as exc:
            raise CommandError(str(exc), EXIT_TRACKING) from exc
        print(f"logged MLflow run {run_id} to {uri}")
    return 0
