"""Speed benchmark: ratios measured in one run, not timed assertions.

``fcf benchmark speed`` measures, on this machine and its current load:

1. a fresh process vs a warm one: ``fcf forecast`` in a subprocess with empty on-disk caches,
   then a second subprocess with those caches filled; plus the import time of the library alone.
   The caches are Python's bytecode (``PYTHONPYCACHEPREFIX`` pointed at a new folder, so every
   module is compiled again, as after a fresh install) and numba's (``NUMBA_CACHE_DIR``).
   Note: statsforecast 2.x no longer uses numba (its models are a compiled C++ extension,
   ``statsforecast._lib``) and numba is not installed here, so there is no JIT warm-up left to
   cache; what stays is import and bytecode-compilation time;
2. the Amazon pipeline end to end: the rolling-origin backtest of the core series and the
   FCF roll-up (`forecasting.rollup`, timed only if that module exists);
3. M3 quarterly series per second with AutoETS, statsforecast ``n_jobs=1`` vs ``n_jobs=-1``
   (all cores).

Every figure is a wall-clock time of this run; the ratios (cold/warm, series per second with
all cores / one core) are what carries over to other machines.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
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
FORECAST_ARGS = ("forecast", "--models", "AutoETS")
IMPORTS = "import forecasting.forecast, forecasting.backtest, statsforecast.models, experiments.cli"


def _fcf_command() -> list[str]:
    return [sys.executable, "-m", "experiments.cli"]


def _timed_run(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed with exit code {proc.returncode}:\n{proc.stderr[-2000:]}")
    return secs


def cold_vs_warm(forecast_args: tuple[str, ...] = FORECAST_ARGS) -> dict[str, float]:
    """Wall seconds of ``fcf forecast`` in a fresh process with empty, then warm on-disk caches.

    Returns ``cold_s``, ``warm_s``, ``cold_over_warm``, ``warm_import_s`` (a process that only
    imports the library, warm) and its share of the warm run, and the cache files written.
    """
    with tempfile.TemporaryDirectory(prefix="fcf-cold-") as cache:
        numba_dir, pyc_dir = Path(cache) / "numba", Path(cache) / "pyc"
        env = {**os.environ, "NUMBA_CACHE_DIR": str(numba_dir), "PYTHONPYCACHEPREFIX": str(pyc_dir),
               "PYTHONWARNINGS": "ignore"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # else the warm run would be as cold as the first
        cold = _timed_run(_fcf_command() + list(forecast_args), env)
        n_pyc = sum(len(f) for _, _, f in os.walk(pyc_dir))
        n_numba = sum(len(f) for _, _, f in os.walk(numba_dir))
        warm = _timed_run(_fcf_command() + list(forecast_args), env)
        import_s = _timed_run([sys.executable, "-c", IMPORTS], env)
    return {"cold_s": cold, "warm_s": warm, "cold_over_warm": cold / warm, "warm_import_s": import_s,
            "import_share_of_warm": import_s / warm, "bytecode_files_written": float(n_pyc),
            "numba_cache_files_written": float(n_numba)}


def amazon_pipeline(n_windows: int = 12, warmup_windows: int = 8, models: str | None = None) -> dict[str, float]:
    """Wall seconds of the core-series backtest and of the FCF roll-up (if `forecasting.rollup` exists)."""
    import warnings

    from features.loader import load_quarterly
    from forecasting.backtest import backtest

    out: dict[str, float] = {}
    t0 = time.perf_counter()
    df = load_quarterly(series=list(CORE_SERIES))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = backtest(df, models, n_windows=n_windows, warmup_windows=warmup_windows)
    out["backtest_s"] = time.perf_counter() - t0
    out["backtest_rows"] = float(len(bt))
    if importlib.util.find_spec("forecasting.rollup") is None:
        return out
    from forecasting.rollup import rollup

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rollup(load_quarterly(), n_windows=n_windows)
    out["rollup_s"] = time.perf_counter() - t0
    return out


def m3_throughput(n_series: int = 200, model: str = "AutoETS") -> dict[str, float]:
    """M3 quarterly series per second with `model`, statsforecast ``n_jobs=1`` vs ``-1``."""
    from experiments.benchmarks.m3 import load_m3, run_plain

    train, _ = load_m3(series_limit=n_series)
    run_plain(train[train["unique_id"].isin(train["unique_id"].unique()[:3])], model)  # numba warm-up
    out: dict[str, float] = {"n_series": float(train["unique_id"].nunique()), "cores": float(os.cpu_count() or 1)}
    for jobs, key in ((1, "one_core"), (-1, "all_cores")):
        t0 = time.perf_counter()
        run_plain(train, model, n_jobs=jobs)
        secs = time.perf_counter() - t0
        out[f"{key}_s"] = secs
        out[f"{key}_series_per_s"] = out["n_series"] / secs
    out["all_over_one"] = out["all_cores_series_per_s"] / out["one_core_series_per_s"]
    return out


def measure(parts=("startup", "amazon", "m3"), n_windows: int = 12, warmup_windows: int = 8,
            n_series: int = 200, log=print) -> pd.DataFrame:
    """Run the selected measurements; one row per figure: ``part, figure, value``."""
    rows = []
    steps = {
        "startup": lambda: cold_vs_warm(),
        "amazon": lambda: amazon_pipeline(n_windows, warmup_windows),
        "m3": lambda: m3_throughput(n_series),
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
    p.add_argument("--parts", default="startup,amazon,m3",
                   help="what to measure: startup (cold vs warm process), amazon (backtest + roll-up), "
                        "m3 (series per second, one core vs all); default all three")
    p.add_argument("--n-windows", type=int, default=12, help="backtest windows of the Amazon part (default 12)")
    p.add_argument("--warmup-windows", type=int, default=8, help="warm-up windows of the Amazon part (default 8)")
    p.add_argument("--series", type=int, default=200, help="M3 series for the throughput part (default 200)")
    p.add_argument("--out", help="write the figures to this CSV (atomically)")
    p.add_argument("--no-track", action="store_true", help="do not log the run to MLflow")


def run(args: argparse.Namespace) -> int:
    from experiments.benchmarks import log, tracking_uri_or_fail
    from experiments.io import write_csv

    uri = tracking_uri_or_fail(args.no_track)
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    table = measure(parts, args.n_windows, args.warmup_windows, args.series)
    shown = table.copy()
    shown["value"] = shown["value"].map(lambda v: f"{v:,.2f}")
    print()
    print(shown.to_string(index=False))
    if "amazon" in parts and "rollup_s" not in set(table["figure"]):
        print("(forecasting.rollup not available: the roll-up was not timed)")
    if args.out:
        write_csv(table, args.out)
        print(f"wrote {args.out}")
    params = {"benchmark": "speed", "parts": ",".join(parts), "n_windows": args.n_windows,
              "warmup_windows": args.warmup_windows, "m3_series": args.series, "cores": os.cpu_count()}
    log(uri, "speed", table, params, {f"{r.part}.{r.figure}": r.value for r in table.itertuples()})
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.benchmarks.speed", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
