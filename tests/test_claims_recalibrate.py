"""Issue 20: recalibrated claim probabilities, per-node path calibration, claims against the
street. Synthetic data with known answers (fast); the shipped roll-up is exercised by
`tests/test_claims_calibration.py`.
"""

from __future__ import annotations

import textwrap
import time

import numpy as np
import pandas as pd
import pytest

from features.errors import DataValidationError
from features.profile import shipped_profile
from forecasting.claims.calibration import KINDS, Subjects, auto_claims, decomposition
from forecasting.claims.evaluate import NotEvaluable, Outcomes, consensus_values, probability, quantity
from forecasting.claims.file import CONSENSUS, ClaimsError, claim_from_dict
from forecasting.claims.recalibrate import MIN_CLAIMS, ClaimsMap, recalibrate
from forecasting.rollup.paths import node_factors, scale_spread
from forecasting.rollup.simulate import bootstrap_errors
from leakage import assert_no_leak, rows_after, rows_at_or_before

Z80 = 1.2815515655446004  # standard normal P90


def synthetic_claims(n_cutoffs: int = 24, per_cutoff: int = 60, seed: int = 0) -> pd.DataFrame:
    """Claims at quarterly cutoffs whose raw probabilities are over-confident: the truth is
    p, the raw probability sigmoid(2.5 logit p) (0.2 shows as 0.03, 0.8 as 0.97)."""
    rng = np.random.default_rng(seed)
    cuts = pd.date_range("2015-03-31", periods=n_cutoffs, freq="QE")
    rows = []
    for c in cuts:
        true = rng.uniform(0.05, 0.95, per_cutoff)
        raw = 1 / (1 + np.exp(-2.5 * np.log(true / (1 - true))))
        step = rng.integers(1, 5, per_cutoff)
        kind = np.where(np.arange(per_cutoff) % 3 == 0, "b", "a")
        held = rng.random(per_cutoff) < np.where(kind == "b", np.clip(true + 0.2, 0, 1), true)
        rows.append(pd.DataFrame({"cutoff": c, "kind": kind, "step": step, "probability_raw": raw,
                                  "held": held, "resolved": [c + pd.offsets.QuarterEnd(int(k)) for k in step]}))
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def claims():
    return synthetic_claims()


# --------------------------------------------------------------------------- the recalibration map
def test_recalibration_map_at_a_cutoff_never_sees_a_claim_resolved_after_it(claims):
    """The outcomes of every claim resolved after the cutoff are poisoned (absurd numbers of
    both signs, read as held / failed): the recalibrated probabilities of claims made at and
    before the cutoff must be bit-identical, and later ones must move (the poison reached the
    maps). Catches a map, a base rate or a shrinkage weight reading one quarter too far."""
    cut = pd.Timestamp("2019-12-31")

    def run(d):
        rows = d["claims"].assign(held=d["claims"]["held"] > 0.5)
        return rows[["cutoff"]].join(recalibrate(rows))

    inputs = {"claims": claims.assign(held=claims["held"].astype(float))}
    check = assert_no_leak(run, inputs, cut, rows_at_or_before("cutoff", drop=()), rows_after("cutoff", drop=()),
                           dates={"claims": "resolved"}, values={"claims": ["held"]})
    known = check.clean[check.clean["cutoff"] <= cut]
    assert (known["map_claims"] > 0).any()  # maps were learnt before the cutoff: the test is not vacuous


def test_recalibration_pulls_over_confident_extremes_in_and_beats_the_raw_brier(claims):
    out = claims.join(recalibrate(claims))
    late = out[out["map_claims"] >= 400]  # cutoffs with a long record
    raw, cal = decomposition(late, "probability_raw"), decomposition(late, "probability_recal")
    assert cal["brier"] < raw["brier"] - 0.02 and cal["ece"] < raw["ece"] / 2
    assert cal["ece"] < 0.06
    # no map before MIN_CLAIMS resolved claims: the kind's base rate (0.5 before any)
    first = out[out["cutoff"] == out["cutoff"].min()]
    assert (first["map_claims"] == 0).all() and (first["probability_recal"] == 0.5).all()
    # the kind's own record: kind b holds more often than its raw probability says
    b = late[late["kind"] == "b"]
    assert b["probability_recal"].mean() > b["probability_raw"].mean() + 0.05
    # the map alone (a claims file's claims, kind unknown) is monotone and pulls 0 and 1 in
    m = ClaimsMap().fit(late["probability_raw"], late["held"])
    q = m(np.array([0.0, 0.03, 0.5, 0.97, 1.0]))
    assert np.all(np.diff(q) > 0) and 0.03 < q[0] < 0.25 and 0.75 < q[-1] < 0.97 and m.n == len(late)
    iso = ClaimsMap("isotonic").fit(late["probability_raw"], late["held"])
    assert iso.fitted and np.all(np.diff(iso(np.linspace(0, 1, 11))) >= 0)
    assert not ClaimsMap().fit(late["probability_raw"][: MIN_CLAIMS - 1], late["held"][: MIN_CLAIMS - 1]).fitted


def test_brier_decomposition_and_ece_by_hand():
    rows = pd.DataFrame({"probability": [0.05, 0.05, 0.95, 0.95, 0.55], "held": [False, True, True, True, False]})
    d = decomposition(rows)
    # bins 0.0-0.1 (p 0.05, observed 0.5), 0.5-0.6 (0.55, 0), 0.9-1.0 (0.95, 1)
    assert d["reliability"] == pytest.approx((2 * 0.45**2 + 0.55**2 + 2 * 0.05**2) / 5)
    obar = 3 / 5
    assert d["resolution"] == pytest.approx((2 * (0.5 - obar) ** 2 + (0 - obar) ** 2 + 2 * (1 - obar) ** 2) / 5)
    assert d["uncertainty"] == pytest.approx(obar * (1 - obar))
    assert d["ece"] == pytest.approx((2 * 0.45 + 0.55 + 2 * 0.05) / 5)
    assert d["brier"] == pytest.approx(d["reliability"] - d["resolution"] + d["uncertainty"] + d["within"])
    assert d["within"] == pytest.approx(0.0, abs=1e-12)  # one probability per bin


# --------------------------------------------------------------------------- per-node path calibration
def test_per_node_calibration_reaches_nominal_coverage_on_series_of_known_spread():
    """Two nodes whose raw 80% bands (from windows of N(0, 1) errors) are too narrow for node
    0 (true sd 2, growing to 3.5 by step 4) and too wide for node 1 (true sd 0.5): the per-node,
    per-step factors learnt from 400 past cutoffs make held-out coverage about 80% at every node
    and step, where the raw bands cover 28-47% and 99%."""
    rng = np.random.default_rng(1)
    h = 4
    true_sd = np.array([[2.0, 2.5, 3.0, 3.5], [0.5, 0.5, 0.5, 0.5]])
    rows = []
    cuts = pd.date_range("1900-03-31", periods=400, freq="QE")
    for c in cuts:
        for i in range(2):
            for k in range(1, h + 1):
                rows.append({"unique_id": f"n{i}", "cutoff": c, "ds": c + pd.offsets.QuarterEnd(k),
                             "y": rng.normal(0, true_sd[i, k - 1]), "mean": 0.0, "lo-80": -Z80, "hi-80": Z80})
    f = node_factors(pd.DataFrame(rows), ["n0", "n1"], h)
    assert f.shape == (2, h) and f[0, 3] > f[0, 0] > 1.5 and f[1].max() < 0.7
    # the simulator's spread scaled by the factors: bootstrap N(0, 1) windows, quantiles of the paths
    windows = rng.normal(0, 1, size=(1000, 2, h))
    E = scale_spread(bootstrap_errors(windows, 4000, seed=0, centre=True), f[None, :, :])
    lo, hi = np.quantile(E, [0.1, 0.9], axis=0)
    held_out = rng.normal(0, 1, size=(4000, 2, h)) * true_sd[None]
    coverage = ((held_out >= lo) & (held_out <= hi)).mean(axis=0)
    assert np.all(np.abs(coverage - 0.8) < 0.05), coverage
    raw_lo, raw_hi = np.quantile(bootstrap_errors(windows, 4000, seed=0, centre=True), [0.1, 0.9], axis=0)
    raw = ((held_out >= raw_lo) & (held_out <= raw_hi)).mean(axis=0)
    assert raw[0].max() < 0.5 and raw[1].min() > 0.98  # the raw bands were wrong on both sides


# --------------------------------------------------------------------------- the street
def test_a_claim_relative_to_the_consensus_divides_by_the_streets_estimate():
    c = claim_from_dict({"id": "beat", "text": "t", "source": "s", "series": "x", "period": "2026Q3",
                         "relative_to": "consensus", "condition": "> 1"})
    assert c.relative_to == CONSENSUS and c.unit == "multiple" and c.quarters_needed() == [pd.Period("2026Q3")]
    rep = pd.DataFrame({"unique_id": "x", "ds": pd.to_datetime(["2026-06-30"]), "y": [100.0]})
    paths = {"x": np.array([[90.0], [105.0], [120.0], [99.0]])}
    street = consensus_values(pd.DataFrame({"unique_id": ["x"], "ds": pd.to_datetime(["2026-09-30"]),
                                            "value": [100.0]}))
    o = Outcomes(rep, paths, pd.to_datetime(["2026-09-30"]), consensus=street)
    np.testing.assert_allclose(quantity(c, o, pd.Period("2026Q3")), [0.9, 1.05, 1.2, 0.99])
    assert probability(c, o) == 0.5
    with pytest.raises(NotEvaluable, match="no consensus estimate of x for 2026Q3"):
        probability(c, Outcomes(rep, paths, pd.to_datetime(["2026-09-30"])))
    with pytest.raises(ClaimsError, match="key relative_to: relative_to: consensus compares a quarter's value"):
        claim_from_dict({"id": "g", "text": "t", "source": "s", "series": "x", "period": "2026",
                         "relative_to": "consensus", "condition": "> 1"})


def test_beats_the_consensus_is_a_claim_kind_where_a_consensus_exists():
    rep = pd.DataFrame({"unique_id": "x", "ds": pd.date_range("2023-03-31", periods=8, freq="QE"),
                        "y": np.arange(100.0, 108.0)})
    subjects = Subjects(growth=("x",), margins=(), ttm=(), street=("x",))
    street = {("x", pd.Period("2025Q1")): 110.0}
    made = auto_claims(rep, "2024-12-31", 2, subjects, consensus=street)
    beats = [cl for kind, step, cl in made if kind == "beats_consensus"]
    assert "beats_consensus" in KINDS and len(beats) == 1 and beats[0].periods == (pd.Period("2025Q1"),)
    assert beats[0].relative_to == CONSENSUS and beats[0].condition.low == 1.0
    assert not [k for k, _, _ in auto_claims(rep, "2025-03-31", 2, subjects, consensus=street)
                if k == "beats_consensus"]  # no estimate for 2025Q2


def test_a_bad_consensus_file_stops_fcf_claims_with_one_line_naming_file_line_and_problem(tmp_path, capsys):
    from experiments.cli import main

    t0 = time.perf_counter()
    amazon = shipped_profile("amazon")
    src = amazon.path.read_text(encoding="utf-8")
    here = amazon.path.parent
    bad = tmp_path / "street.csv"
    bad.write_text(textwrap.dedent("""\
        fiscal_quarter,metric,consensus_value,published,consensus_timing
        2026Q1,net_sales_total,177000,2026-04-28,pre-report
        2026Q1,net_sales_total,178000,2026-04-29,pre-sale
        """))
    text = src.replace("file: ../amzn_consensus.csv", f"file: {bad}").replace("../", f"{here.parent}/")
    assert str(bad) in text
    profile = tmp_path / "amazon_bad.yaml"
    profile.write_text(text, encoding="utf-8")
    with pytest.raises(DataValidationError):  # the library's error, as the command reads it
        from features.consensus import profile_consensus
        from features.profile import load_profile

        profile_consensus(load_profile(profile))
    assert main(["claims", "--company", str(profile), "--no-track", "--scenarios", "none", "--out",
                 str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["fcf: bad input data: street.csv, line 3, series net_sales_total: consensus_timing 'pre-sale' "
                   "is not one of pre-report, early"], err
    assert not (tmp_path / "out").exists() and time.perf_counter() - t0 < 20  # before any model is fitted
