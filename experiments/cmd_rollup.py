"""``fcf rollup``: consolidated FCF forecast (quarterly and TTM quantiles), fan chart, MLflow.

Forecasts every segment node and net capex, reconciles the segments, simulates sample paths
that keep the cross-series correlation of past errors, and pushes them through the FCF bridge
(`forecasting.rollup`). ``--backtest`` also scores the roll-up at past cutoffs against reported
FCF, beside seasonal-naive FCF. The tracking server is checked before any computation (exit 3
when unreachable); ``--no-track`` skips MLflow.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from experiments.cli import EXIT_TRACKING, CommandError, add_data_options, checked_tracking_uri

DEFAULT_OUT = "outputs/rollup"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "rollup",
        help="roll segment forecasts up to consolidated FCF with quantiles and a fan chart",
        description="Consolidated free cash flow: P5..P95 per quarter and trailing twelve months, "
                    "from reconciled segment forecasts, an OCF bridge and capex, by Monte Carlo.",
    )
    add_data_options(p)
    add_rollup_options(p, horizon=4)
    p.add_argument("--backtest", action="store_true",
                   help="also backtest the roll-up at past cutoffs (MASE vs seasonal-naive FCF, coverage)")
    p.add_argument("--backtest-windows", type=int, default=12, help="evaluated cutoffs of --backtest (default 12)")
    p.add_argument("--experiment", default=None, help="MLflow experiment (default amazon-rollup)")
    p.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    p.set_defaults(func=run)


def add_rollup_options(p: argparse.ArgumentParser, horizon: int) -> None:
    """Options `fcf rollup` and `fcf scenario` share."""
    p.add_argument("--horizon", "-H", type=int, default=horizon, help=f"quarters ahead (default {horizon})")
    p.add_argument("--model", default="AutoETS",
                   help="model for every segment node and capex (default AutoETS)")
    p.add_argument("--method", default="MinTrace-wls_struct",
                   help="reconciliation: BottomUp, MinTrace-ols, MinTrace-wls_struct (default) or base")
    p.add_argument("--windows", type=int, default=12,
                   help="past windows whose errors drive the simulation (default 12)")
    p.add_argument("--paths", type=int, default=1000, help="Monte Carlo sample paths (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed: same quantiles)")
    p.add_argument("--no-calibrate", action="store_true",
                   help="keep the raw bootstrap spread (default: scale it so the roll-up's 80%% band "
                        "would have covered 80%% of reported FCF over the last 12 cutoffs)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"folder for tables and the fan chart (default {DEFAULT_OUT})")


def check_options(args) -> None:
    from forecasting.hierarchy import METHODS
    from forecasting.models import get_spec, resolve

    resolve([])  # loads extension models so every registered name is known
    get_spec(args.model)
    if getattr(args, "series", None):
        raise CommandError("--series: the roll-up always uses the segment, capex, OCF and FCF series; "
                           "drop --series")
    if args.method not in ("base", *METHODS):
        raise CommandError(f"--method {args.method}: choose from base, {', '.join(METHODS)}")
    if not 1 <= args.horizon <= 8:
        raise CommandError(f"--horizon {args.horizon}: must be between 1 and 8")
    if args.paths < 100:
        raise CommandError(f"--paths {args.paths}: use at least 100 sample paths")
    if args.windows < 2:
        raise CommandError(f"--windows {args.windows}: need at least 2 past windows")


def billions(v: float) -> str:
    return f"{v / 1e3:,.1f}"


def format_quantiles(q: pd.DataFrame, cols=("p5", "p10", "p50", "p90", "p95")) -> str:
    t = pd.DataFrame({"quarter": pd.PeriodIndex(pd.DatetimeIndex(q["ds"]), freq="Q").astype(str)})
    for c in ("mean", *cols):
        t[c.upper() if c != "mean" else "mean"] = [billions(v) for v in q[c]]
    return t.to_string(index=False)


def run(args: argparse.Namespace) -> int:
    from features.loader import load_quarterly
    from forecasting.rollup import backtest_rollup, rollup, score_rollup

    from experiments import tracking
    from experiments.fanchart import fan_chart
    from experiments.io import write_csv

    check_options(args)
    uri = checked_tracking_uri(args.no_track)
    t0 = time.perf_counter()
    df = load_quarterly(args.data, args.series_config)
    res = rollup(df, h=args.horizon, model=args.model, method=args.method, n_windows=args.windows,
                 n_paths=args.paths, seed=args.seed, calibrate=not args.no_calibrate)
    origin = res.params["origin"]
    scale = (f"errors scaled x{res.inputs.error_scale:.2f} by calibration on the roll-up's backtest"
             if not args.no_calibrate else "raw bootstrap spread, not calibrated")
    print(f"Free cash flow roll-up from {origin} (model {args.model}, reconciliation {args.method}, "
          f"{args.paths} paths, errors of {len(res.inputs.windows)} past windows, {scale}), USD billions\n")
    print("Trailing-twelve-month FCF")
    print(format_quantiles(res.ttm))
    print("\nQuarterly FCF")
    print(format_quantiles(res.quarterly))
    out = Path(args.out)
    quant = pd.concat([res.quarterly, res.ttm], ignore_index=True)
    write_csv(quant, out / "rollup_quantiles.csv")
    write_csv(res.drivers, out / "drivers.csv")
    fcf_hist = df[df["unique_id"] == "free_cash_flow"].set_index("ds")["y"].rolling(4).sum().dropna()
    chart = fan_chart(fcf_hist, {"TTM FCF": res.ttm}, out / "fanchart.png",
                      title=f"Amazon TTM free cash flow: reported and roll-up from {origin}")
    scores = bt = None
    if args.backtest:
        result = backtest_rollup(df, h=args.horizon, model=args.model, method=args.method,
                                 n_windows=args.backtest_windows, n_paths=args.paths, seed=args.seed,
                                 calibrate=not args.no_calibrate)
        scores = score_rollup(result)
        bt = result["backtest"]
        print("\nRoll-up backtest vs seasonal-naive FCF (all horizons)")
        cols = ["unique_id", "model", "n", "mase", "smape", "coverage_80", "coverage_95", "rel_mase"]
        print(scores["overall"][cols].round(3).to_string(index=False))
        rec = scores["reconciliation"].drop_duplicates("method")[["method", "gm_rel_to_base"]]
        print("\nReconciliation: node MASE relative to base forecasts (geometric mean over nodes)")
        print(rec.round(4).to_string(index=False))
        write_csv(bt, out / "rollup_backtest.csv")
        write_csv(scores["by_step"], out / "rollup_scores.csv")
    print(f"\nwrote {out}/rollup_quantiles.csv, drivers.csv, {chart.name}; {time.perf_counter() - t0:.1f}s")
    if uri is not None:
        try:
            run_id = tracking.log_rollup(res, scores=scores, backtest=bt, fanchart=chart,
                                         experiment=args.experiment or tracking.ROLLUP_EXPERIMENT,
                                         uri=uri, data_path=args.data)
        except tracking.TrackingError as exc:
            raise CommandError(str(exc), EXIT_TRACKING) from exc
        print(f"logged MLflow run {run_id} to {uri}")
    return 0
