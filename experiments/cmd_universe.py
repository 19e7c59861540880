"""``fcf universe FILE``: backtest and roll up every company of a universe, one task per company."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser(
        "universe", help="backtest and roll up every company of a universe file (one process or dask)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Read a universe file (YAML: companies = shipped names, {path: profile.yaml} or {ticker: T}\n"
            "added by fcf company add; or a CSV with a 'company' column of shipped names) and, for every\n"
            "company, backtest its cash-flow series with its default model and SeasonalNaive and backtest\n"
            "its FCF roll-up. Each company is one task: in this process (default), or on dask.distributed\n"
            "(--engine dask: a LocalCluster of --workers processes; --engine tcp://host:8786: a running\n"
            "scheduler). Prints one leaderboard per series kind (revenue, operating income, OCF, capex,\n"
            "FCF) and the roll-up's scores; logs one MLflow parent run with a child per company unless\n"
            "--no-track. A company that fails is reported and the others go on (exit 0 unless all fail).\n\n"
            "Exit codes: 0 done; 2 bad universe file or options, or every company failed; 3 MLflow unreachable."),
    )
    p.add_argument("file", metavar="FILE", help="universe YAML or CSV")
    p.add_argument("--engine", default=None, help="'dask' (LocalCluster) or a scheduler address (default: one process)")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster workers with --engine dask (default 2)")
    p.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    p.add_argument("--experiment", default="universe", help="MLflow experiment (default universe)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from experiments.cli import CommandError, checked_tracking_uri
    from experiments.universe import format_result, log_universe, run_universe

    if args.workers < 1:
        raise CommandError(f"--workers {args.workers}: at least one worker")
    uri = checked_tracking_uri(args.no_track)
    result = run_universe(args.file, engine=args.engine, workers=args.workers,
                          say=lambda line: print(f"fcf universe: {line}", flush=True))
    print(format_result(result))
    if uri is not None:
        parent = log_universe(result, uri, args.experiment)
        print(f"fcf universe: MLflow parent run {parent} ({len(result.outcomes)} child runs) at {uri}")
    if len(result.failures) == len(result.outcomes):
        raise CommandError("every company failed; see above")
    return 0
