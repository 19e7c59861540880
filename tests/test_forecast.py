"""The `forecast()` API: arguments, output contract, model vs conformal intervals, defaults."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.loader import load_quarterly
from forecasting.rolling.forecast import forecast
from forecasting.core.frames import FORECAST_COLUMNS, check_series_frame, enforce_order
from forecasting.methods.catalogue import DEFAULT_MODELS, resolve

ORDER = ["lo-95", "lo-80", "mean", "hi-80", "hi-95"]
SERIES = ["net_sales_aws", "free_cash_flow"]
#: Fast, explicit models (the library default is an ensemble and may change).
MODELS = ["SeasonalNaive", "AutoETS"]


@pytest.fixture(scope="module")
def two() -> pd.DataFrame:
    return load_quarterly(series=SERIES)


@pytest.fixture(scope="module")
def model_fc(two) -> pd.DataFrame:
    return forecast(two, h=3, models=MODELS, intervals="model")


@pytest.fixture(scope="module")
def conformal_fc(two) -> pd.DataFrame:
    return forecast(two, h=3, models=MODELS, intervals="conformal")


def assert_ordered(fc: pd.DataFrame) -> None:
    v = fc[ORDER].to_numpy(dtype=float)
    assert np.isfinite(v).all()
    assert (np.diff(v, axis=1) >= 0).all()


# --------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    ("h", "message"),
    [
        (0, "horizon h must be >= 1, got 0"),
        (-2, "horizon h must be >= 1, got -2"),
        (2.5, "horizon h must be a whole number of quarters, got 2.5"),
        ("3", "horizon h must be a whole number of quarters, got '3'"),
        (True, "horizon h must be a whole number of quarters, got True"),
    ],
)
def test_bad_horizon_is_rejected_before_any_fit(two, h, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        forecast(two, h=h, intervals="model")


def test_long_horizon_needs_model_intervals(two):
    with pytest.raises(ValueError, match=r"horizons of 1 to 8 quarters, got h=9; use intervals='model'"):
        forecast(two, h=9)
    fc = forecast(two, h=9, models=["Naive"], intervals="model")
    assert fc.groupby(["unique_id", "model"]).size().eq(9).all()


def test_numpy_integer_horizon_is_fine(two):
    fc = forecast(two, h=np.int64(1), models=["Naive"], intervals="model")
    assert len(fc) == 2 * 2 * 1  # 2 series x (SeasonalNaive, Naive) x 1 quarter


def test_bad_intervals_argument(two):
    with pytest.raises(ValueError, match="intervals must be 'conformal' or 'model', got 'bootstrap'"):
        forecast(two, h=2, intervals="bootstrap")


def test_input_frame_is_checked():
    ds = pd.date_range("2020-03-31", periods=8, freq="QE")
    good = pd.DataFrame({"unique_id": "a", "ds": ds, "y": np.arange(8.0)})
    with pytest.raises(ValueError, match=r"needs columns unique_id, ds, y; missing \['y'\]"):
        forecast(good.rename(columns={"y": "value"}), h=2, intervals="model")
    with pytest.raises(ValueError, match="series a has a missing or non-finite y at 2020-09-30"):
        forecast(good.assign(y=good["y"].where(good.index != 2)), h=2, intervals="model")
    with pytest.raises(ValueError, match="series a has two rows for 2020-03-31"):
        forecast(pd.concat([good, good.head(1)]), h=2, intervals="model")
    with pytest.raises(ValueError, match="series a is not a gap-free run of quarter ends"):
        forecast(good.drop(index=3), h=2, intervals="model")
    with pytest.raises(ValueError, match="series a is not a gap-free run of quarter ends"):
        forecast(good.assign(ds=pd.date_range("2020-01-31", periods=8, freq="ME")), h=2, intervals="model")


def test_check_series_frame_parses_and_sorts():
    raw = pd.DataFrame({"unique_id": ["b", "a", "a"], "ds": ["2021-03-31", "2021-06-30", "2021-03-31"],
                        "y": ["1", "3", 2], "extra": 0})
    out = check_series_frame(raw)
    assert list(out.columns) == ["unique_id", "ds", "y"]
    assert out["unique_id"].tolist() == ["a", "a", "b"]
    assert out["y"].tolist() == [2.0, 3.0, 1.0] and out["y"].dtype == np.float64


# --------------------------------------------------------------------------- output contract
def test_output_columns_and_rows(two, model_fc):
    assert list(model_fc.columns) == FORECAST_COLUMNS == [
        "unique_id", "ds", "model", "model_used", "mean", "lo-95", "lo-80", "hi-80", "hi-95"]
    assert model_fc.groupby(["unique_id", "model"]).size().eq(3).all()
    assert pd.api.types.is_datetime64_any_dtype(model_fc["ds"])
    assert model_fc["ds"].min() == pd.Timestamp("2026-09-30")
    assert model_fc["ds"].max() == pd.Timestamp("2027-03-31")
    # sorted by series, then the requested model order, then date
    assert list(model_fc.drop_duplicates(["unique_id", "model"])[["unique_id", "model"]].itertuples(
        index=False, name=None)) == [(s, m) for s in sorted(SERIES) for m in MODELS]
    assert_ordered(model_fc)


def test_default_models(two, model_fc):
    assert set(model_fc["model"]) == set(MODELS)
    assert (model_fc["model"] == model_fc["model_used"]).all()
    fc = forecast(two, h=2, intervals="model")
    names = [s.name for s in resolve(None)]
    assert names[0] == "SeasonalNaive" and set(DEFAULT_MODELS) <= set(names)
    assert list(dict.fromkeys(fc["model"])) == names
    assert fc.groupby(["unique_id", "model"]).size().eq(2).all()
    assert_ordered(fc)


def test_seasonal_naive_is_always_included(two):
    fc = forecast(two, h=2, models="Naive", intervals="model")
    assert list(dict.fromkeys(fc["model"])) == ["SeasonalNaive", "Naive"]


def test_other_levels_change_the_interval_columns(two):
    fc = forecast(two, h=2, models=["Naive"], level=(50, 90), intervals="model")
    assert list(fc.columns)[5:] == ["lo-90", "lo-50", "hi-50", "hi-90"]
    v = fc[["lo-90", "lo-50", "mean", "hi-50", "hi-90"]].to_numpy()
    assert (np.diff(v, axis=1) >= 0).all()


def test_forecast_does_not_modify_its_input(two):
    before = two.copy()
    forecast(two, h=2, models=["Naive"], intervals="model")
    pd.testing.assert_frame_equal(two, before)


def test_forecasts_are_reproducible(two, model_fc):
    pd.testing.assert_frame_equal(forecast(two, h=3, models=MODELS, intervals="model"), model_fc)


# --------------------------------------------------------------------------- conformal
def test_conformal_keeps_points_and_rescales_each_series_interval_by_one_factor(model_fc, conformal_fc):
    """`forecast(intervals="conformal")` keeps the points and multiplies both sides of each
    series' own interval by one factor per series, model and level (the shape over the
    horizon and the skew are kept). Catches: factors applied to the wrong rows or only one
    side, a point forecast moved. Whether the factor is right is tested on synthetic series
    with known distributions in test_calibration.py."""
    assert list(conformal_fc.columns) == FORECAST_COLUMNS
    key = ["unique_id", "model", "ds"]
    m = model_fc.merge(conformal_fc, on=key, suffixes=("_m", "_c"))
    assert len(m) == len(model_fc) == len(conformal_fc)
    np.testing.assert_allclose(m["mean_m"], m["mean_c"])
    width_m = m["hi-80_m"] - m["lo-80_m"]
    width_c = m["hi-80_c"] - m["lo-80_c"]
    assert not np.allclose(width_m, width_c), "conformal calibration changed nothing"
    for lv in (80, 95):
        up = (m[f"hi-{lv}_c"] - m["mean_c"]) / (m[f"hi-{lv}_m"] - m["mean_m"])
        down = (m["mean_c"] - m[f"lo-{lv}_c"]) / (m["mean_m"] - m[f"lo-{lv}_m"])
        np.testing.assert_allclose(up, down, rtol=1e-9)
        per = up.groupby([m["unique_id"], m["model"]])
        np.testing.assert_allclose(per.transform("max"), per.transform("min"), rtol=1e-9)
    assert_ordered(conformal_fc)
    assert (conformal_fc["hi-95"] > conformal_fc["lo-95"]).all()


def test_enforce_order_fixes_crossed_intervals():
    fc = pd.DataFrame({"mean": [10.0], "lo-95": [9.0], "lo-80": [9.5], "hi-80": [12.0], "hi-95": [11.0]})
    out = enforce_order(fc.copy())
    assert out[ORDER].iloc[0].tolist() == [9.0, 9.5, 10.0, 12.0, 12.0]


@pytest.mark.parametrize("intervals", ["model", "conformal"])
def test_two_quarter_series_is_forecast_by_naive(intervals):
    """Too short for any past window: conformal keeps the model's intervals instead of failing
    ('No objects to concatenate' before the fix)."""
    df = pd.DataFrame({"unique_id": "new", "ds": pd.to_datetime(["2026-03-31", "2026-06-30"]),
                       "y": [100.0, 110.0]})
    with pytest.warns(UserWarning, match="series new: 2 observations"):
        fc = forecast(df, h=2, models=MODELS, intervals=intervals)
    assert (fc["model_used"] == "Naive").all() and (fc["mean"] == 110.0).all()
    assert_ordered(fc)
    assert (fc["hi-95"] > fc["lo-95"]).all()


def test_backtest_without_any_window_says_why():
    from forecasting.rolling.backtest import backtest

    df = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2022-03-31", periods=3, freq="QE"),
                       "y": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="no backtest window: no series has 2 or more quarters"):
        backtest(df, "Naive", h=2, n_windows=1, warmup_windows=0)
