"""The FCF bridge: the accounting identity on reported data, the OCF link, TTM sums."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.aggregates import trailing_twelve_months, ttm_paths
from features.loader import load_quarterly, read_quarterly
from features.calendar import FiscalCalendar
from features.profile import shipped_profile
from forecasting.reconcile.bridge import OCFBridge, fcf_from_components, free_cash_flow

CASH = shipped_profile("amazon").cash_flow
FCF, OCF, OI, SALES = CASH.free_cash_flow, CASH.operating_cash_flow, CASH.operating_income, CASH.sales


@pytest.fixture(scope="module")
def df():
    return load_quarterly()


def test_bridge_reproduces_reported_fcf_exactly(df):
    out = fcf_from_components(df, CASH)
    rep = df[df["unique_id"] == FCF].set_index("ds")["y"]
    got = out.set_index("ds")["fcf"]
    assert len(got) == len(rep) == 70  # 2009Q1-2026Q2
    np.testing.assert_array_equal(got.loc[rep.index].to_numpy(), rep.to_numpy())
    # from 2017Q3 also from gross purchases minus proceeds
    gross = out.dropna(subset=["fcf_from_gross"]).set_index("ds")
    assert gross.index.min() == pd.Timestamp("2017-09-30") and len(gross) >= 35
    np.testing.assert_array_equal(gross["fcf_from_gross"].to_numpy(), rep.loc[gross.index].to_numpy())


def test_bridge_reproduces_reported_annual_fcf_for_fy2024(df):
    out = fcf_from_components(df, CASH).set_index("ds")
    fy = out.loc["2024", "fcf"].sum()
    assert fy == 38219  # data/SOURCES.md: 115,877 - (82,999 - 5,341)
    assert free_cash_flow(115877, 82999 - 5341) == 38219


def test_ocf_bridge_fits_on_data_up_to_the_cutoff_only(df):
    cut = pd.Timestamp("2023-12-31")
    a = OCFBridge(CASH, 16).fit(df, cutoff=cut)
    later = df.copy()
    later.loc[later["ds"] > cut, "y"] *= 3.0  # the future changes
    b = OCFBridge(CASH, 16).fit(later, cutoff=cut)
    np.testing.assert_array_equal(a.gamma_, b.gamma_)
    assert a.cutoff_ == cut and a.n_obs_ == 16
    # Q4 (holiday payables) adds back more of sales than Q1
    assert a.gamma_[3] > a.gamma_[0]


def test_ocf_bridge_is_exact_in_sample_with_its_residuals(df):
    br = OCFBridge(CASH, 16).fit(df)
    w = df.pivot(index="ds", columns="unique_id", values="y").loc[br.residuals_.index]
    pred = br.predict(w[OI].to_numpy(), w[SALES].to_numpy(), w.index)
    np.testing.assert_allclose(pred + br.residuals_.to_numpy(), w[OCF].to_numpy())
    paths = br.predict(np.ones((5, 4)), np.ones((5, 4)), pd.date_range("2026-09-30", periods=4, freq="QE"))
    assert paths.shape == (5, 4)


def test_ocf_bridge_errors_say_what_to_do(df):
    with pytest.raises(RuntimeError, match="not fitted"):
        OCFBridge(CASH).predict([1.0], [1.0], [pd.Timestamp("2026-09-30")])
    with pytest.raises(ValueError, match="lacks series"):
        OCFBridge(CASH).fit(df[df["unique_id"] != OI])
    with pytest.raises(ValueError, match="window must be >= 4"):
        OCFBridge(CASH, window=2).fit(df)


def test_ttm_continues_reported_quarters():
    fcf = read_quarterly()
    fcf = fcf[fcf["metric"] == FCF].rename(columns={"metric": "unique_id"})[["unique_id", "ds", "y"]]
    y = fcf["y"].to_numpy()
    paths = np.vstack([y[-4:], y[-4:] + 1])  # pretend the last 4 quarters are forecasts
    got = ttm_paths(paths, y[-7:-4])
    want = trailing_twelve_months(fcf, FCF)["y"].to_numpy()[-4:]
    np.testing.assert_allclose(got[0], want)
    np.testing.assert_allclose(got[1] - got[0], [1, 2, 3, 4])


def test_gamma_is_indexed_by_the_quarter_of_the_fiscal_year():
    """Quarters of a fiscal year ending in January: the bridge's first coefficient is fiscal Q1
    (quarters ending in April), whatever calendar quarter that is."""
    ds = pd.date_range("2020-04-30", periods=16, freq="QE-JAN")
    q = FiscalCalendar(1).quarter_of_year(ds)
    sales = 100.0 + np.arange(16)
    oi = np.full(16, 10.0)
    gamma = np.array([0.1, 0.2, 0.3, 0.4])
    ocf = oi + gamma[q - 1] * sales
    frame = pd.concat([pd.DataFrame({"unique_id": n, "ds": ds, "y": v})
                       for n, v in ((OCF, ocf), (OI, oi), (SALES, sales))], ignore_index=True)
    br = OCFBridge(CASH, 16, FiscalCalendar(1)).fit(frame)
    np.testing.assert_allclose(br.gamma_, gamma)
    assert list(q[:4]) == [1, 2, 3, 4]
