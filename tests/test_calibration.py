"""Conformal calibration (forecasting/methods/calibration.py) on synthetic series with known
distributions, through the public `conformalize` and `conformal_quantile`.

What each test pins down, and the bug it catches:

- coverage: averaged over 40 calibration sets, calibrated 80% / 95% intervals cover 75-85% /
  92-98% of held-out draws where the models' own intervals cover about half (a calibration
  that narrows, or scales by the wrong quantile, fails);
- shrinkage: a series' factor is ``(n_i q_i + k q_pool) / (n_i + k)``, recomputed by hand,
  moving from its own quantile to the pooled one as the pooled weight k grows (skipping the
  shrinkage, or shrinking the wrong way, fails);
- adaptive level: after a miss the working level rises by ``gamma * L`` and after a hit it
  falls by ``gamma * (1 - L)`` (Gibbs & Candes 2021: ``alpha_{t+1} = alpha_t + gamma (alpha
  - err_t)``); the factor read off the interval is the conformal quantile at that level (a
  flipped sign or a skipped update fails).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from forecasting.methods.calibration import DEFAULT, CalibrationSettings, conformal_quantile, conformalize

Q = pd.offsets.QuarterEnd
Z = {80: 1.2815515655446004, 95: 1.959963984540054}  # standard normal quantiles 0.90, 0.975


def test_conformal_quantile_is_the_ceil_n_plus_one_level_th_smallest():
    s = np.array([5.0, 1.0, 4.0, np.nan, 2.0, 3.0])
    assert conformal_quantile(s, 0.8) == 5.0      # n = 5: ceil(6 x 0.8) = 5th smallest
    assert conformal_quantile(s, 0.5) == 3.0      # ceil(3) = 3rd
    assert conformal_quantile(s, 0.99) == 5.0     # beyond the largest: the largest
    assert np.isnan(conformal_quantile(np.array([np.nan]), 0.8))


# --------------------------------------------------------------------------- coverage
def _gaussian_rows(rng, cutoffs, h, sigma, own, levels=(80, 95), model="M", with_y=True):
    """Forecasts of series with N(mean, (sigma_i sqrt(k))^2) outcomes at step k; the model's own
    interval has the right shape but `own` times the right width."""
    rows = []
    for c in cutoffs:
        for uid, s in sigma.items():
            for k in range(1, h + 1):
                sd = s * math.sqrt(k)
                mean = 100.0 * s + 3 * k
                r = {"unique_id": uid, "cutoff": c, "ds": c + Q(k), "model": model, "mean": mean}
                for lv in levels:
                    r[f"lo-{lv}"] = mean - own[uid] * Z[lv] * sd
                    r[f"hi-{lv}"] = mean + own[uid] * Z[lv] * sd
                r["sd"] = sd
                if with_y:
                    r["y"] = mean + sd * rng.standard_normal()
                rows.append(r)
    return pd.DataFrame(rows)


def _coverage(fc, lv, rng, draws=4000):
    y = fc["mean"].to_numpy()[:, None] + fc["sd"].to_numpy()[:, None] * rng.standard_normal((len(fc), draws))
    inside = (y >= fc[f"lo-{lv}"].to_numpy()[:, None]) & (y <= fc[f"hi-{lv}"].to_numpy()[:, None])
    return pd.Series(inside.mean(axis=1), index=fc.index)


def _replication(seed: int, own: float):
    """Past windows and a forecast of six series (scales 1 to 316) whose own intervals are
    `own` times too wide; returns the forecast with its own and its calibrated intervals."""
    rng = np.random.default_rng(seed)
    C = pd.Timestamp("2024-12-31")
    sigma = {f"s{i}": 10.0 ** (i / 2) for i in range(6)}
    owns = dict.fromkeys(sigma, own)
    past = _gaussian_rows(rng, [C - Q(k) for k in range(16, 0, -1)], 4, sigma, owns)
    past = past[past["ds"] <= C]  # only outcomes reported by the cutoff, as the backtest passes
    fc = _gaussian_rows(rng, [C], 4, sigma, owns, with_y=False)
    cal = conformalize(fc.drop(columns="sd"), past.drop(columns="sd"), (80, 95)).assign(sd=fc["sd"])
    return fc, cal


def test_calibrated_intervals_reach_nominal_coverage_on_held_out_draws():
    """Over 40 independent calibration sets (conformal coverage is a guarantee on average over
    them; one set's coverage varies by about +-0.04), held-out draws from the true distribution
    fall inside the calibrated 80% interval 75-85% of the time, inside the 95% one 92-98%,
    where the models' own intervals (half the right width) cover about 48% and 66%."""
    cov = {80: [], 95: []}
    raw = {80: [], 95: []}
    for seed in range(40):
        fc, cal = _replication(seed, own=0.5)
        np.testing.assert_array_equal(cal["mean"], fc["mean"])  # points untouched
        draws = np.random.default_rng(1000 + seed)
        for lv in (80, 95):
            cov[lv].append(_coverage(cal, lv, draws, 2000).mean())
            raw[lv].append(_coverage(fc, lv, draws, 2000).mean())
    assert 0.75 <= np.mean(cov[80]) <= 0.85, np.mean(cov[80])
    assert 0.92 <= np.mean(cov[95]) <= 0.98, np.mean(cov[95])
    assert np.mean(raw[80]) < 0.55 and np.mean(raw[95]) < 0.72


def test_calibration_undoes_a_wrong_interval_scale():
    """Scores are relative to the model's own interval, so an interval twice too wide and one
    half too narrow calibrate to the same interval (catches a factor applied to the wrong
    width, or scores taken in absolute units)."""
    _, narrow = _replication(3, own=0.5)
    _, wide = _replication(3, own=2.0)
    for c in ("lo-95", "lo-80", "hi-80", "hi-95"):
        np.testing.assert_allclose(narrow[c], wide[c], rtol=1e-9)


# --------------------------------------------------------------------------- shrinkage
def _scores_by_hand(p: pd.DataFrame) -> np.ndarray:
    """|y - f| over the distance from f to the bound on y's side."""
    side = np.where(p["y"] < p["mean"], p["mean"] - p["lo-80"], p["hi-80"] - p["mean"])
    return (p["y"] - p["mean"]).abs().to_numpy() / side


def test_shrinkage_moves_a_series_quantile_toward_the_pooled_one_as_the_pooled_weight_grows():
    rng = np.random.default_rng(0)
    C = pd.Timestamp("2024-12-31")
    # asymmetric own intervals (down 1, up 2 units), so scoring against the wrong side shows
    rows = []
    for uid, spread in {"calm": 0.5, "wild": 3.0, "mid": 1.2}.items():
        for k in range(1, 13):
            c = C - Q(k)
            rows.append({"unique_id": uid, "cutoff": c, "ds": c + Q(1), "model": "M", "mean": 50.0,
                         "lo-80": 49.0, "hi-80": 52.0, "y": 50.0 + spread * rng.standard_normal()})
    past = pd.DataFrame(rows)
    fc = pd.DataFrame({"unique_id": ["calm", "wild"], "cutoff": C, "ds": C + Q(1), "model": "M",
                       "mean": 10.0, "lo-80": 9.0, "hi-80": 12.0})
    s_all = _scores_by_hand(past)
    pooled = conformal_quantile(s_all, 0.8)
    own = {u: conformal_quantile(s_all[(past["unique_id"] == u).to_numpy()], 0.8) for u in ("calm", "wild")}
    assert own["calm"] < pooled < own["wild"]
    previous = {u: None for u in own}
    for k in (0.0, 1.0, 12.0, 100.0, 1e6):
        out = conformalize(fc, past, (80,), settings=CalibrationSettings(prior_weight=k, gamma=0.0))
        for u, row in out.set_index("unique_id").iterrows():
            up, down = (row["hi-80"] - 10.0) / 2.0, (10.0 - row["lo-80"]) / 1.0
            expected = (12 * own[u] + k * pooled) / (12 + k)
            assert up == pytest.approx(expected, rel=1e-12) and down == pytest.approx(expected, rel=1e-12)
            if previous[u] is not None:  # strictly closer to the pooled quantile
                assert abs(up - pooled) < abs(previous[u] - pooled)
            previous[u] = up
    assert previous["calm"] == pytest.approx(pooled, rel=1e-4) and previous["wild"] == pytest.approx(pooled, rel=1e-4)


# --------------------------------------------------------------------------- adaptive level
MISS, HIT = 1000.0, 0.5  # scores far above / below every factor the windows can give


def _aci_case(events, gamma):
    """One series: 99 past outcomes with scores 1..99 (all from one early cutoff), then one
    outcome per event at consecutive cutoffs, then the forecast; own interval mean +- 1, so a
    score is |y| and the calibrated half-width is the factor."""
    t0 = pd.Timestamp("1980-03-31")
    rows = [{"cutoff": t0, "ds": t0 + Q(k), "y": float(s)}
            for k, s in zip(range(1, 100), np.random.default_rng(1).permutation(np.arange(1, 100)))]
    t = t0 + Q(99)
    for e in events:
        rows.append({"cutoff": t, "ds": t + Q(1), "y": e})
        t = t + Q(1)
    past = pd.DataFrame(rows).assign(unique_id="s", model="M", mean=0.0, **{"lo-80": -1.0, "hi-80": 1.0})
    fc = pd.DataFrame({"unique_id": ["s"], "cutoff": [t], "ds": [t + Q(1)], "model": ["M"], "mean": [0.0],
                       "lo-80": [-1.0], "hi-80": [1.0]})
    settings = CalibrationSettings(window=400, prior_weight=0.0, gamma=gamma, min_scores=8)
    return float(conformalize(fc, past, (80,), settings=settings)["hi-80"].iloc[0])


def _kth(scores, level):
    """The ceil((n + 1) level)-th smallest score, by hand."""
    s = sorted(scores)
    return s[min(math.ceil((len(s) + 1) * level), len(s)) - 1]


@pytest.mark.parametrize("events", [(), (MISS,), (HIT,), (MISS, MISS), (HIT, HIT), (MISS, HIT), (HIT, MISS)],
                         ids=["none", "miss", "hit", "miss-miss", "hit-hit", "miss-hit", "hit-miss"])
def test_adaptive_level_rises_after_misses_and_falls_after_hits(events):
    g, target = 0.1, 0.8
    level, scores = target, list(range(1, 100))
    for e in events:  # Gibbs & Candes: level += gamma (target - covered)
        factor = _kth(scores, level)
        covered = e <= factor
        assert covered == (e == HIT)
        level += g * (target - covered)
        scores.append(e)
    expected = _kth(scores, level)
    assert _aci_case(events, g) == expected
    fixed = _kth(scores, target)  # without adaptation
    assert _aci_case(events, 0.0) == fixed
    n_miss, n_hit = events.count(MISS), events.count(HIT)
    assert level == pytest.approx(target + g * (n_miss * target - n_hit * (1 - target)))
    if n_miss > n_hit:
        assert expected > fixed
    elif n_hit > n_miss:
        assert expected < fixed


def test_default_settings_are_the_documented_ones():
    assert (DEFAULT.window, DEFAULT.prior_weight, DEFAULT.gamma, DEFAULT.min_scores) == (12, 12.0, 0.1, 8)
