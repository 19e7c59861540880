"""The loader: the only code in the library that reads `data/`.

Input contract (``amzn_quarterly.csv`` and any user file of the same shape), one row per
metric and quarter, USD millions::

    metric,fiscal_quarter,period_end,value_musd,source
    net_sales_aws,2026Q2,2026-06-30,33112,10-Q 2026Q2 XBRL ...

Quarter labels: ``2024Q3`` (calendar quarters, ``period_end`` on Mar 31, Jun 30, Sep 30 or
Dec 31) or ``FY2026Q1`` (fiscal quarters of a fiscal year named by the calendar year it ends in,
``period_end`` on any month end, one fiscal-year-end month per file: Snowflake's FY2026Q1 ends
2025-04-30). One style per file; `features.calendar` has the rules.

Optional column ``vintage`` (a date): a restatement is a new row with a later vintage; the
latest vintage of a quarter wins. A series config (``series.csv`` beside the data file) names
per metric the first quarter to model from (``model_from``) and whether values must be
non-negative. Rows before ``model_from`` are validated but not modelled; after it a missing
quarter is an error, never smoothed over.

Output contract: a long frame ``unique_id`` (metric), ``ds`` (quarter-end timestamp), ``y``
(float, USD millions), sorted by series and date, checked against `features.schema.SeriesFrame`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from features.aggregates import TTM_SUFFIX, trailing_twelve_months
from features.errors import DataValidationError, Problem
from features.schema import validate_series_frame
from features.validation import (
    CONFIG_FILE,
    SeriesConfig,
    _check_gaps,
    _check_rows,
    _closest,
    _dedupe,
    _label,
    _parse_quarter,
    _read_csv,
    _rebase,
    _warn_units,
)

__all__ = ["ANNUAL_FILE", "CONFIG_COLUMNS", "data_vintage", "DataVintage", "default_annual_path",
           "default_quarterly_path", "load_quarterly", "OPTIONAL", "QUARTERLY_FILE", "read_annual",
           "read_quarterly", "read_series_config", "REQUIRED_ANNUAL", "REQUIRED_QUARTERLY",
           "shipped_data_dir"]

QUARTERLY_FILE = "amzn_quarterly.csv"
ANNUAL_FILE = "amzn_annual.csv"
REQUIRED_QUARTERLY = ("metric", "fiscal_quarter", "period_end", "value_musd")
REQUIRED_ANNUAL = ("metric", "fiscal_year", "period_end", "value_musd")
OPTIONAL = ("source", "vintage")
CONFIG_COLUMNS = ("metric", "model_from", "nonnegative", "description")


def shipped_data_dir() -> Path:
    """Folder of the shipped dataset, wherever the caller's working directory is.

    Order: ``$FCF_DATA_DIR``; the repository's ``data/`` (source checkout or editable install);
    ``features/shipped`` (a wheel install maps ``data/`` there).
    """
    env = os.environ.get("FCF_DATA_DIR")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve().parent
    candidates += [here.parent / "data", here / "shipped"]
    for c in candidates:
        if (c / QUARTERLY_FILE).is_file():
            return c
    raise FileNotFoundError(
        f"shipped data not found (looked in {', '.join(str(c) for c in candidates)}); "
        "set FCF_DATA_DIR to the folder holding amzn_quarterly.csv"
    )


def default_quarterly_path() -> Path:
    return shipped_data_dir() / QUARTERLY_FILE


def default_annual_path() -> Path:
    return shipped_data_dir() / ANNUAL_FILE




# --------------------------------------------------------------------------- file reading








def read_series_config(path: str | Path | None = None) -> SeriesConfig:
    """Read and validate a series config (``metric,model_from,nonnegative[,description]``)."""
    path = Path(path) if path is not None else shipped_data_dir() / CONFIG_FILE
    raw = _read_csv(path, ("metric", "model_from"), ("nonnegative", "description"))
    problems, start, nonneg, desc = [], {}, {}, {}
    for row in raw.itertuples(index=False):
        metric, line = row.metric, row.lineno_
        if not metric:
            problems.append(Problem(str(path), "empty metric name", line))
            continue
        if metric in start:
            problems.append(Problem(str(path), "metric listed twice", line, metric))
            continue
        period = None
        if row.model_from:
            period = _parse_quarter(row.model_from)
            if period is None:
                problems.append(
                    Problem(
                        str(path),
                        f"model_from '{row.model_from}' is not a quarter like 2019Q1 (or FY2019Q1)",
                        line,
                        metric,
                    )
                )
        flag = getattr(row, "nonnegative", "") or "false"
        if flag.lower() not in ("true", "false", "1", "0", "yes", "no"):
            problems.append(
                Problem(str(path), f"nonnegative '{flag}' is not true/false", line, metric)
            )
        start[metric] = period
        nonneg[metric] = flag.lower() in ("true", "1", "yes")
        desc[metric] = getattr(row, "description", "") or ""
    if problems:
        raise DataValidationError(problems)
    return SeriesConfig(start, nonneg, desc, path)


def _find_config(data_path: Path, config) -> SeriesConfig | None:
    if isinstance(config, SeriesConfig):
        return config
    if config is not None:
        return read_series_config(config)
    beside = data_path.parent / CONFIG_FILE
    return read_series_config(beside) if beside.is_file() else None


# --------------------------------------------------------------------------- public API
def read_quarterly(
    path: str | Path | None = None, config: str | Path | SeriesConfig | None = None
) -> pd.DataFrame:
    """Read and validate every row of a quarterly file.

    Returns ``metric, period, ds, y`` for all rows (also those before ``model_from``);
    ``period`` is a quarterly `pd.Period` in the file's fiscal calendar (``Q-DEC`` for calendar
    labels, ``Q-JAN`` for fiscal years ending in January, ...) and ``attrs["label_style"]`` is
    ``calendar`` or ``fiscal``. Raises `DataValidationError` listing every problem found.
    """
    path = Path(path) if path is not None else default_quarterly_path()
    cfg = _find_config(path, config)
    raw = _read_csv(path, REQUIRED_QUARTERLY, OPTIONAL)
    parsed, problems = _check_rows(raw, str(path), "fiscal_quarter", cfg)
    parsed, dup_problems = _dedupe(parsed, str(path), "fiscal_quarter")
    problems += dup_problems
    if not problems:
        problems += _check_gaps(parsed, str(path), cfg)
    if problems:
        raise DataValidationError(problems)
    if parsed.empty:
        raise DataValidationError(Problem(str(path), "no data rows"))
    _warn_units(parsed, str(path), cfg)
    out = parsed.drop(columns=["lineno_"]).sort_values(["metric", "ds"]).reset_index(drop=True)
    out.attrs["label_style"] = parsed.attrs.get("label_style", "calendar")
    return out


def read_annual(
    path: str | Path | None = None, config: str | Path | SeriesConfig | None = None
) -> pd.DataFrame:
    """Read and validate the fiscal-year file; returns ``metric, period, ds, y``."""
    path = Path(path) if path is not None else default_annual_path()
    cfg = _find_config(path, config)
    raw = _read_csv(path, REQUIRED_ANNUAL, OPTIONAL)
    parsed, problems = _check_rows(raw, str(path), "fiscal_year", cfg)
    parsed, dup_problems = _dedupe(parsed, str(path), "fiscal_year")
    problems += dup_problems
    if problems:
        raise DataValidationError(problems)
    return parsed.drop(columns=["lineno_"]).sort_values(["metric", "ds"]).reset_index(drop=True)


def load_quarterly(
    path: str | Path | None = None,
    config: str | Path | SeriesConfig | None = None,
    series: list[str] | None = None,
    include_ttm: bool = False,
) -> pd.DataFrame:
    """The modelling frame: ``unique_id, ds, y`` from each series' ``model_from`` on.

    Args:
        path: quarterly CSV (default: the shipped Amazon file).
        config: series config path or object (default: ``series.csv`` beside `path`; without
            one every metric is modelled from its first quarter and a hole is an error).
        series: keep only these metrics (unknown names raise with the closest suggestion).
        include_ttm: add ``free_cash_flow_ttm``, the trailing-twelve-month sum of quarterly
            FCF as Amazon reports it (also for any other metric named in `series` + ``_ttm``).
    """
    path = Path(path) if path is not None else default_quarterly_path()
    cfg = _find_config(path, config)
    parsed = read_quarterly(path, cfg)
    if cfg is not None:
        freq = parsed["period"].iloc[0].freqstr if len(parsed) else "Q-DEC"
        start = {m: _rebase(p, freq) for m, p in cfg.model_from.items() if p is not None}
        parsed = parsed[parsed["metric"].isin(start)]
        parsed = parsed[[p >= start[m] for m, p in zip(parsed["metric"], parsed["period"])]]
    long = (
        parsed.rename(columns={"metric": "unique_id"})[["unique_id", "ds", "y"]]
        .sort_values(["unique_id", "ds"])
        .reset_index(drop=True)
    )
    if series is not None:
        wanted = [s for s in series if not s.endswith(TTM_SUFFIX)]
        available = set(long["unique_id"])
        missing = [s for s in wanted if s not in available]
        if missing:
            unmodelled = {m for m, p in cfg.model_from.items() if p is None} if cfg is not None else set()
            raise DataValidationError(
                [
                    Problem(str(path), f"series '{s}' is validated but not modelled: its model_from in "
                            f"{Path(cfg.path or CONFIG_FILE).name} is empty (set it to the first quarter to model)",
                            series=s)
                    if s in unmodelled else
                    Problem(str(path), f"no modelled series '{s}'{_closest(s, sorted(available))}", series=s)
                    for s in missing
                ]
            )
        ttm_of = [s[: -len(TTM_SUFFIX)] for s in series if s.endswith(TTM_SUFFIX)]
        keep = long[long["unique_id"].isin(wanted)]
        extra = [trailing_twelve_months(long, s) for s in ttm_of]
        long = pd.concat([keep, *extra], ignore_index=True)
    if include_ttm and "free_cash_flow" in set(long["unique_id"]) and "free_cash_flow_ttm" not in set(
        long["unique_id"]
    ):
        long = pd.concat([long, trailing_twelve_months(long, "free_cash_flow")], ignore_index=True)
    return validate_series_frame(long.sort_values(["unique_id", "ds"]).reset_index(drop=True), str(path))


@dataclass(frozen=True)
class DataVintage:
    """Which data a run read: the file, the sha256 of its bytes (and of the extra files read with
    it), its last quarter, and ``vintage`` = ``<last quarter>-<sha256[:12]>``."""

    path: Path
    data_sha256: str
    data_last_quarter: str
    vintage: str

    def as_tags(self) -> dict[str, str]:
        """The run tags that identify the data (``data_sha256``, ``data_last_quarter``, ``vintage``)."""
        return {"data_sha256": self.data_sha256, "data_last_quarter": self.data_last_quarter,
                "vintage": self.vintage}


def data_vintage(path: str | Path | None = None, extra_files=()) -> DataVintage:
    """Identify a data file: sha256 of its bytes (followed by those of `extra_files`, e.g. the
    guidance files a forecast also reads, so that a new statement is a new vintage) and its
    last quarter (for tracking)."""
    path = Path(path) if path is not None else default_quarterly_path()
    h = hashlib.sha256(path.read_bytes())
    for extra in extra_files:
        h.update(Path(extra).read_bytes())
    digest = h.hexdigest()
    parsed = read_quarterly(path)
    last = _label(parsed["period"].max(), parsed.attrs.get("label_style", "calendar"))
    return DataVintage(path=path, data_sha256=digest, data_last_quarter=last, vintage=f"{last}-{digest[:12]}")
