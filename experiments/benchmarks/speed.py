"""Speed benchmark: before/after ratios measured in one run, not timed assertions.

``fcf benchmark speed`` measures, on this machine and its current load, each target twice:
"before" is the computation as the library ran it until now (one process, every rolling
window refitted at every call), "after" as it runs now (the cutoffs of a backtest and of
`forecast()`'s past windows fitted side by side on every core, `forecasting.rolling.parallel`; past
windows read back from the data-vintage cache, `forecasting.rolling.cache`). The forecasts are the
same numbers either way (tests/test_parallel.py); only the time differs.

1. ``forecast``: ``fcf forecast`` of the shipped data with calibrated intervals and the
   default model, in a fresh process: one process without cache (before), all cores with an
   empty cache (after, cold), and again with the cache that run filled (after, warm);
2. ``amazon``: the Amazon protocol backtest of the default (11 core series, 12 windows + 8
   warm-up, h = 4) on one process vs all cores, and the FCF roll-up with its default settings
   and the shipped guidance (if `forecasting.rollup.paths` exists);
3. ``m3``: the default on the M3 quarterly series (h = 8, the run of ``fcf benchmark m3``):
   one process vs all cores (``--m3-series`` to time fewer than all 756);
4. ``startup``: a fresh process vs a warm one (bytecode caches; ``fcf forecast --models
   AutoETS``) and the import time of the library.

Every figure is a wall-clock time of this run; ``cpu_s`` figures add the CPU time of the
process and its workers, which a busy machine does not inflate. The ratios are what carries
over to other machines.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

#: The core series of the headline backtest (at least 27 contiguous quarters each).
CORE_SERIES = (
    "net_sales_north_america", "net_sales_international", "net_sales_aws", "net_sales_total",
    "operating_income_north_america", "operating_income_international", "operating_income_aws",
    "operating_income_total", "operating_cash_flow",
    "purchases_of_property_and_equipment_net_of_proceeds", "free_cash_flow",
)
STARTUP_ARGS = ("forecast", "--models", "AutoETS")
IMPORTS = "import forecasting.rolling.forecast, forecasting.rolling.backtest, statsforecast.models, experiments.cli"
PARTS = ("forecast", "amazon", "m3", "startup")


def _fcf_command() -> list[str]:
    return [sys.executable, "-m", "experiments.cli"]


def _timed_run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (the child and its workers) of a subprocess."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    secs = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed with exit code {proc.returncode}:\n{proc.stderr[-2000:]}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return secs, cpu


class _Clock:
    """Wall and CPU seconds of a block run in this process (CPU includes joined workers)."""

    def __enter__(self):
        self.t0 = time.perf_counter()
        self.c0 = _cpu()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        self.cpu = _cpu() - self.c0


def _cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def forecast_command(models: str | None = None) -> dict[str, float]:
    """``fcf forecast`` (calibrated intervals, default model unless `models`) in fresh processes:
    one process without cache (before), all cores with an empty cache, then with it filled."""
    extra = ["--models", models] if models else []
    with tempfile.TemporaryDirectory(prefix="fcf-speed-cache-") as cache:
        base = {**os.environ, "PYTHONWARNINGS": "ignore", "FCF_CACHE_DIR": cache}
        base.pop("FCF_N_JOBS", None)
        before, before_cpu = _timed_run(_fcf_command() + ["forecast"] + extra,
                                        {**base, "FCF_N_JOBS": "1", "FCF_CACHE": "0"})
        cold, cold_cpu = _timed_run(_fcf_command() + ["forecast"] + extra, {**base, "FCF_CACHE": "1"})
        warm, warm_cpu = _timed_run(_fcf_command() + ["forecast"] + extra, {**base, "FCF_CACHE": "1"})
    return {"before_one_process_s": before, "before_cpu_s": before_cpu,
            "after_cold_s": cold, "after_cold_cpu_s": cold_cpu, "after_warm_s": warm, "after_warm_cpu_s": warm_cpu,
            "before_over_after_cold": before / cold, "before_over_after_warm": before / warm}


def amazon_pipeline(n_windows: int = 12, warmup_windows: int = 8, models: str | None = None) -> dict[str, float]:
    """The core-series backtest of the default, one process vs all cores; the FCF roll-up."""
    import warnings

    from features.loader import load_quarterly
    from forecasting.rolling.backtest import backtest
    from forecasting.rolling.parallel import default_jobs

    df = load_quarterly(series=list(CORE_SERIES))
    out: dict[str, float] = {"cores": float(default_jobs())}
    results = {}
    for jobs, key in ((1, "before_one_process"), (None, "after_all_cores")):
        with warnings.catch_warnings(), _Clock() as clock:
            warnings.simplefilter("ignore")
            results[key] = backtest(df, models, n_windows=n_windows, warmup_windows=warmup_windows, n_jobs=jobs,
                                    cache=False)
        out[f"backtest_{key}_s"], out[f"backtest_{key}_cpu_s"] = clock.wall, clock.cpu
    out["backtest_before_over_after"] = out["backtest_before_one_process_s"] / out["backtest_after_all_cores_s"]
    out["backtest_same_numbers"] = float(results["before_one_process"].equals(results["after_all_cores"]))
    out["backtest_rows"] = float(len(results["after_all_cores"]))
    if importlib.util.find_spec("forecasting.rollup.paths") is None:
        return out
    from features.guidance import load_guidance
    from forecasting.rollup.paths import RollupConfig, rollup

    saved = os.environ.get("FCF_CACHE")
    os.environ["FCF_CACHE"] = "0"  # a cold roll-up, like the backtest
    try:
        with warnings.catch_warnings(), _Clock() as clock:
            warnings.simplefilter("ignore")
            rollup(load_quarterly(), RollupConfig(), load_guidance())
    finally:
        if saved is None:
            os.environ.pop("FCF_CACHE", None)
        else:
            os.environ["FCF_CACHE"] = saved
    out["rollup_s"] = clock.wall
    return out


def m3_default(n_series: int | None = None, models: str | None = None, before: bool = True) -> dict[str, float]:
    """The default on M3 quarterly through `forecast()` (as ``fcf benchmark m3`` runs it):
    one process (before) vs all cores (after), no cache."""
    import warnings

    from experiments.benchmarks.m3 import load_m3
    from forecasting.rolling.forecast import forecast
    from forecasting.rolling.parallel import default_jobs

    train, _ = load_m3(series_limit=n_series)
    train = train[["unique_id", "ds", "y"]]
    out: dict[str, float] = {"n_series": float(train["unique_id"].nunique()), "cores": float(default_jobs())}
    runs = ((1, "before_one_process"), (None, "after_all_cores")) if before else ((None, "after_all_cores"),)
    fcs = {}
    for jobs, key in runs:
        with warnings.catch_warnings(), _Clock() as clock:
            warnings.simplefilter("ignore")
            fcs[key] = forecast(train, h=8, models=models, intervals="model", n_jobs=jobs, cache=False)
        out[f"{key}_s"], out[f"{key}_cpu_s"] = clock.wall, clock.cpu
    if before:
        out["before_over_after"] = out["before_one_process_s"] / out["after_all_cores_s"]
        out["same_numbers"] = float(fcs["before_one_process"].equals(fcs["after_all_cores"]))
    return out


def cold_vs_warm(forecast_args: tuple[str, ...] = STARTUP_ARGS) -> dict[str, float]:
    """Wall seconds of ``fcf forecast`` in a fresh process with empty, then warm bytecode caches,
    and of a process that only imports the library."""
    with tempfile.TemporaryDirectory(prefix="fcf-cold-") as cache:
        pyc_dir = Path(cache) / "pyc"
        env = {**os.environ, "PYTHONPYCACHEPREFIX": str(pyc_dir), "PYTHONWARNINGS": "ignore", "FCF_CACHE": "0"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # else the warm run would be as cold as the first
        cold, _ = _timed_run(_fcf_command() + list(forecast_args), env)
        n_pyc = sum(len(f) for _, _, f in os.walk(pyc_dir))
        warm, _ = _timed_run(_fcf_command() + list(forecast_args), env)
        import_s, _ = _timed_run([sys.executable, "-c", IMPORTS], env)
    return {"cold_s": cold, "warm_s": warm, "cold_over_warm": cold / warm, "warm_import_s": import_s,
            "import_share_of_warm": import_s / warm, "bytecode_files_written": float(n_pyc)}


def measure(parts=PARTS, n_windows: int = 12, warmup_windows: int = 8, m3_series: int | None = None,
            models: str | None = None, log=print) -> pd.DataFrame:
    """Run the selected measurements; one row per figure: ``part, figure, value``."""
    rows = []
    steps = {
        "forecast": lambda: forecast_command(models),
        "amazon": lambda: amazon_pipeline(n_windows, warmup_windows, models),
        "m3": lambda: m3_default(m3_series, models),
        "startup": lambda: cold_vs_warm(),
    }
    for part in parts:
        if part not in steps:
            raise ValueError(f"unknown part '{part}'; choose from {', '.join(steps)}")
        t0 = time.perf_counter()
        res = steps[part]()
        log(f"{part}: {time.perf_counter() - t0:.1f}s")
        rows += [{"part": part, "figure": k, "value": v} for k, v in res.items()]
    return pd.DataFrame(rows)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--parts", default=",".join(PARTS),
                   help="what to measure: forecast (fcf forecast before/after, cold and warm cache), amazon "
                        "(backtest of the default, one process vs all cores; roll-up), m3 (the default on M3, "
                        "one process vs all cores), startup (cold vs warm process); default all four "
                        "(~20 minutes on 2 cores, most of it the one-process M3 run)")
    p.add_argument("--models", help="time these models instead of the library default (comma list)")
    p.add_argument("--n-windows", type=int, default=12, help="backtest windows of the Amazon part (default 12)")
    p.add_argument("--warmup-windows", type=int, default=8, help="warm-up windows of the Amazon part (default 8)")
    p.add_argument("--m3-series", type=int, help="M3 series for the m3 part (default all 756)")
    p.add_argument("--out", help="write the figures to this CSV (atomically)")
    p.add_argument("--no-track", action="store_true", help="do not log the run to MLflow")


def run(args: argparse.Namespace) -> int:
    from experiments.benchmarks import log, tracking_uri_or_fail
    from experiments.io import write_csv

    uri = tracking_uri_or_fail(args.no_track)
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    table = measure(parts, args.n_windows, args.warmup_windows, args.m3_series, args.models)
    shown = table.copy()
    shown["value"] = shown["value"].map(lambda v: f"{v:,.2f}")
    print()
    print(shown.to_string(index=False))
    if "amazon" in parts and "rollup_s" not in set(table["figure"]):
        print("(forecasting.rollup.paths not available: the roll-up was not timed)")
    if args.out:
        write_csv(table, args.out)
        print(f"wrote {args.out}")
    params = {"benchmark": "speed", "parts": ",".join(parts), "n_windows": args.n_windows,
              "warmup_windows": args.warmup_windows, "m3_series": args.m3_series or 756,
              "models": args.models or "default", "cores": os.cpu_count()}
    log(uri, "speed", table, params, {f"{r.part}.{r.figure}": r.value for r in table.itertuples()})
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.benchmarks.speed", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
