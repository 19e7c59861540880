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


def _hand_level(hist: pd.DataFrame, series: str) -> float:
    """Mean |y| of the last four reported quarters of `series`."""
    return float(hist[hist["unique_id"] == series].sort_values("ds")["y"].tail(4).abs().mean())


def test_paths_follow_the_segments_the_bridge_and_the_ttm_computed_by_hand(df):
    """With every past error window the same, each path is deterministic; it is recomputed
    here from the reconciled driver forecasts, levels, the bridge's least squares and the
    reported FCF, none of them read from the simulation. (The earlier test re-derived the sums
    that `simulate` computes by construction.) Catches: FCF = OCF + capex, gamma applied to
    the wrong quarter of the year, operating-income errors scaled by operating income instead
    of its segment's sales, the bridge error scaled by the wrong series, a TTM that starts from
    the wrong reported quarters, totals that are not the sum of the segment paths."""
    from forecasting.rollup import SIMULATED

    h = 4
    inp = prepare(df, h=h, model="SeasonalNaive", n_windows=4)
    rng = np.random.default_rng(3)
    e = rng.normal(0, 0.01, (len(SIMULATED) + 1, h))  # small: no sales or capex path hits 0
    inp.errors = np.repeat(e[None], 4, axis=0)
    sim = simulate(inp, 7, seed=0)
    hist, ds = inp.history, inp.ds
    drv = inp.drivers.pivot(index="ds", columns="unique_id", values="mean").loc[ds]
    seg = {}
    for i, s in enumerate(SIMULATED):
        scale_by = s.replace("operating_income", "net_sales") if s.startswith("operating_income") else s
        seg[s] = drv[s].to_numpy() + _hand_level(hist, scale_by) * e[i]
    sales = sum(seg[f"net_sales_{x}"] for x in ("north_america", "international", "aws"))
    oi = sum(seg[f"operating_income_{x}"] for x in ("north_america", "international", "aws"))
    w = hist.pivot(index="ds", columns="unique_id", values="y")[[OCF, "operating_income_total",
                                                                  "net_sales_total"]].dropna().tail(16)
    add, sal = (w[OCF] - w["operating_income_total"]).to_numpy(), w["net_sales_total"].to_numpy()
    qtr = w.index.quarter.to_numpy()
    gamma = {k: (add[qtr == k] * sal[qtr == k]).sum() / (sal[qtr == k] ** 2).sum() for k in (1, 2, 3, 4)}
    ocf = oi + np.array([gamma[d.quarter] for d in ds]) * sales + _hand_level(hist, "net_sales_total") * e[-1]
    fcf = ocf - seg[NET_CAPEX]
    reported = hist[hist["unique_id"] == FCF].sort_values("ds")["y"].to_numpy()
    ttm = np.convolve(np.r_[reported[-3:], fcf], np.ones(4), mode="valid")
    for path in range(7):
        np.testing.assert_allclose(sim.paths["net_sales_total"][path], sales, rtol=1e-9)
        np.testing.assert_allclose(sim.paths[OCF][path], ocf, rtol=1e-9)
        np.testing.assert_allclose(sim.paths[FCF][path], fcf, rtol=1e-9)
        np.testing.assert_allclose(sim.paths[FCF_TTM][path], ttm, rtol=1e-9)


def test_drivers_are_reconciled(result):
    d = result.drivers.pivot(index="ds", columns="unique_id", values="mean")
    parts = d[["net_sales_north_america", "net_sales_international", "net_sales_aws"]].sum(axis=1)
    np.testing.assert_allclose(d["net_sales_total"], parts, rtol=1e-9)


def test_error_windows_at_an_earlier_origin_are_exactly_those_reported_by_it(df):
    """At an origin with later quarters in the data, the error windows are the past cutoffs c
    with c + h <= origin, all of them, and each error is (reported - forecast) / level at c.
    (The earlier test looked at the newest quarter, after which nothing is reported, so it
    could not fail.) Catches: error windows or levels taken from the uncut history, a window
    whose last outcome comes after the origin, errors scaled by the level at the origin."""
    from forecasting.rollup import build_inputs, driver_frame, forecast_nodes, reconciled

    h = 3
    history = driver_frame(df)
    past = reconciled(forecast_nodes(history, "SeasonalNaive", h, 12, end_offset=h))
    cuts = sorted(past["cutoff"].unique())
    origin = pd.Timestamp(cuts[7])
    inp = build_inputs(history, past[past["cutoff"] == origin], past, origin, h, "MinTrace-wls_struct", 16,
                       "SeasonalNaive", min_windows=3)
    expected = [pd.Timestamp(c) for c in cuts if c + pd.offsets.QuarterEnd(h) <= origin]
    assert list(inp.windows) == expected and len(expected) == 5
    assert inp.errors.shape == (5, 8, h)  # 6 segments + capex + the bridge error
    assert inp.bridge.cutoff_ == origin and inp.history["ds"].max() == origin
    c, s = expected[0], "operating_income_aws"
    f = past[(past["cutoff"] == c) & (past["unique_id"] == s)].sort_values("ds")["mean"].to_numpy()
    y = history[history["unique_id"] == s].set_index("ds")["y"]
    obs = y.loc[[c + pd.offsets.QuarterEnd(k) for k in range(1, h + 1)]].to_numpy()
    lev = _hand_level(history[history["ds"] <= c], "net_sales_aws")
    np.testing.assert_allclose(inp.errors[0, 5], (obs - f) / lev, rtol=1e-12)


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


def test_calibrated_rollup_error_scale_is_the_conformal_quantile_of_its_own_backtest(df):
    """`rollup(calibrate=True)` scales its errors by the 80% split-conformal quantile of the
    side-aware scores of an uncalibrated roll-up backtest over the last `calibration_windows`
    cutoffs, recomputed here by hand; the band then widens by about that factor. Catches: a
    calibration that is skipped, uses the wrong level or quantile index, scores against the
    wrong bound, or is not applied to the simulation."""
    import math

    from forecasting.hierarchy import DEFAULT_METHOD

    kw = dict(h=2, model="SeasonalNaive", n_paths=400, seed=0)
    res = rollup(df, n_windows=4, calibration_windows=8, **kw)
    raw = rollup(df, n_windows=4, calibrate=False, **kw)
    bt = backtest_rollup(df, n_windows=8, method=DEFAULT_METHOD, methods=(DEFAULT_METHOD,), calibrate=False,
                         **kw)["backtest"]
    r = bt[bt["model"] == "Rollup"].dropna(subset=["y"])
    side = np.where(r["y"] < r["mean"], r["mean"] - r["lo-80"], r["hi-80"] - r["mean"])
    scores = np.sort((r["y"] - r["mean"]).abs().to_numpy() / side)
    k = math.ceil((len(scores) + 1) * 0.8)  # the k-th smallest of n scores
    assert len(scores) == 2 * 8 * 2  # FCF and TTM FCF x 8 cutoffs x 2 steps
    factor = scores[k - 1]
    assert res.params["error_scale"] == factor == res.inputs.error_scale
    assert factor > 1.2  # on this data the raw band is too narrow
    width = (res.quarterly["p90"] - res.quarterly["p10"]).to_numpy()
    raw_width = (raw.quarterly["p90"] - raw.quarterly["p10"]).to_numpy()
    np.testing.assert_allclose(width / raw_width, factor, rtol=0.05)
    np.testing.assert_allclose(res.quarterly["p50"], raw.quarterly["p50"], rtol=0.05)


def test_error_scale_widens_the_band_around_the_same_centre(df):
    inputs = prepare(df, h=2, model="SeasonalNaive", n_windows=4)
    base = simulate(inputs, 500, 0).quarterly().set_index("ds")
    inputs.error_scale = 2.0
    wide = simulate(inputs, 500, 0).quarterly().set_index("ds")
    assert ((wide["p90"] - wide["p10"]) > 1.5 * (base["p90"] - base["p10"])).all()
    assert np.allclose(wide["mean"], base["mean"], rtol=0.05, atol=500)
