"""``fcf street``: our forecasts beside the street's consensus, one quarter ahead, per series and year.

Two forecast times (`forecasting.rolling.street`):

- **ours** (the day the previous quarter is reported): every model of ``--models``, refit at
  each of ``--windows`` cutoffs (h = 1), scored only on the quarters that have a consensus,
  beside the ``Consensus`` row. At that time the consensus is a *benchmark with later
  information* (it is final about three months later, on the eve of the report), not an input.
- **the report's eve**: ``ConsensusBias``, ``ConsensusCombo`` (with ``--base``, our forecast
  of the same quarter) and the nested ``StreetEve``, from what was known that day only.

Default series: the company's metrics with a consensus for at least ``--min-quarters`` quarters
that are reported series of its data; metrics with a consensus but no reported series (EPS
without net income and share counts) are listed as not scoreable. Logged to MLflow (experiment
``<company>-street``) unless ``--no-track``.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from experiments.cli import (
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

DEFAULT_MODELS = "SeasonalNaive,GuidanceMidpoint,StatsMLCombo,GuidedStatsMLCombo,GuidedFoster"
DEFAULT_BASE = "GuidedStatsMLCombo"
DEFAULT_WINDOWS, DEFAULT_WARMUP, MIN_QUARTERS = 32, 8, 15
#: The share by which the eve's nested model should beat the consensus's MAPE (the issue's target).
TARGET_GAIN = 0.15


def add_parser(sub) -> None:
    p = sub.add_parser(
        "street",
        help="our forecasts vs the street's consensus one quarter ahead, per series and year; forecasts at "
             "the report's eve",
        description="Backtest the models one quarter ahead and score them on the quarters that have a consensus, "
                    "beside the consensus (a benchmark published ~3 months after our forecast time) and the "
                    "eve-of-report models that use it; per series, per fiscal year, share of quarters won.",
    )
    add_data_options(p)
    p.add_argument("--models", default=DEFAULT_MODELS, help=f"models at our forecast time (default {DEFAULT_MODELS})")
    p.add_argument("--base", default=DEFAULT_BASE,
                   help=f"our model the eve's combination starts from (default {DEFAULT_BASE}; added to --models)")
    p.add_argument("--windows", type=int, default=DEFAULT_WINDOWS,
                   help=f"one-quarter-ahead cutoffs, the latest ones (default {DEFAULT_WINDOWS})")
    p.add_argument("--warmup", type=int, default=DEFAULT_WARMUP,
                   help=f"earlier cutoffs that only calibrate intervals and ensembles (default {DEFAULT_WARMUP})")
    p.add_argument("--min-quarters", type=int, default=MIN_QUARTERS,
                   help=f"default series: metrics with a consensus for at least this many quarters (default {MIN_QUARTERS})")
    add_guidance_option(p)
    p.add_argument("--experiment", default=None, help="MLflow experiment (default <company>-street)")
    p.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    p.add_argument("--out", help="folder to write the tables to")
    p.set_defaults(func=run)


def scoreable(selected: pd.DataFrame, df: pd.DataFrame, names, min_quarters: int) -> tuple[list[str], list[str]]:
    """(series to score, notes on the consensus metrics left out)."""
    counts = selected.groupby("unique_id").size()
    reported = set(df["unique_id"])
    if names:
        unknown = [n for n in names if n not in counts.index or n not in reported]
        if unknown:
            raise CommandError(f"--series {','.join(unknown)}: no consensus or no reported series for it "
                               f"(consensus metrics with reported series: "
                               f"{', '.join(sorted(set(counts.index) & reported))})")
        return list(names), []
    series, notes = [], []
    for uid, n in counts.items():
        if uid not in reported:
            notes.append(f"{uid}: consensus for {n} quarters, but no reported series in the data: not scored")
        elif n < min_quarters:
            notes.append(f"{uid}: consensus for only {n} quarters (< --min-quarters {min_quarters}): not scored")
        else:
            series.append(uid)
    return series, notes


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from experiments.io import write_csv, write_text
    from experiments.leaderboard import street_view, street_years_view, to_markdown
    from experiments.tracking import TrackingError
    from features.loader import load_quarterly
    from forecasting.rolling.backtest import BacktestConfig, backtest
    from forecasting.methods.catalogue import resolve
    from forecasting.rolling.street import (
        BENCHMARK_NOTE,
        CONSENSUS,
        EVE_MODELS,
        consensus_rows,
        eve_backtest_rows,
        eve_forecasts,
        score_street,
    )

    check_out_folder(args.out)
    if args.windows < 1 or args.warmup < 0 or args.min_quarters < 1:
        raise CommandError(f"--windows and --min-quarters must be >= 1, --warmup >= 0 "
                           f"(got {args.windows}, {args.warmup}, {args.min_quarters})")
    profile = profile_for(args)
    if profile is None or profile.consensus is None:
        name = profile.name if profile is not None else args.data
        raise CommandError(f"company profile '{name}' names no consensus file; add 'consensus: {{file: ...}}' "
                           "to its profile (see data/companies/amazon.yaml)")
    models = resolve(split_list(args.models) or args.models)
    names = [s.name for s in models]
    base = resolve([args.base])[-1].name
    if base not in names:
        names.append(base)
    uri = checked_tracking_uri(args.no_track)
    t0 = time.perf_counter()
    data = data_path(args, profile)
    df = load_quarterly(data, args.series_config)
    guidance = guidance_for(args, profile)
    book = consensus_for(args, profile, guidance)
    selected = book.select()
    series, notes = scoreable(selected, df, split_list(args.series), args.min_quarters)
    if not series:
        raise CommandError("no consensus metric is a reported series with enough quarters: " + "; ".join(notes))
    df_s = df[df["unique_id"].isin(series)].reset_index(drop=True)
    sel = selected[selected["unique_id"].isin(series)].reset_index(drop=True)
    config = BacktestConfig(h=1, n_windows=args.windows, warmup_windows=args.warmup, models=tuple(names))
    print(f"street: {len(series)} series ({', '.join(series)}) x {len(names)} models, {args.windows} one-quarter-"
          f"ahead cutoffs + {args.warmup} warm-up; consensus {book.fingerprint()}")
    bt = backtest(df_s, names, config, guidance=guidance,
                  progress=lambda it: tqdm(it, desc="cutoffs", unit="cutoff", leave=False))
    bt = bt[bt["step"] == 1]
    # the guidance midpoint only where there was a range (elsewhere it is seasonal naive by another name)
    bt = bt[(bt["model"] != "GuidanceMidpoint") | (bt["model_used"] == "GuidanceMidpoint")]
    cons = consensus_rows(bt, sel)
    ours = bt.loc[bt["model"] == base, ["unique_id", "ds", "mean"]]
    eve = eve_forecasts(sel, df_s, ours)
    eve_rows = eve_backtest_rows(eve, df_s, bt.columns).merge(cons[["unique_id", "ds"]], on=["unique_id", "ds"])
    rows = pd.concat([bt, cons, eve_rows], ignore_index=True)
    table, by_year = score_street(rows, df_s, sel)
    seconds = time.perf_counter() - t0
    labels = {CONSENSUS: BENCHMARK_NOTE, **{m: "report's eve: knows the consensus" for m in EVE_MODELS},
              base: "eve base"}
    cal = profile.calendar
    span = f"{cal.label(cons['ds'].min())}..{cal.label(cons['ds'].max())}" if len(cons) else "none"
    print(f"\nOne quarter ahead on the quarters with a consensus ({span}); MAPE in percent, MASE relative to "
          f"SeasonalNaive, won = share of quarters with a smaller error than the consensus")
    print(street_view(table, labels).to_string(index=False))
    shown = [CONSENSUS, base, "StreetEve", *[m for m in names if m not in (base, "SeasonalNaive")]]
    years = street_years_view(by_year, list(dict.fromkeys(shown)))
    print("\nPer fiscal year (MAPE in percent; won = share of quarters beating the consensus)")
    print(years.to_string(index=False))
    verdicts = targets(table)
    print(f"\nTarget: the eve's nested model (StreetEve) {TARGET_GAIN:.0%} below the consensus's MAPE")
    for line in verdicts["text"]:
        print("  " + line)
    for n in notes:
        print(n)
    choice = eve[eve["model"] == "StreetEve"].merge(cons[["unique_id", "ds"]], on=["unique_id", "ds"])
    print("StreetEve chose: " + ", ".join(f"{k} {v}" for k, v in choice["model_used"].value_counts().items())
          + f" (quarters); {seconds:.0f}s")
    if args.out:
        write_csv(table, f"{args.out}/street.csv")
        write_csv(by_year, f"{args.out}/street_by_year.csv")
        write_csv(rows, f"{args.out}/street_rows.csv")
        write_csv(eve, f"{args.out}/eve_forecasts.csv")
        write_text(street_markdown(street_view(table, labels), years, verdicts["text"], notes, to_markdown),
                   f"{args.out}/street.md")
        print(f"wrote tables to {args.out}/")
    if uri is not None:
        from experiments.track_backtest import RunContext
        from experiments.track_runs import log_street

        context = RunContext(experiment=args.experiment or profile.experiment("street"), uri=uri, data_path=data,
                             params={"windows": args.windows, "warmup": args.warmup, "models": ",".join(names),
                                     "base": base, "series": ",".join(series), "consensus": book.fingerprint(),
                                     "consensus_file": profile.consensus.name},
                             metrics={"runtime_s": round(seconds, 1)}, tags={"company": profile.name})
        try:
            run_id = log_street(table, by_year, context, artifacts={
                "street.csv": table, "street_by_year.csv": by_year, "street_rows.csv": rows,
                "eve_forecasts.csv": eve},
                markdown=street_markdown(street_view(table, labels), years, verdicts["text"], notes, to_markdown))
        except TrackingError as exc:
            raise CommandError(str(exc), EXIT_TRACKING) from exc
        print(f"MLflow run {run_id} in experiment '{context.experiment}' at {uri}")
    return 0


def targets(table: pd.DataFrame) -> dict:
    """Per series: StreetEve's MAPE against (1 - `TARGET_GAIN`) x the consensus's."""
    text, met = [], {}
    for uid, g in table.groupby("unique_id"):
        m = g.set_index("model")["mape"]
        if "Consensus" not in m or "StreetEve" not in m:
            continue
        goal = (1 - TARGET_GAIN) * m["Consensus"]
        met[uid] = bool(m["StreetEve"] <= goal)
        gain = 1 - m["StreetEve"] / m["Consensus"]
        text.append(f"{uid}: StreetEve {m['StreetEve']:.2f}% vs consensus {m['Consensus']:.2f}% "
                    f"({gain:+.0%} better; target <= {goal:.2f}%): {'met' if met[uid] else 'NOT met'}")
    return {"text": text, "met": met}


def street_markdown(view, years, verdicts, notes, to_markdown) -> str:
    parts = ["# Our forecasts vs the street's consensus", "",
             "One quarter ahead, only on quarters with a consensus. The consensus is final about three months "
             "after our forecast time: a benchmark with later information, not an input. The eve models stand "
             "on the report's eve and know it.", "", to_markdown(view), "", "## Per fiscal year", "",
             to_markdown(years), "", "## Target", "", *[f"- {v}" for v in verdicts], ""]
    if notes:
        parts += ["## Not scored", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(parts)
