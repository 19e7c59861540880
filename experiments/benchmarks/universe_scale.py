"""Scale of a universe run: synthetic companies, cost per company in one process and on a LocalCluster.

`synthetic_universe(folder, n_companies, seed)` writes companies with the shapes of real ones,
each a data file, ``series.csv`` and a profile: revenue with a trend, a quarterly season and a
level break; 0-7 segments (revenue and operating income each, so 5-19 series a company);
operating income from a margin that may be negative; operating cash flow = operating income +
a share of revenue + noise; capex a share of revenue with a step; FCF = OCF - capex (negative
in some quarters for some companies). The numbers are generated, not reported: nothing here
is a company's figure.

`measure` runs `experiments.universe.run_universe` on such universes in this process and on a
2-worker ``dask.distributed`` LocalCluster and reports wall time, CPU time, seconds per company,
series per company and the memory peak (this process's and each worker's max RSS).
``fcf benchmark universe --companies 50,500``.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

N_QUARTERS = 40
FIRST = pd.Period("2015Q1", freq="Q-DEC")


def synthetic_company(folder: Path, name: str, rng: np.random.Generator) -> Path:
    """Write one synthetic company (data, series.csv, profile); returns the profile path."""
    n_seg = int(rng.integers(0, 8))
    t = np.arange(N_QUARTERS)
    season = 1 + rng.uniform(0.0, 0.15) * np.sin(2 * np.pi * (t + rng.integers(0, 4)) / 4)
    growth = rng.uniform(-0.005, 0.05)
    brk = int(rng.integers(12, N_QUARTERS - 8))
    level = rng.uniform(200, 20_000) * np.exp(growth * t) * season * np.where(t >= brk, rng.uniform(0.8, 1.25), 1.0)
    shares = rng.dirichlet(np.ones(max(n_seg, 1))) if n_seg else np.array([1.0])
    seg_rev = [level * s * (1 + rng.normal(0, 0.02, N_QUARTERS)) for s in shares]
    revenue = np.sum(seg_rev, axis=0)
    seg_oi = [r * (rng.uniform(-0.15, 0.3) + rng.normal(0, 0.02, N_QUARTERS)) for r in seg_rev]
    oi = np.sum(seg_oi, axis=0) if n_seg else revenue * (rng.uniform(-0.1, 0.25) + rng.normal(0, 0.02, N_QUARTERS))
    ocf = oi + revenue * rng.uniform(0.02, 0.15) + rng.normal(0, 0.04, N_QUARTERS) * revenue
    capex = revenue * rng.uniform(0.03, 0.2) * np.where(t >= int(rng.integers(8, N_QUARTERS - 4)), 1.5, 1.0)
    series = {"revenue": revenue, "operating_income": oi, "operating_cash_flow": ocf, "capex": capex,
              "free_cash_flow": ocf - capex}
    segs = [f"s{i + 1}" for i in range(n_seg)]
    for s, r, o in zip(segs, seg_rev, seg_oi):
        series[f"revenue_{s}"], series[f"operating_income_{s}"] = r, o
    sub = folder / name
    sub.mkdir(parents=True, exist_ok=True)
    rows = []
    for metric, values in series.items():
        values = np.round(values, 3)
        if metric != "free_cash_flow":
            series[metric] = values
        else:
            values = np.round(series["operating_cash_flow"] - series["capex"], 3)
        for i, v in enumerate(values):
            p = FIRST + i
            rows.append({"metric": metric, "fiscal_quarter": str(p), "period_end": p.end_time.strftime("%Y-%m-%d"),
                         "value_musd": f"{v:.3f}", "source": f"synthetic ({name})"})
    pd.DataFrame(rows).to_csv(sub / "quarterly.csv", index=False)
    nonneg = {"revenue", "capex", *(f"revenue_{s}" for s in segs)}
    pd.DataFrame([{"metric": m, "model_from": str(FIRST), "nonnegative": str(m in nonneg).lower(),
                   "description": "synthetic"} for m in series]).to_csv(sub / "series.csv", index=False)
    hierarchy: dict = {"measures": {"revenue": {"total": "revenue", "nonnegative": True},
                                    "operating_income": {"total": "operating_income", "scale": "revenue"}}}
    if segs:
        hierarchy["segments"] = {s: {"revenue": f"revenue_{s}", "operating_income": f"operating_income_{s}"}
                                 for s in segs}
    profile = {"name": name, "title": f"Synthetic {name}", "data": f"{name}/quarterly.csv",
               "fiscal_year_end_month": 12, "core_series": list(series), "hierarchy": hierarchy,
               "cash_flow": {"sales": "revenue", "operating_income": "operating_income",
                             "operating_cash_flow": "operating_cash_flow", "capex": "capex",
                             "free_cash_flow": "free_cash_flow"}}
    path = folder / f"{name}.yaml"
    path.write_text("# synthetic company (experiments/benchmarks/universe_scale.py): generated numbers\n"
                    + yaml.safe_dump(profile, sort_keys=False), encoding="utf-8")
    return path


def synthetic_universe(folder: str | Path, n_companies: int, seed: int = 0, settings: dict | None = None) -> Path:
    """Write `n_companies` synthetic companies and a universe file listing them; returns the file."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    paths = [synthetic_company(folder, f"syn{i:04d}", rng) for i in range(n_companies)]
    doc = {"name": f"synthetic-{n_companies}", "companies": [{"path": p.name} for p in paths],
           "settings": settings or {}}
    out = folder / "universe.yaml"
    out.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return out


SETTINGS = {"h": 4, "windows": 4, "warmup": 0, "model": "AutoETS", "rollup": False}


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(companies=(50,), workers: int = 2, settings: dict | None = None, engines=("process", "dask"),
            say=print) -> pd.DataFrame:
    """One row per (companies, engine): wall and CPU seconds, per company, series, memory peaks."""
    import os

    from experiments.universe import read_universe, run_universe

    # every fit computed: the second engine must not read the first one's forecasts from the cache
    before, os.environ["FCF_CACHE"] = os.environ.get("FCF_CACHE"), "0"
    try:
        return _measure(companies, workers, settings, engines, say, read_universe, run_universe)
    finally:
        if before is None:
            os.environ.pop("FCF_CACHE", None)
        else:
            os.environ["FCF_CACHE"] = before


def _measure(companies, workers, settings, engines, say, read_universe, run_universe) -> pd.DataFrame:
    rows = []
    for n in companies:
        with tempfile.TemporaryDirectory(prefix="fcf-universe-") as tmp:
            uni = read_universe(synthetic_universe(tmp, n, settings={**SETTINGS, **(settings or {})}))
            n_series = [len(pd.read_csv(Path(e.profile).parent / Path(e.profile).stem / "series.csv"))
                        for e in uni.entries]
            for engine in engines:
                t0, c0 = time.perf_counter(), time.process_time()
                if engine == "dask":
                    from distributed import Client, LocalCluster

                    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster, Client(cluster) as client:
                        t0 = time.perf_counter()  # the cluster's start-up is not the universe's cost
                        res = run_universe(uni, engine=client)
                        worker_rss = client.run(_maxrss_mb)
                    peak = max(worker_rss.values())
                    label = f"LocalCluster ({workers} workers)"
                else:
                    res = run_universe(uni)
                    peak = _maxrss_mb()
                    label = "one process"
                wall = time.perf_counter() - t0
                task = [o.seconds for o in res.outcomes]
                rows.append({"companies": n, "engine": label, "series": sum(n_series), "wall_s": wall,
                             "s_per_company": wall / n, "task_s_mean": float(np.mean(task)),
                             "task_s_per_series": sum(task) / sum(n_series), "failed": len(res.failures),
                             "peak_rss_mb": peak, "driver_cpu_s": time.process_time() - c0})
                say(f"{n} companies, {label}: {wall:.1f} s wall, {wall / n:.2f} s per company, "
                    f"{len(res.failures)} failed, peak RSS {peak:.0f} MB")
    return pd.DataFrame(rows)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--companies", default="50", help="comma-separated universe sizes (default 50)")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster workers (default 2)")
    p.add_argument("--engines", default="process,dask", help="process, dask or both (default both)")
    p.add_argument("--out", help="write the table as CSV here")


def run(args: argparse.Namespace) -> int:
    from experiments.cli import CommandError

    try:
        sizes = [int(x) for x in args.companies.split(",") if x.strip()]
    except ValueError:
        raise CommandError(f"--companies {args.companies!r}: comma-separated whole numbers, e.g. 50,500") from None
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not sizes or min(sizes) < 1 or any(e not in ("process", "dask") for e in engines) or args.workers < 1:
        raise CommandError("--companies needs sizes >= 1, --engines process and/or dask, --workers >= 1")
    table = measure(sizes, args.workers, engines=engines)
    print(table.to_markdown(index=False, floatfmt=".2f"))
    if args.out:
        from experiments.io import write_csv

        write_csv(table, args.out)
    return 0
