"""Leak-free features and target transforms (features/transforms.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.transforms import (
    FeatureSet,
    TargetTransform,
    driver_features,
    future_frame,
    past_features,
    yoy_growth,
)


def _series(uid, values, start="2015-03-31"):
    return pd.DataFrame({"unique_id": uid, "ds": pd.date_range(start, periods=len(values), freq="QE"),
                         "y": np.asarray(values, dtype=float)})


@pytest.fixture
def frame():
    rng = np.random.default_rng(1)
    t = np.arange(28)
    season = np.tile([0.0, 3.0, 1.0, 6.0], 7)
    sales = 100 + 4 * t + season + rng.normal(0, 1, 28)           # positive, trending
    income = 5 + 0.5 * t + 3 * season - 12 + rng.normal(0, 2, 28)  # crosses zero
    return pd.concat([_series("sales", sales), _series("income", income)], ignore_index=True)


# --------------------------------------------------------------------------- target transforms
@pytest.mark.parametrize("names", [
    ("seasonal_diff", "local_scale"),
    ("diff", "seasonal_diff"),
    ("local_scale", "diff"),
])
@pytest.mark.parametrize("h", [1, 4, 8])
def test_inverse_undoes_transform_any_sign(frame, names, h):
    cut = frame["ds"].max() - pd.offsets.QuarterEnd(h)
    train, test = frame[frame["ds"] <= cut], frame[frame["ds"] > cut]
    tt = TargetTransform(names)
    tt.fit_transform(train)
    z = tt.transform(test)
    assert not np.allclose(z["y"], test.sort_values(["unique_id", "ds"])["y"])  # it did something
    back = tt.inverse_transform(z)
    expected = test.sort_values(["unique_id", "ds"])["y"].to_numpy()
    np.testing.assert_allclose(back["y"].to_numpy(), expected, rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize("names", [("log",), ("boxcox",), ("log", "seasonal_diff")])
def test_inverse_undoes_positive_only_transforms(frame, names):
    sales = frame[frame["unique_id"] == "sales"]
    cut = sales["ds"].max() - pd.offsets.QuarterEnd(4)
    tt = TargetTransform(names)
    tt.fit_transform(sales[sales["ds"] <= cut])
    test = sales[sales["ds"] > cut]
    back = tt.inverse_transform(tt.transform(test))
    np.testing.assert_allclose(back["y"].to_numpy(), test["y"].to_numpy(), rtol=1e-10)


def test_log_and_boxcox_refuse_negative_series_by_name(frame):
    for names in (("log",), ("boxcox",)):
        with pytest.raises(ValueError, match="series income .*positive"):
            TargetTransform(names).fit_transform(frame)


def test_seasonal_diff_scale_matches_hand_computation(frame):
    cut = frame["ds"].max() - pd.offsets.QuarterEnd(4)
    train = frame[frame["ds"] <= cut]
    tt = TargetTransform(("seasonal_diff", "local_scale"))
    z_train = tt.fit_transform(train)
    y = train[train["unique_id"] == "sales"]["y"].to_numpy()
    d = y[4:] - y[:-4]
    got = z_train[z_train["unique_id"] == "sales"]["y"].to_numpy()
    assert np.isnan(got[:4]).all()
    np.testing.assert_allclose(got[4:], (d - d.mean()) / d.std(), rtol=1e-6)
    # the future maps with the training state: step k differences against the year before
    future = frame[frame["ds"] > cut]
    z = tt.transform(future)
    z = z[z["unique_id"] == "sales"]["y"].to_numpy()
    yf = future[future["unique_id"] == "sales"]["y"].to_numpy()
    np.testing.assert_allclose(z, ((yf - y[-4:]) - d.mean()) / d.std(), rtol=1e-6)


@pytest.mark.parametrize("names", [("seasonal_diff", "local_scale"), ("diff", "seasonal_diff"), ("log",)])
def test_transform_leaves_the_fitted_state_alone(frame, names):
    """`transform` must map future values with the state learnt in `fit_transform` and leave
    it as it was: transforming absurd future values, twice, changes neither a later
    `transform` nor `inverse_transform`. Catches: `transform` updating the differencing
    tails or the scaler in place (the earlier test compared a *fresh* fit and passed with
    that bug)."""
    data = frame[frame["unique_id"] == "sales"] if "log" in names else frame
    cut = data["ds"].max() - pd.offsets.QuarterEnd(4)
    train, future = data[data["ds"] <= cut], data[data["ds"] > cut]
    tt = TargetTransform(names)
    tt.fit_transform(train)
    z1 = tt.transform(future)
    back1 = tt.inverse_transform(z1)
    absurd = future.assign(y=future["y"] * 1e6 + 1e9)
    tt.transform(absurd)
    tt.transform(absurd)
    pd.testing.assert_frame_equal(tt.transform(future), z1, check_exact=True)
    pd.testing.assert_frame_equal(tt.inverse_transform(z1), back1, check_exact=True)
    np.testing.assert_allclose(back1["y"], future.sort_values(["unique_id", "ds"])["y"], rtol=1e-10)


def test_inverse_checks_series_and_dates(frame):
    tt = TargetTransform()
    with pytest.raises(RuntimeError, match="not fitted"):
        tt.inverse_transform(frame)
    tt.fit_transform(frame)
    with pytest.raises(ValueError, match="must start at"):
        tt.inverse_transform(frame.groupby("unique_id").tail(2))
    with pytest.raises(ValueError, match="unknown target transform"):
        TargetTransform(("sqrt",)).fit_transform(frame)


# --------------------------------------------------------------------------- feature frames
def test_past_features_ignore_values_after_cutoff(frame):
    cut = frame["ds"].iloc[20]
    tr1, fu1 = past_features(frame, 4, rolling_std=(4,), cutoff=cut)
    changed = frame.copy()
    changed.loc[changed["ds"] > cut, "y"] = 1e9
    tr2, fu2 = past_features(changed, 4, rolling_std=(4,), cutoff=cut)
    pd.testing.assert_frame_equal(tr1, tr2)
    pd.testing.assert_frame_equal(fu1, fu2)
    assert tr1["ds"].max() == cut and fu1["ds"].min() == cut + pd.offsets.QuarterEnd(1)


def test_past_features_values_and_future_knowledge(frame):
    tr, fu = past_features(frame, 4, lags=(1, 2), rolling_mean=(4,), yoy_lags=(1,))
    s = frame[frame["unique_id"] == "sales"]["y"].to_numpy()
    row = tr[tr["unique_id"] == "sales"].iloc[10]
    assert row["lag1"] == s[9] and row["lag2"] == s[8]
    assert row["rolling_mean4"] == pytest.approx(s[6:10].mean())
    assert row["yoy_lag1"] == pytest.approx(s[9] / s[5] - 1)
    assert row["quarter"] == row["ds"].quarter
    f = fu[fu["unique_id"] == "sales"].reset_index(drop=True)
    assert len(f) == 4 and "y" not in f.columns
    assert f.loc[0, "lag1"] == s[-1] and f.loc[1, "lag2"] == s[-1] and f.loc[0, "lag2"] == s[-2]
    # a lag-k feature is unknown beyond step k; quarter of year is always known
    assert f.loc[1:, "lag1"].isna().all() and f.loc[2:, "lag2"].isna().all()
    assert f["quarter"].notna().all()


def test_yoy_growth_is_nan_on_non_positive_base(frame):
    g = yoy_growth(frame)
    inc = g[g["unique_id"] == "income"].reset_index(drop=True)
    base = inc["y"].shift(4)
    assert inc.loc[base <= 0, "yoy"].isna().all()
    ok = base > 0
    np.testing.assert_allclose(inc.loc[ok, "yoy"], inc.loc[ok, "y"] / base[ok] - 1)


def test_future_frame_dates():
    fut = future_frame(_series("a", [1, 2, 3], start="2020-03-31"), 2)
    assert list(fut["ds"]) == [pd.Timestamp("2020-12-31"), pd.Timestamp("2021-03-31")]


# --------------------------------------------------------------------------- drivers
def test_driver_future_comes_from_the_scenario_not_the_realised_values():
    n = 16
    capex = _series("capex", np.arange(n) * 10.0 + 100)
    aws = _series("aws", np.arange(n) * 3.0 + 50)
    full = pd.concat([capex, aws], ignore_index=True)
    cut = full["ds"].iloc[11]  # 12 quarters reported; 4 realised quarters after it
    scenario = pd.DataFrame({"unique_id": "capex", "ds": pd.date_range(cut, periods=5, freq="QE")[1:],
                             "y": [-1.0, -2.0, -3.0, -4.0]})
    train, future = driver_features(full, "aws", "capex", h=4, lags=(1, 2), driver_future=scenario,
                                    cutoff=cut)
    # step 1 with lag 1 is the last reported capex; later steps take the scenario
    assert list(future["capex_lag1"]) == [capex["y"].iloc[11], -1.0, -2.0, -3.0]
    assert list(future["capex_lag2"]) == [capex["y"].iloc[10], capex["y"].iloc[11], -1.0, -2.0]
    realised = set(capex["y"].iloc[12:])
    assert not realised & set(future["capex_lag1"]) and not realised & set(future["capex_lag2"])
    assert train["ds"].max() == cut and train["capex_lag1"].iloc[-1] == capex["y"].iloc[10]
    # changing the realised driver after the cutoff changes nothing
    changed = full.copy()
    changed.loc[changed["ds"] > cut, "y"] = 0.0
    tr2, fu2 = driver_features(changed, "aws", "capex", h=4, lags=(1, 2), driver_future=scenario, cutoff=cut)
    pd.testing.assert_frame_equal(train, tr2)
    pd.testing.assert_frame_equal(future, fu2)


def test_driver_needs_future_values_beyond_its_lag():
    full = pd.concat([_series("capex", np.arange(12.0)), _series("aws", np.arange(12.0))], ignore_index=True)
    with pytest.raises(ValueError, match="need future values of driver 'capex'"):
        driver_features(full, "aws", "capex", h=4, lags=(1,))
    _, fut = driver_features(full, "aws", "capex", h=1, lags=(1,))  # lag 1 covers step 1
    assert fut["capex_lag1"].tolist() == [11.0]
    short = pd.DataFrame({"unique_id": "capex", "ds": [pd.Timestamp("2018-03-31")], "y": [1.0]})
    with pytest.raises(ValueError, match="lacks quarter"):
        driver_features(full, "aws", "capex", h=4, lags=(1,), driver_future=short)


# --------------------------------------------------------------------------- feature set
def test_feature_set_declares_mlforecast_arguments():
    fs = FeatureSet(lags=(1, 4), rolling_mean=(4,), target=("seasonal_diff", "local_scale"))
    kw = fs.mlforecast_kwargs()
    assert kw["lags"] == [1, 4] and kw["date_features"] == ["quarter"]
    assert [type(t).__name__ for t in kw["target_transforms"]] == ["Differences", "LocalStandardScaler"]
    assert kw["target_transforms"][0] is not fs.mlforecast_kwargs()["target_transforms"][0]  # fresh
    assert fs.lost_rows == 8 and fs.min_train_obs(4) == 12
    assert hash(fs) == hash(FeatureSet(lags=(1, 4)))
    with pytest.raises(ValueError, match="unknown target transform"):
        FeatureSet(target=("cuberoot",))
