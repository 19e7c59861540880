"""Global ML models (forecasting/methods/engines/ml.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.loader import load_quarterly
from forecasting.core.frames import ShortSeriesWarning, output_columns
from forecasting.methods.catalogue import resolve
from forecasting.methods.registry import REGISTRY, get_spec

SERIES = ["net_sales_aws", "operating_income_total", "free_cash_flow"]


@pytest.fixture(scope="module")
def df():
    return load_quarterly(series=SERIES)


def _ml(*names):
    resolve(None)  # loads the registry, including forecasting.ml
    return [get_spec(n) for n in names]


def test_ml_specs_are_in_the_one_registry():
    names = {s.name for s in resolve("ml")}
    assert {"RidgeML", "ElasticNetML", "HistGBML"} <= names
    spec = get_spec("RidgeML")
    assert spec.kind == "ml" and spec.family == "ml" and spec.fallback
    assert spec.params["regressor"] == "Ridge"


def test_forecast_ml_contract(df):
    from forecasting.methods.engines.ml import forecast_ml

    fc = forecast_ml(df, 4, _ml("RidgeML", "HistGBML"), (80, 95))
    assert list(fc.columns) == output_columns((80, 95))
    assert len(fc) == 3 * 2 * 4
    assert (fc["model"] == fc["model_used"]).all()
    v = fc[["lo-95", "lo-80", "mean", "hi-80", "hi-95"]].to_numpy()
    assert np.isfinite(v).all() and (np.diff(v, axis=1) >= 0).all()
    assert (fc["hi-95"] > fc["lo-95"]).all()  # real intervals, not points
    last = df.groupby("unique_id")["ds"].max()
    first = fc.groupby("unique_id")["ds"].min()
    assert (first == last + pd.offsets.QuarterEnd(1)).all()
    # on the scale of each series (the series differ ~10x): within 50% of the last year's level
    for uid, g in fc[fc["model"] == "RidgeML"].groupby("unique_id"):
        hist = df[df["unique_id"] == uid]["y"].tail(8)
        assert np.abs(g["mean"]).max() < 3 * hist.abs().max() + 1


def test_same_data_and_seed_give_identical_forecasts(df):
    from forecasting.methods.engines.ml import forecast_ml

    specs = _ml("HistGBML", "ElasticNetML") + ([get_spec("LightGBMML")] if "LightGBMML" in REGISTRY else [])
    a = forecast_ml(df, 3, specs, seed=7)
    b = forecast_ml(df, 3, specs, seed=7)
    pd.testing.assert_frame_equal(a, b)


def test_short_series_falls_back_with_a_warning(df):
    from forecasting.methods.engines.ml import forecast_ml

    spec = _ml("RidgeML")[0]
    short = df[df["unique_id"] == "net_sales_aws"].tail(spec.min_obs - 1).assign(unique_id="short")
    data = pd.concat([df, short], ignore_index=True)
    msg = "series short: .* RidgeML needs; forecasting it with AutoETS"
    with pytest.warns(ShortSeriesWarning, match=msg):
        fc = forecast_ml(data, 4, [spec])
    s = fc[fc["unique_id"] == "short"]
    assert len(s) == 4 and (s["model"] == "RidgeML").all() and (s["model_used"] == "AutoETS").all()
    assert (fc.loc[fc["unique_id"] != "short", "model_used"] == "RidgeML").all()
    assert np.isfinite(s[["mean", "lo-95", "hi-95"]].to_numpy()).all()


def test_too_short_for_conformal_windows_borrows_fallback_widths(df):
    from forecasting.methods.engines.ml import forecast_ml

    spec = _ml("RidgeML")[0]
    data = df.groupby("unique_id").tail(spec.min_obs + 1)  # fewer than 2 conformal windows
    fc = forecast_ml(data, 4, [spec])
    assert (fc["model_used"] == "RidgeML").all()
    v = fc[["lo-95", "lo-80", "mean", "hi-80", "hi-95"]].to_numpy()
    assert np.isfinite(v).all() and (fc["hi-95"] - fc["lo-95"] > 0).all()


def test_mixed_lengths_keep_conformal_widths_for_long_series(df):
    from forecasting.methods.engines.stats import forecast_stats
    from forecasting.methods.engines.ml import forecast_ml

    spec = _ml("RidgeML")[0]
    short = df[df["unique_id"] == "net_sales_aws"].tail(spec.min_obs + 1).assign(unique_id="short")
    mixed = forecast_ml(pd.concat([df, short], ignore_index=True), 4, [spec])
    alone = forecast_ml(df, 4, [spec])  # every series long enough: one conformal fit
    half = lambda f: (f["hi-80"] - f["mean"]).to_numpy()  # noqa: E731
    long_rows = mixed[mixed["unique_id"] != "short"].reset_index(drop=True)
    np.testing.assert_allclose(half(long_rows), half(alone), rtol=1e-9)
    ets = forecast_stats(short, 4, [get_spec("AutoETS")])
    np.testing.assert_allclose(half(mixed[mixed["unique_id"] == "short"]), half(ets), rtol=1e-9)
    assert (mixed["model_used"] == "RidgeML").all()


def test_a_new_regressor_is_one_line(df):
    from sklearn.linear_model import LinearRegression

    from forecasting.methods.engines.ml import forecast_ml, register_regressor

    try:
        spec = register_regressor("OLSTestML", lambda seed: LinearRegression())
        assert get_spec("OLSTestML").family == "ml"
        fc = forecast_ml(df, 2, [spec])
        assert set(fc["model"]) == {"OLSTestML"} and len(fc) == 3 * 2
    finally:
        REGISTRY.pop("OLSTestML", None)


def test_non_ml_specs_are_refused(df):
    from forecasting.methods.engines.ml import forecast_ml

    resolve(None)
    with pytest.raises(ValueError, match="non-ML specs"):
        forecast_ml(df, 2, [get_spec("AutoETS")])
