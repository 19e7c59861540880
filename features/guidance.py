"""Management guidance as data: what a forecaster standing at a cutoff could have known.

Two files, both validated like the reported quarters (`DataValidationError` naming file, line,
series and problem):

``amzn_guidance_quarterly.csv``, one row per guided quarter and metric::

    metric,fiscal_quarter,period_end,announced_on,low_musd,high_musd[,quality,source]
    net_sales_total,2026Q3,2026-09-30,2026-07-30,197000,202000,release_text,...

``amzn_capex_guidance.csv``, statements of a fiscal year's total (a later statement about the
same year is a new row with a later ``announced_on``; a row with both bounds empty records a
direction only and carries no number)::

    fiscal_year,announced_on,low_musd,high_musd[,wording,source,metric]

The rule that keeps backtests honest (`GuidanceBook.at_cutoff`): a forecast made at cutoff
``c`` stands on the day quarter ``c`` was reported and sees every row announced up to and
including that day (the same release guides quarter ``c + 1``), never a later one. The day a
quarter was reported is the ``announced_on`` of the guidance for the next quarter; for a
quarter without such a row the book falls back to the quarter's last day, which can only
hide guidance, never leak it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.calendar import FiscalCalendar, parse_quarter_label
from features.calendar import quarter as fiscal_quarter_period
from features.errors import DataValidationError, Problem
from features.loader import shipped_data_dir
from features.validation import _closest, _read_csv

__all__ = ["ANNUAL_COLUMNS", "ANNUAL_GUIDANCE_FILE", "DEFAULT_ANNUAL_METRIC", "guidance_files",
           "GuidanceBook", "load_guidance", "load_guidance_files", "QUARTERLY_COLUMNS",
           "QUARTERLY_GUIDANCE_FILE", "read_annual_guidance", "read_quarterly_guidance", "row_quarter"]

QUARTERLY_GUIDANCE_FILE = "amzn_guidance_quarterly.csv"
ANNUAL_GUIDANCE_FILE = "amzn_capex_guidance.csv"
#: The series an annual file without a ``metric`` column guides (capex net of proceeds).
DEFAULT_ANNUAL_METRIC = "purchases_of_property_and_equipment_net_of_proceeds"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

QUARTERLY_COLUMNS = ["metric", "ds", "announced_on", "low", "high", "quality"]
ANNUAL_COLUMNS = ["metric", "fiscal_year", "year_end", "announced_on", "low", "high"]


def _date(text: str) -> pd.Timestamp | None:
    if not _DATE.match(text or ""):
        return None
    try:
        return pd.Timestamp(text)
    except ValueError:
        return None


def _number(text: str) -> float | None:
    try:
        v = float(text.replace(",", ""))
    except ValueError:
        return None
    return v if np.isfinite(v) else None


def _bounds(row, bad) -> tuple[float, float] | None:
    """(low, high) of a row, NaN for a direction-only row; None (after `bad`) if malformed."""
    lo_t, hi_t = row.low_musd, row.high_musd
    if lo_t == "" and hi_t == "":
        return np.nan, np.nan
    if (lo_t == "") != (hi_t == ""):
        bad("give both low_musd and high_musd, or neither (a statement without a number)")
        return None
    lo, hi = _number(lo_t), _number(hi_t)
    if lo is None or hi is None:
        bad(f"low_musd '{lo_t}' / high_musd '{hi_t}' is not a number")
        return None
    if lo > hi:
        bad(f"low_musd {lo:g} is above high_musd {hi:g}")
        return None
    return lo, hi



def row_quarter(row, known: set[str] | None, bad) -> tuple | None:
    """The checks every dated-estimate file (guidance, consensus) makes first on a row: a metric
    name, a known one, a quarter label; the parsed label, or None after telling `bad` why."""
    metric = row.metric
    if not metric:
        bad("empty metric name")
        return None
    if known is not None and metric not in known:
        bad(f"unknown metric '{metric}'{_closest(metric, sorted(known))}")
        return None
    label = parse_quarter_label(row.fiscal_quarter)
    if label is None:
        bad(f"fiscal_quarter '{row.fiscal_quarter}' is not a quarter like 2026Q3 or FY2026Q3")
    return label

def read_quarterly_guidance(path: str | Path | None = None, metrics: Iterable[str] | None = None,
                            year_end_month: int = 12) -> pd.DataFrame:
    """Read and validate next-quarter guidance ranges.

    Args:
        path: the CSV (default: the shipped Amazon file).
        metrics: the metric names a row may guide (default: any); an unknown one is an error
            with the closest valid name.
        year_end_month: last month of the company's fiscal year: ``fiscal_quarter`` labels
            (``2026Q3`` or ``FY2026Q3``) are its fiscal quarters, ``period_end`` their last day.
    Returns:
        ``metric, ds, announced_on, low, high, quality`` (``ds`` = guided quarter's end).
    """
    path = Path(path) if path is not None else shipped_data_dir() / QUARTERLY_GUIDANCE_FILE
    name = str(path)
    raw = _read_csv(path, ("metric", "fiscal_quarter", "period_end", "announced_on", "low_musd", "high_musd"),
                    ("quality", "source"))
    known = set(metrics) if metrics is not None else None
    rows, problems, seen = [], [], {}
    for row in raw.itertuples(index=False):
        line, metric = row.lineno_, row.metric
        bad = lambda msg, m=metric, ln=line: problems.append(Problem(name, msg, ln, m or None))  # noqa: E731
        label = row_quarter(row, known, bad)
        if label is None:
            continue
        period = fiscal_quarter_period(label[1], label[2], year_end_month)
        end = _date(row.period_end)
        if end is None:
            bad(f"period_end '{row.period_end}' is not a date like 2026-09-30")
            continue
        if end != period.end_time.normalize():
            bad(f"period_end {end.date()} disagrees with fiscal_quarter {row.fiscal_quarter} "
                f"(expected {period.end_time.date()})")
            continue
        said = _date(row.announced_on)
        if said is None:
            bad(f"announced_on '{row.announced_on}' is not a date like 2026-07-30")
            continue
        if said > end:
            bad(f"announced_on {said.date()} is after the guided quarter's end {end.date()}: "
                "guidance is said before the quarter it guides ends")
            continue
        bounds = _bounds(row, bad)
        if bounds is None:
            continue
        if not np.isfinite(bounds[0]):
            bad("a quarterly guidance row needs low_musd and high_musd")
            continue
        key = (metric, row.fiscal_quarter, said)
        if key in seen:
            bad(f"duplicate guidance for {row.fiscal_quarter} announced on {said.date()} (also line {seen[key]})")
            continue
        seen[key] = line
        rows.append((metric, end, said, bounds[0], bounds[1], getattr(row, "quality", "") or ""))
    if problems:
        raise DataValidationError(problems)
    if not rows:
        raise DataValidationError(Problem(name, "no guidance rows"))
    out = pd.DataFrame(rows, columns=QUARTERLY_COLUMNS)
    return out.sort_values(["metric", "ds", "announced_on"]).reset_index(drop=True)


def read_annual_guidance(path: str | Path | None = None, metric: str = DEFAULT_ANNUAL_METRIC,
                         year_end_month: int = 12, metrics: Iterable[str] | None = None) -> pd.DataFrame:
    """Read and validate fiscal-year statements (capex).

    Args:
        path: the CSV (default: the shipped Amazon capex file).
        metric: the series the rows guide when the file has no ``metric`` column.
        year_end_month: last month of the fiscal year (12: calendar years).
        metrics: the metric names a row may guide (default: any).
    Returns:
        ``metric, fiscal_year, year_end, announced_on, low, high``; ``low``/``high`` NaN on
        direction-only rows.
    """
    path = Path(path) if path is not None else shipped_data_dir() / ANNUAL_GUIDANCE_FILE
    name = str(path)
    raw = _read_csv(path, ("fiscal_year", "announced_on", "low_musd", "high_musd"), ("wording", "source", "metric"))
    known = set(metrics) if metrics is not None else None
    rows, problems, seen = [], [], {}
    for row in raw.itertuples(index=False):
        line = row.lineno_
        m_name = getattr(row, "metric", "") or metric
        bad = lambda msg, m=m_name, ln=line: problems.append(Problem(name, msg, ln, m))  # noqa: E731
        if known is not None and m_name not in known:
            bad(f"unknown metric '{m_name}'{_closest(m_name, sorted(known))}")
            continue
        if not row.fiscal_year.isdigit() or len(row.fiscal_year) != 4:
            bad(f"fiscal_year '{row.fiscal_year}' is not a year like 2026")
            continue
        year = int(row.fiscal_year)
        year_end = pd.Period(year=year, month=year_end_month, freq="M").end_time.normalize()
        said = _date(row.announced_on)
        if said is None:
            bad(f"announced_on '{row.announced_on}' is not a date like 2026-07-30 "
                "(a statement that cannot be dated cannot be placed at a cutoff)")
            continue
        if said > year_end:
            bad(f"announced_on {said.date()} is after the end of fiscal {year} ({year_end.date()})")
            continue
        bounds = _bounds(row, bad)
        if bounds is None:
            continue
        key = (m_name, year, said)
        if key in seen:
            bad(f"duplicate statement about fiscal {year} announced on {said.date()} (also line {seen[key]})")
            continue
        seen[key] = line
        rows.append((m_name, year, year_end, said, bounds[0], bounds[1]))
    if problems:
        raise DataValidationError(problems)
    out = pd.DataFrame(rows, columns=ANNUAL_COLUMNS)
    return out.sort_values(["metric", "fiscal_year", "announced_on"]).reset_index(drop=True)


@dataclass(frozen=True)
class GuidanceBook:
    """Quarterly ranges and fiscal-year statements, with the no-look-ahead rule.

    Attributes:
        quarterly: `read_quarterly_guidance` frame.
        annual: `read_annual_guidance` frame.
        asof: the day this book stands on (None: everything in the files).
    """

    quarterly: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=QUARTERLY_COLUMNS))
    annual: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ANNUAL_COLUMNS))
    asof: pd.Timestamp | None = None

    @property
    def metrics(self) -> list[str]:
        return sorted(set(self.quarterly["metric"]) | set(self.annual["metric"]))

    def release_date(self, quarter_end) -> pd.Timestamp:
        """The day quarter `quarter_end` was reported: the ``announced_on`` of the guidance for
        the quarter after it; the quarter's own last day when no such row exists."""
        q = pd.Timestamp(quarter_end).normalize()
        nxt = q + FiscalCalendar.infer([q]).offset(1)
        said = self.quarterly.loc[self.quarterly["ds"] == nxt, "announced_on"]
        return pd.Timestamp(said.min()) if len(said) else q

    def known_at(self, day) -> GuidanceBook:
        """The rows announced on or before `day`."""
        day = pd.Timestamp(day)
        return GuidanceBook(self.quarterly[self.quarterly["announced_on"] <= day].reset_index(drop=True),
                            self.annual[self.annual["announced_on"] <= day].reset_index(drop=True), day)

    def at_cutoff(self, cutoff) -> GuidanceBook:
        """What a forecaster knew on the day quarter `cutoff` was reported."""
        return self.known_at(self.release_date(cutoff))

    def range_for(self, metric: str, quarter_end) -> tuple[float, float] | None:
        """The latest known (low, high) guided for `metric` in quarter `quarter_end`, or None."""
        q = self.quarterly
        rows = q[(q["metric"] == metric) & (q["ds"] == pd.Timestamp(quarter_end))]
        if rows.empty:
            return None
        r = rows.sort_values("announced_on").iloc[-1]
        return float(r["low"]), float(r["high"])

    def year_total(self, metric: str, fiscal_year: int) -> float | None:
        """Midpoint of the latest known numeric statement of `metric`'s fiscal-year total."""
        a = self.annual
        rows = a[(a["metric"] == metric) & (a["fiscal_year"] == fiscal_year) & a["low"].notna()]
        if rows.empty:
            return None
        r = rows.sort_values("announced_on").iloc[-1]
        return float((r["low"] + r["high"]) / 2)

    def fingerprint(self) -> str:
        """A short text identifying the rows (for run parameters and caches)."""
        n_q, n_a = len(self.quarterly), len(self.annual)
        last = max([*self.quarterly["announced_on"], *self.annual["announced_on"]], default=None)
        return f"{n_q}q+{n_a}y" + (f" to {pd.Timestamp(last).date()}" if last is not None else "")


def load_guidance(quarterly: str | Path | None = None, annual: str | Path | None = None,
                  metrics: Iterable[str] | None = None) -> GuidanceBook:
    """Both shipped guidance files (or the given paths) as a `GuidanceBook`.

    Args:
        quarterly, annual: CSV paths (default: the shipped Amazon files beside the data).
        metrics: valid metric names (e.g. the modelled series); unknown ones are errors.
    """
    return GuidanceBook(read_quarterly_guidance(quarterly, metrics),
                        read_annual_guidance(annual, metrics=metrics))


def guidance_files(profile, data: str | Path | None, choice: str = "auto") -> tuple[Path, ...]:
    """The guidance files a command reads (quarterly first, then the annual one if any).

    Args:
        profile: the company's `features.profile.CompanyProfile` (its ``guidance`` files), or None.
        data: the data file the command reads (None: the profile's, else the shipped one).
        choice: ``"auto"``: the profile's guidance when `data` is its data file, else the files
            beside `data` when they are there; ``"none"``: none; else a folder holding them.
    Raises:
        FileNotFoundError: `choice` names a folder without the quarterly guidance file.
    """
    if choice == "none":
        return ()
    if choice == "auto":
        data_path = Path(data) if data else (profile.data if profile is not None else None)
        if profile is not None and profile.guidance and (data_path is None or
                                                          data_path.resolve() == profile.data.resolve()):
            files = [profile.guidance.get("quarterly"), profile.guidance.get("annual")]
            return tuple(p for p in files if p is not None and p.is_file())
        folder = data_path.parent if data_path is not None else shipped_data_dir()
        if not (folder / QUARTERLY_GUIDANCE_FILE).is_file():
            return ()
    else:
        folder = Path(choice)
        if not (folder / QUARTERLY_GUIDANCE_FILE).is_file():
            raise FileNotFoundError(f"--guidance {choice}: no {QUARTERLY_GUIDANCE_FILE} there "
                                    f"(looked for {(folder / QUARTERLY_GUIDANCE_FILE).resolve()})")
    return tuple(p for p in (folder / QUARTERLY_GUIDANCE_FILE, folder / ANNUAL_GUIDANCE_FILE) if p.is_file())


def load_guidance_files(files: Iterable[Path], series_config: str | Path | None = None,
                        year_end_month: int = 12) -> GuidanceBook | None:
    """The `GuidanceBook` of `guidance_files` (None when there are none); metric names are
    checked against `series_config` (default: ``series.csv`` beside the quarterly file);
    quarters and fiscal years are those of a year ending in `year_end_month`."""
    from features.loader import read_series_config

    files = list(files)
    if not files:
        return None
    quarterly = files[0]
    cfg_path = Path(series_config) if series_config else quarterly.parent / "series.csv"
    metrics = read_series_config(cfg_path).metrics if cfg_path.is_file() else None
    book = read_quarterly_guidance(quarterly, metrics, year_end_month)
    if len(files) < 2:
        return GuidanceBook(book)
    return GuidanceBook(book, read_annual_guidance(files[1], metrics=metrics, year_end_month=year_end_month))
