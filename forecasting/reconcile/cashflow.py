"""Reconciliation across the cash-flow identity: direct and bridged forecasts inform each other.

Four base forecasts of the same two bottom quantities, operating cash flow (OCF) and net
capex (C), per forecast quarter::

    node           base forecast                          row of S (OCF, C)
    fcf            the free-cash-flow series' own model     ( 1, -1)     FCF = OCF - C
    ocf_bridge     OI + gamma_q x net sales (the bridge)    ( 1,  0)
    ocf            the OCF series' own model                ( 1,  0)
    capex          the capex series' own model              ( 0,  1)

MinTrace (Wickramasuriya et al. 2019, hierarchicalforecast's `MinTrace`) finds the coherent
(OCF, C) closest to all four in the metric of their error covariance W::

    (OCF, C)~ = (S' W^-1 S)^-1 S' W^-1 y_hat,      FCF~ = OCF~ - C~

so the direct FCF forecast, the bridge and the OCF and capex models are combined with
weights learnt from their past errors, and the result satisfies FCF = OCF - capex exactly.
W is estimated from the errors of earlier forecasts whose outcomes were reported by the
cutoff (never later ones), scaled by the level of total sales at their cutoff so that a
decade of growth does not let the latest years dominate: ``wls_var`` (diagonal, default),
``mint_shrink`` (Schafer-Strimmer shrunk covariance) or ``ols`` (W = I, no learning).
A node without a forecast at a cutoff is dropped from S there.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from forecasting.reconcile.hierarchy import mintrace
from features.errors import OptionError

__all__ = ["METHODS", "MIN_ERROR_ROWS", "NODES", "reconcile_cashflow", "S_ROWS", "summing_matrix"]

NODES = ("fcf", "ocf_bridge", "ocf", "capex")
#: Rows of the summing matrix, columns (OCF, capex).
S_ROWS = {"fcf": (1.0, -1.0), "ocf_bridge": (1.0, 0.0), "ocf": (1.0, 0.0), "capex": (0.0, 1.0)}
METHODS = ("wls_var", "mint_shrink", "ols")
#: Fewest past error rows (quarters) before W is learnt; fewer: ``ols``.
MIN_ERROR_ROWS = 8


def summing_matrix(nodes: Sequence[str] = NODES) -> np.ndarray:
    """S (len(nodes), 2) with rows from `S_ROWS`; bottom columns (OCF, capex)."""
    return np.array([S_ROWS[n] for n in nodes], dtype=float)


def reconcile_cashflow(base: pd.DataFrame, errors: pd.DataFrame | None, method: str = "wls_var",
                       min_rows: int = MIN_ERROR_ROWS) -> pd.DataFrame:
    """Coherent OCF, capex and FCF from the base forecasts at one cutoff.

    Args:
        base: one row per forecast quarter ``ds`` with a column per node of `NODES` (NaN or
            missing column: node not used).
        errors: past scaled errors ``y - f`` (rows: quarters reported by the cutoff; columns:
            the nodes), or None.
        method: `METHODS`; with fewer than `min_rows` past errors, ``ols``.
    Returns:
        ``ds, ocf, capex, fcf`` (reconciled) plus ``method_used``.
    """
    if method not in METHODS:
        raise OptionError(f"cash-flow reconciliation method must be one of {METHODS}, got '{method}'")
    nodes = [n for n in NODES if n in base.columns and base[n].notna().all()]
    if "ocf" not in nodes and "ocf_bridge" not in nodes or "capex" not in nodes:
        raise ValueError(f"reconcile_cashflow: need an OCF forecast and a capex forecast, got {nodes}")
    # bottom series last, as an identity block: (OCF, capex); without a direct OCF forecast
    # the bridge is the OCF bottom node
    bottom = ["ocf", "capex"] if "ocf" in nodes else ["ocf_bridge", "capex"]
    order = [n for n in nodes if n not in bottom] + bottom
    E = None
    if errors is not None:
        e = errors.reindex(columns=order).dropna()
        E = e.to_numpy(dtype=float).T if len(e) else None
    rec, used = mintrace(summing_matrix(order), base[order].to_numpy(dtype=float).T, E, method,
                         fallback="ols", min_rows=min_rows)
    ocf, capex = rec[-2], rec[-1]
    return pd.DataFrame({"ds": base["ds"].to_numpy(), "ocf": ocf, "capex": capex, "fcf": ocf - capex,
                         "method_used": used})
