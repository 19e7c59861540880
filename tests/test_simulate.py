"""Joint bootstrap of past errors: reproducible, ordered quantiles, correlation kept."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.rollup.simulate import (
    QUANTILES,
    bootstrap_errors,
    quantile_frame,
    residual_windows,
    sample_paths,
)
from forecasting.core.frames import to_interval_columns


def _windows(n=10, n_series=3, h=4, seed=0):
    rng = np.random.default_rng(seed)
    common = rng.standard_normal((n, 1, h))
    return common + 0.1 * rng.standard_normal((n, n_series, h))  # strongly correlated series


def test_same_seed_same_draws_other_seed_other_draws():
    R = _windows()
    a, b = bootstrap_errors(R, 1000, seed=7), bootstrap_errors(R, 1000, seed=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, bootstrap_errors(R, 1000, seed=8))
    assert a.shape == (1000, 3, 4)


def test_plain_joint_bootstrap_draws_whole_windows():
    R = _windows()
    E = bootstrap_errors(R, 200, seed=1, smoothing=0.0)
    for e in E[:20]:
        assert any(np.allclose(e, r) for r in R)


def test_cross_series_correlation_is_kept():
    R = _windows(n=12)
    E = bootstrap_errors(R, 2000, seed=3)
    c = np.corrcoef(E[:, 0, 0], E[:, 1, 0])[0, 1]
    assert c > 0.9
    # smoothing keeps the variance of the windows (variance-corrected)
    assert E[:, 0, 0].std() == pytest.approx(R[:, 0, 0].std(), rel=0.15)


def test_quantiles_are_ordered_and_mapped_to_interval_columns():
    rng = np.random.default_rng(0)
    paths = rng.standard_normal((1000, 5)) * np.arange(1, 6)
    q = quantile_frame(paths, pd.date_range("2026-09-30", periods=5, freq="QE"), "x")
    cols = ["p2.5", "p5", "p10", "p50", "p90", "p95", "p97.5"]
    assert list(q.columns) == ["unique_id", "ds", "mean", *cols]
    assert (np.diff(q[cols].to_numpy(), axis=1) >= 0).all()
    iv = to_interval_columns(q)
    assert (iv["lo-80"] == iv["p10"]).all() and (iv["hi-95"] == iv["p97.5"]).all()
    assert len(QUANTILES) == 7


def test_sample_paths_floor_nonnegative_series():
    E = np.full((2, 2, 3), -10.0)
    P = sample_paths(np.ones((2, 3)), np.ones(2), E, nonnegative=[True, False])
    assert (P[:, 0] == 0).all() and (P[:, 1] == -9).all()


def test_residual_windows_keep_only_windows_reported_by_then():
    ds = pd.date_range("2020-03-31", periods=16, freq="QE")
    hist = pd.DataFrame({"unique_id": "a", "ds": ds, "y": np.arange(16, dtype=float) + 10})
    rows = []
    for c in ds[4:12]:
        for k in (1, 2):
            rows.append({"cutoff": c, "unique_id": "a", "ds": c + pd.offsets.QuarterEnd(k), "mean": 10.0})
    fc = pd.DataFrame(rows)
    cuts, R = residual_windows(fc, hist, ["a"], 2, known_by=ds[8])
    assert cuts[-1] == ds[6] and all(c + pd.offsets.QuarterEnd(2) <= ds[8] for c in cuts)
    assert R.shape == (len(cuts), 1, 2)
    y0 = hist.set_index("ds")["y"]
    level = np.abs(y0.loc[: cuts[0]].to_numpy()[-4:]).mean()
    assert R[0, 0, 0] == pytest.approx((y0[cuts[0] + pd.offsets.QuarterEnd(1)] - 10) / level)


def test_too_few_windows_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 2 complete past windows"):
        bootstrap_errors(np.zeros((1, 2, 3)))
