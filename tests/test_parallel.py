"""Cutoffs fitted in parallel processes and the data-vintage cache give the sequential results."""

from __future__ import annotations

import os
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

from forecasting.rolling import cache as vcache
from forecasting.rolling.backtest import BacktestConfig, backtest
from forecasting.methods.dispatch import forecast_base
from forecasting.rolling.forecast import forecast
from forecasting.core.frames import FitSettings, ShortSeriesWarning
from forecasting.methods.catalogue import resolve
from forecasting.rolling.parallel import base_forecasts, default_jobs

MODELS = ["SeasonalNaive", "AutoETS", "Foster", "RidgeML"]


def _panel(n=26, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ds = pd.date_range(end="2024-12-31", periods=n, freq="QE")
    t = np.arange(n)
    parts = []
    for k, uid in enumerate(("a", "b", "c")):
        y = 500 + 20 * k + 6 * t + 25 * np.sin(np.pi * t / 2 + k) + rng.normal(0, 4, n)
        parts.append(pd.DataFrame({"unique_id": uid, "ds": ds, "y": y}))
    short = pd.DataFrame({"unique_id": "short", "ds": ds[-9:], "y": 50 + rng.normal(0, 1, 9)})
    return pd.concat(parts + [short], ignore_index=True)


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FCF_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FCF_CACHE", raising=False)
    return tmp_path / "cache"


def test_parallel_backtest_equals_the_one_process_run():
    df = _panel()
    config = BacktestConfig(h=3, n_windows=4, warmup_windows=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShortSeriesWarning)
        one = backtest(df, MODELS, config, n_jobs=1)
        two = backtest(df, MODELS, config, n_jobs=2)
    pd.testing.assert_frame_equal(one, two, check_exact=True)
    assert set(one["model"]) == set(MODELS)


def test_fallback_warnings_come_back_from_the_workers():
    df = _panel()
    specs = resolve(["AutoETS"])
    trains = [df[df["ds"] <= c] for c in pd.date_range(end="2024-12-31", periods=3, freq="QE")]
    out = base_forecasts(trains, specs, FitSettings(2, (80, 95), 4, 0), n_jobs=2)
    assert len(out) == 3
    for fc, messages in out:
        assert any(m.startswith("series short:") and "forecasting it with SeasonalNaive" in m for m in messages)
        assert set(fc.loc[(fc["unique_id"] == "short") & (fc["model"] == "AutoETS"), "model_used"]) == {
            "SeasonalNaive"}


def test_same_seed_same_numbers_for_the_default(cache_dir):
    """The library default (AutoCombo, with its ML members) on the same data and seed: identical
    numbers, whatever the number of processes or the cache."""
    from forecasting.methods.autocombo import WINDOWS

    df = _panel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShortSeriesWarning)
        a = forecast(df, h=2, calibration_windows=4, n_jobs=1, cache=False)
        b = forecast(df, h=2, calibration_windows=4, n_jobs=2, cache=True)
        c = forecast(df, h=2, calibration_windows=4, n_jobs=2, cache=True)  # from the cache
    assert set(a["model"]) == {"SeasonalNaive", "AutoCombo"}
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    pd.testing.assert_frame_equal(a, c, check_exact=True)
    assert len(list(cache_dir.rglob("*.pkl"))) == WINDOWS + 1  # the selection's windows and the newest origin


def test_cache_key_follows_the_rows_models_and_settings(cache_dir):
    df = _panel()
    specs = resolve(MODELS)
    k = vcache.key(df, specs, FitSettings(2, (80, 95), 4, 0))
    assert k == vcache.key(df.copy(), specs, FitSettings(2, (80, 95), 4, 0))
    changed = df.copy()
    changed.loc[5, "y"] += 1e-9
    assert k != vcache.key(changed, specs, FitSettings(2, (80, 95), 4, 0))
    assert k != vcache.key(df, specs, FitSettings(3, (80, 95), 4, 0))
    assert k != vcache.key(df, specs, FitSettings(2, (80,), 4, 0))
    assert k != vcache.key(df, specs, FitSettings(2, (80, 95), 4, 1))
    assert k != vcache.key(df, resolve(["AutoETS"]), FitSettings(2, (80, 95), 4, 0))


def test_a_window_is_read_from_the_cache_not_refitted(cache_dir):
    df = _panel()
    specs = resolve(["SeasonalNaive", "AutoETS"])
    train = df[df["ds"] <= "2024-06-30"]
    [(first, _)] = base_forecasts([train], specs, FitSettings(2, (80, 95), 4, 0), n_jobs=1, cache=True)
    [path] = list(cache_dir.rglob("*.pkl"))
    marked = first.copy()
    marked["mean"] = -1.0  # a cached entry is returned as stored
    with open(path, "wb") as f:
        pickle.dump((marked, ["note"]), f)
    [(again, msgs)] = base_forecasts([train], specs, FitSettings(2, (80, 95), 4, 0), n_jobs=1, cache=True)
    assert (again["mean"] == -1.0).all() and msgs == ["note"]
    [(fresh, _)] = base_forecasts([train], specs, FitSettings(2, (80, 95), 4, 0), n_jobs=1, cache=False)
    pd.testing.assert_frame_equal(fresh, first)


def test_a_broken_cache_entry_is_refitted_and_rewritten(cache_dir):
    df = _panel()
    specs = resolve(["SeasonalNaive"])
    train = df[df["ds"] <= "2024-06-30"]
    [(first, _)] = base_forecasts([train], specs, FitSettings(2, (80, 95), 4, 0), cache=True)
    [path] = list(cache_dir.rglob("*.pkl"))
    path.write_bytes(b"not a pickle")
    [(again, _)] = base_forecasts([train], specs, FitSettings(2, (80, 95), 4, 0), cache=True)
    pd.testing.assert_frame_equal(again, first)
    assert pickle.loads(path.read_bytes())[0].equals(first)


def test_cache_switches(monkeypatch, tmp_path):
    monkeypatch.setenv("FCF_CACHE", "0")
    assert not vcache.enabled() and vcache.enabled(True)
    monkeypatch.setenv("FCF_CACHE", "1")
    assert vcache.enabled() and not vcache.enabled(False)
    monkeypatch.setenv("FCF_CACHE_DIR", str(tmp_path / "x"))
    assert vcache.cache_dir() == tmp_path / "x"
    monkeypatch.delenv("FCF_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert vcache.cache_dir() == tmp_path / "xdg" / "fcf-forecasting"


def test_jobs_setting(monkeypatch):
    monkeypatch.setenv("FCF_N_JOBS", "3")
    assert default_jobs() == 3 and default_jobs(1) == 1
    monkeypatch.setenv("FCF_N_JOBS", "two")
    with pytest.raises(ValueError, match="FCF_N_JOBS must be a whole number"):
        default_jobs()
    monkeypatch.delenv("FCF_N_JOBS")
    assert default_jobs() == len(os.sched_getaffinity(0))
    with pytest.raises(ValueError, match="n_jobs must be >= 1"):
        default_jobs(0)


def test_a_refused_arima_fit_in_a_group_refits_only_its_series():
    """Amazon's total net sales: Brown-Rozeff's fit does not move (refused); the other series
    of the same statsforecast run keep the values a one-series run gives them."""
    from features.loader import load_quarterly

    df = load_quarterly(series=["net_sales_total", "net_sales_aws", "operating_cash_flow"])
    specs = resolve(["BrownRozeff"])
    with pytest.warns(ShortSeriesWarning, match="DegenerateFitError"):
        group = forecast_base(df, specs, FitSettings(4))
    br = group[group["model"] == "BrownRozeff"].set_index(["unique_id", "ds"])
    assert set(br.loc["net_sales_total", "model_used"]) == {"SeasonalNaive"}
    assert set(br.loc["operating_cash_flow", "model_used"]) == {"BrownRozeff"}
    for uid in ("net_sales_aws", "operating_cash_flow"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ShortSeriesWarning)
            alone = forecast_base(df[df["unique_id"] == uid], specs, FitSettings(4))
        alone = alone[alone["model"] == "BrownRozeff"].set_index(["unique_id", "ds"])
        cols = ["model_used", "mean", "lo-95", "lo-80", "hi-80", "hi-95"]
        pd.testing.assert_frame_equal(br.loc[[uid], cols], alone[cols], check_exact=True)


def test_the_cache_keeps_within_its_size_limit(cache_dir, monkeypatch):
    import time

    df = _panel()
    specs = resolve(["SeasonalNaive"])
    trains = [df[df["ds"] <= c] for c in pd.date_range(end="2024-12-31", periods=3, freq="QE")]
    base_forecasts(trains, specs, FitSettings(2, (80, 95), 4, 0), n_jobs=1, cache=True)
    paths = sorted(cache_dir.rglob("*.pkl"))
    assert len(paths) == 3
    for i, p in enumerate(paths):  # oldest first
        os.utime(p, (time.time() - 100 + i, time.time() - 100 + i))
    size = paths[0].stat().st_size
    assert vcache.prune(max_mb=2.5 * size / 1e6) == 1
    assert not paths[0].exists() and paths[1].exists() and paths[2].exists()
    vcache.load(vcache.key(trains[0], specs, FitSettings(2, (80, 95), 4, 0)))  # a miss
    assert vcache.prune(max_mb=1e-9) == 2 and not list(cache_dir.rglob("*.pkl"))


def test_a_process_fitting_an_entry_makes_the_next_one_wait_and_read_it(cache_dir):
    """`vcache.computing`: while one fitter holds a key's lock, a second asking for the same
    cutoff waits, then reads the entry the first wrote instead of fitting it again (here the
    first writes a marked frame, so a second fit would show)."""
    import threading
    import time

    df = _panel()
    specs = resolve(["SeasonalNaive"])
    settings = FitSettings(2, (80, 95), 4, 0)
    k = vcache.key(df, specs, settings)
    fitted = forecast_base(df, specs, settings)
    marked = fitted.assign(mean=fitted["mean"] + 12345.0)
    holding, done = threading.Event(), threading.Event()

    def first():
        with vcache.computing([k]):
            holding.set()
            time.sleep(1.0)
            vcache.save(k, (marked, []))
            done.set()  # inside the lock: the waiter can only pass once this is set

    t = threading.Thread(target=first)
    t.start()
    assert holding.wait(10)
    (got, _), = base_forecasts([df], specs, settings, n_jobs=1, cache=True)
    assert done.is_set()  # it waited for the first fitter
    pd.testing.assert_frame_equal(got, marked)  # and read its entry
    t.join()
    with vcache.computing([k, k]):  # a set taken twice in one call is one lock
        pass


def test_baselines_alone_run_in_this_process_unless_jobs_are_asked_for(monkeypatch):
    """A pool's workers each import statsforecast to fit what costs milliseconds here: with
    only baselines and n_jobs unset, no pool starts; with a fitted model, or n_jobs given, it does."""
    import joblib

    started = []
    real = joblib.Parallel

    class Counting(real):
        def __init__(self, *args, **kwargs):
            started.append(kwargs.get("n_jobs"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(joblib, "Parallel", Counting)
    monkeypatch.setenv("FCF_N_JOBS", "2")
    df = _panel()
    trains = [df[df["ds"] <= c] for c in pd.date_range(end="2024-12-31", periods=3, freq="QE")]
    settings = FitSettings(2, (80, 95), 4, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShortSeriesWarning)
        alone = base_forecasts(trains, resolve(["SeasonalNaive", "Naive"]), settings)
        assert started == []
        pooled = base_forecasts(trains, resolve(["SeasonalNaive", "Naive"]), settings, n_jobs=2)
        assert started == [2]
        base_forecasts(trains, resolve(["SeasonalNaive", "AutoETS"]), settings)
        assert started == [2, 2]
    for a, b in zip(alone, pooled):
        pd.testing.assert_frame_equal(a[0], b[0], check_exact=True)
