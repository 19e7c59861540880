"""Rolling-origin backtest with an expanding window: frames in, frames out, no I/O.

For each cutoff every model is refit on the data up to and including the cutoff only, and
forecasts `h` quarters ahead. The default is one cutoff per quarter over the last 12
reported quarters' worth of windows (``n_windows=12, step=1, h=4``): the last cutoff is
four quarters before the newest reported quarter, as in statsforecast's
``cross_validation(n_windows=12, h=4)``.

Learned post-steps (conformal interval calibration, weighted ensembles) need the errors of
earlier windows. ``warmup_windows`` extra cutoffs run before the evaluated ones, and at each
cutoff a post-step only reads rows of earlier cutoffs whose quarter ``ds`` is on or before the
current cutoff, i.e. outcomes that were reported by then (each step applies that rule itself). Warm-up rows are not returned.

The cutoffs are independent, so their base forecasts run side by side in worker processes
(`forecasting.rolling.parallel`, ``n_jobs``); the learned post-steps then replay the cutoffs in order.
A cutoff keeps the series with 2+ quarters up to it and a reported quarter after it.
Quarters are counted on the data's own quarter ends (any fiscal calendar).

Output: the backtest frame (`forecasting.core.frames.backtest_columns`): the forecast frame plus
``cutoff``, ``step`` (1..h quarters ahead) and ``y`` (the reported value), one row per series
x cutoff x model x step for which a reported value exists; checked by
`forecasting.core.frames.check_backtest_frame`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import pandas as pd

from forecasting.methods.calibration import conformalize
from forecasting.methods.catalogue import resolve
from forecasting.methods.dispatch import forecast_base
from forecasting.methods.engines.distributed import check_engine, is_distributed, to_pandas_input
from forecasting.methods.ensemble import combine
from forecasting.core.frames import (
    LEVELS,
    FitSettings,
    MAX_HORIZON,
    SEASON_LENGTH,
    ShortSeriesWarning,
    backtest_columns,
    calendar_of,
    check_backtest_frame,
    check_horizon,
    check_series_frame,
)
from forecasting.methods.registry import get_spec, with_members
from forecasting.rolling.parallel import base_forecasts
from features.errors import OptionError
from forecasting.core.provenance import outcomes_read

__all__ = ["BacktestConfig", "backtest", "base_at_cutoffs", "cutoff_windows", "cutoffs", "finish",
           "post_process", "replay"]


@dataclass(frozen=True)
class BacktestConfig:
    """Settings of one backtest (logged as run parameters)."""

    h: int = 4
    n_windows: int = 12
    step_size: int = 1
    level: tuple[int, ...] = LEVELS
    season_length: int = SEASON_LENGTH
    warmup_windows: int = 8
    intervals: str = "conformal"
    seed: int = 0
    end_offset: int | None = None
    models: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self):
        check_horizon(self.h, maximum=MAX_HORIZON)
        if self.n_windows < 1 or self.step_size < 1 or self.warmup_windows < 0:
            raise OptionError("n_windows and step_size must be >= 1 and warmup_windows >= 0")
        if self.intervals not in ("conformal", "model"):
            raise OptionError(f"intervals must be 'conformal' or 'model', got '{self.intervals}'")

    @property
    def fit(self) -> FitSettings:
        """The settings every fit of this backtest takes (`forecasting.core.frames.FitSettings`)."""
        return FitSettings(self.h, self.level, self.season_length, self.seed)

    def as_params(self) -> dict:
        d = asdict(self)
        d["level"] = ",".join(str(x) for x in self.level)
        d["models"] = ",".join(self.models)
        return d


def cutoffs(
    df: pd.DataFrame, h: int = 4, n_windows: int = 12, step_size: int = 1, end_offset: int | None = None
) -> list[pd.Timestamp]:
    """The cutoff dates, oldest first.

    The last cutoff is `end_offset` quarters before the newest ``ds`` (default `h`, so every
    window has all `h` outcomes; 1 gives the most recent one-step errors for calibration).
    """
    last = pd.Timestamp(df["ds"].max())
    cal = calendar_of(df)
    end = h if end_offset is None else end_offset
    offsets = [end + (n_windows - 1 - i) * step_size for i in range(n_windows)]
    return [last - cal.offset(k) for k in offsets]


def backtest(
    df: pd.DataFrame,
    models: str | Iterable[str] | None = None,
    config: BacktestConfig | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
    engine=None,
    guidance=None,
    n_jobs: int | None = None,
    cache: bool | None = False,
    **overrides,
) -> pd.DataFrame:
    """Rolling-origin backtest of `models` on `df` (see the module docstring).

    Args:
        df: long frame ``unique_id, ds, y``.
        models: names, a family, ``"all"`` or None (defaults); SeasonalNaive always runs.
        config: a `BacktestConfig`; keyword `overrides` replace its fields (``h=8``...).
        progress: wraps the iterator over finished cutoffs (``tqdm.tqdm``) for a progress bar.
        engine: the executor of the statistical models at each cutoff: None (this process),
            ``"dask"``, a ``dask.distributed.Client`` or another Fugue engine (see
            `forecasting.methods.engines.distributed`). Results equal the local ones.
        guidance: a `features.guidance.GuidanceBook`; at each cutoff the guided models see
            only the rows announced by the day that quarter was reported
            (`GuidanceBook.at_cutoff`), never a later one.
        n_jobs: local worker processes, one cutoff per task (see `forecasting.rolling.parallel`; None:
            ``FCF_N_JOBS`` or every core). Results equal a one-process run.
        cache: reuse base forecasts of cutoffs already fitted on the same rows
            (`forecasting.rolling.cache`); off by default so a backtest measures a cold run.
    """
    config = config or BacktestConfig()
    if overrides:
        config = BacktestConfig(**{**asdict(config), **overrides})
    df, was_dask = to_pandas_input(df)
    engine = check_engine("dask" if was_dask and engine is None else engine)
    df = check_series_frame(df)
    requested = resolve(models)
    specs = with_members(requested)
    n_total = config.n_windows + config.warmup_windows
    cuts = cutoffs(df, config.h, n_total, config.step_size, config.end_offset)
    windows = cutoff_windows(df, cuts)
    bases = base_at_cutoffs(windows, specs, config, engine=engine, n_jobs=n_jobs, cache=cache, progress=progress,
                            guidance=guidance)
    seen_warnings: dict[str, None] = {}
    for _, msgs in bases:
        for message in msgs:
            seen_warnings.setdefault(message.split(":")[0] + ": " + _model_of(message), None)
    _, results = replay(df, windows, [fc for fc, _ in bases], specs, config, first_eval=cuts[config.warmup_windows])
    if seen_warnings:
        warnings.warn(
            "some series were too short for some models at early cutoffs and were forecast by a "
            "fallback (see column model_used): " + "; ".join(list(seen_warnings)[:10]),
            ShortSeriesWarning,
            stacklevel=2,
        )
    if not results:
        raise OptionError(
            f"no backtest window: no series has 2 or more quarters up to the cutoffs {cuts[0].date()} .. "
            f"{cuts[-1].date()}; use fewer windows (n_windows, warmup_windows) or longer series")
    out = pd.concat(results, ignore_index=True)
    out = out[out["model"].isin([s.name for s in requested])]
    return check_backtest_frame(finish(out, config), config.level)


def finish(out: pd.DataFrame, config: BacktestConfig) -> pd.DataFrame:
    """Rows with a reported outcome, a ``step`` column, the backtest's column order."""
    out = out.dropna(subset=["y"]).copy()
    out["step"] = pd.Series(calendar_of(out).steps(out["cutoff"], out["ds"]), index=out.index).astype(int)
    cols = backtest_columns(config.level)
    return out[cols].sort_values(["unique_id", "model", "cutoff", "ds"]).reset_index(drop=True)


def cutoff_windows(df: pd.DataFrame, cuts: Iterable[pd.Timestamp]) -> list[tuple[pd.Timestamp, pd.DataFrame]]:
    """``(cutoff, rows up to it)`` for each cutoff, keeping the series with 2+ quarters by then
    and a reported quarter after it (a series that ended earlier has nothing to score there);
    cutoffs where no series is kept are left out."""
    out = []
    last = df.groupby("unique_id")["ds"].max()
    for cut in cuts:
        train = df[df["ds"] <= cut]
        outcomes_read("backtest.train", cut, train["ds"])
        sizes = train.groupby("unique_id").size()
        keep = sizes.index[(sizes >= 2).to_numpy() & (last.reindex(sizes.index) > cut).to_numpy()]
        train = train[train["unique_id"].isin(keep)]
        if not train.empty:
            out.append((cut, train))
    return out


def base_at_cutoffs(windows, specs, config: BacktestConfig, engine=None, n_jobs: int | None = None,
                    cache: bool | None = False, progress=None, guidance=None) -> list[tuple[pd.DataFrame, list[str]]]:
    """`forecast_base` at each window's cutoff: ``(forecasts, fallback warning messages)`` in order.

    Locally the cutoffs run in parallel processes and may be cached (`forecasting.rolling.parallel`);
    with a cluster `engine` they run one after the other, each distributed over the cluster.
    Guided models see `guidance` as known at each cutoff (`GuidanceBook.at_cutoff`)."""
    known = [guidance.at_cutoff(cut) if guidance is not None else None for cut, _ in windows]
    if not is_distributed(engine):
        return base_forecasts([t for _, t in windows], specs, config.fit, n_jobs=n_jobs, cache=cache,
                              progress=progress, guidance=known)
    out = []
    iterator = progress(list(zip(windows, known))) if progress is not None else zip(windows, known)
    for (_, train), book in iterator:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ShortSeriesWarning)
            fc = forecast_base(train, specs, config.fit, engine=engine, guidance=book)
        out.append((fc, [str(w.message) for w in caught if issubclass(w.category, ShortSeriesWarning)]))
    return out


def replay(df: pd.DataFrame, windows, bases: list[pd.DataFrame], specs, config: BacktestConfig,
           first_eval: pd.Timestamp | None = None) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """The learned post-steps, cutoff after cutoff, each from earlier cutoffs' known outcomes.

    Args:
        windows: ``(cutoff, rows up to it)`` pairs, oldest first; `bases` their base forecasts.
        first_eval: cutoffs from this one on are returned calibrated (None: none are).
    Returns:
        ``(past, evaluated)``: every cutoff's uncalibrated rows with ``cutoff`` and ``y`` (what
        later cutoffs learn from), and the calibrated frames of the evaluated cutoffs.
    """
    results: list[pd.DataFrame] = []
    past = pd.DataFrame()
    for (cut, train), base in zip(windows, bases):
        fc = base.copy()
        fc["cutoff"] = cut
        fc = fc.merge(df, on=["unique_id", "ds"], how="left")
        # every earlier cutoff's rows: each learned step keeps the outcomes reported by `cut`
        # itself (`forecasting.core.past.known_past`, `forecasting.methods.calibration`), so that filter is
        # the one a leak would have to get past (and the one the leakage tests exercise)
        raw = post_process(fc, specs, config, train, past, calibrate=False)
        if first_eval is not None and cut >= first_eval:
            results.append(_calibrate(raw, config, train, past))
        past = pd.concat([past, raw], ignore_index=True)  # calibration learns from raw intervals
    return past, results


def post_process(
    fc: pd.DataFrame,
    specs: list,
    config: BacktestConfig,
    train: pd.DataFrame,
    past: pd.DataFrame,
    calibrate: bool = True,
) -> pd.DataFrame:
    """Steps that learn from earlier windows: ensembles, then (optionally) interval calibration.

    `fc` holds this cutoff's base forecasts; `past` earlier cutoffs' rows with ``y``, carrying
    the *uncalibrated* intervals (each step reads only the outcomes reported by this cutoff).
    """
    for spec in specs:
        if spec.kind == "ensemble":
            members = fc[fc["model"].isin(spec.members)]
            comb = combine(members, spec, config.level, history=train, past=past,
                           season_length=config.season_length)
            comb["cutoff"] = fc["cutoff"].iloc[0]
            comb = comb.merge(fc[["unique_id", "ds", "y"]].drop_duplicates(["unique_id", "ds"]),
                              on=["unique_id", "ds"], how="left")
            fc = pd.concat([fc, comb], ignore_index=True)
    return _calibrate(fc, config, train, past) if calibrate else fc


def _calibrate(fc: pd.DataFrame, config: BacktestConfig, train: pd.DataFrame, past: pd.DataFrame) -> pd.DataFrame:
    if config.intervals != "conformal":
        return fc
    return conformalize(fc, past, config.level, train=train, season_length=config.season_length)


def _model_of(message: str) -> str:
    for part in message.split():
        try:
            get_spec(part)
            return part
        except ValueError:
            continue
    return ""
