"""Every registered statistical model on short and long real series, fallbacks, and the registry."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from features.loader import load_quarterly
from forecasting.methods import registry
from forecasting.rolling.forecast import forecast
from forecasting.core.frames import ShortSeriesWarning
from forecasting.methods.catalogue import DEFAULT_MODELS, resolve
from forecasting.methods.registry import ModelSpec, fallback_chain, get_spec, register, with_members

STATISTICAL = ["Naive", "SeasonalNaive", "RandomWalkWithDrift", "AutoETS", "AutoTheta",
               "Foster", "GriffinWatts", "BrownRozeff", "AutoARIMA"]
H = 4
ORDER = ["lo-95", "lo-80", "mean", "hi-80", "hi-95"]


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    """Real series: 6 and 12 quarters (the tails of AWS sales and OI), 46 (AWS sales), 70 (FCF)."""
    df = load_quarterly(series=["net_sales_aws", "operating_income_aws", "free_cash_flow"])
    aws = df[df["unique_id"] == "net_sales_aws"]
    oi = df[df["unique_id"] == "operating_income_aws"]
    return pd.concat([
        aws.tail(6).assign(unique_id="aws_sales_6q"),
        oi.tail(12).assign(unique_id="aws_oi_12q"),
        aws,
        df[df["unique_id"] == "free_cash_flow"],
    ], ignore_index=True)


def check_forecast(fc: pd.DataFrame, history: pd.DataFrame, h: int) -> None:
    """Finite, ordered, one row per quarter continuing from each series' last quarter."""
    values = fc[ORDER].to_numpy(dtype=float)
    assert np.isfinite(values).all(), fc[~np.isfinite(values).all(axis=1)]
    assert (np.diff(values, axis=1) >= 0).all(), "lo-95 <= lo-80 <= mean <= hi-80 <= hi-95 broken"
    assert (fc["hi-95"] > fc["lo-95"]).all(), "degenerate (zero-width) 95% interval"
    last = history.groupby("unique_id")["ds"].max()
    for (uid, model), g in fc.groupby(["unique_id", "model"]):
        expected = pd.date_range(last[uid] + pd.offsets.QuarterEnd(1), periods=h, freq="QE")
        assert list(g["ds"]) == list(expected), f"{uid}/{model}: {list(g['ds'])}"


@pytest.mark.parametrize("model", STATISTICAL)
def test_model_on_short_and_long_real_series(panel, model):
    data = panel
    if model == "AutoARIMA":  # slow: one short and one long series
        data = panel[panel["unique_id"].isin(["aws_oi_12q", "net_sales_aws"])]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ShortSeriesWarning)
        fc = forecast(data, h=H, models=[model], intervals="model")
    fc = fc[fc["model"] == model]
    assert set(fc["unique_id"]) == set(data["unique_id"])
    assert fc.groupby("unique_id").size().eq(H).all()
    check_forecast(fc, data, H)

    spec = get_spec(model)
    used = fc.groupby("unique_id")["model_used"].first()
    sizes = data.groupby("unique_id").size()
    short = [str(w.message) for w in caught if issubclass(w.category, ShortSeriesWarning)]
    degenerate = {uid for uid in sizes.index
                  if any(m.startswith(f"series {uid}:") and "DegenerateFitError" in m for m in short)}
    for uid, n in sizes.items():
        if uid in degenerate:  # a refused fit (see forecasting/methods/engines/arima.py) falls back, and says so
            assert used[uid] == fallback_chain(get_spec(spec.fallback), n).name != model
        elif n >= spec.min_obs:
            assert used[uid] == model, f"{model} on {uid} ({n} quarters) fell back to {used[uid]}"
        else:
            assert used[uid] == fallback_chain(spec, n).name != model
    expect_warning = (sizes < spec.min_obs).any() or bool(degenerate)
    assert bool(short) == expect_warning, short
    if expect_warning:
        assert any("aws_sales_6q" in m and f"fewer than the {spec.min_obs} {model} needs" in m
                   for m in short)


def test_long_series_models_are_not_just_the_baseline(panel):
    """Each fitted model gives its own forecast, not a copy of the seasonal naive one."""
    data = panel[panel["unique_id"] == "free_cash_flow"]
    fc = forecast(data, h=H, models=["Foster", "GriffinWatts", "BrownRozeff", "AutoETS", "AutoTheta",
                                     "RandomWalkWithDrift", "Naive"], intervals="model")
    means = fc.pivot(index="ds", columns="model", values="mean")
    for m in means.columns.drop("SeasonalNaive"):
        assert not np.allclose(means[m], means["SeasonalNaive"]), m
    # Naive repeats the last reported quarter; SeasonalNaive the same quarter a year earlier
    y = data.set_index("ds")["y"]
    assert (means["Naive"] == y.iloc[-1]).all()
    assert means["SeasonalNaive"].tolist() == y.iloc[-4:].tolist()


@pytest.mark.parametrize(
    ("n_obs", "model", "used"),
    [
        (4, "SeasonalNaive", "Naive"),
        (4, "AutoETS", "Naive"),  # AutoETS -> SeasonalNaive (needs 5) -> Naive
        (2, "RandomWalkWithDrift", "Naive"),
        (9, "Foster", "SeasonalNaive"),
    ],
)
def test_too_short_series_falls_back_with_a_warning(panel, n_obs, model, used):
    data = panel[panel["unique_id"] == "net_sales_aws"].tail(n_obs)
    with pytest.warns(ShortSeriesWarning, match=f"{n_obs} observations, fewer than the"):
        fc = forecast(data, h=3, models=[model], intervals="model")
    fc = fc[fc["model"] == model]
    assert (fc["model_used"] == used).all()
    check_forecast(fc, data, 3)


def test_one_point_series_raises_a_clear_error(panel):
    data = panel[panel["unique_id"] == "net_sales_aws"].tail(1)
    with pytest.raises(ValueError, match=r"series net_sales_aws has 1 observation\(s\): too short for "
                                         r"SeasonalNaive and every fallback \(the shortest needs 2\)"):
        forecast(data, h=2, models=["SeasonalNaive"], intervals="model")


def test_a_failing_model_falls_back_instead_of_crashing(panel, monkeypatch):
    """statsforecast 2.1's default CSS-ML fit of the Foster orders fails on real data
    (the reason the registry uses method="ML"); the series must still get a forecast."""
    from statsforecast.models import ARIMA

    spec = ModelSpec(
        name="FosterCSS",
        kind="stats",
        build=lambda m: ARIMA(order=(1, 0, 0), seasonal_order=(0, 1, 0), season_length=m,
                              include_drift=True, method="CSS-ML", alias="FosterCSS"),
        min_obs=10,
        fallback="SeasonalNaive",
    )
    monkeypatch.setitem(registry.REGISTRY, spec.name, spec)
    data = panel[panel["unique_id"].isin(["aws_oi_12q", "net_sales_aws"])]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ShortSeriesWarning)
        fc = forecast(data, h=H, models=["FosterCSS"], intervals="model")
    fc = fc[fc["model"] == "FosterCSS"]
    check_forecast(fc, data, H)
    fell_back = set(fc.loc[fc["model_used"] != "FosterCSS", "unique_id"])
    messages = [str(w.message) for w in caught if issubclass(w.category, ShortSeriesWarning)]
    for uid in fell_back:
        assert (fc.loc[fc["unique_id"] == uid, "model_used"] == "SeasonalNaive").all()
        assert any(m.startswith(f"series {uid}: FosterCSS ") and "SeasonalNaive instead" in m
                   for m in messages), messages
    # measured with statsforecast 2.1: "zero-size array to reduction operation minimum"
    assert "net_sales_aws" in fell_back, "expected the CSS-ML fit to fail on AWS net sales"
    assert any("failed (ValueError" in m for m in messages), messages


# --------------------------------------------------------------------------- registry
def test_unknown_model_suggests_the_closest_name():
    with pytest.raises(ValueError, match="unknown model 'AutoETC' \\(did you mean 'AutoETS'\\?\\); "
                                         "registered models: "):
        resolve("SeasonalNaive,AutoETC")
    with pytest.raises(ValueError, match="did you mean 'GriffinWatts'"):
        forecast(pd.DataFrame({"unique_id": "x", "ds": pd.date_range("2020-03-31", periods=8, freq="QE"),
                               "y": np.arange(8.0)}), h=2, models=["Griffinwatts"], intervals="model")


def test_every_statistical_model_is_registered():
    names = [s.name for s in resolve("all")]
    assert set(STATISTICAL) <= set(names)
    for name in STATISTICAL:
        spec = get_spec(name)
        assert spec.kind == "stats" and spec.family in ("baseline", "statistical")
        assert spec.build(4).alias == name
        # the fallback chain always ends at Naive, which fits on 2 points
        assert fallback_chain(spec, 2).name == "Naive"
        assert fallback_chain(spec, spec.min_obs) is spec
    assert fallback_chain(get_spec("Naive"), 1) is None


def test_resolve_defaults_families_and_lists():
    assert [s.name for s in resolve()] == list(dict.fromkeys(["SeasonalNaive", *DEFAULT_MODELS]))
    assert [s.name for s in resolve("AutoETS, Foster")] == ["SeasonalNaive", "AutoETS", "Foster"]
    assert [s.name for s in resolve(["Foster", "Foster"])] == ["SeasonalNaive", "Foster"]
    baseline = {s.name for s in resolve("baseline")}
    assert baseline == {"Naive", "SeasonalNaive", "RandomWalkWithDrift"}
    statistical = {s.name for s in resolve("statistical")}
    assert {"AutoETS", "AutoARIMA", "AutoTheta", "Foster", "GriffinWatts", "BrownRozeff"} <= statistical
    assert not statistical & (baseline - {"SeasonalNaive"})


def test_with_members_puts_members_first(monkeypatch):
    ens = ModelSpec(name="TestMean", kind="ensemble", family="ensemble", members=("AutoETS", "Foster"))
    monkeypatch.setitem(registry.REGISTRY, ens.name, ens)
    assert [s.name for s in with_members([ens])] == ["AutoETS", "Foster", "TestMean"]


def test_register_refuses_a_duplicate_name_and_bad_specs():
    resolve()  # make sure the built-ins are registered
    with pytest.raises(ValueError, match="already registered; pass replace=True"):
        register(ModelSpec(name="AutoETS", kind="stats"))
    with pytest.raises(ValueError, match="kind must be one of"):
        ModelSpec(name="X", kind="prophet")
    with pytest.raises(ValueError, match="family must be one of"):
        ModelSpec(name="X", kind="stats", family="fancy")
    with pytest.raises(ValueError, match="ensemble 'X' needs members"):
        ModelSpec(name="X", kind="ensemble", family="ensemble")


def test_fallback_cycle_is_detected(monkeypatch):
    a = ModelSpec(name="CycA", kind="stats", min_obs=50, fallback="CycB")
    b = ModelSpec(name="CycB", kind="stats", min_obs=50, fallback="CycA")
    monkeypatch.setitem(registry.REGISTRY, "CycA", a)
    monkeypatch.setitem(registry.REGISTRY, "CycB", b)
    with pytest.raises(ValueError, match="fallback cycle at model 'CycA'"):
        fallback_chain(a, 10)


def test_degenerate_arima_fits_are_refused_and_reported():
    """statsforecast's Brown-Rozeff fit on total net sales never leaves its start (all
    coefficients 0): that is SeasonalNaive under another name, so it must fall back visibly."""
    from forecasting.methods.engines.arima import DegenerateFitError, check_fit

    df = load_quarterly(series=["net_sales_total"])
    with pytest.warns(ShortSeriesWarning, match="DegenerateFitError"):
        fc = forecast(df, h=4, models=["BrownRozeff"], intervals="model")
    br = fc[fc["model"] == "BrownRozeff"]
    assert set(br["model_used"]) == {"SeasonalNaive"}
    with pytest.raises(DegenerateFitError, match="non-invertible"):
        check_fit("X", {"ar1": 0.5, "sma1": -7.8}, differenced=False)
    with pytest.raises(DegenerateFitError, match="did not move"):
        check_fit("X", {"ar1": 0.0, "sma1": 0.0}, differenced=False)
    check_fit("X", {"ma1": 0.0, "sma1": 0.0}, differenced=True)  # ARIMA(0,1,0)(0,1,0): a real model
