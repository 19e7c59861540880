"""Row-by-row validation of the reported-data files (the checks behind `features.loader`).

Every check names the file, the line, the series and the problem (`features.errors.Problem`):
missing or unknown columns (with the closest valid name), unknown metrics, quarter labels and
period ends that disagree or are not quarter ends of one fiscal calendar, duplicate quarters
with different values, gaps after a series' first modelled quarter, non-numeric, empty or
negative values; a value ~1000x off its neighbours (thousands vs millions) is a `DataWarning`.
"""

from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.calendar import implied_year_end_month, parse_quarter_label, quarter, quarter_label
from features.errors import DataValidationError, DataWarning, Problem

__all__ = ["CONFIG_FILE", "SeriesConfig", "UNIT_RATIO"]

CONFIG_FILE = "series.csv"


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

_MONTH_NAMES = ("January February March April May June July August September October November "
                "December").split()


#: A value this many times larger or smaller than its neighbours looks like a unit mix-up.
UNIT_RATIO = 200.0


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
    # a file repeats each quarter once per series: parse each date and quarter once
    dates: dict[str, pd.Timestamp | None] = {}
    quarters: dict[tuple[int, int, int], tuple[pd.Period, pd.Timestamp]] = {}
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
        if row.period_end not in dates:
            dates[row.period_end] = _date(row.period_end)
        end = dates[row.period_end]
        if end is None:
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
        else:
            if not end.is_quarter_end:
                bad(f"period_end {end.date()} is not a quarter end (Mar 31, Jun 30, Sep 30, Dec 31)")
                continue
            implied = 12
        if annual:
            expected = period.end_time.normalize()
        else:
            key = (parsed_label[1], parsed_label[2], implied)
            if key not in quarters:
                q = quarter(*key)
                quarters[key] = (q, q.end_time.normalize())
            period, expected = quarters[key]
        if end != expected:
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
        ends.append(end)
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


def _date(text: str) -> pd.Timestamp | None:
    """The day `text` names (time of day dropped), None if it is not a date."""
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError):
        return None
    return None if pd.isna(ts) else ts.normalize()


def _iso_date(text: str) -> str | None:
    """``YYYY-MM-DD`` of a date string (``''`` stays ``''``), None if it is not a date."""
    if not text:
        return ""
    ts = _date(text)
    return None if ts is None else ts.strftime("%Y-%m-%d")


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
        if overall <= 0:
            continue
        nonneg = config.nonnegative.get(metric, False) if config else metric.startswith("net_sales")
        # the two quarters either side of each (fewer at the ends): a window of five, centre dropped
        padded = np.r_[np.full(2, np.nan), y, np.full(2, np.nan)]
        neigh = np.delete(np.lib.stride_tricks.sliding_window_view(padded, 5), 2, axis=1)
        have = ~np.isnan(neigh).all(axis=1)
        local = np.zeros(len(y))
        if have.any():
            local[have] = np.nanmedian(neigh[have], axis=1)
        ok = (local > 0) & (y != 0)
        big = y >= UNIT_RATIO * np.maximum(local, overall)
        small = nonneg & (y * UNIT_RATIO <= np.minimum(local, overall))
        for i in np.flatnonzero(ok & (big | small)):
            warnings.warn(
                str(
                    Problem(
                        name,
                        f"value {g['y'].iloc[i]:g} is {y[i] / local[i]:.3g}x the median of its "
                        "neighbouring quarters: a unit mix-up (thousands vs millions)?",
                        int(g["lineno_"].iloc[i]),
                        metric,
                    )
                ),
                DataWarning,
                stacklevel=3,
            )
