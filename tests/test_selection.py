"""Nested per-series choice of model and intercept correction: by hand, and blind to the future."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.rollup.selection import SelectionSettings, champion_forecasts, choose, latest_miss, scored


def frame(n_cut=16, bias_a=0.0, bias_b=5.0, noise=0.0, seed=0):
    """Two models forecasting y = 100 + t: 'a' off by `bias_a`, 'b' off by `bias_b` (+ noise)."""
    rng = np.random.default_rng(seed)
    cuts = pd.date_range("2019-03-31", periods=n_cut, freq="QE")
    rows = []
    for c in cuts:
        for k in (1, 2):
            d = c + pd.offsets.QuarterEnd(k)
            t = (d.year - 2019) * 4 + d.quarter
            y = 100.0 + t
            for m, b in (("a", bias_a), ("b", bias_b)):
                rows.append((c, "s", d, k, m, y - b + noise * rng.normal(), y))
    fc = pd.DataFrame(rows, columns=["cutoff", "unique_id", "ds", "step", "model", "mean", "y"])
    hist_ds = pd.date_range("2016-03-31", "2023-12-31", freq="QE")
    t = (hist_ds.year - 2019) * 4 + hist_ds.quarter
    history = pd.DataFrame({"unique_id": "s", "ds": hist_ds, "y": 100.0 + t + 3 * (hist_ds.quarter == 4)})
    return fc, history


def test_latest_miss_is_the_previous_one_step_error():
    fc, _ = frame(bias_b=5.0)
    miss = latest_miss(fc)
    b = fc.assign(miss=miss)
    b = b[b["model"] == "b"]
    assert (b.loc[b["cutoff"] == b["cutoff"].min(), "miss"] == 0).all()  # no forecast before the first cutoff
    assert np.allclose(b.loc[b["cutoff"] > b["cutoff"].min(), "miss"], 5.0)


def test_choice_prefers_the_model_whose_correction_removes_its_bias():
    fc, history = frame(bias_a=2.0, bias_b=5.0)
    sc = scored(fc, history)
    c = fc["cutoff"].max()
    ch = choose(sc, c, ["a", "b"], SelectionSettings(window=12, min_windows=4, steps=2))
    # both models' constant bias is removed exactly by lam = 1: a tie at 0 error goes to 'a'
    assert ch.loc[0, "model"] == "a" and ch.loc[0, "lam"] == 1.0 and ch.loc[0, "score"] == pytest.approx(0)
    out, _ = champion_forecasts(sc, [c], ["a", "b"], SelectionSettings(window=12, min_windows=4, steps=2))
    assert np.allclose(out["mean"], out["y"])
    # too few past windows: the first candidate, uncorrected
    early = choose(sc, fc["cutoff"].min() + pd.offsets.QuarterEnd(2), ["b", "a"], SelectionSettings(min_windows=4))
    assert early.loc[0, "model"] == "b" and early.loc[0, "lam"] == 0.0 and np.isnan(early.loc[0, "score"])


def test_choice_never_reads_an_outcome_after_its_cutoff():
    """Bug caught: selecting on rows whose quarter is after the cutoff (``ds <= cutoff`` dropped,
    or the window counted from the last row instead of the cutoff) would flip the choice below."""
    fc, history = frame(bias_a=1.0, bias_b=3.0, noise=0.5, seed=1)
    c = pd.Timestamp("2021-12-31")
    settings = SelectionSettings(window=8, min_windows=4, steps=2)
    before = choose(scored(fc, history), c, ["a", "b"], settings)
    poisoned = fc.copy()
    later = poisoned["ds"] > c
    poisoned.loc[later & (poisoned["model"] == "a"), "mean"] += 1e6  # 'a' disastrous after c
    hist_p = history.copy()
    hist_p.loc[hist_p["ds"] > c, "y"] = -1e9
    after = choose(scored(poisoned, hist_p), c, ["a", "b"], settings)
    pd.testing.assert_frame_equal(before, after)
    # control: at a later cutoff the poisoned rows are known, and the choice does move
    late = choose(scored(poisoned, hist_p), c + pd.offsets.QuarterEnd(3), ["a", "b"], settings)
    assert late.loc[0, "model"] == "b"
