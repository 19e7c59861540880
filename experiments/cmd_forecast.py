"""``fcf forecast``: forecast every modelled series and print a table."""

from __future__ import annotations

import argparse
import os
import time

import pandas as pd

from experiments.cli import CommandError, add_data_options, split_list


def add_parser(sub) -> None:
    p = sub.add_parser(
        "forecast",
        help="forecast every series in the data and print a table",
        description="Forecast every modelled series H quarters ahead with calibrated 80%%/95%% intervals.",
    )
    add_data_options(p)
    p.add_argument("--horizon", "-H", type=int, default=8, help="quarters ahead (default 8)")
    p.add_argument("--models", help="comma-separated model names, a family (statistical, ml, ensemble) or 'all'")
    p.add_argument("--intervals", choices=["conformal", "model"], default="conformal",
                   help="calibrated conformal intervals (default) or the models' own")
    p.add_argument("--out", help="write the full forecast table to this CSV (atomically)")
    p.set_defaults(func=run)


def format_table(fc: pd.DataFrame, models: list[str] | None = None) -> str:
    """A readable table: series, quarter, model, point and 80% interval (USD millions)."""
    t = fc if models is None else fc[fc["model"].isin(models)]
    q = pd.PeriodIndex(pd.DatetimeIndex(t["ds"]), freq="Q").astype(str)
    used = [m if m == u else f"{m} (as {u})" for m, u in zip(t["model"], t["model_used"])]
    out = pd.DataFrame({
        "series": t["unique_id"].to_numpy(),
        "quarter": q,
        "model": used,
        "point": [f"{v:,.0f}" for v in t["mean"]],
        "80% interval": [f"{lo:,.0f} .. {hi:,.0f}" for lo, hi in zip(t["lo-80"], t["hi-80"])],
    })
    return out.to_string(index=False)


def run(args: argparse.Namespace) -> int:
    from features.loader import load_quarterly
    from forecasting.forecast import forecast

    from experiments.io import write_csv

    if args.out and os.path.isdir(args.out):  # fail before the forecast, not after it
        raise CommandError(f"--out {args.out} is a directory; give a file name such as forecast.csv")
    t0 = time.perf_counter()
    df = load_quarterly(args.data, args.series_config, split_list(args.series))
    fc = forecast(df, h=args.horizon, models=split_list(args.models) or args.models,
                  intervals=args.intervals)
    shown = fc if args.models else fc[fc["model"] != "SeasonalNaive"]
    print(format_table(shown if len(shown) else fc))
    last = pd.Period(df["ds"].max(), freq="Q")
    print(f"\n{df['unique_id'].nunique()} series, last reported quarter {last}, "
          f"{args.horizon} quarters ahead, USD millions; {time.perf_counter() - t0:.1f}s")
    if args.out:
        try:
            write_csv(fc, args.out)
        except OSError as exc:
            raise CommandError(f"cannot write --out {args.out}: {exc}") from exc
        print(f"wrote {args.out}")
    return 0
