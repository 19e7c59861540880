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
    assert set(bt["model"]) == {"Rollup", "RollupCalibrated", "SeasonalNaive"}
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


def test_calibration_factor_is_the_conformal_quantile_of_side_aware_scores():
    from forecasting.rollup import calibration_factor

    rows = pd.DataFrame({"mean": 0.0, "lo-80": -1.0, "hi-80": 2.0,
                         "y": [-0.5, 1.0, -2.0, 4.0, 0.2, -0.1, 3.0, -1.5, 0.0, 1.9]})
    # scores: 0.5, 0.5, 2, 2, 0.1, 0.1, 1.5, 1.5, 0, 0.95 -> ceil(11 * 0.8) = 9th smallest = 2.0
    assert calibration_factor(rows) == 2.0
    assert calibration_factor(rows.iloc[:5]) == 1.0  # too few outcomes: no rescaling


def test_calibrated_backtest_learns_only_from_outcomes_reported_by_each_cutoff(df):
    """At the last cutoff the calibration has enough earlier outcomes to rescale the band; FCF
    reported after that cutoff (which a leak would read) must not change its rows."""
    kw = dict(h=2, model="SeasonalNaive", n_windows=6, min_windows=2, n_paths=200, seed=0,
              methods=("BottomUp",), method="BottomUp")
    a = backtest_rollup(df, **kw)["backtest"]
    last = a["cutoff"].max()
    changed = df.copy()
    later = (changed["unique_id"] == FCF) & (changed["ds"] > last)
    changed.loc[later, "y"] = changed.loc[later, "y"] * 3 + 50_000
    b = backtest_rollup(changed, **kw)["backtest"]
    cols = ["mean", "lo-80", "hi-80", "lo-95", "hi-95"]

    def at_last(t, model):
        return t[(t["cutoff"] == last) & (t["model"] == model)].sort_values(["unique_id", "ds"])[cols]

    np.testing.assert_allclose(at_last(a, "RollupCalibrated").to_numpy(), at_last(b, "RollupCalibrated").to_numpy())
    raw, cal = at_last(a, "Rollup"), at_last(a, "RollupCalibrated")
    assert not np.allclose((raw["hi-80"] - raw["lo-80"]).to_numpy(), (cal["hi-80"] - cal["lo-80"]).to_numpy())


def test_error_scale_widens_the_band_around_the_same_centre(df):
    inputs = prepare(df, h=2, model="SeasonalNaive", n_windows=4)
    base = simulate(inputs, 500, 0).quarterly().set_index("ds")
    inputs.error_scale = 2.0
    wide = simulate(inputs, 500, 0).quarterly().set_index("ds")
    assert ((wide["p90"] - wide["p10"]) > 1.5 * (base["p90"] - base["p10"])).all()
    assert np.allclose(wide["mean"], base["mean"], rtol=0.05, atol=500)
