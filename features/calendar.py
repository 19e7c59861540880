"""Fiscal quarters: labels, periods and period ends for any fiscal-year-end month.

A company's fiscal year ends in a fixed month (December for Amazon, January for Snowflake);
its quarters end three, six, nine and twelve months after the fiscal year starts, on month
ends. A fiscal year is named by the calendar year it ends in (Snowflake's fiscal 2026 runs
from February 2025 to January 2026), which is pandas' convention for ``Q-JAN`` periods::

    >>> fiscal_quarter(pd.Timestamp("2025-04-30"), 1)
    Period('2026Q1', 'Q-JAN')
    >>> quarter_label(_, "fiscal")
    'FY2026Q1'

Two label styles: ``calendar`` (``2024Q3``, fiscal year = calendar year) and ``fiscal``
(``FY2026Q1``, any fiscal-year-end month).

`FiscalCalendar` is the one object the rest of the library asks about quarters: the pandas
frequency of the quarter ends (``QE-JAN``), the offset k quarters on, the number of quarters
between two quarter ends, the fiscal year and the quarter of the fiscal year of a date. A
company profile names its fiscal-year-end month; a plain frame's calendar is inferred from
its quarter ends (`FiscalCalendar.infer`), which fixes every quarter-to-quarter step but can
only guess the fiscal-year numbering (December, January or February).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.errors import OptionError

__all__ = ["fiscal_freq", "fiscal_quarter", "FiscalCalendar", "implied_year_end_month", "MONTHS",
           "parse_quarter_label", "period_end", "quarter", "quarter_label", "SEASON_LENGTH",
           "year_end_month"]

MONTHS = "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()
_LABEL = re.compile(r"^(FY)?(\d{4})Q([1-4])$")
#: Quarters in a year: the season length of every seasonal model and scale in the library.
SEASON_LENGTH = 4


def fiscal_freq(year_end_month: int) -> str:
    """``12`` -> ``"Q-DEC"``, ``1`` -> ``"Q-JAN"``: the pandas quarterly frequency of that calendar."""
    return f"Q-{MONTHS[year_end_month - 1]}"


def year_end_month(period: pd.Period) -> int:
    """The fiscal-year-end month of a quarterly period's frequency (``Q-JAN`` -> 1)."""
    return (period.end_time.month + 3 * (4 - period.quarter) - 1) % 12 + 1


def parse_quarter_label(text: str) -> tuple[str, int, int] | None:
    """``"2024Q3"`` -> ``("calendar", 2024, 3)``; ``"FY2026Q1"`` -> ``("fiscal", 2026, 1)``; else None."""
    m = _LABEL.match(text)
    if not m:
        return None
    return ("fiscal" if m.group(1) else "calendar", int(m.group(2)), int(m.group(3)))


def quarter(year: int, q: int, year_end_month: int = 12) -> pd.Period:
    """Fiscal quarter `q` of fiscal year `year` (named by the calendar year it ends in)."""
    return pd.Period(year=year, quarter=q, freq=fiscal_freq(year_end_month))


def fiscal_quarter(end: pd.Timestamp, year_end_month: int) -> pd.Period:
    """The fiscal quarter that ends on `end` (a month end three, six, ... months into the year)."""
    return pd.Period(end, freq=fiscal_freq(year_end_month))


def implied_year_end_month(end: pd.Timestamp, q: int) -> int:
    """The fiscal-year-end month for which a quarter `q` ends in `end`'s month."""
    return (end.month + 3 * (4 - q) - 1) % 12 + 1


def quarter_label(period: pd.Period, style: str = "calendar") -> str:
    """``Period('2026Q1', 'Q-JAN')`` -> ``"FY2026Q1"`` (fiscal) or ``"2026Q1"`` (calendar)."""
    text = f"{period.qyear}Q{period.quarter}"
    return f"FY{text}" if style == "fiscal" else text


def period_end(period: pd.Period) -> pd.Timestamp:
    """The last day of a quarterly period, at midnight."""
    return period.end_time.normalize()


@dataclass(frozen=True)
class FiscalCalendar:
    """Quarters of a fiscal year ending in month `year_end_month` (12: calendar quarters).

    Dates are quarter-end timestamps (``ds``); everything here is vectorised over arrays of them.
    """

    year_end_month: int = 12

    def __post_init__(self):
        if not 1 <= int(self.year_end_month) <= 12:
            raise OptionError(f"fiscal-year-end month must be 1..12, got {self.year_end_month}")

    @classmethod
    def infer(cls, ds) -> FiscalCalendar:
        """The calendar of quarter ends `ds`: the year-end month among December, January and
        February that falls on the same months (a fiscal year ending in March, June or September
        has the quarter ends of December's; its fiscal-year numbering needs a profile)."""
        months = pd.DatetimeIndex(pd.to_datetime(np.atleast_1d(ds))).month
        if len(months) == 0:
            return cls()
        phase = int(months[0]) % 3
        return cls({0: 12, 1: 1, 2: 2}[phase])

    @property
    def freq(self) -> str:
        """The pandas frequency of the quarter ends (``QE-DEC``, ``QE-JAN``), for date ranges,
        statsforecast and mlforecast."""
        return f"QE-{MONTHS[self.year_end_month - 1]}"

    @property
    def period_freq(self) -> str:
        """The pandas period frequency of the fiscal quarters (``Q-DEC``, ``Q-JAN``)."""
        return fiscal_freq(self.year_end_month)

    def offset(self, k: int = 1) -> pd.DateOffset:
        """`k` quarter ends on (``ds + offset(k)``; negative: back)."""
        return pd.offsets.QuarterEnd(int(k), startingMonth=self.year_end_month)

    def on_grid(self, ds) -> bool:
        """True if every date of `ds` is a quarter end of this calendar."""
        idx = pd.DatetimeIndex(pd.to_datetime(np.atleast_1d(ds)))
        return bool(idx.is_month_end.all() and ((idx.month - self.year_end_month) % 3 == 0).all())

    def periods(self, ds) -> pd.PeriodIndex:
        """The fiscal quarters of quarter ends `ds`."""
        return pd.PeriodIndex(pd.DatetimeIndex(pd.to_datetime(np.atleast_1d(ds))), freq=self.period_freq)

    def period(self, ts) -> pd.Period:
        """The fiscal quarter of one date."""
        return pd.Period(pd.Timestamp(ts), freq=self.period_freq)

    def ordinals(self, ds) -> np.ndarray:
        """Quarters as integers (consecutive quarters differ by 1)."""
        return np.asarray(self.periods(ds).asi8)

    def steps(self, start, end) -> np.ndarray:
        """Quarters from `start` to `end`, element-wise (0 for the same quarter)."""
        return self.ordinals(end) - self.ordinals(start)

    def fiscal_year(self, ds) -> np.ndarray:
        """The fiscal year of each date (named by the calendar year it ends in)."""
        return np.asarray(self.periods(ds).qyear)

    def quarter_of_year(self, ds) -> np.ndarray:
        """The quarter of the fiscal year of each date, 1..4."""
        return np.asarray(self.periods(ds).quarter)

    def year_quarters(self, year: int) -> pd.DatetimeIndex:
        """The four quarter ends of fiscal year `year`."""
        return pd.DatetimeIndex([period_end(quarter(int(year), q, self.year_end_month)) for q in range(1, 5)])

    def year_end(self, year: int) -> pd.Timestamp:
        """The last day of fiscal year `year`."""
        return period_end(quarter(int(year), 4, self.year_end_month))

    def label(self, ts, style: str | None = None) -> str:
        """``2024Q3`` (calendar style) or ``FY2026Q1``; `style` None: calendar style for a
        December year end, fiscal style otherwise."""
        style = style or ("calendar" if self.year_end_month == 12 else "fiscal")
        return quarter_label(self.period(ts), style)

    def labels(self, ds, style: str | None = None) -> list[str]:
        return [self.label(t, style) for t in pd.DatetimeIndex(pd.to_datetime(np.atleast_1d(ds)))]

    def parse(self, text: str) -> pd.Period:
        """A ``2024Q3`` or ``FY2026Q1`` label as a fiscal quarter of this calendar."""
        parsed = parse_quarter_label(str(text).strip().upper())
        if parsed is None:
            raise OptionError(f"'{text}' is not a quarter like 2024Q3 or FY2024Q3")
        return quarter(parsed[1], parsed[2], self.year_end_month)
