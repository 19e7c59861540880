"""The retrain's champion selection: backtest the candidates, build the tables, choose.

The rule and the gate are forecasting logic and live in `forecasting.rolling.champions`
(`series_scores`, `choose_champions`, `gate`); `select_champions` runs the backtest and the
tables (`experiments.leaderboard`) around them.

`select_series` says which series a backtest or a retrain scores: the company profile's core
series that have enough quarters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from forecasting.rolling.champions import CHAMPION_STEPS, choose_champions, series_scores

if TYPE_CHECKING:  # the tables and the registry load every model library: imported when used
    from experiments.leaderboard import BacktestTables

#: Quarters a series needs beyond ``windows + horizon`` to be backtested by default.
MIN_EXTRA_QUARTERS = 10
#: The retrain's candidate models (names or families).
DEFAULT_CANDIDATES = "statistical,ensemble"


def select_series(df: pd.DataFrame, requested: list[str] | None, min_len: int, core: Sequence[str] = ()
                  ) -> tuple[list[str], list[str]]:
    """The series to backtest and a line per skipped series saying why.

    `requested` None: the `core` series present (a company profile's; all series when none
    is), ``["all"]``: every series; either way only those with at least `min_len` quarters.
    Named series are kept whatever their length (a short one is reported, and its early
    cutoffs use fallbacks).
    """
    sizes = df.groupby("unique_id").size()
    skipped = []
    if requested and requested != ["all"]:
        for s in requested:
            if sizes.get(s, 0) < min_len:
                skipped.append(f"{s}: only {sizes.get(s, 0)} quarters (< {min_len}); kept because it "
                               "was named, early cutoffs use fallback models")
        return list(requested), skipped
    pool = list(sizes.index)
    if requested is None and any(s in sizes.index for s in core):
        pool = [s for s in core if s in sizes.index]
        extra = [s for s in sizes.index if s not in core]
        if extra:
            skipped.append("not core series (add with --series NAME,... or --series all): "
                           + ", ".join(extra))
    keep = [s for s in pool if sizes[s] >= min_len]
    skipped += [f"{s}: {sizes[s]} quarters, fewer than windows + horizon + {MIN_EXTRA_QUARTERS} (+ shift) = {min_len}"
                for s in pool if sizes[s] < min_len]
    return keep, skipped


@dataclass
class Selection:
    """`select_champions` output: the backtest, its tables (`experiments.leaderboard.BacktestTables`),
    the per-series scores (`series_scores`) and the champions (`choose_champions`)."""

    backtest: pd.DataFrame
    tables: BacktestTables
    scores: pd.DataFrame
    champions: pd.DataFrame


def select_champions(df: pd.DataFrame, config, candidates: Sequence[str],
                     progress: Callable | None = None, default: str | None = None) -> Selection:
    """Backtest ``config.models`` on `df` with `config` (a `BacktestConfig`), score every
    series over horizons ``1..min(CHAMPION_STEPS, h)`` and choose a champion per series among
    `candidates` (see the module docstring for the rule)."""
    from experiments.leaderboard import backtest_tables
    from forecasting.methods.registry import get_spec
    from forecasting.rolling.backtest import backtest  # the model code: imported when a backtest runs

    bt = backtest(df, list(config.models), config, progress=progress)
    tables = backtest_tables(bt, df, config, default)
    scores = series_scores(tables.points, min(CHAMPION_STEPS, config.h))
    complexity = {m: get_spec(m).complexity for m in scores["model"].unique()}
    return Selection(bt, tables, scores, choose_champions(scores, candidates, complexity))
