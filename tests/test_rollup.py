"""The FCF roll-up: coherent paths, ordered and reproducible quantiles, a leak-free backtest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.loader import load_quarterly
from forecasting.bridge import FCF, NET_CAPEX, OCF
from forecasting.rollup import FCF_TTM, backtest_rollup, prepare, rollup, score_rollup, simulate

QCOLS = ["p2.5", "p5", "p10", "p50", "p90", "p95", "p97.5"]


@pytest.fixture(scope="module")
def df():
    return load_quarterly()


@pytest.fixture(scope="module")
def result(df):
    return rollup(df, h=4, model="SeasonalNaive", n_windows=4, n_paths=1000, seed=0)


def test_rollup_quantiles_are_ordered_for_four_quarters(result):
    for q in (result.quarterly, result.ttm):
        assert len(q) == 4 and list(q["ds"].dt.year) == [2026, 2026, 2027, 2027]
        assert (np.diff(q[QCOLS].to_numpy(), axis=1) >= 0).all()
    assert result.simulation.paths[FCF].shape == (1000, 4)
    assert result.params["origin"] == "2026Q2"


def test_same_seed_same_quantiles_other_seed_differs(result):
    again = simulate(result.inputs, 1000, seed=0)
    pd.testing.assert_frame_equal(again.ttm(), result.ttm)
    other = simulate(result.inputs, 1000, seed=1)
    assert not np.allclose(other.ttm()[QCOLS], result.ttm[QCOLS])


def test_every_path_is_coherent_and_goes_through_the_bridge(result):
    p, inp = result.simulation.paths, result.inputs
    for m in ("net_sales", "operating_income"):
        parts = sum(p[f"{m}_{s}"] for s in ("north_america", "international", "aws"))
        np.testing.assert_allclose(p[f"{m}_total"], parts)
        np.testing.assert_allclose(p[f"{m}_retail"], p[f"{m}_north_america"] + p[f"{m}_international"])
    np.testing.assert_allclose(p[FCF], p[OCF] - p[NET_CAPEX])
    fcf = inp.history[inp.history["unique_id"] == FCF]["y"].to_numpy()
    np.testing.assert_allclose(p[FCF_TTM][:, 0], fcf[-3:].sum() + p[FCF][:, 0])
    assert (p[NET_CAPEX] >= 0).all()


def test_drivers_are_reconciled(result):
    d = result.drivers.pivot(index="ds", columns="unique_id", values="mean")
    parts = d[["net_sales_north_america", "net_sales_international", "net_sales_aws"]].sum(axis=1)
    np.testing.assert_allclose(d["net_sales_total"], parts, rtol=1e-9)


def test_simulation_uses_only_windows_reported_by_the_origin(df):
    inp = prepare(df, h=3, model="SeasonalNaive", n_windows=3)
    assert all(c + pd.offsets.QuarterEnd(3) <= inp.origin for c in inp.windows)
    assert inp.errors.shape == (3, 8, 3)  # 3 windows, 6 segments + capex + bridge error, h=3
    assert inp.bridge.cutoff_ == inp.origin


@pytest.fixture(scope="module")
def small_backtest(df):
    return backtest_rollup(df, h=2, model="SeasonalNaive", n_windows=2, min_windows=2, n_paths=300,
                           methods=("BottomUp",))


def test_backtest_rollup_scores_beside_seasonal_naive(small_backtest):
    bt = small_backtest["backtest"]
    assert set(bt["unique_id"]) == {FCF, FCF_TTM}
    assert set(bt["model"]) == {"Rollup", "SeasonalNaive"}
    assert set(bt["step"]) == {1, 2}
    assert bt.groupby(["unique_id", "model"]).size().eq(4).all()  # 2 cutoffs x 2 steps
    assert (bt["lo-95"] <= bt["lo-80"]).all() and (bt["hi-80"] <= bt["hi-95"]).all()
    rep = small_backtest["history"].set_index(["unique_id", "ds"])["y"]
    np.testing.assert_array_equal(bt["y"], rep.loc[list(zip(bt["unique_id"], bt["ds"]))].to_numpy())
    s = score_rollup(small_backtest)
    ov = s["overall"].set_index(["unique_id", "model"])
    assert np.isfinite(ov["mase"]).all() and ov["coverage_80"].between(0, 1).all()
    assert (ov.xs("SeasonalNaive", level="model")["rel_mase"] == 1).all()
    rec = s["reconciliation"]
    assert set(rec["method"]) == {"base", "BottomUp", "MinTrace-wls_struct"}
    assert (rec.loc[rec["method"] == "base", "gm_rel_to_base"] == 1).all()


def test_seasonal_naive_ttm_is_last_reported_ttm(small_backtest):
    bt = small_backtest["backtest"]
    sn = bt[(bt["unique_id"] == FCF_TTM) & (bt["model"] == "SeasonalNaive")]
    hist = small_backtest["history"].set_index(["unique_id", "ds"])["y"]
    for r in sn.itertuples():
        assert r.mean == hist[(FCF_TTM, r.cutoff)]
