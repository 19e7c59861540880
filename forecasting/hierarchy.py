"""Amazon's segment hierarchy: identity checks on reported data and forecast reconciliation.

Two trees, one per measure (net sales, operating income), each with three levels::

    total  =  retail + AWS               net_sales_total
    retail =  North America + International   net_sales_retail (derived: total - AWS)

Bottom series (the segments): ``<measure>_north_america``, ``<measure>_international``,
``<measure>_aws``. Advertising is a revenue *category* inside the segments, not a segment,
so it is never part of these sums.

Histories are uneven (see data/SOURCES.md): totals from 2014Q1 (sales) / 2009Q1 (OI), AWS
from 2015Q1, North America and International quarterly only from 2019Q1 (with holes in
2016-2018). The derived ``retail`` level (total minus AWS) is complete from 2015Q1, so every
node of the tree is forecast from the longest history it has, and reconciliation then makes
the forecasts add up.

Reconciliation (hierarchicalforecast 1.5) is the matrix product ``y_tilde = S P y_hat`` with
the summing matrix ``S`` (rows: every node, columns: the 3 bottom series of a tree) and a
method-specific projection ``P``: ``BottomUp`` (sum the segments), ``MinTrace-ols`` and
``MinTrace-wls_struct`` (Wickramasuriya et al. 2019; weights from the number of bottom series
under each node). These methods need no in-sample residuals, so they work at every backtest
cutoff. Both trees are reconciled in one call (``S`` is block diagonal). ``S`` is built here
rather than by ``hierarchicalforecast.utils.aggregate``, which derives every aggregate from
the bottom series and would cut the totals' history back to the segments' (2019).

Measured (``fcf rollup --backtest``, AutoETS, all 21 node cutoffs 2020Q2-2025Q2, h=4):
node MASE relative to the base forecasts, geometric mean over the 10 nodes: MinTrace-ols 0.960,
MinTrace-wls_struct 0.960, BottomUp 1.171 (summing the short segment histories loses the
totals' information).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

MEASURES = ("net_sales", "operating_income")
SEGMENTS = ("north_america", "international", "aws")
RETAIL = "retail"
#: Short method names -> hierarchicalforecast output column suffix.
METHODS = {
    "BottomUp": "BottomUp",
    "MinTrace-ols": "MinTrace_method-ols",
    "MinTrace-wls_struct": "MinTrace_method-wls_struct",
}
#: Methods whose weights are learnt from past forecast errors (`mintrace`), cutoff by cutoff.
ERROR_METHODS = ("MinTrace-wls_var", "MinTrace-mint_shrink")
DEFAULT_METHOD = "MinTrace-wls_var"
#: Fewest past error rows before weights are learnt from them.
MIN_ERROR_ROWS = 8
#: Documented differences in the reported data (data/SOURCES.md), (measure, quarter) -> reason.
KNOWN_RESIDUALS = {
    ("net_sales", "2019Q4"): "off by 1: rounding in the derived Q4 (FY - 9M)",
    **{("operating_income", f"2014Q{k}"): "2014 segment recast excludes SBC and other operating "
       "expense, so segments do not sum to total OI" for k in range(1, 5)},
}


def series_name(measure: str, node: str) -> str:
    return f"{measure}_{node}"


def bottom_series(measures: Sequence[str] = MEASURES) -> list[str]:
    return [series_name(m, s) for m in measures for s in SEGMENTS]


def hierarchy_series(measures: Sequence[str] = MEASURES) -> list[str]:
    """Every node: total, retail, then the three segments, per measure."""
    out = []
    for m in measures:
        out += [series_name(m, "total"), series_name(m, RETAIL)]
        out += [series_name(m, s) for s in SEGMENTS]
    return out


# --------------------------------------------------------------------------- reported data
def check_identities(quarterly: pd.DataFrame) -> pd.DataFrame:
    """Check total = NA + International + AWS on reported data, per measure and quarter.

    Args:
        quarterly: `features.loader.read_quarterly` output (``metric, period, ds, y``) or a long
            frame ``unique_id, ds, y``.
    Returns:
        ``measure, period, ds, total, parts_sum, residual, known`` for every quarter where the
        total and all three segments are reported; ``residual = total - parts_sum``; ``known``
        holds the reason for a difference documented in data/SOURCES.md (2019Q4 sales off by 1;
        2014 segment OI on a pre-SBC basis), else "".
    """
    q = quarterly.rename(columns={"unique_id": "metric"})
    wide = q.pivot_table(index="ds", columns="metric", values="y", aggfunc="first")
    rows = []
    for m in MEASURES:
        parts = [series_name(m, s) for s in SEGMENTS]
        total = series_name(m, "total")
        if total not in wide or any(p not in wide for p in parts):
            raise ValueError(f"check_identities: the frame lacks {total} or one of {parts}")
        sub = wide[[total] + parts].dropna()
        for ds, r in sub.iterrows():
            period = str(pd.Period(ds, freq="Q"))
            s = float(r[parts].sum())
            rows.append({"measure": m, "period": period, "ds": ds, "total": float(r[total]),
                         "parts_sum": s, "residual": float(r[total]) - s,
                         "known": KNOWN_RESIDUALS.get((m, period), "")})
    return pd.DataFrame(rows)


def check_annual(quarterly: pd.DataFrame, annual: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Temporal identity: the four reported quarters of a fiscal year sum to its annual value.

    Used for advertising, reported quarterly from 2023 and yearly from 2020. Returns
    ``fiscal_year, quarters_sum, annual, residual`` for years with all four quarters.
    """
    q = quarterly.rename(columns={"unique_id": "metric"})
    q = q[q["metric"] == metric]
    a = annual[annual["metric"] == metric]
    years = pd.DatetimeIndex(q["ds"]).year
    sums = q.groupby(years)["y"].agg(["sum", "size"])
    sums = sums[sums["size"] == 4]["sum"]
    ann = pd.Series(a["y"].to_numpy(), index=pd.DatetimeIndex(a["ds"]).year)
    common = sums.index.intersection(ann.index)
    return pd.DataFrame({"fiscal_year": common, "quarters_sum": sums[common].to_numpy(),
                         "annual": ann[common].to_numpy(),
                         "residual": ann[common].to_numpy() - sums[common].to_numpy()})


def add_retail(df: pd.DataFrame, measures: Sequence[str] = MEASURES) -> pd.DataFrame:
    """Add ``<measure>_retail = <measure>_total - <measure>_aws`` where both are reported.

    Args:
        df: long frame ``unique_id, ds, y`` holding the totals and AWS.
    Returns: `df` plus the retail rows (existing retail rows are replaced).
    """
    parts = [df[~df["unique_id"].isin([series_name(m, RETAIL) for m in measures])]]
    for m in measures:
        tot, aws = series_name(m, "total"), series_name(m, "aws")
        if tot not in set(df["unique_id"]) or aws not in set(df["unique_id"]):
            raise ValueError(f"add_retail: need both {tot} and {aws} in the frame")
        w = df[df["unique_id"].isin([tot, aws])].pivot(index="ds", columns="unique_id", values="y").dropna()
        parts.append(pd.DataFrame({"unique_id": series_name(m, RETAIL), "ds": w.index,
                                   "y": (w[tot] - w[aws]).to_numpy()}))
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["unique_id", "ds"]).reset_index(drop=True)


# --------------------------------------------------------------------------- reconciliation
def mintrace(S: np.ndarray, y_hat: np.ndarray, errors: np.ndarray | None, method: str = "wls_var",
             fallback: str = "wls_struct", min_rows: int = MIN_ERROR_ROWS) -> tuple[np.ndarray, str]:
    """MinTrace (hierarchicalforecast) with W learnt from past forecast errors.

    ``y_tilde = S (S' W^-1 S)^-1 S' W^-1 y_hat``, with W the diagonal of the errors' mean
    squares (``wls_var``) or their shrunk covariance (``mint_shrink``), estimated from errors
    of forecasts whose outcomes were reported by the origin (the caller's responsibility).

    Args:
        S: (n_nodes, n_bottom) summing matrix, bottom rows last (an identity block); entries
            may be negative (a difference such as FCF = OCF - capex) and rows repeated (two
            forecasts of one quantity).
        y_hat: (n_nodes, h) base forecasts.
        errors: (n_nodes, n_obs) past errors on a common scale, or None.
        method: ``wls_var``, ``mint_shrink`` or ``ols``.
        fallback: the method used with fewer than `min_rows` complete error columns.
    Returns:
        ``(y_tilde (n_nodes, h), method used)``.
    """
    from hierarchicalforecast.methods import MinTrace

    used = method
    kw = {}
    if method not in ("ols", "wls_struct"):
        ok = errors is not None and errors.shape[1] and np.isfinite(errors).all(axis=0).sum() >= min_rows
        if ok:
            e = errors[:, np.isfinite(errors).all(axis=0)]
            kw = {"y_insample": e, "y_hat_insample": np.zeros_like(e)}
        else:
            used = fallback
    return MinTrace(method=used).fit_predict(S=S, y_hat=y_hat, **kw)["mean"], used


def summing_matrix(measures: Sequence[str] = MEASURES) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The summing matrix ``S`` as a frame and the level tags, as hierarchicalforecast wants them.

    Returns:
        ``S_df``: column ``unique_id`` (5 rows per measure: total, retail, NA, International,
        AWS; bottom rows last so the bottom block is the identity) and one 0/1 column per bottom
        series; ``tags``: ``{"total": [...], "total/retail": [...], "total/retail/segment": [...]}``.
    """
    bottoms = bottom_series(measures)
    rows = []
    for m in measures:
        b = [series_name(m, s) for s in SEGMENTS]
        rows.append((series_name(m, "total"), set(b)))
        rows.append((series_name(m, RETAIL), set(b[:2])))
    rows += [(b, {b}) for b in bottoms]
    S = pd.DataFrame({"unique_id": [r[0] for r in rows]})
    for b in bottoms:
        S[b] = [1.0 if b in r[1] else 0.0 for r in rows]
    tags = {
        "total": np.array([series_name(m, "total") for m in measures]),
        "total/retail": np.array([series_name(m, n) for m in measures for n in (RETAIL, "aws")]),
        "total/retail/segment": np.array(bottoms),
    }
    return S, tags


def reconcile(
    base: pd.DataFrame,
    methods: Sequence[str] = tuple(METHODS),
    measures: Sequence[str] = MEASURES,
    by: Sequence[str] = ("cutoff", "model"),
    value_col: str = "mean",
) -> pd.DataFrame:
    """Reconcile point forecasts of every hierarchy node so that they add up.

    Args:
        base: long forecasts with ``unique_id, ds, <value_col>`` and the `by` columns present
            (e.g. one `forecasting.backtest.backtest` output: ``cutoff, model``); must hold
            every node of `hierarchy_series(measures)` for each group and quarter.
        methods: names from `METHODS`.
    Returns:
        ``*by, unique_id, ds, method, mean`` with one row per node x quarter x method, plus
        ``method="base"`` rows holding the unreconciled forecasts.
    """
    from hierarchicalforecast.core import HierarchicalReconciliation
    from hierarchicalforecast.methods import BottomUp, MinTrace

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown reconciliation method(s) {unknown}; choose from {list(METHODS)}")
    by = [c for c in by if c in base.columns]
    nodes = hierarchy_series(measures)
    b = base[base["unique_id"].isin(nodes)].copy()
    if b.empty:
        raise ValueError(f"reconcile: no forecasts of the hierarchy series {nodes}")
    # Reconciliation is cross-sectional: each (group, quarter) is one time point for
    # hierarchicalforecast, so all groups go through one call.
    b["t_"] = b.groupby(by + ["ds"], sort=True).ngroup() if by else b.groupby("ds").ngroup()
    counts = b.groupby("t_")["unique_id"].nunique()
    if (counts != len(nodes)).any():
        t = counts[counts != len(nodes)].index[0]
        have = set(b.loc[b["t_"] == t, "unique_id"])
        r = b[b["t_"] == t].iloc[0]
        where = ", ".join(f"{c}={r[c]}" for c in by + ["ds"])
        raise ValueError(f"reconcile: forecasts for {where} lack {sorted(set(nodes) - have)}; "
                         "forecast every node of the hierarchy (see hierarchy_series)")
    S, tags = summing_matrix(measures)
    y_hat = b[["unique_id", "t_"]].rename(columns={"t_": "ds"})
    y_hat["base"] = b[value_col].to_numpy(dtype=float)
    builders = {"BottomUp": BottomUp, "MinTrace-ols": lambda: MinTrace(method="ols"),
                "MinTrace-wls_struct": lambda: MinTrace(method="wls_struct")}
    hr = HierarchicalReconciliation([builders[m]() for m in methods])
    rec = hr.reconcile(Y_hat_df=y_hat, S_df=S, tags=tags)
    keys = b[by + ["ds", "t_"]].drop_duplicates("t_").set_index("t_")
    out = []
    for name in ["base", *methods]:
        col = "base" if name == "base" else f"base/{METHODS[name]}"
        part = rec[["unique_id", "ds"]].rename(columns={"ds": "t_"}).copy()
        part["method"] = name
        part["mean"] = rec[col].to_numpy(dtype=float)
        out.append(part)
    out = pd.concat(out, ignore_index=True).join(keys, on="t_").drop(columns="t_")
    cols = by + ["unique_id", "ds", "method", "mean"]
    return out[cols].sort_values(by + ["method", "unique_id", "ds"]).reset_index(drop=True)


def coherence_errors(rec: pd.DataFrame, measures: Sequence[str] = MEASURES,
                     by: Sequence[str] = ("cutoff", "model", "method")) -> pd.DataFrame:
    """Largest |total - (NA + Intl + AWS)| and |retail - (NA + Intl)| per group of `rec`."""
    by = [c for c in by if c in rec.columns]
    w = rec.pivot_table(index=by + ["ds"], columns="unique_id", values="mean")
    rows = []
    for m in measures:
        n, i, a = (w[series_name(m, s)] for s in SEGMENTS)
        err = np.maximum((w[series_name(m, "total")] - n - i - a).abs(),
                         (w[series_name(m, RETAIL)] - n - i).abs())
        rows.append(err.rename(m))
    return pd.concat(rows, axis=1).groupby(level=by).max().reset_index()
