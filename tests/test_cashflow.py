"""The cash-flow identity reconciliation against its closed form, and the proper scores by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.reconcile.cashflow import reconcile_cashflow, summing_matrix
from forecasting.core.metrics import pinball, pointwise, scaled_crps_rows, summarize

DS = pd.date_range("2026-09-30", periods=2, freq="QE")


def base_frame():
    return pd.DataFrame({"ds": DS, "fcf": [5.0, 6.0], "ocf_bridge": [28.0, 30.0], "ocf": [25.0, 27.0],
                         "capex": [20.0, 22.0]})


def closed_form(W):
    S = summing_matrix()
    yhat = base_frame()[["fcf", "ocf_bridge", "ocf", "capex"]].to_numpy().T
    Wi = np.linalg.inv(W)
    return np.linalg.solve(S.T @ Wi @ S, S.T @ Wi @ yhat)  # (2, h): OCF, capex


def test_summing_matrix_subtracts_capex():
    assert summing_matrix().tolist() == [[1, -1], [1, 0], [1, 0], [0, 1]]


def test_ols_equals_the_closed_form_and_fcf_is_ocf_minus_capex():
    """Bug caught: a reconciliation that treated FCF as OCF + capex (a plain sum, as in the
    segment tree) or dropped the bridge node would give other numbers."""
    out = reconcile_cashflow(base_frame(), None, "ols")
    ocf, capex = closed_form(np.eye(4))
    assert np.allclose(out["ocf"], ocf) and np.allclose(out["capex"], capex)
    assert np.allclose(out["fcf"], out["ocf"] - out["capex"])
    # first quarter by hand: minimise (o-c-5)^2 + (o-28)^2 + (o-25)^2 + (c-20)^2
    #   d/do: 3o - c = 58;  d/dc: 2c - o = 15  ->  o = 26.2, c = 20.6
    assert out.loc[0, "ocf"] == pytest.approx(26.2) and out.loc[0, "capex"] == pytest.approx(20.6)
    assert (out["method_used"] == "ols").all()


def test_wls_var_learns_the_weights_from_past_errors():
    rng = np.random.default_rng(0)
    sd = np.array([3.0, 2.0, 4.0, 1.0])
    errors = pd.DataFrame(rng.normal(size=(40, 4)) * sd, columns=["fcf", "ocf_bridge", "ocf", "capex"])
    out = reconcile_cashflow(base_frame(), errors, "wls_var")
    W = np.diag((errors.to_numpy() ** 2).mean(axis=0) + 2e-8)
    ocf, capex = closed_form(W)
    assert np.allclose(out["ocf"], ocf) and np.allclose(out["capex"], capex)
    assert (out["method_used"] == "wls_var").all()
    # too few past errors: no weights are learnt
    few = reconcile_cashflow(base_frame(), errors.iloc[:3], "wls_var")
    assert (few["method_used"] == "ols").all()


def test_a_missing_bridge_is_dropped_from_the_system():
    b = base_frame().assign(ocf_bridge=np.nan)
    out = reconcile_cashflow(b, None, "ols")
    S = np.array([[1.0, -1.0], [1.0, 0.0], [0.0, 1.0]])
    y = b[["fcf", "ocf", "capex"]].to_numpy().T
    sol = np.linalg.solve(S.T @ S, S.T @ y)
    assert np.allclose(out["ocf"], sol[0]) and np.allclose(out["capex"], sol[1])


def test_scaled_crps_and_interval_score_by_hand():
    """One row: y = 10, quantiles P2.5 = 0, P10 = 4, P50 = 8, P90 = 9, P97.5 = 14, scale 2."""
    row = pd.DataFrame({"unique_id": ["s"], "cutoff": [pd.Timestamp("2025-03-31")], "ds": [pd.Timestamp("2025-06-30")],
                        "step": [1], "model": ["m"], "y": [10.0], "mean": [8.0], "lo-95": [0.0], "lo-80": [4.0],
                        "hi-80": [9.0], "hi-95": [14.0], "scale": [2.0]})
    # pinball: tau .5 -> .5*2 = 1; .025 -> .025*10 = .25; .1 -> .1*6 = .6; .9 -> .9*1 = .9; .975 -> .025*4 = .1
    assert pinball(np.array([10.0]), np.array([9.0]), 0.9)[0] == pytest.approx(0.9)
    expected = 2 * (1 + 0.25 + 0.6 + 0.9 + 0.1) / 5 / 2.0
    assert scaled_crps_rows(row).iloc[0] == pytest.approx(expected)
    # interval score at 80%: width 5 + (2/0.2) * (10 - 9) = 15, scaled by 2
    history = pd.DataFrame({"unique_id": "s", "ds": pd.date_range("2023-06-30", periods=8, freq="QE"),
                            "y": [0, 0, 0, 0, 2, 2, 2, 2.0]})  # seasonal-naive MAE up to the cutoff = 2
    pts = pointwise(row.drop(columns="scale"), history)
    assert pts["scale"].iloc[0] == pytest.approx(2.0)
    assert pts["sis-80"].iloc[0] == pytest.approx(15 / 2)
    assert pts["scrps"].iloc[0] == pytest.approx(expected)
    table = summarize(pts, ("unique_id", "model"))
    assert table["scaled_crps"].iloc[0] == pytest.approx(expected) and table["msis_80"].iloc[0] == pytest.approx(7.5)


def test_our_crps_matches_utilsforecast_mqloss():
    from utilsforecast.losses import mqloss

    rng = np.random.default_rng(1)
    n = 12
    df = pd.DataFrame({"unique_id": "s", "cutoff": pd.Timestamp("2025-03-31"),
                       "ds": pd.date_range("2025-06-30", periods=n, freq="QE"), "y": rng.normal(size=n) * 3})
    q = np.sort(rng.normal(size=(n, 5)), axis=1) * 2
    cols = ["lo-95", "lo-80", "mean", "hi-80", "hi-95"]
    df[cols] = q
    df["scale"] = 1.0
    ours = scaled_crps_rows(df).mean()
    theirs = mqloss(df, models={"m": cols}, quantiles=np.array([0.025, 0.1, 0.5, 0.9, 0.975]))
    assert ours == pytest.approx(2 * float(theirs["m"].iloc[0]))
