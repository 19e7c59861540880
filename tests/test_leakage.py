"""Leakage, end to end: values reported after a cutoff change nothing forecast, calibrated,
weighted, rolled up or chosen at or before it.

Every test goes through the one poisoning harness (`tests/leakage.py`): every value of every
input series after the cutoff, and every guidance row announced after the day the cutoff's
quarter was reported, becomes an absurd number (1e9..2e9 in absolute value, both signs in
random order, finite), and outputs at and before the cutoff must be bit-identical while
outputs after it must change.

Beside the poison, the provenance tests (`forecasting.core.provenance`) record the latest outcome
date every learned step read at every cutoff of a small backtest, roll-up and claims
calibration, and require none after its cutoff: a rank-based step (a conformal quantile of
absolute misses) can read a poisoned outcome without any number moving. `tests/mutants.py`
loosens each of those steps' filters by one quarter and checks these tests fail. The bugs
these catch are leaks of one quarter or more anywhere in the pipeline: a training window
shifted by one (``ds <= cutoff + 1 quarter``), calibration or ensemble weights learnt from
outcomes not yet reported, a MASE scale or an OCF bridge fitted on the whole history, error
windows that are not fully reported by the origin.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from features.loader import load_quarterly
from forecasting.rolling.backtest import BacktestConfig, backtest, cutoffs
from forecasting.core.frames import ShortSeriesWarning
from forecasting.methods.catalogue import DEFAULT_MODELS, resolve
from leakage import (
    KNOWN_AT_CUTOFF,
    MADE_AFTER_CUTOFF,
    assert_known_unchanged,
    assert_no_leak,
    poison,
    run_clean_and_poisoned,
)

# The roll-up under test: re-point this line when the roll-up is replaced.
from forecasting.rollup.backtest import backtest_rollup as rollup_backtest

SERIES = ["net_sales_aws", "operating_income_aws", "free_cash_flow"]
Q = pd.offsets.QuarterEnd


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShortSeriesWarning)
        return fn(*args, **kwargs)


@pytest.fixture(scope="module")
def three() -> pd.DataFrame:
    return load_quarterly(series=SERIES)


@pytest.fixture(scope="module")
def full() -> pd.DataFrame:
    return load_quarterly()


# --------------------------------------------------------------------------- the harness itself
def test_poison_replaces_every_value_dated_after_the_cutoff_and_nothing_else(three):
    cut = pd.Timestamp("2024-12-31")
    p = poison(three, cut)
    later = three["ds"] > cut
    pd.testing.assert_frame_equal(p[~later], three[~later])
    bad = p.loc[later, "y"].to_numpy()
    assert np.isfinite(bad).all() and (np.abs(bad) > 1e8).all() and len(set(bad)) == len(bad)
    # both signs, so ranks move as well as sums: a leaked value lands above or below a quantile
    assert (bad > 0).any() and (bad < 0).any()
    # guidance rows are dated by when they were said, not by the quarter they are about
    guidance = pd.DataFrame({"metric": "net_sales_total", "ds": pd.to_datetime(["2025-03-31"] * 2),
                             "announced_on": pd.to_datetime(["2024-10-31", "2025-02-06"]),
                             "low": [150e3, 151e3], "high": [155e3, 156e3]})
    g = poison(guidance, cut)
    pd.testing.assert_frame_equal(g.iloc[:1], guidance.iloc[:1].astype({"low": float, "high": float}))
    assert (g.loc[1, ["low", "high"]].abs() > 1e8).all()
    with pytest.raises(ValueError, match="no row dated after"):
        poison(three, three["ds"].max())


def test_the_harness_catches_a_one_quarter_leak_and_a_vacuous_test(three):
    """A 'forecast' that averages the cutoff quarter with the next one (an off-by-one window)
    must fail the check; so must a test whose run never reads the poisoned values."""
    cut = pd.Timestamp("2024-06-30")

    def one_ahead_leak(df):
        rows = []
        for c in pd.date_range("2023-12-31", "2025-06-30", freq="QE"):
            seen = df[df["ds"] <= c + Q(1)]  # the bug
            rows.append(seen.groupby("unique_id")["y"].apply(lambda s: s.tail(2).mean()).rename("mean")
                        .reset_index().assign(cutoff=c))
        return pd.concat(rows, ignore_index=True)

    with pytest.raises(AssertionError, match="changed when data after the cutoff was poisoned"):
        assert_no_leak(one_ahead_leak, three, cut)

    def blind(df):
        return pd.DataFrame({"cutoff": pd.to_datetime(["2024-03-31", "2025-03-31"]), "mean": [1.0, 2.0]})

    with pytest.raises(AssertionError, match="poison never reached"):
        assert_no_leak(blind, three, cut)


# --------------------------------------------------------------------------- backtest models
ENSEMBLES = ["StatsMLCombo", "MedianStatML", "WeightedStatML"]
BT_CONFIG = BacktestConfig(h=2, n_windows=4, warmup_windows=3, intervals="conformal")


def _backtest_models() -> list[str]:
    ml = [s.name for s in resolve("ml")]
    return list(dict.fromkeys([*DEFAULT_MODELS, *ENSEMBLES, *ml]))


@pytest.fixture(scope="module")
def backtest_runs(three):
    """One conformal backtest of the default model, one ensemble of each kind (mean, median,
    weighted) and every ML model, on clean and on poisoned data; poisoned after the second
    evaluated cutoff, so calibration and weights at the first two have earlier windows to
    learn from and the last two see the poison. Both runs record what every learned step read
    (`forecasting.core.provenance`), for the provenance test."""
    from forecasting.core.provenance import Reads, recording

    models = _backtest_models()
    cut = cutoffs(three, BT_CONFIG.h, BT_CONFIG.n_windows)[1]
    reads = Reads()

    def run(d):
        with recording() as r:
            out = quiet(backtest, d, models, BT_CONFIG)
        reads.extend(r)
        return out

    return run_clean_and_poisoned(run, three, cut), cut, reads


@pytest.mark.slow
@pytest.mark.parametrize("model", _backtest_models())
def test_backtest_forecasts_and_intervals_ignore_values_after_the_cutoff(backtest_runs, model):
    """Catches: a member trained on one quarter too many, ensemble weights or conformal
    factors learnt from outcomes not reported by the cutoff, an ML feature computed on the
    whole frame. (The earlier ML test poisoned only the last quarter, which no cutoff trains
    on, so a one-quarter leak passed it.)"""
    check, cut, _ = backtest_runs

    def only(select):
        return lambda out, c: select(out[out["model"] == model], c)

    assert_known_unchanged(check, cut, only(KNOWN_AT_CUTOFF), only(MADE_AFTER_CUTOFF))


def test_every_ensemble_kind_and_the_default_are_covered():
    from forecasting.methods.registry import get_spec

    models = _backtest_models()
    combiners = {get_spec(m).options.get("combiner") for m in models if get_spec(m).kind == "ensemble"}
    assert combiners == {"mean", "median", "weighted", "select"}  # select: the default, AutoCombo
    assert set(DEFAULT_MODELS) <= set(models) and {s.name for s in resolve("ml")} <= set(models)


# --------------------------------------------------------------------------- guidance
GUIDED = ["GuidanceMidpoint", "GuidedAutoETS", "GuidedFoster"]


@pytest.mark.slow
def test_guided_backtest_ignores_later_quarters_and_guidance_announced_after_the_cutoffs_release():
    """Series poisoned after the cutoff, and every guidance row (next-quarter ranges, fiscal-year
    capex statements) announced after the day the cutoff's quarter was reported; the guidance
    released *with* that quarter's results stays, because a forecaster at the cutoff had it.
    Catches: a guided model given the whole guidance book, or the book as of a later release,
    positions in past ranges learnt from outcomes not yet reported."""
    from features.guidance import GuidanceBook, load_guidance
    from features.profile import shipped_profile

    NET_CAPEX = shipped_profile("amazon").cash_flow.capex
    book = load_guidance()
    df = load_quarterly(series=["net_sales_total", "operating_income_total", NET_CAPEX])
    config = BacktestConfig(h=3, n_windows=4, warmup_windows=2, intervals="conformal")
    cut = cutoffs(df, config.h, config.n_windows)[1]
    day = book.release_date(cut)
    assert day > cut and (book.quarterly["announced_on"] == day).any()

    def run(d):
        return quiet(backtest, d["series"], GUIDED, config, guidance=GuidanceBook(d["quarterly"], d["annual"]))

    inputs = {"series": df, "quarterly": book.quarterly, "annual": book.annual}
    check = assert_no_leak(run, inputs, cut, known_until={"quarterly": day, "annual": day},
                           values={"annual": ["low", "high"]})
    used = check.clean.loc[check.clean["cutoff"] <= cut, "model_used"]
    assert set(GUIDED) <= set(used)  # guidance was used at the checked cutoffs, not only the base models


# --------------------------------------------------------------------------- the roll-up
def _rollup_config():
    from forecasting.rollup.config import RollupConfig
    from forecasting.rollup.selection import SelectionSettings

    # calibration_window=4: at h=2 the recent misses give 1 + 3 + 3 + 3 = 10 scored rows (a TTM row
    # one quarter ahead is counted once), enough for the calibration to act (MIN_CALIBRATION_ROWS)
    return RollupConfig(h=2, candidates=("AutoETS", "SeasonalNaive"), guided=("GuidedAutoETS",),
                        first_cutoff="2021Q2", selection=SelectionSettings(window=8, min_windows=3),
                        n_paths=200, error_windows=4, calibration_window=4)


@pytest.mark.slow
def test_rollup_backtest_ignores_every_series_and_later_guidance_after_the_cutoff(full):
    """All inputs poisoned, segments, OCF, capex and FCF alike, and every guidance row announced
    after the day the cutoff's quarter was reported. Catches: node forecasts, the nested
    champions, the reconciliations (segments and FCF = OCF - capex, whose weights are learnt
    from past errors), error windows, the OCF bridge or the spread calibration reading a
    quarter reported after the cutoff, or a guided model reading a later statement."""
    from features.guidance import GuidanceBook, load_guidance

    book = load_guidance()
    config = _rollup_config()
    from features.profile import shipped_profile
    from forecasting.rollup.backtest import RollupBacktestConfig

    amazon = shipped_profile("amazon")
    scoring = RollupBacktestConfig(n_windows=5, direct_models=("AutoETS",), fiscal_years=False)
    first = quiet(rollup_backtest, full, amazon, config, book, scoring)
    cuts = sorted(first.backtest["cutoff"].unique())
    cut = pd.Timestamp(cuts[3])
    day = book.release_date(cut)

    def run(d):
        if d["series"] is full:
            return first
        return quiet(rollup_backtest, d["series"], amazon, config, GuidanceBook(d["quarterly"], d["annual"]),
                     scoring)

    def known(out, c):
        sel = KNOWN_AT_CUTOFF
        return {"backtest": sel(out.backtest, c), "choices": sel(out.choices, c), "factors": sel(out.factors, c),
                "final": sel(out.pipeline.final, c), "cashflow": sel(out.pipeline.cashflow_inputs, c)}

    def later(out, c):
        return MADE_AFTER_CUTOFF(out.backtest, c)

    inputs = {"series": full, "quarterly": book.quarterly, "annual": book.annual}
    check = assert_no_leak(run, inputs, cut, known, later, known_until={"quarterly": day, "annual": day},
                           values={"annual": ["low", "high"]})
    bt = check.clean.backtest
    at = bt[bt["cutoff"] == cut].set_index(["unique_id", "ds", "model"])["hi-80"].unstack("model")
    assert not np.allclose(at["Rollup"], at["RollupCalibrated"])  # the spread calibration acted at the cutoff
    assert at["SeasonalNaive"].notna().all()
    ch = check.clean.choices
    assert (ch.loc[ch["cutoff"] <= cut, "model"] == "GuidedAutoETS").any()  # guidance was in play


def test_rollup_inputs_at_an_earlier_origin_ignore_every_later_quarter(full):
    """`build_inputs` and the paths at an origin before the newest quarter, with every series
    after it poisoned: point forecasts, levels, error windows, the OCF bridge and the simulated
    paths must not move. Catches: the bridge fitted without its cutoff, levels or error windows
    scaled with later quarters, windows whose outcomes were not all reported by the origin."""
    from features.profile import shipped_profile
    from forecasting.rollup.paths import build_inputs, simulate
    from forecasting.rollup.config import RollupSeries
    from forecasting.rollup.pipeline import driver_frame, node_forecasts, run_pipeline

    series = RollupSeries.of(shipped_profile("amazon"))
    config = _rollup_config().replace(guided=())
    history = driver_frame(full, series)
    origin = pd.Timestamp("2024-03-31")
    later_origin = pd.Timestamp("2025-06-30")

    def run(hist):
        pipe = run_pipeline(hist, quiet(node_forecasts, hist, series, config), series, config)
        out = {}
        for name, c in (("origin", origin), ("later", later_origin)):
            inp = build_inputs(pipe, c, config.h)
            out[name] = {"inputs": inp, "paths": simulate(inp).paths}
        return out

    check = assert_no_leak(run, history, origin, before=lambda out, c: out["origin"],
                           after=lambda out, c: out["later"]["paths"])
    inp = check.clean["origin"]["inputs"]
    assert inp.origin == origin and len(inp.windows) == config.error_windows
    assert all(c + Q(config.h) <= origin for c in inp.windows)
    assert inp.bridge.cutoff_ == origin


# --------------------------------------------------------------------------- champion choice
@pytest.mark.slow
def test_retrain_champions_chosen_from_windows_reported_by_the_cutoff_ignore_later_quarters(three):
    """The retrain's champion selection (`experiments.champions.select_champions`: backtest,
    MASE scales, per-series scores, champion rule) on the windows fully reported by a cutoff
    equals itself on poisoned data and on data cut at that quarter. Catches: a MASE scale or a
    score computed with quarters after the cutoff, a backtest window shifted by one."""
    from experiments.champions import select_champions

    h, candidates = 2, ["Naive", "RandomWalkWithDrift", "AutoETS", "Foster"]
    last = three["ds"].max()
    cut = last - Q(4)
    base = dict(h=h, n_windows=3, warmup_windows=2, models=("SeasonalNaive", *candidates))
    as_of_cut = BacktestConfig(**base, end_offset=4 + h)  # last window's outcomes end at `cut`
    newest = BacktestConfig(**base)

    def run(df):
        sel = quiet(select_champions, df, as_of_cut, candidates)
        now = quiet(select_champions, df, newest, candidates)
        return {"as_of": {"scores": sel.scores, "champions": sel.champions, "backtest": sel.backtest},
                "newest": now.scores}

    check = assert_no_leak(run, three, cut, before=lambda out, c: out["as_of"],
                           after=lambda out, c: out["newest"])
    sel = check.clean["as_of"]
    assert sel["backtest"]["ds"].max() == cut and len(sel["champions"]) == 3
    cut_only = quiet(select_champions, three[three["ds"] <= cut], newest, candidates)
    pd.testing.assert_frame_equal(cut_only.scores, sel["scores"], check_exact=True)
    pd.testing.assert_frame_equal(cut_only.champions, sel["champions"], check_exact=True)


# --------------------------------------------------------------------------- provenance
def _leaks(reads) -> str:
    return "; ".join(f"{r.step} at {r.at.date()} read an outcome of {r.latest.date()}"
                     for r in reads.after_cutoff()[:10])


def _cutoffs_read(reads, step) -> set:
    return {pd.Timestamp(r.at) for r in reads.of(step) if r.n}


BACKTEST_STEPS = {"backtest.train", "calibration.window", "calibration.adaptive_level", "ensemble.weights",
                  "autocombo.scores"}


@pytest.mark.slow
def test_backtest_learned_steps_read_no_outcome_after_their_cutoff(three, backtest_runs):
    """Training windows, conformal calibration (window and adaptive level), ensemble weights
    and AutoCombo's scores, at every cutoff of both runs of `backtest_runs`: the latest outcome
    read is on or before it. Catches what the poison can miss: a calibration window one quarter
    too long whose extra scores are already above the conformal quantile."""
    check, _, reads = backtest_runs
    assert not reads.after_cutoff(), _leaks(reads)
    assert BACKTEST_STEPS <= reads.steps()
    c = BT_CONFIG
    every = set(cutoffs(three, c.h, c.n_windows + c.warmup_windows))
    evaluated = set(pd.to_datetime(check.clean["cutoff"].unique()))
    assert _cutoffs_read(reads, "backtest.train") == every
    for step in ("calibration.window", "calibration.adaptive_level", "ensemble.weights", "autocombo.scores"):
        assert evaluated <= _cutoffs_read(reads, step), step
    # the records say what was read: the latest outcome at an evaluated cutoff is that cutoff
    # itself (the previous cutoff's one-step row), not merely something earlier
    assert all(r.latest == r.at for r in reads.of("calibration.window") if r.at in evaluated)


@pytest.fixture(scope="module")
def rollup_reads(full):  # one run, recorded (~45 s)
    """A small roll-up (pipeline, backtest at two cutoffs) and claims calibration, recorded."""
    from features.guidance import load_guidance
    from features.profile import shipped_profile
    from forecasting.claims.calibration import calibration_claims
    from forecasting.core.provenance import recording
    from forecasting.rollup.backtest import RollupBacktestConfig
    from forecasting.rollup.pipeline import prepare_pipeline

    book, amazon, config = load_guidance(), shipped_profile("amazon"), _rollup_config()
    with recording() as reads:
        pipe = quiet(prepare_pipeline, full, amazon, config, book)
        bt = quiet(rollup_backtest, full, amazon, config, book,
                   RollupBacktestConfig(n_windows=2, direct_models=("AutoETS",), fiscal_years=False), pipe)
        claims = calibration_claims(pipe, book, h=2, cutoffs=pipe.cutoffs[-5:-2])
    return pipe, bt, claims, reads


ROLLUP_STEPS = {"selection", "metrics.seasonal_scale", "reconciliation.scale", "reconciliation.segment_errors",
                "reconciliation.cashflow_errors", "bridge.fit", "rollup.history", "simulate.error_windows",
                "simulate.series_level", "rollup.spread_calibration", "claims.history", "claims.base_rate",
                "claims.recalibration"}


@pytest.mark.slow
def test_rollup_and_claims_learned_steps_read_no_outcome_after_their_cutoff(rollup_reads):
    """Node selection and its MASE scales, the reconciliations' error windows and scale, the
    OCF bridge, the roll-up's history, error windows, levels and spread calibration, and the
    claims' recalibration and base rates, at every cutoff: nothing read after it."""
    pipe, bt, claims, reads = rollup_reads
    assert not reads.after_cutoff(), _leaks(reads)
    assert ROLLUP_STEPS <= reads.steps()
    scored = set(pd.to_datetime(bt.backtest["cutoff"].unique()))
    for step in ("rollup.spread_calibration", "simulate.error_windows", "rollup.history"):
        assert scored <= _cutoffs_read(reads, step), step
    assert set(pipe.cutoffs[1:]) <= _cutoffs_read(reads, "selection")  # the first has no past
    assert set(pd.to_datetime(claims["cutoff"].unique())) <= _cutoffs_read(reads, "claims.history")
    # the spread calibration read the quarter of its origin (the latest it may), nothing later
    assert all(r.latest == r.at for r in reads.of("rollup.spread_calibration") if r.at in scored)
