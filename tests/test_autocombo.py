"""Choosing a combination from earlier windows only, per data set or per series (forecasting/methods/autocombo.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from forecasting.core.frames import ShortSeriesWarning
from forecasting.methods.catalogue import resolve
from forecasting.methods.registry import REGISTRY

CUT = pd.Timestamp("2024-12-31")
DS = pd.date_range("2025-03-31", periods=2, freq="QE")
FAST = ("Naive", "SeasonalNaive", "RandomWalkWithDrift")


@pytest.fixture(autouse=True)
def _registry():
    """Selectors registered by a test are removed after it."""
    resolve(None)
    before = dict(REGISTRY)
    yield
    REGISTRY.clear()
    REGISTRY.update(before)


def _members(values: dict[str, float], uids=("x", "y")) -> pd.DataFrame:
    rows = []
    for uid in uids:
        for model, v in values.items():
            for ds in DS:
                rows.append({"unique_id": uid, "ds": ds, "model": model, "model_used": model, "mean": v,
                             "lo-95": v - 20, "lo-80": v - 10, "hi-80": v + 10, "hi-95": v + 20,
                             "cutoff": CUT, "y": np.nan})
    return pd.DataFrame(rows)


def _past(errors: dict[tuple[str, str], float], n: int) -> pd.DataFrame:
    """n one-step rows per (series, model) reported by CUT, with absolute error errors[...]."""
    ds = pd.date_range(end=CUT, periods=n, freq="QE")
    rows = []
    for (uid, model), e in errors.items():
        for d in ds:
            rows.append({"unique_id": uid, "ds": d, "cutoff": d - pd.offsets.QuarterEnd(1), "model": model,
                         "mean": 100.0 + e, "y": 100.0})
    return pd.DataFrame(rows)


def _history(uids=("x", "y")) -> pd.DataFrame:
    ds = pd.date_range(end=CUT, periods=12, freq="QE")
    return pd.concat([pd.DataFrame({"unique_id": u, "ds": ds, "y": 100.0 + np.arange(12) % 4}) for u in uids])


def _selector(candidates=("Naive", "SeasonalNaive"), windows=12, prior_weight=0.0, name="TestSelect"):
    from forecasting.methods.autocombo import register_selector

    return register_selector(name, candidates, windows=windows, prior_weight=prior_weight)


def test_each_series_takes_its_best_candidate_and_model_used_says_which():
    from forecasting.methods.ensemble import combine

    spec = _selector()
    past = _past({("x", "Naive"): 1.0, ("x", "SeasonalNaive"): 5.0,
                  ("y", "Naive"): 5.0, ("y", "SeasonalNaive"): 1.0}, 8)
    out = combine(_members({"Naive": 10.0, "SeasonalNaive": 30.0}), spec, history=_history(), past=past)
    used = out.groupby("unique_id")["model_used"].first()
    assert used.to_dict() == {"x": "Naive", "y": "SeasonalNaive"}
    assert (out["model"] == "TestSelect").all()
    point = out.groupby("unique_id")["mean"].first()
    assert point.to_dict() == {"x": 10.0, "y": 30.0}


def test_a_mean_candidate_forecasts_the_mean_of_its_members():
    from forecasting.methods.ensemble import combine, register_ensemble

    register_ensemble("TestMean", ("Naive", "RandomWalkWithDrift"), "mean")
    spec = _selector(("SeasonalNaive", "TestMean"))
    errs = {(u, m): e for u in ("x", "y") for m, e in (("Naive", 1.0), ("RandomWalkWithDrift", 1.0),
                                                         ("SeasonalNaive", 9.0))}
    out = combine(_members({"Naive": 10.0, "RandomWalkWithDrift": 20.0, "SeasonalNaive": 50.0}), spec,
                  history=_history(), past=_past(errs, 8))
    assert set(out["model_used"]) == {"TestMean"}
    assert np.allclose(out["mean"], 15.0) and np.allclose(out["hi-80"], 25.0)


def test_shrinkage_pulls_a_short_record_toward_the_pooled_choice():
    from forecasting.methods.autocombo import choose, scores

    # x slightly prefers SeasonalNaive on 2 windows; four other series clearly prefer Naive
    errs = {("x", "Naive"): 1.2, ("x", "SeasonalNaive"): 1.0}
    for u in "abcd":
        errs.update({(u, "Naive"): 1.0, (u, "SeasonalNaive"): 3.0})
    past = _past(errs, 2)
    cuts = pd.Series(CUT, index=["x", "a", "b", "c", "d"])
    own = choose(scores(past, ["Naive", "SeasonalNaive"], cuts, prior_weight=0.0), ["Naive", "SeasonalNaive"])
    shrunk = choose(scores(past, ["Naive", "SeasonalNaive"], cuts, prior_weight=8.0),
                    ["Naive", "SeasonalNaive"])
    assert own["x"] == "SeasonalNaive" and shrunk["x"] == "Naive"
    assert (shrunk.drop("x") == "Naive").all()


def test_without_any_earlier_window_the_first_candidate_is_used():
    from forecasting.methods.ensemble import combine

    out = combine(_members({"Naive": 10.0, "SeasonalNaive": 30.0}), _selector(("SeasonalNaive", "Naive")),
                  history=_history(), past=None)
    assert set(out["model_used"]) == {"SeasonalNaive"}


def test_only_the_last_windows_count():
    from forecasting.methods.autocombo import scores

    old = _past({("x", "Naive"): 9.0, ("x", "SeasonalNaive"): 1.0}, 12)
    old = old[old["cutoff"] < CUT - pd.offsets.QuarterEnd(4)]
    recent = _past({("x", "Naive"): 1.0, ("x", "SeasonalNaive"): 9.0}, 4)
    cuts = pd.Series(CUT, index=["x"])
    t = scores(pd.concat([old, recent]), ["Naive", "SeasonalNaive"], cuts, windows=4)
    assert t["n_windows"].eq(4).all()
    assert t.set_index("candidate")["score"].idxmin() == "Naive"


def test_the_choice_never_reads_an_outcome_after_its_cutoff():
    """Rows a forecaster at CUT could not know (outcomes after CUT, forecasts made at or after
    it) say SeasonalNaive is far better; read, they would flip both series' choice."""
    from forecasting.methods.ensemble import combine

    spec = _selector()
    past = _past({(u, m): e for u in ("x", "y") for m, e in (("Naive", 1.0), ("SeasonalNaive", 4.0))}, 8)
    fc = _members({"Naive": 10.0, "SeasonalNaive": 30.0})
    base = combine(fc, spec, history=_history(), past=past)
    poison = {(u, m): e for u in ("x", "y") for m, e in (("Naive", 1e6), ("SeasonalNaive", 0.0))}
    future = pd.concat([
        _past(poison, 8).assign(ds=lambda d: d["ds"] + pd.offsets.QuarterEnd(8)),  # reported later
        _past(poison, 8).assign(cutoff=CUT),  # made at the cutoff itself
    ])
    leaky = combine(fc.assign(y=-1e9), spec, history=_history(), past=pd.concat([past, future]))
    pd.testing.assert_frame_equal(leaky, base)
    assert set(base["model_used"]) == {"Naive"}


def _seasonal_panel(n=28, seed=3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ds = pd.date_range(end="2024-12-31", periods=n, freq="QE")
    t = np.arange(n)
    return pd.concat([
        pd.DataFrame({"unique_id": "seasonal", "ds": ds, "y": 200 + 30 * np.sin(np.pi * t / 2) + rng.normal(0, 2, n)}),
        pd.DataFrame({"unique_id": "trend", "ds": ds, "y": 200 + 10 * t + rng.normal(0, 2, n)}),
    ], ignore_index=True)


def test_backtest_with_a_poisoned_future_keeps_earlier_choices_and_forecasts():
    """Values after a cutoff are replaced by a series on which the other candidate wins; the
    choices and forecasts at and before that cutoff must not move, later ones must."""
    from forecasting.rolling.backtest import backtest
    from forecasting.methods.autocombo import choices

    _selector(("SeasonalNaive", "Naive"), windows=6, prior_weight=0.0, name="TestSelectBT")
    df = _seasonal_panel()
    config = dict(h=2, n_windows=8, warmup_windows=6, intervals="conformal")
    base = backtest(df, "TestSelectBT", **config)
    cut = sorted(base["cutoff"].unique())[3]
    poisoned = df.copy()
    after = (poisoned["ds"] > cut) & (poisoned["unique_id"] == "seasonal")
    poisoned.loc[after, "y"] = 500 + np.cumsum(np.full(after.sum(), 40.0))  # a trend: Naive wins
    other = backtest(poisoned, "TestSelectBT", **config)
    a, b = choices(base), choices(other)
    assert (a["chosen"][a["unique_id"] == "seasonal"] == "SeasonalNaive").all()
    early_a, early_b = a[a["cutoff"] <= cut], b[b["cutoff"] <= cut]
    pd.testing.assert_frame_equal(early_a.reset_index(drop=True), early_b.reset_index(drop=True))
    assert "Naive" in set(b.loc[(b["cutoff"] > cut) & (b["unique_id"] == "seasonal"), "chosen"])
    key = ["unique_id", "model", "cutoff", "ds"]
    m = base.merge(other, on=key, suffixes=("", "_p"))
    early = m["cutoff"] <= cut
    for c in ("mean", "lo-80", "hi-80", "lo-95", "hi-95"):
        assert np.allclose(m.loc[early, c], m.loc[early, f"{c}_p"]), f"{c} leaked values after the cutoff"


def test_forecast_with_a_selector_names_the_choice_and_repeats_exactly():
    from forecasting.rolling.forecast import forecast
    from forecasting.methods.autocombo import choices

    _selector(("SeasonalNaive", "Naive"), windows=6, name="TestSelectFC")
    df = _seasonal_panel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShortSeriesWarning)
        one = forecast(df, h=2, models="TestSelectFC", cache=False, n_jobs=1)
        two = forecast(df, h=2, models="TestSelectFC", cache=False, n_jobs=2)
    pd.testing.assert_frame_equal(one, two)
    c = choices(one)
    assert c.set_index("unique_id")["chosen"].to_dict() == {"seasonal": "SeasonalNaive", "trend": "Naive"}
    assert (c["cutoff"] == df["ds"].max()).all()


def test_candidates_must_be_single_models_or_mean_median_ensembles():
    from forecasting.methods.autocombo import register_selector

    with pytest.raises(ValueError, match="combines with 'weighted'"):
        register_selector("Bad", ["WeightedEnsemble"])
    with pytest.raises(ValueError, match="unknown model 'Nope'"):
        register_selector("Bad", ["Nope"])
    from forecasting.methods.ensemble import register_ensemble

    with pytest.raises(ValueError, match="register_selector"):
        register_ensemble("Bad", ("Naive",), "select")
