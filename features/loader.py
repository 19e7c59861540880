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
(float, USD millions), sorted by series and date (see `features.schema.SeriesFrame`).
"""

from __future__ import annotations

import difflib
import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.calendar import (
    implied_year_end_month,
    parse_quarter_label,
    quarter,
    quarter_label,
)
from features.errors import DataValidationError, DataWarning, Problem

QUARTERLY_FILE = "amzn_quarterly.csv"
ANNUAL_FILE = "amzn_annual.csv"
CONFIG_FILE = "series.csv"
REQUIRED_QUARTERLY = ("metric", "fiscal_quarter", "period_end", "value_musd")
REQUIRED_ANNUAL = ("metric", "fiscal_year", "period_end", "value_musd")
OPTIONAL = ("source", "vintage")
CONFIG_COLUMNS = ("metric", "model_from", "nonnegative", "description")
_MONTH_NAMES = ("January February March April May June July August September October November "
                "December").split()
TTM_SUFFIX = "_ttm"
#: A value this many times larger or smaller than its neighbours looks like a unit mix-up.
UNIT_RATIO = 200.0


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


@dataclass(frozen=True)
class SeriesConfig:
    """Per-metric modelling settings read from ``series.csv``."""

    model_from: dict[str, pd.Period | None]
    nonnegative: dict[str, bool]
    description: dict[str, str]
    path: Path | None = None

    @property
    def metrics(self) -> list[str]:
        return list(self.model_from)

    @property
    def modelled(self) -> list[str]:
        return [m for m, p in self.model_from.items() if p is not None]


# --------------------------------------------------------------------------- file reading
def _read_csv(path: Path, required: tuple[str, ...], optional: tuple[str, ...]) -> pd.DataFrame:
    """Read a CSV as strings and check its columns; the frame gets a 1-based ``lineno_``."""
    name = str(path)
    if not path.is_file():
        raise DataValidationError(Problem(name, f"file not found (looked for {path.resolve()})"))
    try:
        # blank lines are kept (then dropped below) so that row numbers stay file line numbers
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True,
                          skip_blank_lines=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataValidationError(Problem(name, f"not a readable CSV file ({exc})")) from exc
    raw.columns = [c.strip() for c in raw.columns]
    problems = []
    known = set(required) | set(optional)
    for col in required:
        if col not in raw.columns:
            problems.append(Problem(name, f"missing column '{col}'{_closest(col, raw.columns)}", 1))
    for col in raw.columns:
        if col not in known:
            problems.append(
                Problem(name, f"unknown column '{col}'{_closest(col, sorted(known))}", 1)
            )
    if problems:
        raise DataValidationError(problems)
    raw = raw.apply(lambda s: s.str.strip())
    raw["lineno_"] = np.arange(2, len(raw) + 2)
    raw = raw[raw.drop(columns="lineno_").ne("").any(axis=1)].reset_index(drop=True)
    return raw


def _closest(word: str, options) -> str:
    match = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _parse_quarter(text: str) -> pd.Period | None:
    """A ``2019Q1`` or ``FY2019Q1`` label as a calendar-quarter period holding the label's year
    and quarter numbers; `_rebase` puts it in the data file's fiscal calendar."""
    parsed = parse_quarter_label(text)
    return quarter(parsed[1], parsed[2]) if parsed else None


def _rebase(period: pd.Period | None, freq: str) -> pd.Period | None:
    """The quarter with the same fiscal year and quarter numbers in the calendar `freq`."""
    if period is None or period.freqstr == freq:
        return period
    return pd.Period(year=period.qyear, quarter=period.quarter, freq=freq)


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


# --------------------------------------------------------------------------- row checks
def _check_rows(
    raw: pd.DataFrame,
    name: str,
    period_col: str,
    config: SeriesConfig | None,
) -> tuple[pd.DataFrame, list[Problem]]:
    """Parse and check each row; returns the parsed frame (bad rows dropped) and the problems."""
    problems: list[Problem] = []
    known = set(config.metrics) if config is not None else None
    metrics, periods, ends, values, lines = [], [], [], [], []
    annual = period_col == "fiscal_year"
    style = year_end = None  # label style and fiscal-year-end month, set by the first quarterly row
    first_line = None
    for row in raw.itertuples(index=False):
        line, metric = row.lineno_, row.metric
        bad = lambda msg, m=metric, ln=line: problems.append(Problem(name, msg, ln, m or None))  # noqa: E731
        if not metric:
            bad("empty metric name")
            continue
        if known is not None and metric not in known:
            hint = _closest(metric, sorted(known))
            bad(f"unknown metric '{metric}'{hint}; known metrics are listed in {CONFIG_FILE}")
            continue
        label = getattr(row, period_col)
        parsed_label = None
        if annual:
            period = pd.Period(year=int(label), freq="Y") if label.isdigit() else None
            if period is None:
                bad(f"fiscal_year '{label}' is not a year like 2024")
                continue
        else:
            parsed_label = parse_quarter_label(label)
            if parsed_label is None:
                bad(f"fiscal_quarter '{label}' is not a quarter like 2024Q3 (or FY2024Q3)")
                continue
            if style is not None and parsed_label[0] != style:
                bad(f"fiscal_quarter '{label}' is labelled in another style than line {first_line} "
                    f"({'FY2024Q3' if style == 'fiscal' else '2024Q3'} style); use one style in a file")
                continue
        try:
            end = pd.Timestamp(row.period_end)
        except (ValueError, TypeError):
            end = None
        if end is None or pd.isna(end):
            bad(f"period_end '{row.period_end}' is not a date like 2024-09-30")
            continue
        if parsed_label is not None and parsed_label[0] == "fiscal":
            if not end.is_month_end:
                bad(f"period_end {end.date()} is not a month end (fiscal quarters end on the last day of a month)")
                continue
            implied = implied_year_end_month(end, parsed_label[2])
            if year_end is not None and implied != year_end:
                bad(f"period_end {end.date()} puts {label} in a fiscal year ending in {_MONTH_NAMES[implied - 1]}, "
                    f"but line {first_line} has fiscal years ending in {_MONTH_NAMES[year_end - 1]}")
                continue
            period = quarter(parsed_label[1], parsed_label[2], implied)
        else:
            if not end.is_quarter_end:
                bad(f"period_end {end.date()} is not a quarter end (Mar 31, Jun 30, Sep 30, Dec 31)")
                continue
            period = period if annual else quarter(parsed_label[1], parsed_label[2])
            implied = 12
        expected = period.end_time.normalize()
        if end.normalize() != expected:
            bad(f"period_end {end.date()} disagrees with {period_col} {label} (expected {expected.date()})")
            continue
        if parsed_label is not None and style is None:
            style, year_end, first_line = parsed_label[0], implied, line
        if row.value_musd == "":
            bad("empty value_musd")
            continue
        try:
            value = float(row.value_musd.replace(",", ""))
        except ValueError:
            bad(f"value_musd '{row.value_musd}' is not a number")
            continue
        if not np.isfinite(value):
            bad(f"value_musd '{row.value_musd}' is not a finite number")
            continue
        nonneg = config.nonnegative.get(metric, False) if config else metric.startswith("net_sales")
        if nonneg and value < 0:
            bad(f"negative value {value:g} for a series that cannot be negative")
            continue
        metrics.append(metric)
        periods.append(period)
        ends.append(end.normalize())
        values.append(value)
        lines.append(line)
    parsed = pd.DataFrame(
        {"metric": metrics, "period": periods, "ds": ends, "y": values, "lineno_": lines}
    )
    parsed.attrs["label_style"] = style or "calendar"
    if "vintage" in raw.columns and len(parsed):
        text = raw.set_index("lineno_").loc[parsed["lineno_"], "vintage"].to_numpy()
        iso = [_iso_date(t) for t in text]  # so that vintages sort as dates, '' (original) first
        for t, v, line, metric in zip(text, iso, parsed["lineno_"], parsed["metric"]):
            if v is None:
                problems.append(Problem(name, f"vintage '{t}' is not a date like 2024-10-31", int(line), metric))
        parsed["vintage"] = iso
    return parsed, problems


def _iso_date(text: str) -> str | None:
    """``YYYY-MM-DD`` of a date string (``''`` stays ``''``), None if it is not a date."""
    if not text:
        return ""
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError):
        return None
    return None if pd.isna(ts) else ts.strftime("%Y-%m-%d")


def _dedupe(parsed: pd.DataFrame, name: str, period_col: str) -> tuple[pd.DataFrame, list[Problem]]:
    """A period given twice is an error unless the values agree.

    Two rows with the same value (two sources corroborating one figure, as the shipped
    annual file does for FY2016 net capex) are kept once. With a ``vintage`` column, a later
    vintage is a restatement and replaces the earlier one.
    """
    keys = ["metric", "period"] + (["vintage"] if "vintage" in parsed else [])
    style = parsed.attrs.get("label_style", "calendar")
    dup = parsed[parsed.duplicated(keys, keep=False)]
    problems = []
    for (metric, period, *_), g in dup.groupby(keys, sort=False):
        if g["y"].nunique() == 1:
            continue
        lines = ", ".join(str(x) for x in g["lineno_"])
        values = ", ".join(f"{v:g}" for v in g["y"])
        problems.append(
            Problem(
                name,
                f"duplicate {period_col} {_label(period, style)} with different values {values} (lines {lines})",
                int(g["lineno_"].iloc[-1]),
                metric,
            )
        )
    parsed = parsed.drop_duplicates(keys, keep="first")
    if "vintage" in parsed:
        parsed = parsed.sort_values(["metric", "period", "vintage"])
        parsed = parsed.drop_duplicates(["metric", "period"], keep="last")
    return parsed, problems


def _label(period: pd.Period, style: str) -> str:
    return quarter_label(period, style) if isinstance(period, pd.Period) and period.freqstr.startswith("Q") \
        else str(period)


def _check_gaps(parsed: pd.DataFrame, name: str, config: SeriesConfig | None) -> list[Problem]:
    problems = []
    style = parsed.attrs.get("label_style", "calendar")
    for metric, g in parsed.groupby("metric", sort=False):
        last = g["period"].max()
        start = _rebase(config.model_from.get(metric), last.freqstr) if config else g["period"].min()
        if start is None:
            continue
        have = set(g["period"])
        if last < start:  # the series would silently vanish from the modelling frame
            problems.append(
                Problem(
                    name,
                    f"model_from {_label(start, style)} is after the last reported quarter {_label(last, style)}: "
                    "nothing to model "
                    f"(set model_from in {CONFIG_FILE} to a reported quarter, or leave it empty)",
                    int(g.loc[g["period"] == last, "lineno_"].iloc[0]),
                    metric,
                )
            )
            continue
        expected = pd.period_range(start, last, freq=last.freqstr)
        missing = [p for p in expected if p not in have]
        if missing:
            shown = ", ".join(_label(p, style) for p in missing[:8]) + (" ..." if len(missing) > 8 else "")
            after = g[g["period"] > missing[0]]
            line = int(after["lineno_"].min()) if len(after) else None
            hint = (
                f"; a series may only start modelling after its last hole: set model_from in "
                f"{CONFIG_FILE}"
                + (" (no series config was found beside the data file)" if config is None else "")
            )
            problems.append(
                Problem(
                    name,
                    f"missing quarter(s) {shown} after the first modelled quarter {_label(start, style)}{hint}",
                    line,
                    metric,
                )
            )
    return problems


def _warn_units(parsed: pd.DataFrame, name: str, config: SeriesConfig | None) -> None:
    """Warn about a value ~1000x off both its neighbouring quarters and the series median.

    Too large is checked for every series; too small only for non-negative ones (income and
    cash flow legitimately pass near zero). A value of exactly zero is a reported zero, not a
    unit mix-up.
    """
    for metric, g in parsed.sort_values("period").groupby("metric", sort=False):
        y = g["y"].abs().to_numpy()
        overall = np.median(y)
        nonneg = config.nonnegative.get(metric, False) if config else metric.startswith("net_sales")
        for i in range(len(y)):
            neigh = np.r_[y[max(0, i - 2) : i], y[i + 1 : i + 3]]
            local = np.median(neigh) if len(neigh) else 0.0
            if local <= 0 or overall <= 0 or y[i] == 0:
                continue
            big = y[i] >= UNIT_RATIO * max(local, overall)
            small = nonneg and y[i] * UNIT_RATIO <= min(local, overall)
            if big or small:
                warnings.warn(
                    str(
                        Problem(
                            name,
                            f"value {g['y'].iloc[i]:g} is {y[i] / local:.3g}x the median of its "
                            "neighbouring quarters: a unit mix-up (thousands vs millions)?",
                            int(g["lineno_"].iloc[i]),
                            metric,
                        )
                    ),
                    DataWarning,
                    stacklevel=3,
                )


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
    return long.sort_values(["unique_id", "ds"]).reset_index(drop=True)


def trailing_twelve_months(df: pd.DataFrame, series: str = "free_cash_flow") -> pd.DataFrame:
    """Trailing-twelve-month sums of one quarterly series, as ``<series>_ttm``.

    A TTM value exists only where the four quarters ending there are all present.
    """
    s = df[df["unique_id"] == series].sort_values("ds")
    if s.empty:
        raise ValueError(f"series '{series}' is not in the frame")
    y = s["y"].rolling(4).sum()
    out = pd.DataFrame({"unique_id": series + TTM_SUFFIX, "ds": s["ds"].to_numpy(), "y": y.to_numpy()})
    return out.dropna().reset_index(drop=True)


def data_vintage(path: str | Path | None = None, extra_files=()) -> dict[str, str]:
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
    return {"data_sha256": digest, "data_last_quarter": last, "vintage": f"{last}-{digest[:12]}"}
