"""The theta family, AutoCES and the EAT/Fast mean ensembles registered by forecasting.extra_models."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from features.loader import load_quarterly
from forecasting.rolling.forecast import forecast
from forecasting.core.frames import ShortSeriesWarning
from forecasting.methods.catalogue import resolve
from forecasting.methods.registry import get_spec

NEW = ["Theta", "DynamicTheta", "DynamicOptimizedTheta", "AutoCES"]
ORDER = ["lo-95", "lo-80", "mean", "hi-80", "hi-95"]


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    df = load_quarterly(series=["net_sales_aws", "free_cash_flow"])
    aws = df[df["unique_id"] == "net_sales_aws"]
    return pd.concat([aws.tail(6).assign(unique_id="aws_6q"), aws.tail(12).assign(unique_id="aws_12q"),
                      df], ignore_index=True)


def test_registered_as_statistical_models():
    names = {s.name for s in resolve("statistical")}
    assert set(NEW) <= names
    ens = {s.name for s in resolve("ensemble")}
    assert {"EATEnsemble", "FastEnsemble"} <= ens
    assert get_spec("EATEnsemble").members == ("AutoETS", "AutoARIMA", "Theta")
    assert get_spec("EATEnsemble").options["combiner"] == "mean"


def test_new_models_forecast_short_and_long_series(panel):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ShortSeriesWarning)
        fc = forecast(panel, h=4, models=NEW, intervals="model")
    values = fc[ORDER].to_numpy(dtype=float)
    assert np.isfinite(values).all()
    assert (np.diff(values, axis=1) >= 0).all()
    used = fc.groupby(["unique_id", "model"])["model_used"].first()
    for m in NEW:
        assert used[("aws_6q", m)] != m  # 6 quarters < min_obs 10: fallback, with a warning
        for uid in ("aws_12q", "net_sales_aws", "free_cash_flow"):
            assert used[(uid, m)] == m, (uid, m)
    assert any("aws_6q" in str(w.message) for w in caught if issubclass(w.category, ShortSeriesWarning))
    # the models differ from one another and from the baseline on a long series
    means = fc[fc["unique_id"] == "free_cash_flow"].pivot(index="ds", columns="model", values="mean")
    for m in NEW:
        assert not np.allclose(means[m], means["SeasonalNaive"]), m
    assert not np.allclose(means["Theta"], means["DynamicOptimizedTheta"])


def test_fast_ensemble_is_the_mean_of_its_members(panel):
    data = panel[panel["unique_id"] == "net_sales_aws"]
    fc = forecast(data, h=3, models=["FastEnsemble", "AutoETS", "Theta", "AutoTheta"], intervals="model")
    wide = fc.pivot(index="ds", columns="model", values="mean")
    np.testing.assert_allclose(wide["FastEnsemble"], wide[["AutoETS", "Theta", "AutoTheta"]].mean(axis=1))
