"""The retrain's pyfunc model: saved with a signature, input example and its stored fit,
reloaded; the trained horizon and levels (and a scenario) answer from the stored fit with the
numbers of a refit, other horizons and levels only with ``params={"refit": True}``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from experiments.champion_state import ChampionState, StoredFit, fit_state, parse_levels, predict_from_state

pytestmark = pytest.mark.slow  # the module fixture forecasts and saves a model (~10-20 s)

CHAMPIONS = {"net_sales_aws": "SeasonalNaive", "operating_income_aws": "Naive", "free_cash_flow": "AutoETS"}
ROLLUP = {"method": "MinTrace-wls_struct", "cashflow": "wls_var", "n_paths": 200, "seed": 0, "calibrate": True,
          "candidates": ["AutoETS", "SeasonalNaive"], "guided": ["GuidedAutoETS"], "first_cutoff": "2019Q4"}


@pytest.fixture(scope="module")
def state():
    from features.loader import load_quarterly

    from features.guidance import load_guidance

    return ChampionState(history=load_quarterly(), champions=dict(CHAMPIONS), seed=0, rollup=dict(ROLLUP),
                         calibration_windows=6, vintage="test",
                         guidance=ChampionState.guidance_records(load_guidance()))


@pytest.fixture(scope="module")
def saved(state, tmp_path_factory):
    """``(path, loaded pyfunc, forecasts of the input example computed before saving)``."""
    import mlflow.pyfunc

    from experiments.flavor import save_pyfunc

    fit = fit_state(state, 4, (80, 95))
    expected = fit.predict(4, (80, 95))
    path = tmp_path_factory.mktemp("pyfunc") / "model"
    save_pyfunc(path, state.to_json(), input_h=4, level=(80, 95), example_output=expected, fit=fit.to_bytes())
    return path, mlflow.pyfunc.load_model(str(path)), expected


def test_signature_and_input_example_are_saved(saved):
    from mlflow.models import Model

    path, loaded, expected = saved
    meta = Model.load(str(path))
    inputs = meta.signature.inputs
    assert inputs.input_names() == ["horizon", "levels", "scenario"]
    assert [c.required for c in inputs.inputs] == [True, True, False]
    assert meta.signature.outputs.input_names() == list(expected.columns)
    example = meta.load_input_example(str(path))
    pd.testing.assert_frame_equal(example, pd.DataFrame({"horizon": [4], "levels": ["80,95"]}))
    assert (path / "artifacts" / "state.json").is_file() and (path / "artifacts" / "fit.pkl").is_file()
    assert [(p.name, p.dtype.name, p.default) for p in meta.signature.params.params] == [("refit", "boolean", False)]


def test_reloaded_model_reproduces_the_example_forecasts(saved):
    path, loaded, expected = saved
    got = loaded.predict(pd.DataFrame({"horizon": [4], "levels": ["80,95"]}))
    pd.testing.assert_frame_equal(got, expected)
    # each series forecast by its champion; the roll-up adds quarterly and TTM FCF
    series = got[got["model"] != "Rollup"]
    assert dict(zip(series["unique_id"], series["model"])) == CHAMPIONS
    assert set(got.loc[got["model"] == "Rollup", "unique_id"]) == {"free_cash_flow", "free_cash_flow_ttm"}
    assert got.groupby(["unique_id", "model"]).size().eq(4).all()


def test_the_stored_fit_answers_fast_and_as_a_refit_would(saved, state):
    """The trained request, a subset of its levels and a scenario come from the stored fit, with
    the numbers a refit (`predict_from_state`) gives; the fit is read, not recomputed."""
    import time

    _, loaded, expected = saved
    model = loaded.unwrap_python_model()
    assert isinstance(model.fit_, StoredFit) and (model.fit_.h, model.fit_.level) == (4, (80, 95))
    t0 = time.perf_counter()
    got = loaded.predict(pd.DataFrame({"horizon": [4], "levels": ["80"]}))
    took = time.perf_counter() - t0
    t1 = time.perf_counter()
    refit = loaded.predict(pd.DataFrame({"horizon": [4], "levels": ["80"]}), params={"refit": True})
    # a refit takes seconds (it fits every champion and the roll-up); the stored fit does not
    assert took < (time.perf_counter() - t1) / 5, took
    pd.testing.assert_frame_equal(got, refit)
    assert list(got.columns[-2:]) == ["lo-80", "hi-80"]
    pd.testing.assert_frame_equal(got, expected.drop(columns=["lo-95", "hi-95"]))
    with pytest.raises(ValueError, match="stores its fit for horizon 4 and levels 80,95.*refit"):
        loaded.predict(pd.DataFrame({"horizon": [2], "levels": ["80"]}))
    with pytest.raises(ValueError, match="stores its fit"):
        loaded.predict(pd.DataFrame({"horizon": [4], "levels": ["50"]}))
    with pytest.raises(Exception, match="refit"):  # MLflow checks params against the signature
        loaded.predict(pd.DataFrame({"horizon": [4], "levels": ["80"]}), params={"refit": "yes"})
    with pytest.raises(ValueError, match="refit must be true or false"):  # and so does the model
        model.predict(None, pd.DataFrame({"horizon": [4], "levels": ["80"]}), params={"refit": "yes"})


def test_a_stored_fit_round_trips_and_refuses_another_format(saved):
    import pickle

    model = saved[1].unwrap_python_model()
    again = StoredFit.from_bytes(model.fit_.to_bytes())
    pd.testing.assert_frame_equal(again.forecasts, model.fit_.forecasts)
    with pytest.raises(ValueError, match="unknown format"):
        StoredFit.from_bytes(pickle.dumps({"format": 99}))


def test_other_horizons_and_levels_are_recomputed_on_request(saved, state):
    _, loaded, expected = saved
    last = state.history["ds"].max()
    refit = {"refit": True}
    short = loaded.predict(pd.DataFrame({"horizon": [2], "levels": ["50,90"]}), params=refit)
    assert [c for c in short.columns if c[:3] in ("lo-", "hi-")] == ["lo-90", "lo-50", "hi-50", "hi-90"]
    assert short.groupby(["unique_id", "model"]).size().eq(2).all()
    assert (short["lo-90"] <= short["lo-50"]).all() and (short["lo-50"] <= short["hi-50"]).all()
    assert (short["hi-50"] <= short["hi-90"]).all()
    # the same quarters' point forecasts as the 4-quarter run, for the models without state
    key = ["unique_id", "model", "ds"]
    both = short.merge(expected, on=key, suffixes=("", "_h4"))
    sn = both[both["model"].isin(["SeasonalNaive", "Naive"])]
    assert len(sn) == 4 and np.allclose(sn["mean"], sn["mean_h4"])
    # 50% intervals are narrower than 80% ones of the same forecast
    assert ((both["hi-50"] - both["lo-50"]) < (both["hi-80"] - both["lo-80"])).all()
    long = loaded.predict(pd.DataFrame({"horizon": [6], "levels": ["95"]}), params=refit)
    aws = long[long["unique_id"] == "net_sales_aws"]
    assert list(aws["ds"]) == list(pd.date_range(last, periods=7, freq="QE")[1:])
    assert {"lo-95", "hi-95"} <= set(long.columns) and "lo-80" not in long.columns


def test_scenario_as_json_adds_scenario_rollup(saved, state):
    """Capex and advertising-growth scenarios re-simulate the stored fit's roll-up inputs, with
    the numbers a refit with the scenario gives."""
    _, loaded, expected = saved
    capex = {"name": "capex_up", "description": "2026 net capex of 260B", "sources": ["test"],
             "drivers": {"capex": {"fiscal_year": {2026: 260000}}}}
    ads = {"name": "ads_up", "description": "advertising +30% in 2026", "sources": ["test"],
           "drivers": {"advertising_growth": {2026: 0.30}}}
    got = loaded.predict(pd.DataFrame({"horizon": [4], "levels": ["80"], "scenario": [json.dumps(capex)]}))
    assert set(got["model"]) >= {"Rollup", "Rollup:capex_up"}
    ttm = got[got["unique_id"] == "free_cash_flow_ttm"].pivot(index="ds", columns="model", values="mean")
    # 2026 capex of 260B is far above the base forecast: lower FCF in 2026Q4
    q4 = pd.Timestamp("2026-12-31")
    assert ttm.loc[q4, "Rollup:capex_up"] < ttm.loc[q4, "Rollup"] - 10_000
    both = loaded.predict(pd.DataFrame({"horizon": [4], "levels": ["80,95"], "scenario": [json.dumps(ads)]}))
    pd.testing.assert_frame_equal(both, predict_from_state(state, 4, (80, 95), json.dumps(ads)))
    pd.testing.assert_frame_equal(both[both["model"] != "Rollup:ads_up"].reset_index(drop=True), expected)
    ads_ttm = both[both["unique_id"] == "free_cash_flow_ttm"].pivot(index="ds", columns="model", values="mean")
    assert ads_ttm.loc[q4, "Rollup:ads_up"] > ads_ttm.loc[q4, "Rollup"]  # more ad sales at a retail margin


def test_bad_input_is_rejected(saved):
    _, loaded, _ = saved
    with pytest.raises(ValueError, match="exactly one row"):
        loaded.predict(pd.DataFrame({"horizon": [2, 3], "levels": ["80", "80"]}))
    with pytest.raises(ValueError, match="between 1 and 8"):
        loaded.predict(pd.DataFrame({"horizon": [9], "levels": ["80"]}))
    with pytest.raises(ValueError, match="whole percents"):
        loaded.predict(pd.DataFrame({"horizon": [2], "levels": ["eighty"]}))


def test_parse_levels():
    assert parse_levels("95, 80") == (80, 95)
    assert parse_levels(90) == (90,)
    with pytest.raises(ValueError, match="between 1 and 99"):
        parse_levels("0,80")
