"""``fcf backtest``: rolling-origin backtest of every model, a leaderboard, tracked in MLflow.

Default series: the company profile's core series (for the shipped Amazon data, the 11
series of segment sales and operating income, operating cash flow, net capex, FCF) when the
data holds them, else every series; in both cases only series with at least ``windows +
horizon + 10 + shift`` quarters, so the first evaluated cutoff has 10 quarters to fit on. The
tables mark the company's default model (its profile's, else the library's AutoCombo).
``--shift N`` moves every cutoff N quarters earlier (an earlier hold-out). ``--series all``
takes every long-enough series. Skipped series are printed with the reason.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from experiments.champions import MIN_EXTRA_QUARTERS, select_series
from experiments.cli import (
    check_horizon_option,
    EXIT_TRACKING,
    CommandError,
    add_data_options,
    add_guidance_option,
    check_out_folder,
    checked_tracking_uri,
    consensus_for,
    data_path,
    guidance_for,
    profile_for,
    split_list,
)

DEFAULT_MODELS = "baseline,statistical"
#: Evaluated and warm-up windows when neither the command nor the company profile names them.
DEFAULT_WINDOWS, DEFAULT_WARMUP = 12, 8


def add_parser(sub) -> None:
    p = sub.add_parser(
        "backtest",
        help="rolling-origin backtest of the models; leaderboard vs SeasonalNaive, logged to MLflow",
        description=(
            "Refit every model at each of WINDOWS quarterly cutoffs, forecast HORIZON quarters "
            "ahead, score against the reported quarters (MASE relative to SeasonalNaive, interval "
            "coverage) and log a parent MLflow run with one child run per model."
        ),
    )
    add_data_options(p)
    for action in p._actions:
        if action.dest == "series":
            action.help = ("comma-separated series, or 'all' (default: the core series with at least "
                           f"windows + horizon + {MIN_EXTRA_QUARTERS} quarters)")
    p.add_argument("--models", default=DEFAULT_MODELS,
                   help="comma-separated names, families (baseline, statistical, ml, ensemble) or "
                        f"'all' (default: {DEFAULT_MODELS}); SeasonalNaive always runs")
    p.add_argument("--windows", type=int, default=None,
                   help="evaluated cutoffs (default: the company profile's backtest.windows, else 12)")
    p.add_argument("--horizon", "-H", type=int, default=4,
                   help="quarters ahead, 1..8 (default 4)")
    p.add_argument("--warmup", type=int, default=None,
                   help="earlier cutoffs used only to calibrate intervals/ensembles (default: the profile's "
                        "backtest.warmup, else 8)")
    p.add_argument("--shift", type=int, default=0,
                   help="move every cutoff this many quarters earlier (default 0; 12 with --windows 12: the "
                        "12 windows before the default ones, a hold-out no model was chosen on)")
    p.add_argument("--intervals", choices=["conformal", "model"], default="conformal",
                   help="calibrated conformal intervals (default) or the models' own")
    add_guidance_option(p)
    p.add_argument("--experiment", default=None, help="MLflow experiment (default <company>-backtest)")
    p.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    p.add_argument("--out", help="folder to write the backtest, pointwise and leaderboard tables to")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from experiments import tracking
    from experiments.io import write_csv, write_text
    from experiments.leaderboard import (
        backtest_tables,
        consensus_h1_table,
        guidance_table,
        horizon_table,
        leaderboard_markdown,
        leaderboard_view,
        series_without_winner,
    )
    from experiments.track_backtest import RunContext, log_backtest
    from features.loader import load_quarterly
    from forecasting.rolling.backtest import BacktestConfig, backtest
    from forecasting.methods.catalogue import LIBRARY_DEFAULT, resolve
    from forecasting.core.metrics import pointwise
    from forecasting.rolling.street import BENCHMARK_NOTE, CONSENSUS

    check_horizon_option(args.horizon)
    check_out_folder(args.out)
    profile = profile_for(args)
    company = profile.backtest if profile is not None else {}
    args.windows = args.windows if args.windows is not None else company.get("windows", DEFAULT_WINDOWS)
    args.warmup = args.warmup if args.warmup is not None else company.get("warmup", DEFAULT_WARMUP)
    if args.windows < 1 or args.warmup < 0 or args.shift < 0:
        raise CommandError(f"--windows must be >= 1, --warmup and --shift >= 0 "
                           f"(got {args.windows}, {args.warmup}, {args.shift})")
    t0 = time.perf_counter()
    uri = checked_tracking_uri(args.no_track)
    data = data_path(args, profile)
    names = split_list(args.series)
    explicit = names if names and names != ["all"] else None
    df = load_quarterly(data, args.series_config, explicit)
    min_len = args.windows + args.horizon + MIN_EXTRA_QUARTERS + args.shift
    series, skipped = select_series(df, names, min_len, profile.core_series if profile is not None else ())
    if skipped:
        print("series skipped or flagged:\n  " + "\n  ".join(skipped))
    if not series:
        raise CommandError(f"no series has at least {min_len} quarters; lower --windows/--horizon "
                           "or name series with --series")
    df = df[df["unique_id"].isin(series)].reset_index(drop=True)
    specs = resolve(split_list(args.models) or args.models)
    config = BacktestConfig(h=args.horizon, n_windows=args.windows, warmup_windows=args.warmup,
                            intervals=args.intervals, models=tuple(s.name for s in specs),
                            end_offset=args.horizon + args.shift if args.shift else None)
    shifted = f", cutoffs {args.shift} quarters earlier" if args.shift else ""
    print(f"backtest: {len(series)} series x {len(specs)} models ({', '.join(config.models)}), "
          f"{args.windows} windows + {args.warmup} warm-up, h={args.horizon}, intervals={args.intervals}{shifted}")
    book = guidance_for(args, profile)
    bt = backtest(df, list(config.models), config, guidance=book,
                  progress=lambda it: tqdm(it, desc="cutoffs", unit="cutoff", leave=False))
    t_bt = time.perf_counter() - t0
    default = (profile.default_model if profile is not None else None) or LIBRARY_DEFAULT
    tables = backtest_tables(bt, df, config, default)
    guided = [u for u in series if book is not None and u in book.metrics]
    mid = bt.iloc[:0]
    if guided:  # the guidance midpoint beside the models, one quarter ahead
        g = df[df["unique_id"].isin(guided)]
        if "GuidanceMidpoint" not in config.models:
            mid = backtest(g, ["GuidanceMidpoint"], config, guidance=book)
            mid = mid[mid["model"] == "GuidanceMidpoint"]
        rows = pd.concat([bt[bt["unique_id"].isin(guided)], mid], ignore_index=True)
        tables.guidance_h1 = guidance_table(pointwise(rows[rows["step"] == 1], df))
    street = consensus_for(args, profile, book) if profile is not None and profile.consensus else None
    if street is not None:  # the street's consensus beside the models, one quarter ahead, same quarters
        tables.consensus_h1 = consensus_h1_table(bt, mid, df, street.select())
    board = tables.leaderboard
    leader = str(board["model"].iloc[0])
    steps = sorted({1, min(4, args.horizon)})
    print("\nLeaderboard (MASE relative to SeasonalNaive; geometric mean over series; lower is better)")
    print(leaderboard_view(board, default).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    where = (f"{profile.title}'s profile" + (f": {profile.default_model_note}" if profile.default_model_note else "")
             if profile is not None and profile.default_model else "the library's default")
    print(f"(default) = {default}, the model fcf forecast uses for this data ({where})")
    print(f"\nPer series at horizons {', '.join(map(str, steps))}: SeasonalNaive MASE, the leader "
          f"{leader}'s relative MASE, and the series' best model (relative MASE)")
    print(horizon_table(tables.series_step, leader, steps).to_string(index=False))
    if len(tables.guidance_h1):
        print("\nOne quarter ahead on the guided series: the guidance midpoint beside the models "
              "(MASE relative to SeasonalNaive)")
        print(tables.guidance_h1.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if len(tables.consensus_h1):
        print(f"\nOne quarter ahead on the quarters with a consensus ({CONSENSUS}: {BENCHMARK_NOTE}); our models "
              "on the same quarters")
        print(tables.consensus_h1.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    beaten = series_without_winner(tables.series)
    if beaten:
        print(f"\nNo model beats SeasonalNaive (MASE over all horizons) on: {', '.join(beaten)}")
    else:
        print("\nOn every series at least one model beats SeasonalNaive (MASE over all horizons).")
    print(f"\nbacktest {t_bt:.1f}s, {len(bt)} forecast rows")
    if args.out:
        out = args.out
        write_csv(bt, f"{out}/backtest.csv")
        write_csv(tables.points, f"{out}/pointwise.csv")
        write_csv(board, f"{out}/leaderboard.csv")
        write_csv(tables.series_step, f"{out}/metrics_by_series_step.csv")
        if len(tables.consensus_h1):
            write_csv(tables.consensus_h1, f"{out}/consensus_h1.csv")
        write_text(leaderboard_markdown(tables), f"{out}/leaderboard.md")
        print(f"wrote tables to {out}/")
    if uri is not None:
        experiment = args.experiment or (profile.experiment("backtest") if profile is not None else "backtest")
        t1 = time.perf_counter()
        try:
            run_id = log_backtest(bt, df, config, RunContext(experiment=experiment, uri=uri, data_path=data,
                                                             metrics={"runtime_s": round(t_bt, 1)},
                                                             tags={"company": profile.name} if profile else {}),
                                  tables=tables)
        except tracking.TrackingError as exc:
            raise CommandError(str(exc), EXIT_TRACKING) from exc
        print(f"MLflow parent run {run_id} in experiment '{experiment}' at {uri} "
              f"(best model: {leader}; logged in {time.perf_counter() - t1:.1f}s)")
        exp_id = tracking.get_client(uri).get_run(run_id).info.experiment_id
        if tracking.is_remote(uri):
            print(f"compare the runs: {tracking.runs_url(uri, exp_id)}")
        else:
            print(f"compare the runs: mlflow ui --backend-store-uri {uri}, then open "
                  f"{tracking.runs_url('http://127.0.0.1:5000', exp_id)}")
    return 0
