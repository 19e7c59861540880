"""Base forecasts at many cutoffs: one task per cutoff, run by joblib, cached by data vintage.

A rolling-origin backtest (and `forecast()`'s calibration windows) fits every model at every
cutoff on the rows up to that cutoff; the cutoffs are independent of each other, so they run
side by side, one task per cutoff, through `joblib.Parallel`. Each task is exactly
`forecasting.methods.dispatch.forecast_base` on that cutoff's rows, so the forecasts equal those of a
sequential run; only the order of work changes.

The executor is joblib's: by default its ``loky`` backend (worker processes that are kept
between calls, each limited to one BLAS/OpenMP thread per core it gets); inside
``with joblib.parallel_config(backend="dask"):`` (with a ``dask.distributed.Client``) the
same tasks run on a Dask cluster. Workers are fresh processes, so each task carries the specs
it needs (with their fallbacks, members and bases), which the worker registers before
fitting: models registered at run time work there too.

``n_jobs``: None reads ``FCF_N_JOBS``, else uses every core this process may run on; 1 runs
in this process, as does None when every model is a baseline (nothing to fit: a pool would
spend more starting its workers than the whole run). A task whose result is in the
data-vintage cache (`forecasting.rolling.cache`) is not run at all.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from forecasting.rolling import cache as vcache
from forecasting.methods.dispatch import forecast_base
from forecasting.core.frames import FitSettings, ShortSeriesWarning
from forecasting.core.provenance import active as provenance_active
from forecasting.methods.registry import ModelSpec, chain, register
from features.errors import OptionError

__all__ = ["base_forecasts", "default_jobs", "run_task", "Task"]


@dataclass(frozen=True)
class Task:
    """One cutoff's work: the rows up to it, what to fit, and the guidance known at the cutoff
    (a `features.guidance.GuidanceBook`, for guided models; or None). `specs` are fitted;
    `needed` are the specs they rely on (fallbacks, members, bases), registered in the worker."""

    train: pd.DataFrame
    specs: tuple[ModelSpec, ...]
    needed: tuple[ModelSpec, ...]
    settings: FitSettings
    guidance: object = None


def default_jobs(n_jobs: int | None = None) -> int:
    """`n_jobs`, else ``FCF_N_JOBS``, else the cores this process may use (at least 1)."""
    if n_jobs is None:
        env = os.environ.get("FCF_N_JOBS", "").strip()
        if env:
            try:
                n_jobs = int(env)
            except ValueError:
                raise OptionError(f"FCF_N_JOBS must be a whole number of processes, got '{env}'") from None
        else:
            try:
                n_jobs = len(os.sched_getaffinity(0))
            except AttributeError:
                n_jobs = os.cpu_count() or 1
    if n_jobs < 1:
        raise OptionError(f"n_jobs must be >= 1, got {n_jobs}")
    return int(n_jobs)


def run_task(task: Task, in_worker: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """`forecast_base` on one cutoff's rows; returns the forecasts and the fallback warnings.

    In a worker process (`in_worker`) the task's specs are registered first (the worker's
    registry holds the built-in specs only)."""
    if in_worker:
        import forecasting.methods.catalogue  # noqa: F401  (the built-in specs)

        for spec in task.needed:
            register(spec, replace=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ShortSeriesWarning)
        fc = forecast_base(task.train, list(task.specs), task.settings, guidance=task.guidance)
    return fc, [str(w.message) for w in caught if issubclass(w.category, ShortSeriesWarning)]


def _in_worker(task: Task) -> tuple[pd.DataFrame, list[str]]:
    return run_task(task, in_worker=True)


def base_forecasts(
    trains: Sequence[pd.DataFrame],
    specs: Sequence[ModelSpec],
    settings: FitSettings,
    n_jobs: int | None = None,
    cache: bool | None = False,
    progress: Callable[[Iterable], Iterable] | None = None,
    guidance: Sequence | None = None,
) -> list[tuple[pd.DataFrame, list[str]]]:
    """Base forecasts of `specs` on each frame of `trains` (one per cutoff), in order.

    Args:
        trains: the rows up to each cutoff (long frames ``unique_id, ds, y``).
        settings: horizon, levels, season length and seed of every fit.
        n_jobs: parallel tasks (see the module docstring).
        cache: read and write the data-vintage cache (None: on unless ``FCF_CACHE=0``).
        progress: wraps the iterator over finished tasks (``tqdm.tqdm``) for a progress bar.
        guidance: per cutoff, the guidance known then (None: no guidance).
    Returns:
        per cutoff ``(forecasts, messages)``: `forecast_base`'s frame and the text of the
        `ShortSeriesWarning`s it raised (the caller decides whether to show them).
    """
    # inside `provenance.recording()` every learned step must run and report what it read; a
    # cached result would skip them, so the record bypasses the cache (numbers are equal)
    use_cache = vcache.enabled(cache) and not provenance_active()
    needed = tuple({s.name: s for spec in specs for s in chain(spec)}.values())
    books = list(guidance) if guidance is not None else [None] * len(trains)
    tasks = [Task(t, tuple(specs), needed, settings, g) for t, g in zip(trains, books)]
    results: list[tuple[pd.DataFrame, list[str]] | None] = [None] * len(tasks)
    keys: list[str | None] = [None] * len(tasks)
    if use_cache:
        for i, t in enumerate(tasks):
            keys[i] = vcache.key(t.train, specs, settings, t.guidance)
            results[i] = vcache.load(keys[i])
    todo = [i for i, r in enumerate(results) if r is None]
    if use_cache and todo:
        # another process may be fitting the same entries: wait for it, then read what it wrote
        with vcache.computing([keys[i] for i in todo]):
            for i in todo:
                results[i] = vcache.load(keys[i])
            todo = [i for i in todo if results[i] is None]
            _compute(tasks, todo, results, n_jobs, progress)
            for i in todo:
                vcache.save(keys[i], results[i])
        vcache.prune()
    else:
        _compute(tasks, todo, results, n_jobs, progress)
    return results  # type: ignore[return-value]


def _compute(tasks: list, todo: list[int], results: list, n_jobs, progress) -> None:
    """Fill ``results[i]`` for each task index in `todo` (one process or a joblib pool)."""
    from joblib import Parallel, delayed

    if not todo:
        return
    jobs = min(default_jobs(n_jobs), len(todo))
    if n_jobs is None and _trivial(tasks[todo[0]].needed):  # every task fits the same specs
        jobs = 1  # a pool's workers each import statsforecast (~5 s) to fit what takes milliseconds here
    wrap = progress or (lambda it: it)
    if jobs <= 1:
        for i in wrap(todo):
            results[i] = run_task(tasks[i])
    else:
        # longest first: the last cutoffs have the most rows, so the workers finish together
        order = sorted(todo, key=lambda i: -len(tasks[i].train))
        runner = Parallel(n_jobs=jobs, return_as="generator_unordered", prefer="processes")
        done = runner(delayed(_indexed)(i, tasks[i]) for i in order)
        for i, result in wrap(done):
            results[i] = result


def _trivial(specs: Sequence[ModelSpec]) -> bool:
    """Only baselines (Naive, SeasonalNaive, random walk: no parameters to fit) in `specs`."""
    return all(s.kind == "stats" and s.family == "baseline" for s in specs)


def _indexed(i: int, task: Task) -> tuple[int, tuple[pd.DataFrame, list[str]]]:
    return i, _in_worker(task)
