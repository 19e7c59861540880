"""Segment hierarchy: identities on the shipped data, summing matrix, reconciliation adds up."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.loader import load_quarterly, read_annual, read_quarterly
from features.profile import shipped_profile
from forecasting.reconcile.hierarchy import (
    METHODS,
    add_groups,
    check_annual,
    check_identities,
    coherence_errors,
    reconcile,
    summing_matrix,
)

TREE = shipped_profile("amazon").hierarchy


@pytest.fixture(scope="module")
def reported():
    return read_quarterly()


def test_identities_hold_on_shipped_data_except_documented_differences(reported):
    ch = check_identities(reported, TREE)
    assert set(ch["measure"]) == {"net_sales", "operating_income"}
    assert len(ch) >= 2 * 35  # 2014-2015 and 2019Q1 onwards (plus 2018Q3) for both measures
    unexplained = ch[(ch["residual"] != 0) & (ch["known"] == "")]
    assert unexplained.empty, unexplained
    off = ch[ch["residual"] != 0]
    assert set(zip(off["measure"], off["period"])) == {
        ("net_sales", "2019Q4"), *{("operating_income", f"2014Q{k}") for k in range(1, 5)}}
    assert ch.loc[(ch["measure"] == "net_sales") & (ch["period"] == "2019Q4"), "residual"].item() == 1.0
    # from 2015 on, operating income adds up in every quarter with all parts
    oi = ch[(ch["measure"] == "operating_income") & (ch["period"] >= "2015Q1")]
    assert len(oi) > 30 and (oi["residual"] == 0).all()


def test_advertising_quarters_sum_to_fiscal_years(reported):
    t = check_annual(reported, read_annual(), "net_sales_advertising")
    assert list(t["fiscal_year"]) == [2023, 2024]
    assert (t["residual"] == 0).all()


def test_retail_group_is_total_minus_aws_and_starts_2015():
    df = add_groups(load_quarterly(), TREE)
    w = df.pivot(index="ds", columns="unique_id", values="y")
    for m in ("net_sales", "operating_income"):
        r = w[f"{m}_retail"].dropna()
        assert r.index.min() == pd.Timestamp("2015-03-31")
        np.testing.assert_array_equal(r, (w[f"{m}_total"] - w[f"{m}_aws"]).loc[r.index])
        seg = w[[f"{m}_north_america", f"{m}_international"]].dropna()
        np.testing.assert_allclose(seg.sum(axis=1), r.loc[seg.index], atol=1)


def test_summing_matrix_has_identity_bottom_block():
    S, tags = summing_matrix(TREE)
    bottoms = TREE.bottom_series()
    assert list(S["unique_id"]) [-len(bottoms):] == bottoms
    np.testing.assert_array_equal(S[bottoms].to_numpy()[-len(bottoms):], np.eye(len(bottoms)))
    total = S.set_index("unique_id").loc["net_sales_total", bottoms]
    assert list(total) == [1, 1, 1, 0, 0, 0]
    retail = S.set_index("unique_id").loc["operating_income_retail", bottoms]
    assert list(retail) == [0, 0, 0, 1, 1, 0]
    assert set(tags["total"]) == {"net_sales_total", "operating_income_total"}


def _incoherent_base(seed=0) -> pd.DataFrame:
    """Forecast-like rows for every node, 2 cutoffs x 3 quarters, deliberately incoherent."""
    rng = np.random.default_rng(seed)
    rows = []
    for cut in pd.to_datetime(["2025-06-30", "2025-09-30"]):
        for k in range(1, 4):
            ds = cut + pd.offsets.QuarterEnd(k)
            for uid in TREE.nodes():
                rows.append({"cutoff": cut, "model": "M", "unique_id": uid, "ds": ds,
                             "mean": float(rng.uniform(1000, 50000))})
    return pd.DataFrame(rows)


def test_reconciled_forecasts_add_up_exactly():
    base = _incoherent_base()
    rec = reconcile(base, TREE)
    assert set(rec["method"]) == {"base", *METHODS}
    err = coherence_errors(rec, TREE)
    assert (err[err["method"] == "base"][["net_sales", "operating_income"]] > 1).all().all()
    ok = err[err["method"] != "base"]
    assert len(ok) == 2 * len(METHODS)
    assert (ok[["net_sales", "operating_income"]] < 1e-6).all().all()


def test_bottom_up_keeps_segments_and_sums_them():
    base = _incoherent_base(1)
    rec = reconcile(base, TREE, methods=["BottomUp"])
    bu = rec[rec["method"] == "BottomUp"].set_index(["cutoff", "unique_id", "ds"])["mean"]
    b = base.set_index(["cutoff", "unique_id", "ds"])["mean"]
    for s in TREE.bottom_series():
        np.testing.assert_allclose(bu.xs(s, level=1), b.xs(s, level=1))
    parts = sum(b.xs(f"net_sales_{s}", level=1) for s in ("north_america", "international", "aws"))
    np.testing.assert_allclose(bu.xs("net_sales_total", level=1), parts)


def test_reconcile_names_a_missing_node_and_an_unknown_method():
    base = _incoherent_base()
    with pytest.raises(ValueError, match="lack \\['net_sales_retail'\\]"):
        reconcile(base[base["unique_id"] != "net_sales_retail"], TREE)
    with pytest.raises(ValueError, match="unknown reconciliation method"):
        reconcile(base, TREE, methods=["TopDown"])


#: One measure's tree by hand, rows total, retail, North America, International, AWS; columns
#: the three segments.
S_TREE = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
ORDER = ("total", "retail", "north_america", "international", "aws")


def _closed_form(y_hat: np.ndarray, method: str) -> np.ndarray:
    """Reconciled forecasts of one tree: S (S' W^-1 S)^-1 S' W^-1 y_hat (MinTrace, Wickramasuriya
    et al. 2019) with W = I (ols) or diag(S 1), the number of segments under each node
    (wls_struct); BottomUp keeps the segments and sums them."""
    if method == "BottomUp":
        return S_TREE @ y_hat[2:]
    w_inv = np.diag(1 / (S_TREE.sum(axis=1) if method == "MinTrace-wls_struct" else np.ones(5)))
    P = np.linalg.solve(S_TREE.T @ w_inv @ S_TREE, S_TREE.T @ w_inv)
    return S_TREE @ P @ y_hat


@pytest.mark.parametrize("method", list(METHODS))
def test_reconciled_values_equal_the_closed_form(method):
    """Every reconciled value, per measure, cutoff and quarter, equals the projection computed
    here with numpy (coherence alone would pass with all zeros, or with one method's output
    under another's name, or with the trees' nodes mixed up)."""
    base = _incoherent_base(2)
    rec = reconcile(base, TREE, methods=[method])
    got = rec[rec["method"] == method].set_index(["cutoff", "ds", "unique_id"])["mean"]
    b = base.set_index(["cutoff", "ds", "unique_id"])["mean"]
    n = 0
    for (cut, ds), _ in base.groupby(["cutoff", "ds"]):
        for m in ("net_sales", "operating_income"):
            ids = [f"{m}_{node}" for node in ORDER]
            y_hat = np.array([b[(cut, ds, i)] for i in ids])
            want = _closed_form(y_hat, method)
            np.testing.assert_allclose([got[(cut, ds, i)] for i in ids], want, rtol=1e-9)
            n += 1
    assert n == 2 * 3 * 2


def test_ols_and_wls_struct_differ_and_coherent_forecasts_are_kept():
    """A worked case: the two MinTrace weightings give different answers on incoherent input,
    and every method returns coherent input unchanged (a projection)."""
    y_hat = np.array([110.0, 70.0, 40.0, 20.0, 35.0])  # total 110 vs parts 95; retail 70 vs 60
    ols, wls = _closed_form(y_hat, "MinTrace-ols"), _closed_form(y_hat, "MinTrace-wls_struct")
    assert not np.allclose(ols, wls)
    coherent = _incoherent_base(3)
    w = coherent.pivot_table(index=["cutoff", "ds"], columns="unique_id", values="mean")
    for m in ("net_sales", "operating_income"):
        w[f"{m}_retail"] = w[f"{m}_north_america"] + w[f"{m}_international"]
        w[f"{m}_total"] = w[f"{m}_retail"] + w[f"{m}_aws"]
    coherent = w.stack().rename("mean").reset_index().assign(model="M")
    rec = reconcile(coherent, TREE)
    base = coherent.set_index(["cutoff", "ds", "unique_id"])["mean"].sort_index()
    for method in METHODS:
        r = rec[rec["method"] == method].set_index(["cutoff", "ds", "unique_id"])["mean"].sort_index()
        np.testing.assert_allclose(r.to_numpy(), base.loc[r.index].to_numpy(), rtol=1e-9)


def test_mintrace_learns_weights_from_past_errors_closed_form():
    """W = diag(mean squared past errors): a node that erred little (a guided total) keeps its
    forecast while the noisy segments move. Bug caught: errors ignored (structural weights), or
    the errors' nodes misaligned with S's rows."""
    from forecasting.reconcile.hierarchy import mintrace, summing_matrix

    S_df, _ = summing_matrix(TREE)
    S = S_df.drop(columns="unique_id").to_numpy(dtype=float)
    rng = np.random.default_rng(0)
    y_hat = rng.normal(100, 10, size=(S.shape[0], 2))
    sd = np.ones(S.shape[0])
    sd[0] = 0.01  # net_sales_total: almost no past error
    E = rng.normal(size=(S.shape[0], 30)) * sd[:, None]
    rec, used = mintrace(S, y_hat, E, "wls_var")
    W = np.diag((E ** 2).mean(axis=1) + 2e-8)
    Wi = np.linalg.inv(W)
    expected = S @ np.linalg.solve(S.T @ Wi @ S, S.T @ Wi @ y_hat)
    assert used == "wls_var"
    np.testing.assert_allclose(rec, expected, rtol=1e-8)
    np.testing.assert_allclose(rec[0], y_hat[0], atol=0.05)  # the precise total barely moves
    few, used_few = mintrace(S, y_hat, E[:, :3], "wls_var")
    assert used_few == "wls_struct"
