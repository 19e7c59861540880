"""The distributed path (statsforecast's Fugue backend on Dask) gives the local path's results."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from features.loader import load_quarterly
from forecasting.rolling.backtest import backtest
from forecasting.methods.engines.distributed import check_engine, is_distributed, statsforecast_forecast
from forecasting.rolling.forecast import forecast

distributed = pytest.importorskip("dask.distributed")

#: Starting a 2-process LocalCluster and ~10 small distributed runs: ~25 s idle, more when busy.
pytestmark = pytest.mark.slow

SERIES = ["net_sales_aws", "operating_income_aws", "free_cash_flow"]


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def df():
    return load_quarterly(series=SERIES)


def _assert_same(local: pd.DataFrame, dist: pd.DataFrame):
    assert list(local.columns) == list(dist.columns)
    assert len(local) == len(dist) > 0
    pd.testing.assert_frame_equal(local, dist, check_exact=False, rtol=1e-10, atol=1e-8)


def test_engine_argument_is_checked_early():
    assert not is_distributed(None) and not is_distributed("local")
    assert is_distributed("dask")
    with pytest.raises(ValueError, match="engine must be None/'local'"):
        check_engine("daskk")


def test_float64_forecasts_from_the_fugue_backend(client, df):
    """statsforecast's backend declares float32 outputs; ours must keep float64 precision."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS

    sub = df[df["unique_id"] == "net_sales_aws"]
    local = StatsForecast(models=[AutoETS(season_length=4)], freq="QE").forecast(df=sub, h=3, level=[80])
    dist = statsforecast_forecast(sub, [AutoETS(season_length=4)], 3, [80], "QE", client)
    assert dist["AutoETS"].dtype == np.float64
    np.testing.assert_allclose(dist["AutoETS"], local["AutoETS"], rtol=1e-12)
    np.testing.assert_allclose(dist["AutoETS-lo-80"], local["AutoETS-lo-80"], rtol=1e-12)


def test_forecast_on_dask_equals_local(client, df):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        local = forecast(df, h=4, models="AutoETS", intervals="model")
        dist = forecast(df, h=4, models="AutoETS", intervals="model", engine=client)
    _assert_same(local, dist)
    assert set(dist["model"]) == {"SeasonalNaive", "AutoETS"}


def test_dask_dataframe_input_selects_dask(client, df):
    import dask.dataframe as dd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        local = forecast(df, h=2, models="SeasonalNaive", intervals="model")
        dist = forecast(dd.from_pandas(df, npartitions=2), h=2, models="SeasonalNaive", intervals="model")
    _assert_same(local, dist)


def test_backtest_and_conformal_forecast_on_dask_equal_local(client, df):
    kw = dict(h=2, n_windows=2, warmup_windows=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        local = backtest(df, "AutoETS", **kw)
        dist = backtest(df, "AutoETS", engine=client, **kw)
    _assert_same(local, dist)
    assert dist["cutoff"].nunique() == 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        local = forecast(df, h=2, models="SeasonalNaive", calibration_windows=3)
        dist = forecast(df, h=2, models="SeasonalNaive", calibration_windows=3, engine=client)
    _assert_same(local, dist)
