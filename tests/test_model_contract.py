"""Every registered model runs, and keeps the model contract, as scikit-learn's
``check_estimator`` does for every estimator.

One ``fcf backtest --models all`` on two shipped series (total net sales, which the guidance
covers, and FCF, which it does not), 2 evaluated windows + 2 warm-up, h = 2, with the shipped
guidance: the command runs to the end (its guidance-midpoint table included, which crashed
with ``--models all`` when the midpoint was both a model and the table's baseline) and its
``backtest.csv`` is then checked model by model:

- the frame's columns are `forecasting.core.frames.backtest_columns`, in order;
- every row is finite and ordered: lo-95 <= lo-80 <= mean <= hi-80 <= hi-95;
- ``model_used`` names a registered model (the model, a member mix or a fallback);
- at every cutoff each series is forecast for the h quarters after the cutoff (steps 1..h);
- the model is refit at each cutoff: its point forecast at the last cutoff equals a fresh
  `forecast()` on the data up to that cutoff (the single-fit models; the combinations learn
  their weights from the earlier windows, so they are compared at the same windows below).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from experiments.cli import main
from features.guidance import load_guidance
from features.loader import load_quarterly
from forecasting.core.frames import ShortSeriesWarning, backtest_columns
from forecasting.methods.registry import REGISTRY, registered

SERIES = ["net_sales_total", "free_cash_flow"]
H, WINDOWS, WARMUP = 2, 2, 2
ORDER = ["lo-95", "lo-80", "mean", "hi-80", "hi-95"]


@pytest.fixture(scope="module")
def all_models_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("all_models")
    argv = ["backtest", "--models", "all", "--series", ",".join(SERIES), "--windows", str(WINDOWS),
            "--warmup", str(WARMUP), "--horizon", str(H), "--no-track", "--out", str(out)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShortSeriesWarning)
        code = main(argv)
    bt = pd.read_csv(out / "backtest.csv", parse_dates=["cutoff", "ds"]) if code == 0 else None
    return code, bt, out


def test_backtest_all_models_runs_to_the_end(all_models_run, capsys):
    code, bt, out = all_models_run
    assert code == 0
    assert set(bt["model"]) == set(registered()), set(registered()) ^ set(bt["model"])
    board = pd.read_csv(out / "leaderboard.csv")
    assert set(board["model"]) == set(registered())
    # the guidance midpoint appears once per row (it is both a model of 'all' and the h=1 baseline)
    mid = bt[bt["model"] == "GuidanceMidpoint"]
    assert not mid.duplicated(["unique_id", "cutoff", "ds"]).any()


def test_every_model_keeps_the_output_contract(all_models_run):
    _, bt, _ = all_models_run
    assert list(bt.columns) == backtest_columns()
    cutoffs = sorted(bt["cutoff"].unique())
    assert len(cutoffs) in (WINDOWS, WINDOWS + WARMUP) and len(cutoffs) >= 2
    for model, g in bt.groupby("model"):
        values = g[ORDER].to_numpy(dtype=float)
        assert np.isfinite(values).all(), f"{model}: non-finite forecast or bound"
        assert (np.diff(values, axis=1) >= -1e-9 * np.abs(values[:, 1:]).max()).all(), f"{model}: bounds out of order"
        used = set(g["model_used"].dropna())
        assert g["model_used"].notna().all() and used, f"{model}: model_used missing"
        for u in used:  # the model itself, a fallback, or a mix of registered members ("A+B", "A|B" ...)
            parts = [p for p in u.replace("|", "+").replace(",", "+").split("+") if p]
            assert all(p.split("(")[0].strip() in REGISTRY for p in parts), f"{model}: model_used '{u}'"
        for (uid, cut), w in g.groupby(["unique_id", "cutoff"]):
            expected = pd.date_range(cut + pd.offsets.QuarterEnd(1), periods=H, freq="QE")
            assert list(w.sort_values("step")["ds"]) == list(expected), f"{model}/{uid}/{cut.date()}"
            assert list(w.sort_values("step")["step"]) == list(range(1, H + 1))


SINGLE_FIT = [n for n in registered() if REGISTRY[n].kind in ("stats", "ml")]


def test_single_fit_models_are_refit_at_each_cutoff(all_models_run):
    """The last cutoff's point forecasts equal a fresh fit on the data up to that cutoff."""
    from forecasting.rolling.forecast import forecast

    _, bt, _ = all_models_run
    df = load_quarterly(series=SERIES)
    last = bt["cutoff"].max()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShortSeriesWarning)
        fresh = forecast(df[df["ds"] <= last], h=H, models=SINGLE_FIT, intervals="model")
    got = bt[(bt["cutoff"] == last) & bt["model"].isin(SINGLE_FIT)].set_index(["model", "unique_id", "ds"])["mean"]
    want = fresh.set_index(["model", "unique_id", "ds"])["mean"].reindex(got.index)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-9)
    # and the fit moved with the cutoff: the first and last cutoffs' forecasts differ for every model
    first = bt["cutoff"].min()
    for model in SINGLE_FIT:
        a = bt[(bt["model"] == model) & (bt["cutoff"] == first)]["mean"].to_numpy()
        b = bt[(bt["model"] == model) & (bt["cutoff"] == last)]["mean"].to_numpy()
        assert not np.array_equal(a, b), model


def test_guided_models_use_the_guidance(all_models_run):
    """Where guidance for the next quarter is known at a cutoff, a guided model's one-quarter
    forecast differs from its base's; on the unguided series it is the base's."""
    _, bt, _ = all_models_run
    book = load_guidance()
    guided = [n for n in registered("guided") if n != "GuidanceMidpoint"]
    assert guided
    one = bt[bt["step"] == 1].set_index(["model", "unique_id", "cutoff"])["mean"]
    differs = 0
    for name in guided:
        base = REGISTRY[name].options.get("base") or name.removeprefix("Guided")
        for cut in bt["cutoff"].unique():
            cut = pd.Timestamp(cut)
            if book.at_cutoff(cut).range_for("net_sales_total", cut + pd.offsets.QuarterEnd(1)) is None:
                continue
            differs += one[(name, "net_sales_total", cut)] != one[(base, "net_sales_total", cut)]
        fcf = bt[(bt["unique_id"] == "free_cash_flow")]
        pair = fcf[fcf["model"].isin([name, base])].pivot_table(index=["cutoff", "ds"], columns="model", values="mean")
        np.testing.assert_allclose(pair[name], pair[base], rtol=1e-9, err_msg=name)
    assert differs > 0
