"""External accuracy benchmarks: M3 quarterly (756 series) and Tourism quarterly (427), h = 8.

Runs the library's own model selection THROUGH ITS PUBLIC API (`forecasting.rolling.forecast.forecast`
with ``intervals="model"``) and plain statsforecast models in the same process, scores both
exactly as the competition does, and prints them beside the published figures.

Metrics (Makridakis & Hibon 2000; Hyndman 2018), per series averaged over horizons 1..8,
then averaged over series::

    sMAPE = 200 |y - f| / (|y| + |f|)            (0/0 counted as 0)
    MASE  = |y - f| / mean_t |y_t - y_{t-4}|     (in-sample seasonal naive, m = 4)

MAPE (Tourism's published metric) is reported too. The library's default is run and timed on
its own (the other library models in a second call), so its seconds are the default's.

Usage: ``fcf benchmark m3|tourism [--models ...] [--series-limit N] [--out FILE] [--no-track]``
or ``python -m experiments.benchmarks.m3 [--dataset tourism]``. The Tourism set is a final
check of a default chosen elsewhere: nothing in the library was chosen on it.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from features.calendar import SEASON_LENGTH

H = 8
N_SERIES = 756
FILE_NAME = "m3_quarterly.csv"
COLUMNS = ("unique_id", "ds", "y", "split", "date")

#: Published M3 quarterly figures (averages over horizons 1-8 and the 756 series).
#: sMAPE of the competition: Makridakis & Hibon (2000) via Hyndman et al. (2002), Table 13;
#: sMAPE / seasonal MASE of R `forecast`: Hyndman (2018), "A forecast ensemble benchmark".
PUBLISHED = pd.DataFrame(
    [
        ("Theta (M3 competition)", 8.96, np.nan, "Makridakis & Hibon 2000"),
        ("ForecastPro (M3 competition)", 9.77, np.nan, "Makridakis & Hibon 2000"),
        ("Naive2 (M3 competition)", 9.95, np.nan, "Makridakis & Hibon 2000"),
        ("B-J automatic (M3 competition)", 10.26, np.nan, "Makridakis & Hibon 2000"),
        ("R EAT = mean(ets, auto.arima, thetaf)", 9.01, 1.064, "Hyndman 2018"),
        ("R thetaf", 9.20, 1.117, "Hyndman 2018"),
        ("R ets", 9.68, 1.170, "Hyndman 2018"),
        ("R auto.arima", 10.01, 1.189, "Hyndman 2018"),
        ("R snaive", 11.06, 1.425, "Hyndman 2018"),
    ],
    columns=["method", "sMAPE", "MASE", "source"],
)
#: The targets: beat the M3 Theta on sMAPE and R's EAT on sMAPE and MASE.
TARGETS = {"Theta (M3 competition)": (8.96, np.nan), "R EAT = mean(ets, auto.arima, thetaf)": (9.01, 1.064)}
#: Published Tourism quarterly figures: Athanasopoulos et al. (2011), Table 5 (MAPE and MASE
#: averaged over horizons 1-8; their MASE is not reproducible from the data, see the source note).
PUBLISHED_TOURISM = pd.DataFrame(
    [
        ("Damped (Tourism competition)", np.nan, 1.43, 15.56, "Athanasopoulos et al. 2011"),
        ("ARIMA (Tourism competition)", np.nan, 1.47, 16.23, "Athanasopoulos et al. 2011"),
        ("ForecastPro (Tourism competition)", np.nan, 1.48, 15.72, "Athanasopoulos et al. 2011"),
        ("Theta (Tourism competition)", np.nan, 1.56, 16.15, "Athanasopoulos et al. 2011"),
        ("ETS (Tourism competition)", np.nan, 1.58, 16.05, "Athanasopoulos et al. 2011"),
        ("SNaive (Tourism competition)", np.nan, 1.59, 16.46, "Athanasopoulos et al. 2011"),
    ],
    columns=["method", "sMAPE", "MASE", "MAPE", "source"],
)
#: Per data set: file in data/benchmarks, series count, published rows, targets.
DATASETS = {
    "m3": (FILE_NAME, N_SERIES, PUBLISHED.assign(MAPE=np.nan), TARGETS),
    "tourism": ("tourism_quarterly.csv", 427, PUBLISHED_TOURISM, {}),
}

#: Plain statsforecast models run beside the library (AutoARIMA only on request: ~300 s).
PLAIN_MODELS = ("SeasonalNaive", "Theta", "AutoTheta", "AutoETS")


# --------------------------------------------------------------------------- data
def default_path(dataset: str = "m3") -> Path:
    from features.loader import shipped_data_dir

    return shipped_data_dir() / "benchmarks" / DATASETS[dataset][0]


def load_m3(
    path: str | Path | None = None, series_limit: int | None = None, h: int = H
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the M3 quarterly long CSV and split it into train and test frames.

    ``ds`` becomes the quarter-end date (the library's calendar) built from the file's
    quarter-start ``date``; the integer period index is kept as ``period``.

    Returns:
        ``(train, test)``, both long frames ``unique_id, ds, y, period``; `test` holds the
        last `h` quarters of each series (the competition hold-out, ``split == "test"``).
        `series_limit` keeps the first N series in file order (for quick runs).
    """
    path = Path(path) if path is not None else default_path()
    if not path.is_file():
        raise FileNotFoundError(f"M3 benchmark data not found at {path}; copy m3_quarterly.csv to data/benchmarks/")
    raw = pd.read_csv(path)
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: needs columns {', '.join(COLUMNS)}; missing {missing}")
    bad = raw[~np.isfinite(pd.to_numeric(raw["y"], errors="coerce"))]
    if len(bad):
        r = bad.index[0]
        raise ValueError(f"{path}, line {r + 2}: series {raw.at[r, 'unique_id']} has a non-numeric y")
    if series_limit is not None:
        if series_limit < 1:
            raise ValueError(f"series_limit must be >= 1, got {series_limit}")
        keep = raw["unique_id"].drop_duplicates().iloc[:series_limit]
        raw = raw[raw["unique_id"].isin(keep)]
    df = pd.DataFrame({
        "unique_id": raw["unique_id"].astype(str),
        "ds": pd.to_datetime(raw["date"]) + pd.offsets.QuarterEnd(0),
        "y": raw["y"].astype(float),
        "period": raw["ds"].astype(int),
        "split": raw["split"],
    }).sort_values(["unique_id", "period"]).reset_index(drop=True)
    n_test = df[df["split"] == "test"].groupby("unique_id").size().reindex(df["unique_id"].unique(), fill_value=0)
    wrong = n_test[n_test != h]
    if len(wrong):
        raise ValueError(f"{path}: series {wrong.index[0]} has {wrong.iloc[0]} test rows; expected the last {h}")
    last_train = df[df["split"] == "train"].groupby("unique_id")["period"].max()
    first_test = df[df["split"] == "test"].groupby("unique_id")["period"].min()
    gap = (first_test - last_train)[lambda s: s != 1]
    if len(gap):
        raise ValueError(f"{path}: series {gap.index[0]}: the test split does not follow the training split")
    train = df[df["split"] == "train"].drop(columns="split").reset_index(drop=True)
    test = df[df["split"] == "test"].drop(columns="split").reset_index(drop=True)
    return train, test


# --------------------------------------------------------------------------- metrics
def score(
    forecasts: pd.DataFrame,
    test: pd.DataFrame,
    train: pd.DataFrame,
    season_length: int = SEASON_LENGTH,
    model_col: str = "model",
    value_col: str = "mean",
) -> pd.DataFrame:
    """Per model and series: sMAPE, MASE and MAPE averaged over the test horizons, the
    competitions' definitions through ``utilsforecast.losses``: sMAPE = 200 x ``smape``
    (percent, 0 where y and f are both 0), MASE = ``mase`` with the in-sample seasonal-naive
    scale of `train`, MAPE = 100 x mean |y - f| / |y| over y != 0 (``mape`` would count y = 0
    as a zero error).

    Args:
        forecasts: long frame ``unique_id, ds, <model_col>, <value_col>``.
        test: the hold-out ``unique_id, ds, y``; every (series, quarter) must be forecast.
        train: the training frame ``unique_id, ds, y`` (for the MASE scale).

    Returns:
        One row per model x series: ``model, unique_id, sMAPE, MASE, MAPE``.
    """
    from utilsforecast import losses

    parts = []
    for model, fc in forecasts.groupby(model_col, sort=False):
        d = test[["unique_id", "ds", "y"]].merge(fc[["unique_id", "ds", value_col]], on=["unique_id", "ds"],
                                                 how="left")
        lost = d[d[value_col].isna()]
        if len(lost):
            r = lost.iloc[0]
            raise ValueError(f"model {model}: no forecast for series {r.unique_id} at {r.ds.date()}")
        sm = losses.smape(d, [value_col]).set_index("unique_id")[value_col]
        ms = losses.mase(d, [value_col], seasonality=season_length, train_df=train).set_index("unique_id")[value_col]
        ape = 100 * (d["y"] - d[value_col]).abs() / d["y"].abs().where(d["y"] != 0)
        mape = ape.groupby(d["unique_id"], sort=False).mean()
        ids = list(dict.fromkeys(d["unique_id"]))
        parts.append(pd.DataFrame({"model": model, "unique_id": ids, "sMAPE": 200 * sm.reindex(ids).to_numpy(),
                                   "MASE": ms.reindex(ids).to_numpy(), "MAPE": mape.reindex(ids).to_numpy()}))
    return pd.concat(parts, ignore_index=True)


def model_means(per_series: pd.DataFrame) -> pd.DataFrame:
    """Mean sMAPE, MASE (and MAPE) per model over series (the competitions' summary), in
    first-seen model order."""
    order = list(dict.fromkeys(per_series["model"]))
    agg = dict(sMAPE=("sMAPE", "mean"), MASE=("MASE", "mean"), n_series=("unique_id", "nunique"))
    if "MAPE" in per_series.columns:
        agg["MAPE"] = ("MAPE", "mean")
    out = per_series.groupby("model").agg(**agg)
    return out.loc[order].reset_index()


# --------------------------------------------------------------------------- runs
def run_library(train: pd.DataFrame, models: str | Iterable[str] | None = None, h: int = H) -> pd.DataFrame:
    """Forecasts of the library's models through `forecasting.rolling.forecast.forecast` (model intervals).

    Returns the library's forecast frame (``unique_id, ds, model, model_used, mean, ...``).
    """
    from forecasting.rolling.forecast import forecast
    from forecasting.core.frames import ShortSeriesWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShortSeriesWarning)
        return forecast(train[["unique_id", "ds", "y"]], h=h, models=models, intervals="model",
                        season_length=SEASON_LENGTH)


def plain_model(name: str, season_length: int = SEASON_LENGTH):
    """A statsforecast model with its default settings (what a user would run without this library)."""
    from statsforecast import models as sm

    seasonal = {"SeasonalNaive", "Theta", "AutoTheta", "AutoETS", "AutoARIMA", "AutoCES",
                "DynamicOptimizedTheta", "OptimizedTheta", "DynamicTheta"}
    if not hasattr(sm, name):
        raise ValueError(f"statsforecast has no model '{name}'; try one of {', '.join(PLAIN_MODELS)}, AutoARIMA")
    cls = getattr(sm, name)
    return cls(season_length=season_length) if name in seasonal else cls()


def run_plain(train: pd.DataFrame, name: str, h: int = H, n_jobs: int = 1) -> pd.DataFrame:
    """Forecasts of one plain statsforecast model: ``unique_id, ds, model, mean``."""
    from statsforecast import StatsForecast

    sf = StatsForecast(models=[plain_model(name)], freq="QE", n_jobs=n_jobs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fc = sf.forecast(df=train[["unique_id", "ds", "y"]], h=h)
    col = [c for c in fc.columns if c not in ("unique_id", "ds")][0]
    return pd.DataFrame({"unique_id": fc["unique_id"].astype(str), "ds": fc["ds"],
                         "model": f"statsforecast {name}", "mean": fc[col].to_numpy(dtype=float)})


#: What the benchmark runs besides the library's defaults when no models are named: the
#: library's ensembles (and Theta, the M3 winner), whichever are registered.
BENCHMARK_EXTRAS = ("Theta", "FastEnsemble", "EATEnsemble", "MedianEnsemble")


def library_models(models: str | Sequence[str] | None) -> list[str]:
    """The library model names a run uses; None: the library's defaults plus `BENCHMARK_EXTRAS`."""
    from forecasting.methods.catalogue import DEFAULT_MODELS, resolve
    from forecasting.methods.registry import REGISTRY

    if models is None:
        resolve(None)  # registers the extension modules' specs
        models = list(dict.fromkeys([*DEFAULT_MODELS, *(m for m in BENCHMARK_EXTRAS if m in REGISTRY)]))
    return [s.name for s in resolve(models)]


def benchmark(
    models: str | Sequence[str] | None = None,
    plain: Sequence[str] = PLAIN_MODELS,
    series_limit: int | None = None,
    path: str | Path | None = None,
    log=print,
    dataset: str = "m3",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the library and the plain statsforecast models on a quarterly benchmark and score them.

    The library's default models run in one timed call (their ``seconds``), any other library
    models in a second one.

    Returns:
        ``(table, per_series)``: `table` has one row per method: ``method, kind`` (library,
        statsforecast, published), ``sMAPE, MASE, MAPE, n_series, seconds``; `per_series` the
        per-series scores of the methods we ran. ``table.attrs["choices"]`` holds what a
        selecting ensemble chose (`forecasting.methods.autocombo.choices`).
    """
    from forecasting.methods.catalogue import DEFAULT_MODELS
    from forecasting.methods.autocombo import choices

    file_name, n_series, published, _ = DATASETS[dataset]
    train, test = load_m3(path or default_path(dataset), series_limit)
    log(f"{dataset}: {train['unique_id'].nunique()} series, h={H}, season {SEASON_LENGTH}")
    scored, rows, chosen = [], [], []
    warm = train[train["unique_id"].isin(train["unique_id"].unique()[:3])]
    models = library_models(models)
    default = [m for m in models if m in DEFAULT_MODELS]
    groups = [g for g in (default, [m for m in models if m not in default]) if g]
    run_library(warm, models)  # first-call costs (imports, caches), not timed
    for group in groups:
        t0 = time.perf_counter()
        fc = run_library(train, group)
        secs = time.perf_counter() - t0
        chosen.append(choices(fc))
        fc = fc[fc["model"].isin(group)]
        fc["model"] = "library " + fc["model"].astype(str)
        per = score(fc, test, train)
        scored.append(per)
        for _, r in model_means(per).iterrows():
            rows.append(dict(method=r.model, kind="library", sMAPE=r.sMAPE, MASE=r.MASE, MAPE=r.MAPE,
                             n_series=r.n_series, seconds=secs))
        log(f"library {','.join(group)}: {secs:.1f}s")
    for name in plain:
        t0 = time.perf_counter()
        fc = run_plain(train, name)
        secs = time.perf_counter() - t0
        per = score(fc, test, train)
        scored.append(per)
        r = model_means(per).iloc[0]
        rows.append(dict(method=r.model, kind="statsforecast", sMAPE=r.sMAPE, MASE=r.MASE, MAPE=r.MAPE,
                         n_series=r.n_series, seconds=secs))
        log(f"statsforecast {name}: {secs:.1f}s")
    pub = published.assign(kind="published", n_series=n_series, seconds=np.nan)
    cols = ["method", "kind", "sMAPE", "MASE", "MAPE", "n_series", "seconds"]
    table = pd.concat([pd.DataFrame(rows), pub[cols]], ignore_index=True)[cols]
    chosen = [c for c in chosen if len(c)]
    table.attrs["choices"] = (pd.concat(chosen, ignore_index=True) if chosen
                              else pd.DataFrame(columns=["model", "unique_id", "cutoff", "chosen", "members"]))
    return table, pd.concat(scored, ignore_index=True)


def verdict(table: pd.DataFrame, targets=TARGETS) -> list[str]:
    """Does each library model beat the targets and the plain statsforecast runs?"""
    lib = table[table["kind"] == "library"]
    plain = table[table["kind"] == "statsforecast"]
    lines = []
    for _, r in lib.iterrows():
        beats = []
        for name, (s, m) in targets.items():
            ok = r.sMAPE < s and (np.isnan(m) or r.MASE < m)
            beats.append(f"{'beats' if ok else 'does NOT beat'} {name}")
        for _, p in plain[plain["method"].str.contains("AutoETS|AutoTheta")].iterrows():
            ok = r.sMAPE < p.sMAPE and r.MASE < p.MASE
            beats.append(f"{'beats' if ok else 'does NOT beat'} {p.method}")
        lines.append(f"{r.method}: " + "; ".join(beats))
    return lines


def format_table(table: pd.DataFrame) -> str:
    t = table.copy()
    t["sMAPE"] = t["sMAPE"].map(lambda v: f"{v:.3f}")
    t["MASE"] = t["MASE"].map(lambda v: "" if pd.isna(v) else f"{v:.4f}")
    if "MAPE" in t.columns:
        t["MAPE"] = t["MAPE"].map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
    t["sMAPE"] = t["sMAPE"].replace("nan", "")
    t["seconds"] = t["seconds"].map(lambda v: "" if pd.isna(v) else f"{v:.1f}")
    return t.to_string(index=False)


# --------------------------------------------------------------------------- command line
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", help="library models (comma list, a family or 'all'; default: the library's defaults "
                        f"plus {', '.join(BENCHMARK_EXTRAS)}; EATEnsemble and MedianEnsemble need AutoARIMA, "
                        "~300 s of one core)")
    p.add_argument("--plain", default=",".join(PLAIN_MODELS),
                   help=f"plain statsforecast models to run beside it (default {','.join(PLAIN_MODELS)}; "
                        "add AutoARIMA for the full reference, ~300 s of one core; '' for none)")
    p.add_argument("--series-limit", type=int, help="only the first N series (quick runs; default all 756)")
    p.add_argument("--data", help="long CSV (default: data/benchmarks/m3_quarterly.csv or tourism_quarterly.csv)")
    p.add_argument("--out", help="write the comparison table to this CSV (atomically)")
    p.add_argument("--no-track", action="store_true", help="do not log the run to MLflow")


def run(args: argparse.Namespace) -> int:
    from experiments.benchmarks import log, tracking_uri_or_fail
    from experiments.io import write_csv

    dataset = getattr(args, "dataset", "m3")
    _, n_series, _, targets = DATASETS[dataset]
    uri = tracking_uri_or_fail(args.no_track)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    plain = [m.strip() for m in (args.plain or "").split(",") if m.strip()]
    t0 = time.perf_counter()
    table, _ = benchmark(models, plain, args.series_limit, args.data, dataset=dataset)
    print()
    print(format_table(table))
    chosen = table.attrs.get("choices")
    if chosen is not None and len(chosen):
        counts = chosen.groupby("model")["chosen"].value_counts()
        print("\nchosen by the selecting ensembles (series):")
        for (model, cand), k in counts.items():
            print(f"  {model}: {cand} ({chosen.loc[chosen['chosen'] == cand, 'members'].iloc[0]}) x {k}")
    if args.series_limit:
        print(f"\n(first {args.series_limit} series only: not comparable with the published full-set figures)")
    elif targets:
        print()
        for line in verdict(table, targets):
            print(line)
    print(f"\ntotal {time.perf_counter() - t0:.1f}s")
    if args.out:
        write_csv(table, args.out)
        print(f"wrote {args.out}")
    params = {"benchmark": f"{dataset}_quarterly", "h": H, "season_length": SEASON_LENGTH,
              "series_limit": args.series_limit or n_series, "models": ",".join(library_models(models)),
              "plain": ",".join(plain)}
    log(uri, f"{dataset}_quarterly", table, params)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.benchmarks.m3", description=__doc__.splitlines()[0])
    add_arguments(p)
    p.add_argument("--dataset", choices=sorted(DATASETS), default="m3", help="benchmark data set (default m3)")
    return run(p.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
