"""The statistical engine's fit memo (`forecasting.methods.engines.stats`) and a guided model's
reuse of its base's fit at the same origin (`forecasting.methods.guided.base_forecast`): the
same numbers as fitting again, a fit only where the input differs, fallback warnings kept."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from features.guidance import load_guidance
from features.loader import load_quarterly
from forecasting.core.frames import ShortSeriesWarning
from forecasting.methods.engines import stats
from forecasting.methods.registry import get_spec

SERIES = ["net_sales_aws", "operating_income_aws", "free_cash_flow"]
MODELS = ["AutoETS", "SeasonalNaive", "AutoTheta"]


@pytest.fixture
def counted(monkeypatch):
    """The number of series each `_run_group` call fitted, appended per call."""
    calls: list[int] = []
    real = stats._run_group

    def run_group(sub, *args, **kwargs):
        calls.append(sub["unique_id"].nunique())
        return real(sub, *args, **kwargs)

    monkeypatch.setattr(stats, "_run_group", run_group)
    stats.clear_memo()
    yield calls
    stats.clear_memo()


def _fit(df, models=MODELS, h=3):
    return stats.forecast_stats(df, h, [get_spec(m) for m in models], (80, 95), 4)


def test_a_remembered_fit_equals_a_new_one_and_is_not_fitted_again(counted, monkeypatch):
    df = load_quarterly(series=SERIES)
    first = _fit(df)
    assert sum(counted) == len(SERIES)
    again = _fit(df)
    assert sum(counted) == len(SERIES)  # nothing fitted the second time
    pd.testing.assert_frame_equal(again, first, check_exact=True)
    monkeypatch.setenv("FCF_FIT_MEMO", "0")
    fresh = _fit(df)
    assert sum(counted) == 2 * len(SERIES)
    pd.testing.assert_frame_equal(fresh, first, check_exact=True)


def test_only_the_series_whose_input_changed_is_fitted_again(counted):
    df = load_quarterly(series=SERIES)
    _fit(df)
    changed = df.copy()
    last = changed.index[changed["unique_id"] == "free_cash_flow"][-1]
    changed.loc[last, "y"] += 1.0  # one value of one series
    out = _fit(changed)
    assert counted[-1] == 1  # only free_cash_flow
    stats.clear_memo()
    pd.testing.assert_frame_equal(out, _fit(changed), check_exact=True)
    # another horizon is another fit
    n = len(counted)
    _fit(changed, h=2)
    assert len(counted) > n


def test_a_fallback_warns_every_time(counted):
    short = load_quarterly(series=["net_sales_aws"]).tail(4)
    for _ in range(2):
        with pytest.warns(ShortSeriesWarning, match="fewer than the"):
            _fit(short, models=["AutoETS"])


def test_a_cluster_engine_never_reads_the_memo():
    assert stats.memo_enabled(None)
    assert not stats.memo_enabled(engine=object())


def test_a_guided_model_given_its_bases_fit_gives_the_numbers_it_fits_itself(counted):
    from forecasting.methods.guided import forecast_guided

    df = load_quarterly(series=["net_sales_total", "operating_income_total", "free_cash_flow"])
    book = load_guidance().at_cutoff(df["ds"].max())
    guided = [get_spec("GuidedAutoETS")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShortSeriesWarning)
        known = _fit(df, models=["AutoETS"], h=4)
        stats.clear_memo()
        n = sum(counted)
        alone = forecast_guided(df, 4, guided, (80, 95), 4, 0, book)
        fitted_alone = sum(counted) - n
        stats.clear_memo()
        n = sum(counted)
        reused = forecast_guided(df, 4, guided, (80, 95), 4, 0, book, known=known)
        fitted_reused = sum(counted) - n
    pd.testing.assert_frame_equal(reused, alone, check_exact=True)
    # the base on the three series is not fitted again; only the refits after the guided quarters are
    assert fitted_reused == fitted_alone - 3
    assert (alone["model_used"] == "GuidedAutoETS").any()
