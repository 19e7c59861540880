"""The FCF roll-up: coherent pipeline and paths, calibration by hand, scenarios, no look-ahead.

A reduced configuration (two candidate models, one guided model, node cutoffs from 2019Q4)
keeps the suite fast; the full default runs in ``fcf rollup --backtest`` (README numbers).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.guidance import GuidanceBook, load_guidance
from features.loader import load_quarterly
from features.profile import shipped_profile
from forecasting.rollup.paths import build_inputs, calibration_factor, rollup, simulate
from forecasting.rollup.backtest import RollupBacktestConfig, backtest_rollup, score_rollup
from forecasting.rollup.config import RollupConfig, RollupSeries
from forecasting.rollup.pipeline import driver_frame, node_forecasts, prepare_pipeline, run_pipeline
from forecasting.scenarios.run import run_scenarios
from forecasting.rollup.selection import SelectionSettings

AMAZON = shipped_profile("amazon")
SERIES = RollupSeries.of(AMAZON)
CASH = AMAZON.cash_flow
FCF, NET_CAPEX, OCF, OI, SALES = CASH.free_cash_flow, CASH.capex, CASH.operating_cash_flow, CASH.operating_income, \
    CASH.sales
FCF_TTM = CASH.fcf_ttm

QCOLS = ["p2.5", "p5", "p10", "p50", "p90", "p95", "p97.5"]
SMALL = RollupConfig(candidates=("AutoETS", "SeasonalNaive"), guided=("GuidedAutoETS",), first_cutoff="2019Q4",
                     selection=SelectionSettings(window=8, min_windows=3), n_paths=400, error_windows=6,
                     calibration_window=4)


@pytest.fixture(scope="module")
def df():
    return load_quarterly()


@pytest.fixture(scope="module")
def book():
    return load_guidance()


@pytest.fixture(scope="module")
def pipe(df, book):
    return prepare_pipeline(df, AMAZON, SMALL, book)


@pytest.fixture(scope="module")
def result(df, book, pipe):
    return rollup(df, AMAZON, SMALL, book, pipeline=pipe)


def test_pipeline_is_coherent_at_every_cutoff(pipe):
    w = pipe.final.pivot_table(index=["cutoff", "ds"], columns="unique_id", values="mean")
    for m in ("net_sales", "operating_income"):
        parts = sum(w[f"{m}_{s}"] for s in ("north_america", "international", "aws"))
        np.testing.assert_allclose(w[f"{m}_total"], parts, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(w[FCF], w[OCF] - w[NET_CAPEX], atol=1e-6)
    assert pipe.cutoffs[-1] == pd.Timestamp("2026-06-30")
    # guidance is used for the guided nodes: the chosen model is a guided one at least once
    chosen = pipe.choices
    assert chosen["model"].isin(["AutoETS", "SeasonalNaive", "GuidedAutoETS"]).all()
    assert set(chosen.loc[chosen["unique_id"].isin([SALES, OI]), "model"]) & {"GuidedAutoETS"}


def test_rollup_quantiles_paths_and_seeds(result):
    for q in (result.quarterly, result.ttm):
        assert len(q) == 4 and list(q["ds"].dt.year) == [2026, 2026, 2027, 2027]
        assert (np.diff(q[QCOLS].to_numpy(), axis=1) >= 0).all()
    p, inp = result.simulation.paths, result.inputs
    for m in ("net_sales", "operating_income"):
        parts = sum(p[f"{m}_{s}"] for s in ("north_america", "international", "aws"))
        np.testing.assert_allclose(p[f"{m}_total"], parts)
    np.testing.assert_allclose(p[FCF], p[OCF] - p[NET_CAPEX])
    fcf = inp.history[inp.history["unique_id"] == FCF]["y"].to_numpy()
    np.testing.assert_allclose(p[FCF_TTM][:, 1], fcf[-2:].sum() + p[FCF][:, :2].sum(axis=1))
    # centred errors: the paths' mean is the pipeline's point forecast (up to the floors at zero)
    point = result.pipeline.at(inp.origin).set_index(["unique_id", "ds"])["mean"]
    np.testing.assert_allclose(p[OCF].mean(axis=0), point.loc[OCF].to_numpy()[:4], rtol=1e-9)
    again = simulate(inp)
    pd.testing.assert_frame_equal(again.ttm(), result.ttm)
    other = simulate(inp, seed=1)
    assert not np.allclose(other.ttm()[QCOLS], result.ttm[QCOLS])
    assert result.params["origin"] == "2026Q2" and result.params["error_scale"] > 0


def test_error_windows_are_reported_by_the_origin(pipe):
    inp = build_inputs(pipe, "2024-06-30", 4)
    assert all(c + pd.offsets.QuarterEnd(4) <= pd.Timestamp("2024-06-30") for c in inp.windows)
    assert len(inp.windows) == SMALL.error_windows
    assert inp.windows[-1] == pd.Timestamp("2023-06-30")  # the most recent fully reported window


def test_calibration_factor_is_the_conformal_quantile_by_hand():
    """Bug caught: a factor computed from the wrong side's half-width, or an off-by-one
    quantile index, would move the value below."""
    y = np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    rows = pd.DataFrame({"y": y, "mean": 5.0, "lo-80": 4.0, "hi-80": 7.0})
    # scores: below the mean |y-5|/1, above |y-5|/2  ->  4,3,2,1,0,.5,1,1.5,2,2.5 ; sorted:
    # 0,.5,1,1,1.5,2,2,2.5,3,4 ; conformal quantile at 80% of n=10: ceil(11*.8)=9th -> 3.0
    assert calibration_factor(rows) == pytest.approx(3.0)
    assert calibration_factor(rows.iloc[:5]) == 1.0  # too few rows: no rescaling


def test_backtest_tables_and_the_factor_learnt_from_reported_rows(df, book, pipe):
    res = backtest_rollup(df, AMAZON, SMALL, book, RollupBacktestConfig(n_windows=4, direct_models=("AutoETS",)),
                          pipeline=pipe)
    bt = res.backtest
    assert set(bt["model"]) >= {"Rollup", "RollupCalibrated", "SeasonalNaive", "AutoETS", "FCFChampion"}
    assert set(bt["unique_id"]) == {FCF, FCF_TTM}
    cuts = sorted(bt["cutoff"].unique())
    assert len(cuts) == 4 and cuts[-1] == pd.Timestamp("2025-06-30")
    assert bt["step"].between(1, 4).all() and bt["y"].notna().all()
    sc = score_rollup(res)
    row = sc.overall.set_index(["unique_id", "model"]).loc[(FCF, "SeasonalNaive")]
    assert row["rel_mase"] == pytest.approx(1.0)
    assert {"scaled_crps", "msis_80", "coverage_80"} <= set(sc.overall.columns)
    assert set(sc.fiscal_years["which"]) <= {"current", "next"} and len(sc.fiscal_years)
    # the factor at each evaluated cutoff: the raw simulations at the 4 cutoffs before it, over the
    # quarters reported by it (the last one covers one quarter, the first four)
    from forecasting.rollup.paths import interval_rows, reported_fcf

    first = cuts[0]
    earlier = [c for c in pipe.cutoffs if c < first][-SMALL.calibration_window:]
    steps = [min(4, len(pd.date_range(c, first, freq="QE")) - 1) for c in earlier]
    assert steps == [4, 3, 2, 1]
    rows = pd.concat([interval_rows(simulate(build_inputs(pipe, c, k)), c, "Rollup", reported_fcf(pipe.history, SERIES))
                      for c, k in zip(earlier, steps)], ignore_index=True)
    assert (rows["ds"] <= first).all() and len(rows) == 2 * (4 + 3 + 2 + 1)
    expected = calibration_factor(rows)
    assert res.factors.set_index("cutoff").loc[first, "error_scale"] == pytest.approx(expected)
    assert sc.cashflow_by_step["model"].str.startswith("reconciled").any()


def test_scenario_capex_moves_fcf_one_for_one_and_oi_through_the_bridge(df, book, pipe):
    inputs = rollup(df, AMAZON, SMALL.replace(h=6), book, pipeline=pipe).inputs
    capex = {"description": "d", "sources": ["s"], "drivers": {"capex": {"quarter": {"2026Q3": 70000}}},
             "carry_forward": False}
    res = run_scenarios(df, AMAZON, [capex], h=6, inputs=inputs)
    b, s = res.simulations["base"].paths, res.simulations["scenario"].paths
    d_capex = s[NET_CAPEX] - b[NET_CAPEX]
    assert np.allclose(s[NET_CAPEX][:, 0].mean(), 70000) and np.allclose(d_capex[:, 1:], 0)
    np.testing.assert_allclose(s[FCF] - b[FCF], -d_capex)
    margin = {"description": "d", "sources": ["s"], "drivers": {"operating_margin": {"aws": {2026: 0.5}}},
              "carry_forward": False}
    res = run_scenarios(df, AMAZON, [margin], h=6, inputs=inputs)
    b, s = res.simulations["base"].paths, res.simulations["scenario"].paths
    d_oi = s[OI] - b[OI]
    assert np.abs(d_oi[:, :2]).min() > 0 and np.allclose(d_oi[:, 2:], 0)
    np.testing.assert_allclose(s[OCF] - b[OCF], d_oi)  # sales unchanged: OCF moves by dOI only
    assert np.allclose(s[NET_CAPEX], b[NET_CAPEX])


def test_nothing_after_a_cutoff_reaches_it(df, book):
    """Bug caught: any leak from segments, OCF, capex, FCF or later guidance into the node
    forecasts, the choices, the cash-flow weights or the error windows at or before the cutoff.
    Every value after the cutoff (every series) and every guidance row announced after the day
    it was reported is replaced by absurd numbers; the roll-up at and before it must not move."""
    cut = pd.Timestamp("2024-06-30")
    cfg = SMALL.replace(first_cutoff="2021Q4", guided=("GuidedAutoETS",))
    hist = driver_frame(df, SERIES)
    clean = hist[hist["ds"] <= cut + pd.offsets.QuarterEnd(4)]
    poisoned = clean.copy()
    later = poisoned["ds"] > cut
    poisoned.loc[later, "y"] = -7.7e7 * (1 + np.arange(later.sum()) % 3)
    day = book.release_date(cut)
    q, a = book.quarterly.copy(), book.annual.copy()
    q.loc[q["announced_on"] > day, ["low", "high"]] = [9e8, 9.1e8]
    a.loc[a["announced_on"] > day, ["low", "high"]] = [9e8, 9e8]
    bad_book = GuidanceBook(q, a)
    runs = []
    for h, g in ((clean, book), (poisoned, bad_book)):
        nodes = node_forecasts(h, SERIES, cfg, g)
        runs.append(run_pipeline(h, nodes, SERIES, cfg))
    p0, p1 = runs
    keep = lambda x: x[x["cutoff"] <= cut].drop(columns="y").reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(keep(p0.final), keep(p1.final))
    pd.testing.assert_frame_equal(p0.choices[p0.choices["cutoff"] <= cut].reset_index(drop=True),
                                  p1.choices[p1.choices["cutoff"] <= cut].reset_index(drop=True))
    i0, i1 = build_inputs(p0, cut, 4), build_inputs(p1, cut, 4)
    np.testing.assert_array_equal(i0.errors, i1.errors)
    np.testing.assert_array_equal(i0.point, i1.point)
    pd.testing.assert_frame_equal(simulate(i0).table(), simulate(i1).table())
    # control: a cutoff after the poison does move
    later_cut = cut + pd.offsets.QuarterEnd(2)
    a0 = p0.final[p0.final["cutoff"] == later_cut]["mean"].to_numpy()
    a1 = p1.final[p1.final["cutoff"] == later_cut]["mean"].to_numpy()
    assert not np.allclose(a0, a1)


def _hand_level(history: pd.DataFrame, series: str) -> float:
    y = history[history["unique_id"] == series].sort_values("ds")["y"].to_numpy()
    return float(np.abs(y[-4:]).mean())


def test_paths_follow_the_segments_capex_ocf_and_the_ttm_computed_by_hand(result):
    """With every past error window the same (and the windows' mean kept, ``centre=False``),
    each path is deterministic: recomputed here from the pipeline's point forecasts, levels
    computed by hand and the reported FCF. Catches: FCF = OCF + capex, operating-income errors
    scaled by operating income instead of its segment's sales, OCF scaled by the wrong series,
    a TTM that starts from the wrong reported quarters, totals that are not the sum of the
    segment paths."""
    from dataclasses import replace

    SIMULATED = SERIES.simulated
    inp = replace(result.inputs, config=result.inputs.config.replace(centre=False))
    h = len(inp.ds)
    e = np.random.default_rng(3).normal(0, 0.01, (len(SIMULATED), h))  # small: no path hits 0
    inp.errors = np.repeat(e[None], 4, axis=0)
    sim = simulate(inp, n_paths=5, seed=0)
    hist = inp.history
    point = result.pipeline.at(inp.origin).pivot(index="ds", columns="unique_id", values="mean").loc[inp.ds]
    seg = {}
    for i, s in enumerate(SIMULATED):
        scale_by = {OCF: SALES}.get(s, s.replace("operating_income", "net_sales"))
        seg[s] = point[s].to_numpy() + _hand_level(hist, scale_by) * e[i]
    sales = sum(seg[f"net_sales_{x}"] for x in ("north_america", "international", "aws"))
    fcf = seg[OCF] - seg[NET_CAPEX]
    reported = hist[hist["unique_id"] == FCF].sort_values("ds")["y"].to_numpy()
    ttm = np.convolve(np.r_[reported[-3:], fcf], np.ones(4), mode="valid")
    for path in range(5):
        np.testing.assert_allclose(sim.paths[SALES][path], sales, rtol=1e-9)
        np.testing.assert_allclose(sim.paths[FCF][path], fcf, rtol=1e-9)
        np.testing.assert_allclose(sim.paths[FCF_TTM][path], ttm, rtol=1e-9)


def test_a_reused_pipeline_takes_the_callers_horizon_and_refuses_other_pipeline_settings(df, book, pipe):
    """Catches `rollup(..., config, pipeline=pipe)` silently running with the pipeline's own
    config (h = 4 and its seed) instead of the caller's, and a pipeline reused under a config
    whose node settings it was not computed with."""
    res = rollup(df, AMAZON, SMALL.replace(h=6, seed=3), book, pipeline=pipe)
    assert res.quarterly["ds"].nunique() == 6 and res.params["h"] == 6 and res.params["seed"] == 3
    with pytest.raises(ValueError, match="method"):
        rollup(df, AMAZON, SMALL.replace(method="BottomUp"), book, pipeline=pipe)
