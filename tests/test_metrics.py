"""Backtest metrics on tiny hand-computed examples (numbers worked out in the comments)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.core.metrics import leaderboard, pointwise, seasonal_scale, summarize

DS = pd.date_range("2020-03-31", periods=9, freq="QE")
Y = [1.0, 2, 3, 4, 3, 4, 5, 6, 10]  # 2020Q1 .. 2022Q1
C7, C8 = DS[7], DS[8]  # cutoffs 2021Q4 and 2022Q1


def history(*ids: str) -> pd.DataFrame:
    return pd.concat([pd.DataFrame({"unique_id": u, "ds": DS, "y": Y}) for u in ids], ignore_index=True)


def row(uid, model, mean, cutoff=C7, ds=C8, y=10.0, half80=3.0, half95=5.0):
    return {"unique_id": uid, "cutoff": cutoff, "ds": ds, "step": 1, "y": y, "model": model,
            "model_used": model, "mean": mean, "lo-95": mean - half95, "lo-80": mean - half80,
            "hi-80": mean + half80, "hi-95": mean + half95}


def test_seasonal_scale_uses_data_up_to_each_cutoff_only():
    cuts = pd.DataFrame({"unique_id": ["a", "a", "a"], "cutoff": [DS[3], C7, C8]})
    s = seasonal_scale(history("a"), cuts).set_index("cutoff")["scale"]
    # up to 2021Q4: |3-1|,|4-2|,|5-3|,|6-4| -> 2; up to 2022Q1 adds |10-3| = 7 -> 15/5 = 3
    assert s[C7] == pytest.approx(2.0) and s[C8] == pytest.approx(3.0)
    assert np.isnan(s[DS[3]])  # four quarters: no seasonal difference yet


def test_pointwise_errors_by_hand():
    bt = pd.DataFrame([row("a", "M", 8.0), row("a", "SeasonalNaive", 3.0, half80=1.0)])
    p = pointwise(bt, history("a")).set_index("model")
    m = p.loc["M"]
    assert m["ae"] == 2 and m["ape"] == pytest.approx(20.0) and m["spe"] == pytest.approx(-20.0)
    assert m["sape"] == pytest.approx(200 * 2 / 18)
    assert m["ase"] == pytest.approx(1.0)  # 2 / scale 2
    assert m["in-80"] == 1.0 and m["in-95"] == 1.0  # 10 in [5, 11] and [3, 13]
    assert m["width-80"] == 6 and m["swidth-80"] == pytest.approx(3.0)
    assert p.loc["SeasonalNaive", "ase"] == pytest.approx(3.5)  # |10-3| / 2
    assert p.loc["SeasonalNaive", "in-80"] == 0.0  # 10 not in [2, 4]
    # YoY: base 2021Q1 = 3 was reported by the cutoff: 100 (8/3 - 10/3) = -66.67 pp
    assert m["yoy_err_pp"] == pytest.approx(100 * (8 / 3 - 10 / 3))


def test_yoy_error_uses_the_same_cutoffs_forecast_when_the_base_was_not_reported():
    means = [3.5, 4, 5, 6, 9]  # forecasts from 2020Q4 for 2021Q1 .. 2022Q1
    bt = pd.DataFrame([row("a", "M", m, cutoff=DS[3], ds=DS[4 + i], y=Y[4 + i]) for i, m in enumerate(means)])
    p = pointwise(bt, history("a")).set_index("ds")
    # 2022Q1: base 2021Q1 is after the cutoff -> forecast base 3.5; reported growth 10/3 - 1
    assert p.loc[C8, "yoy_err_pp"] == pytest.approx(100 * ((9 / 3.5 - 1) - (10 / 3 - 1)))
    # 2021Q1: base 2020Q1 = 1 was reported: 100 (3.5/1 - 3/1)
    assert p.loc[DS[4], "yoy_err_pp"] == pytest.approx(50.0)
    assert p["ase"].isna().all()  # no seasonal scale from four quarters


def test_coverage_rel_mase_and_geometric_mean_over_series():
    bt = pd.DataFrame([
        row("a", "M", 8.0), row("a", "SeasonalNaive", 14.0),   # M ase 1, SN ase 2 -> rel 0.5
        row("b", "M", 18.0), row("b", "SeasonalNaive", 14.0),  # M ase 4, SN ase 2 -> rel 2.0
    ])
    points = pointwise(bt, history("a", "b"))
    per = summarize(points, ("unique_id", "model")).set_index(["unique_id", "model"])
    assert per.loc[("a", "M"), "rel_mase"] == pytest.approx(0.5)
    assert per.loc[("b", "M"), "rel_mase"] == pytest.approx(2.0)
    board = leaderboard(points).set_index("model")
    assert board.loc["M", "gm_rel_mase"] == pytest.approx(1.0)  # sqrt(0.5 * 2), not the mean 1.25
    assert board.loc["M", "mean_mase"] == pytest.approx(2.5)
    assert board.loc["M", "series_beating_baseline"] == 1
    assert board.loc["SeasonalNaive", "gm_rel_mase"] == pytest.approx(1.0)
    # M: 10 in [5, 11] (a), 10 not in [15, 21] (b) -> 0.5; SN: [11, 17] misses 10 twice
    assert board.loc["M", "coverage_80"] == pytest.approx(0.5)
    assert board.loc["SeasonalNaive", "coverage_80"] == 0.0
    by_step = summarize(points, ("model", "step")).set_index("model")
    assert by_step.loc["M", "rel_mase"] == pytest.approx(2.5 / 2.0)  # pooled MASE ratio
