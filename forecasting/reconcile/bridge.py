"""The free-cash-flow bridge: from operating income, net sales and capex to FCF.

Equations (USD millions, three-month values; t a quarter, q(t) its quarter of the fiscal year):

    (1) FCF_t  = OCF_t - Capex_t                          the company's definition, an identity
        (net capex, for a company that reports it: purchases of P&E - proceeds from sales and
        incentives)
    (2) OCF_t  = OI_t + gamma_{q(t)} * Sales_t + e_t      the operating-cash-flow link

The series are a company profile's (`features.profile.CashFlow`). (2) says: cash from
operations is operating income plus an add-back that is a share of the quarter's net sales,
with one share per quarter of the fiscal year. The add-back bundles non-cash charges
(depreciation and amortisation, stock-based compensation) with working capital, and the
per-quarter shares carry the company's seasonality (a retailer's large payables at the
holiday peak, paid out the quarter after). ``gamma`` is least squares over the last `window`
quarters up to the cutoff only (default 16 quarters: four per coefficient)::

    gamma_k = sum_{t in W, q(t)=k} (OCF_t - OI_t) Sales_t / sum_{t in W, q(t)=k} Sales_t^2

Measured on the shipped company's data, one quarter ahead over the last 16 quarters with
reported OI and sales: MAE of (2) 3.3B with window 16 (3.2B with 12 or 24, 3.7B with 8), versus 4.5B for
a variant adding a D&A proxy (lagged trailing capex) and 8.1B for seasonal-naive OCF.

Capex has no link in the bridge: it comes from its own forecast or from a scenario.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.calendar import FiscalCalendar
from features.profile import CashFlow
from features.errors import OptionError
from forecasting.core.provenance import outcomes_read

__all__ = ["fcf_from_components", "free_cash_flow", "net_capex", "OCFBridge"]


def free_cash_flow(ocf, net_capex):
    """Equation (1): FCF = OCF - net capex (arrays, Series or scalars; broadcasting)."""
    return ocf - net_capex


def net_capex(purchases, proceeds):
    """Net capex = purchases of property and equipment - proceeds from sales and incentives."""
    return purchases - proceeds


def fcf_from_components(df: pd.DataFrame, series: CashFlow) -> pd.DataFrame:
    """FCF per quarter from reported OCF and capex (and, where reported, gross purchases and
    proceeds).

    Args:
        df: long frame ``unique_id, ds, y`` with the OCF and capex series of `series`
            (optionally its gross capex and proceeds).
    Returns:
        ``ds, ocf, net_capex, fcf, fcf_from_gross`` (the last NaN where gross purchases or
        proceeds are not reported).
    """
    ocf, capex = series.operating_cash_flow, series.capex
    gross, proceeds = series.capex_gross, series.capex_proceeds
    w = df.pivot_table(index="ds", columns="unique_id", values="y", aggfunc="first")
    for c in (ocf, capex):
        if c not in w:
            raise ValueError(f"fcf_from_components: the frame has no '{c}' series")
    w = w.dropna(subset=[ocf, capex])
    out = pd.DataFrame({"ds": w.index, "ocf": w[ocf].to_numpy(), "net_capex": w[capex].to_numpy()})
    out["fcf"] = free_cash_flow(out["ocf"], out["net_capex"])
    if gross and proceeds and gross in w and proceeds in w:
        out["fcf_from_gross"] = free_cash_flow(w[ocf], net_capex(w[gross], w[proceeds])).to_numpy()
    else:
        out["fcf_from_gross"] = np.nan
    return out.reset_index(drop=True)


class OCFBridge:
    """Equation (2), scikit-learn style: ``fit`` on history up to a cutoff, then ``predict``.

    Args:
        series: the company's cash-flow series (OCF, operating income, sales).
        window: quarters of history (up to the cutoff) used to estimate ``gamma``.
        calendar: the fiscal calendar whose quarters index ``gamma`` (default: inferred from
            the data at `fit`).

    Fitted attributes: ``gamma_`` (array (4,), index k-1 for fiscal quarter k), ``residuals_``
    (Series of in-sample e_t by quarter end), ``cutoff_``, ``n_obs_``, ``calendar_``.
    """

    def __init__(self, series: CashFlow, window: int = 16, calendar: FiscalCalendar | None = None):
        self.series = series
        self.window = window
        self.calendar = calendar

    def fit(self, df: pd.DataFrame, cutoff=None) -> OCFBridge:
        """Estimate ``gamma`` from `df` (long ``unique_id, ds, y`` with OCF, OI and sales) using
        only quarters on or before `cutoff` (default: the last quarter with all three)."""
        if self.window < 4:
            raise OptionError(f"OCFBridge: window must be >= 4 quarters (one per quarter), got {self.window}")
        OCF, OI, SALES = self.series.operating_cash_flow, self.series.operating_income, self.series.sales
        w = df[df["unique_id"].isin([OCF, OI, SALES])].pivot_table(
            index="ds", columns="unique_id", values="y", aggfunc="first")
        missing = [c for c in (OCF, OI, SALES) if c not in w]
        if missing:
            raise OptionError(f"OCFBridge.fit: the frame lacks series {missing}")
        w = w.dropna()
        if cutoff is not None:
            w = w[w.index <= pd.Timestamp(cutoff)]
        w = w.iloc[-self.window:]
        if cutoff is not None:
            outcomes_read("bridge.fit", cutoff, w.index)
        self.calendar_ = self.calendar or FiscalCalendar.infer(w.index[:1])
        if len(w) < 4 or len(set(self.quarter_of(w.index))) < 4:
            raise OptionError(f"OCFBridge.fit: need at least one quarter of each kind up to the cutoff "
                             f"{cutoff}; found {len(w)} quarter(s) with OCF, OI and sales")
        q = self.quarter_of(w.index)
        addback = (w[OCF] - w[OI]).to_numpy(dtype=float)
        sales = w[SALES].to_numpy(dtype=float)
        self.gamma_ = np.array([np.sum(addback[q == k] * sales[q == k]) / np.sum(sales[q == k] ** 2)
                                for k in range(1, 5)])
        self.residuals_ = pd.Series(addback - self.gamma_[q - 1] * sales, index=w.index)
        self.cutoff_ = w.index.max()
        self.n_obs_ = len(w)
        return self

    def quarter_of(self, ds) -> np.ndarray:
        """The fiscal quarter (1..4) of quarter ends `ds`."""
        cal = getattr(self, "calendar_", None) or self.calendar or FiscalCalendar()
        return cal.quarter_of_year(ds)

    def predict(self, oi, sales, ds) -> np.ndarray:
        """OCF = OI + gamma_{q(ds)} * sales, element-wise.

        Args:
            oi, sales: arrays broadcastable to each other, last axis = quarters `ds` (h,);
                e.g. sample paths of shape (n_paths, h).
            ds: quarter ends, shape (h,).
        """
        if not hasattr(self, "gamma_"):
            raise RuntimeError("OCFBridge is not fitted yet; call fit(history, cutoff) first")
        g = self.gamma_[self.quarter_of(ds) - 1]
        return np.asarray(oi, dtype=float) + g * np.asarray(sales, dtype=float)
