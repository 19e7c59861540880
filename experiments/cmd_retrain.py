"""``fcf retrain``: the scheduled quarterly job (cron, CI, ``mlflow run . -e retrain``).

Steps: check the tracking server (exit 3 within seconds when unreachable), take the lock
``.fcf-retrain.lock`` in the working directory (exit 4 when another retrain holds it, or wait
``--wait`` seconds), load and validate the data (exit 2 on bad data, before anything is
logged or registered), stop with exit 0 when a FINISHED retrain of this data vintage exists
(``--force`` to redo), else backtest the candidates, choose champions, forecast, roll up to
FCF, log one MLflow parent run, register a new model version and move the alias when the
gate passes (`experiments.retrain`). SIGTERM and SIGINT end the job the same way, also when
the launcher ignores SIGINT (a shell's background job): the run is marked KILLED, no output
file is half-written and the alias does not move (exit 130).

With ``--update-data`` it first brings new quarters and restatements from SEC EDGAR into the
data file (``fcf data update``, inside the lock); a new quarter or a restated value changes the
data vintage, so the retrain runs. When EDGAR cannot be reached or has nothing new it says so
and goes on with the data it has.
"""

from __future__ import annotations

import argparse
import os
import signal
import time

from experiments.cli import (
    check_horizon_option,
    EXIT_LOCKED,
    EXIT_TRACKING,
    CommandError,
    add_data_options,
    add_guidance_option,
    check_out_folder,
    checked_tracking_uri,
    company_profile,
    data_path,
    split_list,
)


def add_parser(sub) -> None:
    from experiments.lock import LOCK_FILE
    from experiments.champions import DEFAULT_CANDIDATES

    p = sub.add_parser(
        "retrain",
        help="scheduled retrain: champions per series, FCF roll-up, new MLflow model version",
        description=(
            "Backtest the candidate models, choose a champion per series (lowest MASE over "
            "horizons 1-4, never one that loses to SeasonalNaive), refit and forecast, roll up to "
            "FCF, and register the result as a new version of an MLflow pyfunc model. The alias "
            "moves to it only if it passes the gate against the current champion on the same "
            "windows. Does nothing (exit 0) when this data vintage was already retrained."
        ),
    )
    add_data_options(p)
    p.add_argument("--models", default=DEFAULT_CANDIDATES,
                   help=f"candidate models: names or families (default: {DEFAULT_CANDIDATES}); "
                        "SeasonalNaive always runs")
    p.add_argument("--windows", type=int, default=12, help="evaluated backtest cutoffs (default 12)")
    p.add_argument("--warmup", type=int, default=8,
                   help="earlier cutoffs that only calibrate intervals/ensembles (default 8)")
    p.add_argument("--horizon", "-H", type=int, default=4, help="quarters ahead, 1..8 (default 4)")
    p.add_argument("--tolerance", type=float, default=0.02,
                   help="gate: the new version may be at most this fraction worse than the current "
                        "champion on the same windows (default 0.02)")
    p.add_argument("--model-name", default=None,
                   help="registered model name (default: the company profile's, amazon-fcf for Amazon)")
    p.add_argument("--alias", default="champion", help="alias the gate moves (default champion)")
    p.add_argument("--experiment", default=None, help="MLflow experiment (default <company>-retrain)")
    p.add_argument("--rollup-candidates", default=None,
                   help="comma-separated models the roll-up chooses each node's champion from "
                        "(default: those of fcf rollup)")
    p.add_argument("--rollup-guided", default=None,
                   help="comma-separated guided models for the guided nodes (default: those of fcf rollup; "
                        "'none': no guided models)")
    p.add_argument("--rollup-first-cutoff", default=None,
                   help="earliest node cutoff of the roll-up, e.g. 2016Q2 (default); later is faster")
    add_guidance_option(p)
    p.add_argument("--paths", type=int, default=1000, help="roll-up Monte Carlo paths (default 1000)")
    p.add_argument("--no-rollup", action="store_true",
                   help="skip the FCF roll-up (when the data lacks the segment/capex/OCF series)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed and data: same numbers)")
    p.add_argument("--force", action="store_true", help="retrain even if this data vintage was done")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait up to SECONDS for another retrain's lock instead of exiting with 4")
    p.add_argument("--lock-file", default=LOCK_FILE, help=f"lock file (default ./{LOCK_FILE})")
    p.add_argument("--out", default="outputs/retrain",
                   help="folder for champions.csv, forecasts.csv, summary.md (default outputs/retrain)")
    p.add_argument("--no-plots", action="store_true", help="do not log per-series backtest plots")
    p.add_argument("--update-data", action="store_true",
                   help="first fetch new quarters and restatements from SEC EDGAR into the data file (fcf data "
                        "update); without network or a new filing, say so and go on with the data as it is")
    p.add_argument("--user-agent", help="with --update-data: User-Agent with a contact for SEC EDGAR "
                                        "(default: $SEC_USER_AGENT or $EDGAR_IDENTITY)")
    p.set_defaults(func=run)


def _check(args) -> None:
    check_horizon_option(args.horizon)
    check_out_folder(args.out)
    if args.windows < 1 or args.warmup < 0:
        raise CommandError(f"--windows must be >= 1 and --warmup >= 0 (got {args.windows}, {args.warmup})")
    if not -0.5 < args.tolerance < 1:
        raise CommandError(f"--tolerance {args.tolerance}: use a fraction such as 0.02")
    if args.paths < 100:
        raise CommandError(f"--paths {args.paths}: use at least 100 sample paths")
    if args.update_data:
        from experiments.edgar import UserAgentMissing, resolve_user_agent

        try:
            resolve_user_agent(args.user_agent)
        except UserAgentMissing as exc:
            raise CommandError(f"--update-data: {exc}") from exc


def _check_models(args) -> None:
    from forecasting.methods.catalogue import resolve
    from forecasting.methods.registry import get_spec

    resolve(split_list(args.models) or args.models)  # unknown names fail here, before any work
    for name in [*(split_list(args.rollup_candidates) or []), *(split_list(args.rollup_guided) or [])]:
        if name != "none":
            get_spec(name)


def update_data_first(args) -> None:
    """``--update-data``: run the EDGAR update; no network or nothing new is not an error."""
    from experiments.data_update import update_data
    from experiments.edgar import EdgarClient, EdgarError, EdgarUnreachable

    say = lambda msg: print(f"fcf retrain: {msg}")  # noqa: E731
    try:
        result = update_data(data_path(args, company_profile(args)), client=EdgarClient(args.user_agent), say=say)
    except EdgarUnreachable as exc:
        say(f"data update skipped: {exc}; going on with the data it has")
        return
    except EdgarError as exc:
        raise CommandError(f"data update failed: {exc}; the data file is unchanged (run without --update-data "
                           "to retrain on it as it is)", exc.exit_code) from exc
    say(result.message + ("; going on with the data it has" if result.status == "unchanged" else ""))


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run(args: argparse.Namespace) -> int:
    from experiments import tracking
    from experiments.lock import LockedError, RetrainLock
    from experiments.retrain import RetrainSettings, retrain

    t0 = time.perf_counter()
    _check(args)
    uri = checked_tracking_uri(untracked_hint=False)  # a retrain cannot run untracked: it registers models
    _check_models(args)  # imports the model registry (seconds): after the fast tracking check
    for var in ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"):
        os.environ.setdefault(var, "false" if "PROGRESS" in var else "true")  # quiet cron/CI logs
    profile = company_profile(args)
    settings = RetrainSettings(
        company=profile, data=data_path(args, profile), series_config=args.series_config,
        series=split_list(args.series),
        models=args.models, h=args.horizon, windows=args.windows, warmup=args.warmup,
        tolerance=args.tolerance, model_name=args.model_name, alias=args.alias,
        experiment=args.experiment, rollup=not args.no_rollup,
        rollup_candidates=tuple(split_list(args.rollup_candidates) or ()) or None,
        rollup_guided=(None if args.rollup_guided is None else
                       tuple(x for x in split_list(args.rollup_guided) if x != "none")),
        rollup_first_cutoff=args.rollup_first_cutoff, rollup_paths=args.paths, guidance=args.guidance, seed=args.seed,
        force=args.force, out=args.out, lock_path=args.lock_file, plots=not args.no_plots)
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with RetrainLock(args.lock_file, wait_s=args.wait):
            from tqdm import tqdm

            if args.update_data:
                update_data_first(args)
            result = retrain(settings, uri,
                             progress=lambda it: tqdm(it, desc="cutoffs", unit="cutoff", leave=False))
    except LockedError as exc:
        raise CommandError(str(exc), EXIT_LOCKED) from exc
    except Exception as exc:
        if tracking.is_tracking_error(exc):
            raise CommandError(f"the MLflow tracking store at {uri} failed mid-run ({exc}); the run is "
                               "marked FAILED and the next retrain will redo this vintage",
                               EXIT_TRACKING) from exc
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if result.summary:
        print("\n" + result.summary)
    print(f"fcf retrain: {result.message} ({time.perf_counter() - t0:.1f}s)")
    return 0
