"""The rolling-origin backtest: cutoffs, refits, no leakage, warm-up, short series."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from forecasting.rolling.backtest import BacktestConfig, backtest, cutoffs
from forecasting.core.frames import ShortSeriesWarning

FAST = ["SeasonalNaive", "Naive", "RandomWalkWithDrift"]
INTERVALS = ["lo-95", "lo-80", "mean", "hi-80", "hi-95"]


def synthetic(n: int = 24, ids=("a", "b", "c"), end: str = "2024-12-31", seed: int = 0) -> pd.DataFrame:
    """Trending seasonal quarterly series with noise (``unique_id, ds, y``)."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range(end=end, periods=n, freq="QE")
    parts = []
    for k, uid in enumerate(ids):
        t = np.arange(n)
        y = 100 + 5 * k + 2.0 * t + 8 * np.sin(2 * np.pi * t / 4 + k) + rng.normal(0, 3, n)
        parts.append(pd.DataFrame({"unique_id": uid, "ds": ds, "y": y}))
    return pd.concat(parts, ignore_index=True)


def test_cutoff_placement():
    df = synthetic(20)
    q = lambda s: pd.Timestamp(s)  # noqa: E731
    assert cutoffs(df, h=4, n_windows=3) == [q("2023-06-30"), q("2023-09-30"), q("2023-12-31")]
    assert cutoffs(df, h=4, n_windows=3, step_size=2) == [q("2022-12-31"), q("2023-06-30"), q("2023-12-31")]
    assert cutoffs(df, h=4, n_windows=2, end_offset=1) == [q("2024-06-30"), q("2024-09-30")]


def test_output_rows_steps_and_warmup_excluded():
    df = synthetic(20)
    config = BacktestConfig(h=3, n_windows=3, warmup_windows=2, intervals="model")
    bt = backtest(df, FAST, config)
    all_cuts = cutoffs(df, 3, 5)
    assert sorted(bt["cutoff"].unique()) == all_cuts[2:], "warm-up cutoffs must not be returned"
    assert set(bt["step"]) == {1, 2, 3}
    q_cut = pd.PeriodIndex(pd.DatetimeIndex(bt["cutoff"]), freq="Q")
    q_ds = pd.PeriodIndex(pd.DatetimeIndex(bt["ds"]), freq="Q")
    assert ((q_ds - q_cut).map(lambda d: d.n) == bt["step"].to_numpy()).all()
    # the last cutoff is h quarters before the data ends, so every window has all h outcomes:
    # 3 series x 3 models x 3 cutoffs x 3 steps
    assert len(bt) == 3 * 3 * 3 * 3 and bt["y"].notna().all()
    truth = df.set_index(["unique_id", "ds"])["y"]
    assert np.allclose(bt["y"], truth.reindex(pd.MultiIndex.from_frame(bt[["unique_id", "ds"]])))


def test_every_model_is_refit_on_data_up_to_each_cutoff():
    """Expected values that do not go through the backtest's own code path: closed forms for
    Naive (the value at the cutoff), SeasonalNaive (the same quarter a year before) and
    RandomWalkWithDrift (last value + k x the mean change up to the cutoff), and statsforecast's
    AutoETS called directly on the data up to each cutoff. (The earlier test computed its
    expected values with `forecast_base`, the call the backtest itself makes, so a bug in it
    passed.) Catches: a model fitted on one quarter too many or too few, or on all the data;
    forecasts filed under the wrong cutoff, series or step."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS

    df = synthetic(20)
    config = BacktestConfig(h=2, n_windows=3, warmup_windows=0, intervals="model")
    bt = backtest(df, ["Naive", "RandomWalkWithDrift", "AutoETS"], config).set_index(
        ["unique_id", "model", "cutoff", "step"])
    y = df.set_index(["unique_id", "ds"])["y"]
    checked = 0
    for cut in cutoffs(df, 2, 3):
        train = df[df["ds"] <= cut]
        ets = StatsForecast(models=[AutoETS(season_length=4)], freq="QE", n_jobs=1).forecast(
            df=train, h=2, level=[80, 95]).set_index(["unique_id", "ds"])
        for uid, g in train.groupby("unique_id"):
            v = g.sort_values("ds")["y"].to_numpy()
            for k in (1, 2):
                ds = cut + pd.offsets.QuarterEnd(k)
                assert bt.loc[(uid, "Naive", cut, k), "mean"] == pytest.approx(v[-1], rel=1e-12)
                assert bt.loc[(uid, "SeasonalNaive", cut, k), "mean"] == pytest.approx(v[-4 + k - 1], rel=1e-12)
                drift = (v[-1] - v[0]) / (len(v) - 1)
                assert bt.loc[(uid, "RandomWalkWithDrift", cut, k), "mean"] == pytest.approx(v[-1] + k * drift,
                                                                                          rel=1e-12)
                row = bt.loc[(uid, "AutoETS", cut, k)]
                assert row["ds"] == ds and row["y"] == y[(uid, ds)]
                for col, src in (("mean", "AutoETS"), ("lo-80", "AutoETS-lo-80"), ("hi-95", "AutoETS-hi-95")):
                    assert row[col] == pytest.approx(ets.loc[(uid, ds), src], rel=1e-9), (uid, cut, k, col)
                checked += 1
    assert checked == 3 * 3 * 2


@pytest.mark.parametrize("intervals", ["conformal", "model"])
def test_no_leakage_values_after_a_cutoff_do_not_change_its_forecasts(intervals):
    df = synthetic(24)
    config = BacktestConfig(h=3, n_windows=4, warmup_windows=4, intervals=intervals)
    base = backtest(df, FAST, config)
    cut = sorted(base["cutoff"].unique())[1]
    changed = df.copy()
    after = changed["ds"] > cut
    changed.loc[after, "y"] = changed.loc[after, "y"] * 1.7 + 50
    other = backtest(changed, FAST, config)
    key = ["unique_id", "model", "cutoff", "ds"]
    m = base.merge(other, on=key, suffixes=("", "_chg"))
    assert len(m) == len(base)
    early = m["cutoff"] <= cut
    for c in INTERVALS:
        assert np.allclose(m.loc[early, c], m.loc[early, f"{c}_chg"]), f"{c} leaked future values"
    later = ~early
    assert not np.allclose(m.loc[later, "mean"], m.loc[later, "mean_chg"]), "later cutoffs must see the change"
    if intervals == "conformal":  # the check above is not vacuous: calibration did act
        own = backtest(df, FAST, config, intervals="model")
        assert not np.allclose(base["hi-80"], own["hi-80"])


def test_short_series_fall_back_without_crashing():
    long = synthetic(20, ids=("long",))
    short = synthetic(11, ids=("short",))
    df = pd.concat([long, short], ignore_index=True)
    config = BacktestConfig(h=2, n_windows=3, warmup_windows=1, intervals="model")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bt = backtest(df, ["AutoETS"], config)
    assert any(issubclass(w.category, ShortSeriesWarning) for w in caught)
    ets = bt[bt["model"] == "AutoETS"]
    short_rows = ets[ets["unique_id"] == "short"]
    # 'short' has 7..9 quarters at the evaluated cutoffs: fewer than AutoETS's 10
    assert len(short_rows) and set(short_rows["model_used"]) == {"SeasonalNaive"}
    assert set(ets.loc[ets["unique_id"] == "long", "model_used"]) == {"AutoETS"}
    assert np.isfinite(bt[INTERVALS].to_numpy()).all()
