"""``fcf forecast``: forecast every modelled series and print a table."""

from __future__ import annotations

import argparse
import os
import time

import pandas as pd

from experiments.cli import CommandError, add_data_options, data_path, profile_for, split_list


def add_parser(sub) -> None:
    p = sub.add_parser(
        "forecast",
        help="forecast every series in the data and print a table",
        description="Forecast every modelled series H quarters ahead with calibrated 80%%/95%% intervals.",
    )
    add_data_options(p)
    p.add_argument("--horizon", "-H", type=int, default=8, help="quarters ahead (default 8)")
    p.add_argument("--models", help="comma-separated model names, a family (statistical, ml, ensemble) or 'all' "
                                    "(default: SeasonalNaive and the company profile's default model, else "
                                    "the library's AutoCombo)")
    p.add_argument("--intervals", choices=["conformal", "model"], default="conformal",
                   help="calibrated conformal intervals (default) or the models' own")
    p.add_argument("--out", help="write the full forecast table to this CSV (atomically)")
    p.set_defaults(func=run)


def format_table(fc: pd.DataFrame, models: list[str] | None = None, calendar=None) -> str:
    """A readable table: series, quarter (the company's labels), model, point and 80% interval
    (USD millions)."""
    from features.calendar import FiscalCalendar

    t = fc if models is None else fc[fc["model"].isin(models)]
    calendar = calendar or FiscalCalendar.infer(t["ds"].iloc[:1])
    q = calendar.labels(t["ds"])
    used = [m if m == u else f"{m} (as {u})" for m, u in zip(t["model"], t["model_used"])]
    out = pd.DataFrame({
        "series": t["unique_id"].to_numpy(),
        "quarter": q,
        "model": used,
        "point": [f"{v:,.0f}" for v in t["mean"]],
        "80% interval": [f"{lo:,.0f} .. {hi:,.0f}" for lo, hi in zip(t["lo-80"], t["hi-80"])],
    })
    return out.to_string(index=False)


def default_note(profile) -> str:
    """Which default model applied, and why."""
    from forecasting.methods.catalogue import LIBRARY_DEFAULT

    if profile is not None and profile.default_model:
        note = f": {profile.default_model_note}" if profile.default_model_note else ""
        return f"default model: {profile.default_model}, {profile.title}'s profile default{note}"
    who = f"{profile.title}'s profile names none" if profile is not None else "no company profile describes this data"
    return (f"default model: the library's {LIBRARY_DEFAULT} ({who}): one combination per data set and origin, "
            "chosen on the earlier windows")


def run(args: argparse.Namespace) -> int:
    from features.calendar import FiscalCalendar
    from features.loader import load_quarterly
    from forecasting.rolling.forecast import forecast

    from experiments.io import write_csv

    if args.out and os.path.isdir(args.out):  # fail before the forecast, not after it
        raise CommandError(f"--out {args.out} is a directory; give a file name such as forecast.csv")
    t0 = time.perf_counter()
    profile = profile_for(args)
    calendar = profile.calendar if profile is not None else None
    df = load_quarterly(data_path(args, profile), args.series_config, split_list(args.series))
    default = profile.default_model if profile is not None else None
    fc = forecast(df, h=args.horizon, models=split_list(args.models) or args.models,
                  intervals=args.intervals, default=default)
    shown = fc if args.models else fc[fc["model"] != "SeasonalNaive"]
    print(format_table(shown if len(shown) else fc, calendar=calendar))
    last = (calendar or FiscalCalendar.infer(df["ds"].iloc[:1])).label(df["ds"].max())
    print(f"\n{df['unique_id'].nunique()} series, last reported quarter {last}, "
          f"{args.horizon} quarters ahead, USD millions; {time.perf_counter() - t0:.1f}s")
    if not args.models:
        print(default_note(profile))
    if args.out:
        try:
            write_csv(fc, args.out)
        except OSError as exc:
            raise CommandError(f"cannot write --out {args.out}: {exc}") from exc
        print(f"wrote {args.out}")
    return 0
