"""Forecast combinations (forecasting/methods/ensemble.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from forecasting.core.frames import ShortSeriesWarning, output_columns
from forecasting.methods.catalogue import resolve
from forecasting.methods.registry import REGISTRY, ModelSpec, get_spec

CUT = pd.Timestamp("2024-12-31")
DS = pd.date_range("2025-03-31", periods=2, freq="QE")


def _members(means: dict[str, list[float]], uid="s", half=10.0) -> pd.DataFrame:
    rows = []
    for model, m in means.items():
        for ds, v in zip(DS, m):
            rows.append({"unique_id": uid, "ds": ds, "model": model, "model_used": model, "mean": v,
                         "lo-95": v - 2 * half, "lo-80": v - half, "hi-80": v + half, "hi-95": v + 2 * half,
                         "cutoff": CUT, "y": 1000.0})
    return pd.DataFrame(rows)


def _past(errors: dict[str, float], n: int, uid="s") -> pd.DataFrame:
    """n earlier rows per member, all reported by CUT, with absolute error errors[model]."""
    ds = pd.date_range(end=CUT, periods=n, freq="QE")
    rows = []
    for model, e in errors.items():
        for d in ds:
            rows.append({"unique_id": uid, "ds": d, "cutoff": d - pd.offsets.QuarterEnd(1),
                         "model": model, "mean": 100.0 + e, "y": 100.0})
    return pd.DataFrame(rows)


def _spec(combiner, members=("A", "B", "C")):
    return ModelSpec(name=f"Test{combiner}", kind="ensemble", family="ensemble", members=members,
                     options={"combiner": combiner})


def test_median_of_points_and_bounds():
    from forecasting.methods.ensemble import combine

    fc = _members({"A": [1.0, 2.0], "B": [5.0, 20.0], "C": [3.0, -4.0], "Other": [99.0, 99.0]})
    out = combine(fc, _spec("median"))
    assert list(out.columns) == output_columns((80, 95))
    assert (out["model"] == "Testmedian").all() and (out["model_used"] == "Testmedian").all()
    assert out["mean"].tolist() == [3.0, 2.0]
    assert out["hi-80"].tolist() == [13.0, 12.0] and out["lo-95"].tolist() == [-17.0, -18.0]


def test_weighted_without_past_is_the_mean():
    from forecasting.methods.ensemble import combine

    fc = _members({"A": [0.0, 0.0], "B": [3.0, 6.0], "C": [6.0, 9.0]})
    out = combine(fc, _spec("weighted"), past=None)
    np.testing.assert_allclose(out["mean"], [3.0, 5.0])


def test_weights_follow_inverse_mae_with_shrinkage():
    from forecasting.methods.ensemble import SHRINKAGE, member_weights, series_cutoffs

    fc = _members({"A": [0.0, 0.0], "B": [0.0, 0.0]})
    n = 8
    w = member_weights(_past({"A": 1.0, "B": 3.0}, n), ["A", "B"], series_cutoffs(fc)).set_index("model")
    lam = n / (n + SHRINKAGE)
    expected_a = lam * (1 / 1) / (1 / 1 + 1 / 3) + (1 - lam) * 0.5
    assert w.loc["A", "weight"] == pytest.approx(expected_a)
    assert w["weight"].sum() == pytest.approx(1.0) and w.loc["A", "n"] == n
    # more history -> closer to the pure inverse-MAE weights
    w_long = member_weights(_past({"A": 1.0, "B": 3.0}, 40), ["A", "B"], series_cutoffs(fc))
    assert w_long.set_index("model").loc["A", "weight"] > expected_a


def test_combine_ignores_what_it_should_not_see():
    """Realised y of the forecasts, and past rows not reported by the cutoff, change nothing."""
    from forecasting.methods.ensemble import combine

    fc = _members({"A": [10.0, 20.0], "B": [30.0, 40.0], "C": [50.0, 60.0]})
    past = _past({"A": 1.0, "B": 2.0, "C": 4.0}, 12)
    base = combine(fc, _spec("weighted"), past=past)
    assert not np.allclose(base["mean"], [30.0, 40.0])  # the weights are not equal
    leaky = fc.assign(y=-1e9)
    # rows a forecaster at CUT could not know: outcomes after the cutoff, forecasts made at or
    # after it; they would make C the best member if read
    future_rows = pd.concat([
        _past({"A": 1e6, "B": 1e6, "C": 0.0}, 4).assign(ds=lambda d: d["ds"] + pd.offsets.QuarterEnd(4),
                                                        cutoff=CUT - pd.offsets.QuarterEnd(2)),
        _past({"A": 1e6, "B": 1e6, "C": 0.0}, 4).assign(cutoff=CUT),
    ])
    out = combine(leaky, _spec("weighted"), past=pd.concat([past, future_rows], ignore_index=True))
    pd.testing.assert_frame_equal(out, base)


def test_missing_member_is_a_clear_error():
    from forecasting.methods.ensemble import combine

    with pytest.raises(ValueError, match=r"member\(s\) \['C'\]"):
        combine(_members({"A": [1.0, 1.0], "B": [1.0, 1.0]}), _spec("median"))


def test_ensembles_are_registered_with_members():
    names = {s.name for s in resolve("ensemble")}
    assert {"MedianEnsemble", "WeightedEnsemble", "WeightedStatML"} <= names
    for name in ("WeightedStatML", "StatsMLCombo"):
        families = {get_spec(m).family for m in get_spec(name).members}
        assert {"statistical", "ml"} <= families
    assert get_spec("StatsMLCombo").options["combiner"] == "mean"


def test_backtest_and_forecast_run_an_ensemble():
    from features.loader import load_quarterly
    from forecasting.rolling.backtest import backtest
    from forecasting.methods.ensemble import register_ensemble
    from forecasting.rolling.forecast import forecast

    resolve(None)
    df = load_quarterly(series=["net_sales_aws", "free_cash_flow"])
    try:
        register_ensemble("FastTestEnsemble", ("Naive", "SeasonalNaive", "RidgeML"), "weighted")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ShortSeriesWarning)
            bt = backtest(df, "FastTestEnsemble", h=2, n_windows=2, warmup_windows=2)
            fc = forecast(df, h=2, models="FastTestEnsemble", calibration_windows=3)
        e = bt[bt["model"] == "FastTestEnsemble"]
        assert len(e) == 2 * 2 * 2 and (e["model_used"] == "FastTestEnsemble").all()
        assert set(fc["model"]) == {"SeasonalNaive", "FastTestEnsemble"} and len(fc) == 2 * 2 * 2
        assert np.isfinite(fc[["mean", "lo-95", "hi-95"]].to_numpy()).all()
    finally:
        REGISTRY.pop("FastTestEnsemble", None)
