"""Guided models: the position arithmetic by hand, fiscal-year remainders, and no look-ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.guidance import GuidanceBook, load_guidance
from forecasting.rolling.backtest import backtest
from forecasting.rolling.forecast import forecast
from forecasting.methods.guided import POSITION_WINDOW, positions

METRIC = "net_sales_total"
CAPEX = "purchases_of_property_and_equipment_net_of_proceeds"


def series(n=24, start="2018-03-31", uid=METRIC, base=100.0):
    ds = pd.date_range(start, periods=n, freq="QE")
    t = np.arange(n)
    y = base * (1 + 0.03 * t) * (1 + 0.1 * np.sin(np.pi * t / 2))
    return pd.DataFrame({"unique_id": uid, "ds": ds, "y": y})


def ranges_around(df, offsets, width=10.0):
    """Guidance rows for every quarter of `df` after the first 4, with the outcome at
    ``low + offset * width`` (offset = the position the test expects back)."""
    rows = []
    for (d, y), off in zip(df[["ds", "y"]].itertuples(index=False), offsets):
        lo = y - off * width
        rows.append({"metric": df["unique_id"].iloc[0], "ds": d, "announced_on": d - pd.Timedelta(days=60),
                     "low": lo, "high": lo + width, "quality": "test"})
    return pd.DataFrame(rows)


def test_positions_and_the_guided_next_quarter_by_hand():
    df = series(20)
    offs = np.linspace(0.2, 1.8, 20)
    q = ranges_around(df, offs)
    nxt = df["ds"].max() + pd.offsets.QuarterEnd(1)
    q = pd.concat([q, pd.DataFrame([{"metric": METRIC, "ds": nxt, "announced_on": nxt - pd.Timedelta(days=60),
                                     "low": 500.0, "high": 520.0, "quality": "test"}])], ignore_index=True)
    book = GuidanceBook(q)
    pos = positions(book, df)
    assert np.allclose(pos["position"].to_numpy(), offs)
    fc = forecast(df, h=3, models=["GuidedAutoETS"], intervals="model", guidance=book)
    fc = fc[fc["model"] == "GuidedAutoETS"].reset_index(drop=True)
    p = offs[-POSITION_WINDOW:].mean()
    assert fc.loc[0, "mean"] == pytest.approx(500.0 + 20.0 * p)
    # bounds: empirical quantiles of every past position, mapped into the new range
    assert fc.loc[0, "lo-80"] == pytest.approx(500.0 + 20.0 * np.quantile(offs, 0.1))
    assert fc.loc[0, "hi-95"] == pytest.approx(500.0 + 20.0 * np.quantile(offs, 0.975))
    assert (fc["model_used"] == "GuidedAutoETS").all()
    # later quarters: AutoETS refitted on the history extended by the guided quarter
    aug = pd.concat([df, pd.DataFrame({"unique_id": [METRIC], "ds": [nxt], "y": [fc.loc[0, "mean"]]})])
    ref = forecast(aug, h=2, models=["AutoETS"], intervals="model")
    ref = ref[ref["model"] == "AutoETS"]
    assert np.allclose(fc.loc[1:, "mean"].to_numpy(), ref["mean"].to_numpy())


def test_midpoint_baseline_and_no_guidance():
    df = series(20)
    nxt = df["ds"].max() + pd.offsets.QuarterEnd(1)
    book = GuidanceBook(pd.DataFrame([{"metric": METRIC, "ds": nxt, "announced_on": nxt - pd.Timedelta(days=60),
                                       "low": 500.0, "high": 520.0, "quality": "test"}]))
    fc = forecast(df, h=4, models=["GuidanceMidpoint"], intervals="model", guidance=book)
    fc = fc[fc["model"] == "GuidanceMidpoint"].reset_index(drop=True)
    assert fc.loc[0, "mean"] == 510.0
    sn = df["y"].to_numpy()[-4:]
    assert np.allclose(fc.loc[1:, "mean"].to_numpy(), sn[1:])  # seasonal naive after the guided quarter
    # without guidance a guided model is its base model, and says so in model_used
    plain = forecast(df, h=4, models=["GuidedAutoETS", "AutoETS"], intervals="model")
    g, b = (plain[plain["model"] == m]["mean"].to_numpy() for m in ("GuidedAutoETS", "AutoETS"))
    assert np.allclose(g, b)
    assert set(plain.loc[plain["model"] == "GuidedAutoETS", "model_used"]) == {"AutoETS"}


def test_fiscal_year_remainder_is_split_like_the_base_forecast():
    df = series(22, start="2020-03-31", uid=CAPEX)  # ends 2025-06-30: two quarters of 2025 reported
    reported = df.loc[df["ds"].dt.year == 2025, "y"].sum()
    annual = pd.DataFrame([{"metric": CAPEX, "fiscal_year": 2025, "year_end": pd.Timestamp("2025-12-31"),
                            "announced_on": pd.Timestamp("2025-06-15"), "low": 900.0, "high": 1000.0}])
    book = GuidanceBook(annual=annual)
    fc = forecast(df, h=4, models=["GuidedAutoETS", "AutoETS"], intervals="model", guidance=book)
    g = fc[fc["model"] == "GuidedAutoETS"].reset_index(drop=True)
    b = fc[fc["model"] == "AutoETS"].reset_index(drop=True)
    remaining = 950.0 - reported
    share = b.loc[:1, "mean"] / b.loc[:1, "mean"].sum()
    assert np.allclose(g.loc[:1, "mean"], remaining * share)
    assert g.loc[:1, "mean"].sum() + reported == pytest.approx(950.0)


def test_a_later_announcement_never_reaches_an_earlier_cutoff():
    """Bug caught: a backtest that hands the guided models the whole book (or one dated by the
    quarter end instead of the release date) would use the absurd revision below."""
    from features.loader import load_quarterly

    df = load_quarterly(series=[METRIC])
    book = load_guidance()
    cut = pd.Timestamp("2024-06-30")  # reported on 2024-08-01
    assert book.release_date(cut) == pd.Timestamp("2024-08-01")
    nxt = cut + pd.offsets.QuarterEnd(1)
    poisoned_rows = pd.DataFrame([{"metric": METRIC, "ds": nxt, "announced_on": pd.Timestamp("2024-08-02"),
                                   "low": 9e6, "high": 9.1e6, "quality": "poison"}])
    poisoned = GuidanceBook(pd.concat([book.quarterly, poisoned_rows], ignore_index=True), book.annual)
    kw = dict(models=["GuidedFoster"], h=2, n_windows=3, warmup_windows=0, intervals="model", end_offset=8)
    a = backtest(df, guidance=book, **kw)
    b = backtest(df, guidance=poisoned, **kw)
    assert cut in set(a["cutoff"])
    pd.testing.assert_frame_equal(a, b)
    # the same revision announced on the release day itself is used (the control: the test can fail)
    on_time = GuidanceBook(pd.concat([book.quarterly, poisoned_rows.assign(announced_on=pd.Timestamp("2024-08-01"))],
                                     ignore_index=True), book.annual)
    c = backtest(df, guidance=on_time, **kw)
    row = (c["cutoff"] == cut) & (c["ds"] == nxt) & (c["model"] == "GuidedFoster")
    assert c.loc[row, "mean"].iloc[0] > 1e6


def test_a_quarter_guided_by_a_range_counts_against_the_stated_year():
    """Bug caught (review): a fiscal-year remainder that ignores the quarter already set from a
    next-quarter range would make the year add up to more than the stated total."""
    df = series(22, start="2020-03-31", uid=CAPEX)  # ends 2025-06-30
    reported = df.loc[df["ds"].dt.year == 2025, "y"].sum()
    q = pd.DataFrame([{"metric": CAPEX, "ds": pd.Timestamp("2025-09-30"), "announced_on": pd.Timestamp("2025-06-15"),
                       "low": 200.0, "high": 220.0, "quality": "test"}])
    q = pd.concat([ranges_around(df.assign(unique_id=CAPEX), np.full(22, 0.5)), q], ignore_index=True)
    annual = pd.DataFrame([{"metric": CAPEX, "fiscal_year": 2025, "year_end": pd.Timestamp("2025-12-31"),
                            "announced_on": pd.Timestamp("2025-06-15"), "low": 900.0, "high": 1000.0}])
    book = GuidanceBook(q, annual)
    fc = forecast(df, h=4, models=["GuidedAutoETS"], intervals="model", guidance=book)
    g = fc[fc["model"] == "GuidedAutoETS"].reset_index(drop=True)
    assert g.loc[0, "mean"] == pytest.approx(210.0)  # the range (outcomes sat mid-range)
    assert reported + g.loc[:1, "mean"].sum() == pytest.approx(950.0)  # the year still adds up
