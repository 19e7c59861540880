"""Claims evaluated: their quantities on reported quarters and sample paths, probabilities,
medians and realised outcomes.

`Outcomes` holds the values of every series by quarter: reported quarters up to an origin
(the same on every path) and sample paths after it, e.g. the roll-up's
(`forecasting.rollup.paths.Simulation.paths`). A claim's quantity (`forecasting.claims.file`: value,
year-over-year growth, ratio, trailing-twelve-month sum, each optionally relative to an
earlier period) is computed path by path from them, so a fiscal year that is half reported
adds its reported quarters to each path's remaining ones, and a growth rate divides by the
reported base or by the path's own earlier quarter.

`evaluate` gives each claim's probability (the share of paths on which it holds), the median
of its quantity, and, where the periods have been reported, the realised value and whether
the claim held. For a range with ``holds: all`` the claim holds when it holds in every
period on the same path (not the product of per-period probabilities); ``any``: in at least
one. A quantity that cannot be computed (a series or quarter missing, a growth from a base
that is not positive) makes its claim "not evaluable" with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.calendar import FiscalCalendar
from forecasting.claims.file import CONSENSUS, Claim, ClaimSet, Period, is_quarter, period_label, quarters_of

__all__ = ["claim_holds", "claim_values", "consensus_values", "evaluate",
           "interval_paths", "NotEvaluable", "Outcomes", "probability", "quantity", "realised",
           "required_quarters", "RESULT_COLUMNS"]


class NotEvaluable(Exception):
    """A quantity cannot be computed (a series or quarter missing, a base that is not positive)."""


@dataclass
class Outcomes:
    """Values of every series by quarter: reported up to `origin` (the same on every path),
    sample paths for the quarters `ds` after it.

    Args:
        reported: long frame ``unique_id, ds, y``; rows after `origin` are ignored.
        paths: series -> (n_paths, len(ds)) sample paths (None: reported values only).
        ds: the quarter ends of the paths' columns.
        origin: the last quarter known (default: the frame's last ``ds``, or the quarter
            before ``ds[0]``).
        consensus: (series, quarter) -> the street's estimate (`consensus_values`), for claims
            ``relative_to: consensus``.
        calendar: the company's fiscal calendar (quarters are its fiscal quarters; default
            calendar quarters). The claims must be read in the same calendar.
    """

    reported: pd.DataFrame
    paths: Mapping[str, np.ndarray] | None = None
    ds: Sequence | None = None
    origin: object = None
    consensus: Mapping | None = None
    calendar: FiscalCalendar = field(default_factory=FiscalCalendar)
    n_paths: int = field(init=False)
    _rep: dict = field(init=False, repr=False)
    _col: dict = field(init=False, repr=False)

    def __post_init__(self):
        cal = self.calendar
        qs = cal.periods(self.ds) if self.ds is not None and len(self.ds) else pd.PeriodIndex([], freq=cal.period_freq)
        if self.origin is None:
            self.origin = qs[0] - 1 if len(qs) else cal.period(self.reported["ds"].max())
        self.origin = (self.origin.asfreq(cal.period_freq) if isinstance(self.origin, pd.Period)
                       else cal.period(self.origin))
        rep = self.reported[cal.periods(self.reported["ds"]) <= self.origin]
        self._rep = {(u, q): float(y) for u, q, y in zip(rep["unique_id"], cal.periods(rep["ds"]), rep["y"])}
        self._col = {q: j for j, q in enumerate(qs)}
        self.paths = dict(self.paths or {})
        n = {np.shape(p)[0] for p in self.paths.values()}
        if len(n) > 1:
            raise ValueError(f"Outcomes: every series needs the same number of paths, got {sorted(n)}")
        self.n_paths = n.pop() if n else 1

    @property
    def last(self) -> pd.Period:
        """The last quarter with a value (reported or simulated)."""
        return max(self._col) if self._col else self.origin

    def get(self, series: str, q: pd.Period) -> np.ndarray:
        """(n_paths,) values of `series` in quarter `q`."""
        if q <= self.origin:
            v = self._rep.get((series, q))
            if v is None:
                raise NotEvaluable(f"{series} has no reported value for {q}")
            return np.full(self.n_paths, v)
        if q not in self._col:
            if q > self.last:
                raise NotEvaluable(f"{q} is not reported yet" if not self._col else
                                   f"{q} is beyond the forecast horizon (last {self.last})")
            raise NotEvaluable(f"{q} is not among the simulated quarters")
        if series not in self.paths:
            raise NotEvaluable(f"{series} is not simulated path by path")
        return np.asarray(self.paths[series][:, self._col[q]], dtype=float)


def consensus_values(selected: pd.DataFrame | None, calendar: FiscalCalendar | None = None) -> dict:
    """(series, fiscal quarter of `calendar`) -> estimate from
    `features.consensus.ConsensusBook.select` rows."""
    if selected is None or not len(selected):
        return {}
    qs = (calendar or FiscalCalendar()).periods(selected["ds"])
    return {(u, q): float(v) for u, q, v in zip(selected["unique_id"], qs, selected["value"])}


def _consensus(o: Outcomes, series: str, period: Period) -> float:
    v = (o.consensus or {}).get((series, period))
    if v is None:
        raise NotEvaluable(f"no consensus estimate of {series} for {period_label(period)} in the data")
    return v


def _value(o: Outcomes, series: str, period: Period) -> np.ndarray:
    return sum(o.get(series, q) for q in quarters_of(period))


def _divide(a: np.ndarray, b: np.ndarray, what: str) -> np.ndarray:
    bad = ~(b > 0)
    if bad.any():
        share = f" on {bad.mean():.0%} of paths" if len(b) > 1 else ""
        raise NotEvaluable(f"{what} is undefined: the base is not positive{share} ({float(np.min(b)):,.0f})")
    return a / b


def _base_quantity(c: Claim, o: Outcomes, period: Period) -> np.ndarray:
    if c.measure == "value":
        return _value(o, c.series, period)
    if c.measure == "ttm":
        return sum(o.get(c.series, period - k) for k in range(4))
    if c.measure == "ratio":
        return _divide(_value(o, c.series, period), _value(o, c.over, period), f"{c.series} / {c.over}")
    prev = period - 4 if is_quarter(period) else period - 1
    return _divide(_value(o, c.series, period), _value(o, c.series, prev), f"growth of {c.series}") - 1.0


def quantity(c: Claim, o: Outcomes, period: Period) -> np.ndarray:
    """(n_paths,) values of the claim's quantity in `period` (raises `NotEvaluable`)."""
    x = _base_quantity(c, o, period)
    if c.relative_to is None:
        return x
    if c.relative_to == CONSENSUS:
        return _divide(x, np.full_like(x, _consensus(o, c.series, period)), "the ratio to the consensus")
    return _divide(x, _base_quantity(c, o, c.relative_to), f"the ratio to {period_label(c.relative_to)}")


def claim_values(c: Claim, o: Outcomes) -> np.ndarray:
    """(n_paths, n_periods) values of the claim's quantity."""
    return np.column_stack([quantity(c, o, p) for p in c.periods])


def claim_holds(c: Claim, values: np.ndarray) -> np.ndarray:
    """(n_paths,) whether the claim holds on each path."""
    ok = c.condition.holds(values)
    return ok.all(axis=1) if c.holds == "all" else ok.any(axis=1)


def probability(c: Claim, o: Outcomes) -> float:
    """Share of paths on which the claim holds (raises `NotEvaluable`)."""
    return float(claim_holds(c, claim_values(c, o)).mean())


# --------------------------------------------------------------------------- evaluation
def realised(c: Claim, reported: Outcomes) -> tuple[list, bool | None]:
    """Realised values per period (None: not reported yet) and whether the claim held (None:
    undecided). A range is decided before all its periods are reported when one reported
    period already settles it (``all``: one failed; ``any``: one held)."""
    vals = []
    for p in c.periods:
        try:
            vals.append(float(quantity(c, reported, p)[0]))
        except NotEvaluable:
            vals.append(None)
    ok = [bool(c.condition.holds(np.array([v]))[0]) for v in vals if v is not None]
    if len(ok) == len(vals):
        held = all(ok) if c.holds == "all" else any(ok)
    elif c.holds == "all" and not all(ok):
        held = False
    elif c.holds == "any" and any(ok):
        held = True
    else:
        held = None
    return vals, held


RESULT_COLUMNS = ["id", "text", "source", "series", "periods", "probability", "medians", "median_value",
                  "realised_values", "realised_value", "held", "status", "reason", "method"]


def evaluate(claims: ClaimSet | Sequence[Claim], outcomes: Outcomes, reported: Outcomes | None = None,
             methods: Mapping[str, str] | None = None, not_evaluable: Mapping[str, str] | None = None,
             default_method: str = "sample paths") -> pd.DataFrame:
    """Probability, median and realised outcome of every claim.

    Args:
        claims: a `ClaimSet` or claims.
        outcomes: reported quarters up to the origin and sample paths after it.
        reported: every reported quarter (realised outcomes); None: not shown.
        methods: series -> how its paths were made, named in the ``method`` column of the
            claims that use them (other claims say `default_method`).
        not_evaluable: claim id -> reason, from `check_claims`.
    Returns:
        One row per claim, `RESULT_COLUMNS`: ``probability`` in [0, 1] (NaN with ``status``
        ``not evaluable`` and a ``reason``), ``medians`` (the paths' median per period, a
        tuple) and ``median_value`` (single-period claims), ``realised_values`` (per period,
        None while unreported) and ``realised_value`` (single-period claims), ``held``
        (True / False / None while undecided). Numbers only: `experiments.claims_text` writes
        them as text (25.3%, 135.2B, 2.05x) for the printed table and the files.
    """
    items = claims.claims if isinstance(claims, ClaimSet) else tuple(claims)
    methods, not_evaluable = dict(methods or {}), dict(not_evaluable or {})
    rows = []
    for c in items:
        row = {"id": c.id, "text": c.text, "source": c.source, "series": ",".join(c.series_used),
               "periods": ",".join(period_label(p) for p in c.periods),
               "probability": np.nan, "medians": (), "median_value": np.nan, "realised_values": (),
               "realised_value": np.nan, "held": None, "status": "evaluated", "reason": "",
               "method": "; ".join(dict.fromkeys(methods[s] for s in c.series_used if s in methods)) or default_method}
        if reported is not None:
            vals, held = realised(c, reported)
            row.update(realised_values=tuple(vals), held=held,
                       realised_value=vals[0] if len(vals) == 1 and vals[0] is not None else np.nan)
        if c.id in not_evaluable:
            row.update(status="not evaluable", reason=not_evaluable[c.id], method="")
            rows.append(row)
            continue
        try:
            values = claim_values(c, outcomes)
        except NotEvaluable as exc:
            row.update(status="not evaluable", reason=str(exc), method="")
            rows.append(row)
            continue
        med = np.median(values, axis=0)
        row.update(probability=float(claim_holds(c, values).mean()),
                   medians=tuple(float(m) for m in med),
                   median_value=float(med[0]) if len(med) == 1 else np.nan)
        rows.append(row)
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def required_quarters(claims: ClaimSet | Sequence[Claim]) -> pd.Period | None:
    """The last quarter any claim needs (to choose a forecast horizon)."""
    items = claims.claims if isinstance(claims, ClaimSet) else tuple(claims)
    qs = [q for c in items for q in c.quarters_needed()]
    return max(qs) if qs else None


def interval_paths(fc: pd.DataFrame, n_paths: int, seed: int = 0) -> np.ndarray:
    """(n_paths, h) sample paths from one series' forecast rows (``mean, lo-95, lo-80, hi-80,
    hi-95`` per quarter, e.g. `forecasting.rolling.forecast.forecast`'s calibrated intervals).

    Each path draws one uniform u and reads every quarter's quantile function at u (the
    quantile function is piecewise linear through P2.5, P10, P50 = mean, P90, P97.5, and
    extended linearly beyond): forecast errors are taken to be perfectly correlated across
    quarters, which makes sums over quarters as wide as those intervals allow (no
    diversification). A distribution made this way knows nothing of the joint errors of the
    other series; claims using it are weaker than those on the roll-up's paths.
    """
    knots = np.array([0.025, 0.10, 0.50, 0.90, 0.975])
    cols = ["lo-95", "lo-80", "mean", "hi-80", "hi-95"]
    missing = [c for c in cols if c not in fc.columns]
    if missing:
        raise ValueError(f"interval_paths needs columns {cols}; missing {missing}")
    q = fc[cols].to_numpy(dtype=float)  # (h, 5)
    if not np.isfinite(q).all():
        raise ValueError("interval_paths: the forecast has missing values")
    q = np.sort(q, axis=1)
    u = np.random.default_rng(seed).random(n_paths)
    out = np.empty((n_paths, len(q)))
    for j, row in enumerate(q):
        x = np.interp(u, knots, row)
        lo_slope = (row[1] - row[0]) / (knots[1] - knots[0])
        hi_slope = (row[4] - row[3]) / (knots[4] - knots[3])
        x = np.where(u < knots[0], row[0] - (knots[0] - u) * lo_slope, x)
        x = np.where(u > knots[-1], row[4] + (u - knots[-1]) * hi_slope, x)
        out[:, j] = x
    return out
