"""The street's estimates as data: consensus forecasts of a company's quarters, dated.

One CSV per company (named by the profile's ``consensus`` key), one row per (page, quarter,
metric) as printed, every conflicting row kept::

    fiscal_quarter,metric,consensus_value,published,consensus_timing[,provider,source_url,
        confirmations,confirming_origins,reported_value_on_page,eps_basis,notes]
    2025Q3,net_sales_total,177800.0,2025-10-29,pre-report,LSEG,https://...,3,...

Validated like the reported quarters (`DataValidationError` naming file, line, metric and
problem): an unknown metric (with the closest name), a quarter label that is not one, a value
or a reported value that is not a number, a missing or malformed ``published`` date, an
unknown ``consensus_timing``, a ``pre-report`` row published before its quarter ended or an
``early`` one published after it without saying it is a retrospective mention (the timing
says which side of the quarter's end the estimate was made), ``confirmations`` that is not a whole number, an ``eps_basis`` on a money metric, an
unknown basis, a ``pre-split`` per-share row with no later split in the profile (or a split
ratio that disagrees with the one the row states), a per-share row of a quarter before a split
that does not say its basis, and the same page twice for one quarter and metric.

Per-share values are put on today's share count: a ``pre-split`` value is divided by the
ratios of the profile's splits effective after the page was published (Amazon: 20-for-1,
2022-06-06); ``post-split`` and ``split-adjusted`` values are kept.

The no-look-ahead rule (`ConsensusBook.at`): a forecaster standing on day ``d`` sees the rows
published on or before ``d``, never a later page, whatever quarter it is about.

Which row stands for a quarter (`ConsensusBook.select`), the rule in one place:

1. candidates: ``pre-report`` rows whose ``notes`` carry no quality flag (`QUALITY_FLAGS`:
   low reliability, machine-written or machine-translated, LLM pages, approximate or suspect
   figures, garbled text, adjusted / normalised EPS bases) and whose basis is not
   ``split-adjusted`` (a later restatement of the number, not the estimate as printed);
2. published by the quarter's report day (the release date, when the caller knows it, else the
   first page of the file that prints the reported value) and by the book's ``asof`` day; a
   recap printed on the report day quotes the estimate the release was judged against;
3. the row with the most ``confirmations`` (other independent outlets printing the same
   value), then the latest ``published``, then the provider order of `PROVIDER_ORDER`, then
   the first line of the file.

On the shipped Amazon file this picks the same value as the curated
``amzn_consensus_selected.csv`` (whose rule also counts outlets and ranks providers, but
ignores dates) for 143 of the 175 quarter-metric pairs both have; where they differ the
values are within the rounding of two providers (e.g. $44.70B vs $44.68B).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.calendar import quarter as fiscal_quarter_period
from features.errors import DataValidationError, Problem
from features.guidance import _date, _number, row_quarter  # the same reading of dates and numbers as guidance
from features.validation import _closest, _read_csv

__all__ = ["BASES", "COLUMNS", "ConsensusBook", "load_consensus", "OPTIONAL", "PER_SHARE_METRICS",
           "profile_consensus", "PROVIDER_ORDER", "quality_flag", "QUALITY_FLAGS", "read_consensus",
           "REQUIRED", "SELECTED_COLUMNS", "Split", "TIMINGS"]

REQUIRED = ("fiscal_quarter", "metric", "consensus_value", "published", "consensus_timing")
OPTIONAL = ("provider", "source_url", "confirmations", "confirming_origins", "reported_value_on_page",
            "eps_basis", "notes")
TIMINGS = ("pre-report", "early")
#: Per-share metrics a consensus file may hold beside the company's series (USD per share).
PER_SHARE_METRICS = ("eps_diluted", "eps_basic")
#: ``eps_basis`` values (a ``pre-split`` text may go on, e.g. "pre-split (divide by 20 ...)").
BASES = ("pre-split", "post-split", "split-adjusted")
#: Words in ``notes`` that take a row out of the candidates (matched case-insensitively).
QUALITY_FLAGS = ("low reliability", "machine-", "auto-generated", "llm", "approximate", "(~)", "suspect",
                 "garbled", "normalized", "ex-rivian", "adjusted eps")
#: Tie-break between providers (first wins); matched as a case-insensitive substring.
PROVIDER_ORDER = ("LSEG", "Refinitiv", "FactSet", "StreetAccount", "Bloomberg", "S&P Capital IQ", "Visible Alpha",
                  "Zacks", "Yahoo Finance", "Benzinga", "Barchart")
_DIVIDE = re.compile(r"divide by (\d+(?:\.\d+)?)", re.I)

COLUMNS = ["metric", "ds", "value", "printed", "published", "timing", "confirmations", "provider", "quality",
           "eps_basis", "reported", "source_url", "line"]
SELECTED_COLUMNS = ["unique_id", "ds", "value", "published", "provider", "confirmations", "candidates", "low",
                    "high", "line", "report_day"]


@dataclass(frozen=True)
class Split:
    """A stock split: from `effective` on, one old share is `ratio` new ones."""

    effective: pd.Timestamp
    ratio: float




def quality_flag(notes: str, basis: str = "") -> str:
    """The first `QUALITY_FLAGS` word in `notes` (or ``split-adjusted`` for such a basis); ``""``
    for a usable row."""
    low = (notes or "").lower()
    for flag in QUALITY_FLAGS:
        if flag in low:
            return flag.strip("-() ")
    return "split-adjusted" if basis == "split-adjusted" else ""


def _provider_rank(provider: str) -> int:
    p = (provider or "").lower()
    return next((i for i, name in enumerate(PROVIDER_ORDER) if name.lower() in p), len(PROVIDER_ORDER))


def read_consensus(path: str | Path, metrics: Iterable[str] | None = None, year_end_month: int = 12,
                   splits: Sequence[Split] = ()) -> pd.DataFrame:
    """Read and validate a consensus file (see the module docstring).

    Args:
        path: the CSV.
        metrics: the company's metric names (e.g. ``series.csv``); `PER_SHARE_METRICS` are always
            allowed. None: any name.
        year_end_month: last month of the fiscal year (quarter labels are fiscal quarters).
        splits: the company's stock splits (to put per-share values on today's share count).
    Returns:
        `COLUMNS`: ``ds`` the quarter's end, ``value`` as compared (split-adjusted), ``printed``
        as on the page, ``quality`` the flag that takes a row out of the candidates (``""``: none),
        ``reported`` the outcome the page printed (NaN: none), ``line`` the file line.
    """
    path = Path(path)
    name = str(path)
    raw = _read_csv(path, REQUIRED, OPTIONAL)
    known = (set(metrics) | set(PER_SHARE_METRICS)) if metrics is not None else None
    splits = sorted(splits, key=lambda s: s.effective)
    rows, problems, seen = [], [], {}
    for row in raw.itertuples(index=False):
        line, metric = row.lineno_, row.metric
        bad = lambda msg, m=metric, ln=line: problems.append(Problem(name, msg, ln, m or None))  # noqa: E731
        label = row_quarter(row, known, bad)
        if label is None:
            continue
        end = fiscal_quarter_period(label[1], label[2], year_end_month).end_time.normalize()
        printed = _number(row.consensus_value)
        if printed is None:
            bad(f"consensus_value '{row.consensus_value}' is not a number")
            continue
        published = _date(row.published)
        if published is None:
            bad(f"published '{row.published}' is not a date like 2026-04-28 "
                "(an estimate that cannot be dated cannot be placed at a forecast origin)")
            continue
        timing = row.consensus_timing
        if timing not in TIMINGS:
            bad(f"consensus_timing '{timing}' is not one of {', '.join(TIMINGS)}{_closest(timing, TIMINGS)}")
            continue
        if timing == "pre-report" and published <= end:
            bad(f"a pre-report estimate is published after its quarter ends, but this one is dated "
                f"{published.date()}, on or before {row.fiscal_quarter}'s end {end.date()} (say 'early')")
            continue
        notes = getattr(row, "notes", "") or ""
        if timing == "early" and published > end and "retrospective" not in notes.lower():
            bad(f"an early estimate is published before its quarter ends, but this one is dated "
                f"{published.date()}, after {row.fiscal_quarter}'s end {end.date()} (say 'pre-report', or "
                "'retrospective mention' in notes for a page that recalls an earlier estimate)")
            continue
        conf_text = getattr(row, "confirmations", "") or "0"
        if not conf_text.isdigit():
            bad(f"confirmations '{conf_text}' is not a whole number of other outlets")
            continue
        reported_text = getattr(row, "reported_value_on_page", "") or ""
        reported = _number(reported_text) if reported_text else np.nan
        if reported is None:
            bad(f"reported_value_on_page '{reported_text}' is not a number")
            continue
        basis = (getattr(row, "eps_basis", "") or "").strip()
        value = _per_share_value(metric, printed, basis, published, end, splits, bad)
        if value is None:
            continue
        url = getattr(row, "source_url", "") or ""
        key = (metric, end, url, published, timing) if url else None
        if key is not None and key in seen:
            bad(f"the same page ({url}) twice for {row.fiscal_quarter}, both {timing} (also line {seen[key]})")
            continue
        if key is not None:
            seen[key] = line
        rows.append((metric, end, value, printed, published, timing, int(conf_text),
                     getattr(row, "provider", "") or "", quality_flag(notes, basis), basis, reported, url, line))
    if problems:
        raise DataValidationError(problems)
    if not rows:
        raise DataValidationError(Problem(name, "no consensus rows"))
    out = pd.DataFrame(rows, columns=COLUMNS)
    return out.sort_values(["metric", "ds", "published", "line"]).reset_index(drop=True)


def _per_share_value(metric, printed, basis, published, end, splits, bad) -> float | None:
    """`printed` on today's share count (money metrics unchanged); None after `bad`."""
    if metric not in PER_SHARE_METRICS:
        if basis:
            bad(f"eps_basis '{basis}' on a money metric (only per-share metrics have a share basis)")
            return None
        return printed
    kind = next((b for b in BASES if basis.lower().startswith(b)), None)
    if basis and kind is None:
        bad(f"eps_basis '{basis}' is not one of {', '.join(BASES)}")
        return None
    later = [s for s in splits if s.effective > published]
    if kind is None:
        if any(s.effective > end for s in splits):
            bad(f"eps_basis is empty for a per-share estimate of a quarter before the split of "
                f"{later[0].effective.date() if later else splits[-1].effective.date()}: say pre-split or split-adjusted")
            return None
        return printed
    if kind != "pre-split":
        return printed
    if not later:
        bad(f"a pre-split estimate published {published.date()} but no split after that date in the company "
            "profile (add it under consensus.splits)")
        return None
    ratio = float(np.prod([s.ratio for s in later]))
    stated = _DIVIDE.search(basis)
    if stated and float(stated.group(1)) != ratio:
        bad(f"eps_basis says divide by {stated.group(1)} but the profile's splits after {published.date()} "
            f"make {ratio:g}")
        return None
    return printed / ratio


@dataclass(frozen=True)
class ConsensusBook:
    """The consensus rows of one company, with the no-look-ahead rule and the selection rule.

    Attributes:
        rows: `read_consensus` frame.
        asof: the day this book stands on (None: every row of the file).
        report_days: quarter end -> the day that quarter was reported (e.g. from the guidance
            book's release dates); quarters not in it fall back to the first page that prints
            the reported value.
    """

    rows: pd.DataFrame
    asof: pd.Timestamp | None = None
    report_days: Mapping[pd.Timestamp, pd.Timestamp] = field(default_factory=dict)

    @property
    def metrics(self) -> list[str]:
        return sorted(set(self.rows["metric"]))

    def at(self, day) -> ConsensusBook:
        """The rows published on or before `day` (the report days are kept: they are dates of
        the calendar, not estimates)."""
        day = pd.Timestamp(day)
        return ConsensusBook(self.rows[self.rows["published"] <= day].reset_index(drop=True), day, self.report_days)

    def with_report_days(self, days: Mapping) -> ConsensusBook:
        """The same rows with the report days `days` (quarter end -> day)."""
        days = {pd.Timestamp(k): pd.Timestamp(v) for k, v in days.items()}
        return ConsensusBook(self.rows, self.asof, {**self.report_days, **days})

    def report_day(self, quarter_end) -> pd.Timestamp | None:
        """The day quarter `quarter_end` was reported: `report_days`, else the first page of the
        book printing its reported value, else None (not reported by the book's pages)."""
        q = pd.Timestamp(quarter_end).normalize()
        if q in self.report_days:
            return self.report_days[q]
        r = self.rows
        printed = r.loc[(r["ds"] == q) & r["reported"].notna() & (r["timing"] == "pre-report"), "published"]
        return pd.Timestamp(printed.min()) if len(printed) else None

    def candidates(self, metric: str | None = None) -> pd.DataFrame:
        """Rows that may stand for their quarter: pre-report, no quality flag, published by the
        quarter's report day (when known)."""
        r = self.rows[(self.rows["timing"] == "pre-report") & (self.rows["quality"] == "")]
        if metric is not None:
            r = r[r["metric"] == metric]
        days = {q: self.report_day(q) for q in r["ds"].unique()}
        limit = r["ds"].map(lambda q: days[q] if days[q] is not None else pd.Timestamp.max)
        return r[r["published"] <= limit]

    def select(self, metric: str | None = None) -> pd.DataFrame:
        """One estimate per quarter and metric, by the rule of the module docstring.

        Returns:
            `SELECTED_COLUMNS` (``unique_id`` = the metric; ``candidates``, ``low``, ``high``: how
            many candidates there were and their range; ``report_day``: the quarter's report
            day, NaT when unknown).
        """
        c = self.candidates(metric)
        if c.empty:
            return pd.DataFrame(columns=SELECTED_COLUMNS)
        c = c.assign(rank_=c["provider"].map(_provider_rank))
        order = c.sort_values(["confirmations", "published", "rank_", "line"], ascending=[False, False, True, True])
        best = order.drop_duplicates(["metric", "ds"], keep="first").set_index(["metric", "ds"])
        g = c.groupby(["metric", "ds"])
        out = pd.DataFrame({"value": best["value"], "published": best["published"], "provider": best["provider"],
                            "confirmations": best["confirmations"], "candidates": g.size(),
                            "low": g["value"].min(), "high": g["value"].max(), "line": best["line"]})
        out = out.reset_index().rename(columns={"metric": "unique_id"})
        out["report_day"] = pd.to_datetime(out["ds"].map(self.report_day))
        return out[SELECTED_COLUMNS].sort_values(["unique_id", "ds"]).reset_index(drop=True)

    def fingerprint(self) -> str:
        """A short text identifying the rows (for run parameters)."""
        last = self.rows["published"].max() if len(self.rows) else None
        return f"{len(self.rows)} rows" + (f" to {pd.Timestamp(last).date()}" if last is not None else "")


def load_consensus(path: str | Path, series_config: str | Path | None = None, year_end_month: int = 12,
                   splits: Sequence[Split] = ()) -> ConsensusBook:
    """The `ConsensusBook` of a consensus file; metric names are checked against `series_config`
    (default: ``series.csv`` beside the file, when there is one)."""
    from features.loader import read_series_config

    path = Path(path)
    cfg = Path(series_config) if series_config else path.parent / "series.csv"
    metrics = read_series_config(cfg).metrics if cfg.is_file() else None
    return ConsensusBook(read_consensus(path, metrics, year_end_month, splits))


def profile_consensus(profile, series_config: str | Path | None = None) -> ConsensusBook | None:
    """The consensus book a company profile names (None: the profile has none)."""
    if profile is None or profile.consensus is None:
        return None
    return load_consensus(profile.consensus, series_config or profile.data.parent / "series.csv",
                          profile.fiscal_year_end_month, profile.splits)
