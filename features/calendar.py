"""Fiscal quarters: labels, periods and period ends for any fiscal-year-end month.

A company's fiscal year ends in a fixed month (December for Amazon, January for Snowflake);
its quarters end three, six, nine and twelve months after the fiscal year starts, on month
ends. A fiscal year is named by the calendar year it ends in (Snowflake's fiscal 2026 runs
from February 2025 to January 2026), which is pandas' convention for ``Q-JAN`` periods::

    >>> fiscal_quarter(pd.Timestamp("2025-04-30"), 1)
    Period('2026Q1', 'Q-JAN')
    >>> quarter_label(_, "fiscal")
    'FY2026Q1'

Two label styles: ``calendar`` (``2024Q3``, fiscal year = calendar year, the shipped Amazon
file) and ``fiscal`` (``FY2026Q1``, any fiscal-year-end month).
"""

from __future__ import annotations

import re

import pandas as pd

MONTHS = "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()
_LABEL = re.compile(r"^(FY)?(\d{4})Q([1-4])$")


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
