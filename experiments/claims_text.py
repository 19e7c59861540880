"""Claims as a person reads them: values as text (25.3%, 135.2B, 2.05x), the claimed condition,
the paths' medians and the realised outcomes, for the printed table, ``claims.csv`` and the
MLflow artifact. `forecasting.claims.evaluate` returns numbers only; this is its display.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from forecasting.claims.file import Claim, period_label

__all__ = ["claimed_text", "fmt", "median_text", "realised_text", "with_text"]


def fmt(v: float | None, unit: str) -> str:
    """A value as the table shows it: 25.3% (fraction), 2.05x (multiple), 135.2B (USD millions)."""
    if v is None or not np.isfinite(v):
        return "n/a"
    if unit == "fraction":
        return f"{100 * v:.1f}%"
    if unit == "multiple":
        return f"{v:.2f}x"
    return f"{v / 1e3:,.1f}B"


def claimed_text(c: Claim) -> str:
    """The claim's condition and periods: ``> 25.0% (each of 2026Q1..2026Q4)``."""
    cond = c.condition
    if cond.op == "between":
        body = f"{fmt(cond.low, c.unit)} to {fmt(cond.high, c.unit)}"
    else:
        body = f"{cond.op} {fmt(cond.bounds[0], c.unit)}"
    if len(c.periods) > 1:
        body += f" ({'each' if c.holds == 'all' else 'any'} of {period_label(c.periods[0])}.."
        body += f"{period_label(c.periods[-1])})"
    else:
        body += f" ({period_label(c.periods[0])})"
    return body


def median_text(c: Claim, medians: Sequence[float]) -> str:
    """The paths' median per period, comma-separated."""
    return ", ".join(fmt(m, c.unit) for m in medians)


def realised_text(c: Claim, values: Sequence[float | None]) -> str:
    """``2026Q1 28.4%; 2026Q2 36.8%; 2026Q3, 2026Q4 pending`` (or ``not reported yet``)."""
    known = [(p, v) for p, v in zip(c.periods, values) if v is not None]
    if not known:
        return "not reported yet"
    parts = [f"{period_label(p)} {fmt(v, c.unit)}" for p, v in known]
    left = [period_label(p) for p, v in zip(c.periods, values) if v is None]
    if left:
        parts.append(f"{', '.join(left)} pending" if len(left) < 3 else f"{left[0]}..{left[-1]} pending")
    return "; ".join(parts)


def with_text(table: pd.DataFrame, claims) -> pd.DataFrame:
    """`table` (rows of `forecasting.claims.evaluate.evaluate`, one per claim of the
    `ClaimSet` `claims`, by ``id``; also the per-scenario rows) with the text columns
    ``claimed``, ``median`` and (where realised values are given) ``realised``, after
    ``periods`` (or after ``id``)."""
    by_id = {c.id: c for c in claims.claims}
    out = table.copy()
    cl = [by_id[i] for i in out["id"]]
    text = {"claimed": [claimed_text(c) for c in cl],
            "median": [median_text(c, m) for c, m in zip(cl, out["medians"])]}
    if "realised_values" in out.columns:
        text["realised"] = [realised_text(c, v) if len(v) else "" for c, v in zip(cl, out["realised_values"])]
    at = list(out.columns).index("periods" if "periods" in out.columns else "id") + 1
    for k, (name, values) in enumerate(text.items()):
        out.insert(at + k, name, values)
    return out
