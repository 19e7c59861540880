"""The street beside our forecasts (`forecasting.rolling.street`): the consensus rows and their scores by
hand on a small case, the eve models by hand, no consensus published after the eve reaching it,
and ``fcf street`` end to end with a real MLflow server."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.rolling.street import (
    CONSENSUS,
    EveConfig,
    consensus_rows,
    eve_forecasts,
    on_consensus_quarters,
    street_table,
)
from forecasting.core.metrics import pointwise
from leakage import assert_no_leak, rows_after, rows_at_or_before

Q = pd.date_range("2020-03-31", periods=12, freq="QE")
Y = [100, 110, 120, 150, 110, 121, 132, 165, 121, 133, 145, 182]


def history():
    return pd.DataFrame({"unique_id": "s", "ds": Q, "y": np.array(Y, dtype=float)})


def bt_rows(model, means, cut_idx):
    """Step-1 backtest rows of `model` at cutoffs Q[cut_idx] for the next quarter."""
    rows = []
    for i, m in zip(cut_idx, means):
        rows.append({"unique_id": "s", "ds": Q[i + 1], "model": model, "model_used": model, "mean": float(m),
                     "lo-95": np.nan, "lo-80": np.nan, "hi-80": np.nan, "hi-95": np.nan,
                     "cutoff": Q[i], "step": 1, "y": float(Y[i + 1])})
    return pd.DataFrame(rows)


def test_consensus_rows_and_their_scores_by_hand():
    cuts = [8, 9, 10]  # forecasts of Q[9], Q[10], Q[11]: y = 133, 145, 182
    sn = bt_rows("SeasonalNaive", [Y[5], Y[6], Y[7]], cuts)  # 121, 132, 165
    ours = bt_rows("M", [130, 150, 180], cuts)
    bt = pd.concat([sn, ours], ignore_index=True)
    cons = pd.DataFrame({"unique_id": "s", "ds": [Q[9], Q[11]], "value": [135.0, 175.0]})  # no estimate for Q[10]
    c = consensus_rows(bt, cons)
    assert list(c.columns) == list(bt.columns)
    assert c[["ds", "mean", "y", "model", "step"]].values.tolist() == [
        [Q[9], 135.0, 133.0, CONSENSUS, 1], [Q[11], 175.0, 182.0, CONSENSUS, 1]]
    assert c["cutoff"].tolist() == [Q[8], Q[10]] and c["lo-80"].isna().all()
    rows = on_consensus_quarters(pd.concat([bt, c], ignore_index=True), cons)
    assert set(rows["ds"]) == {Q[9], Q[11]}  # our models scored on the consensus's quarters only
    t = street_table(pointwise(rows, history())).set_index("model")
    assert (t["n"] == 2).all()
    # MAPE: consensus (2/133 + 7/182)/2; ours (3/133 + 2/182)/2; seasonal naive (12/133 + 17/182)/2
    assert t.loc[CONSENSUS, "mape"] == pytest.approx(50 * (2 / 133 + 7 / 182))
    assert t.loc["M", "mape"] == pytest.approx(50 * (3 / 133 + 2 / 182))
    assert t.loc["SeasonalNaive", "mape"] == pytest.approx(50 * (12 / 133 + 17 / 182))
    # relative MASE: the same scale per cutoff cancels per row only when it is equal; by hand:
    # scale at cutoff Q[8] = mean |y_t - y_t-4| over t = 4..8 = (10+11+12+15+11)/5 = 11.8,
    # at Q[10] = (10+11+12+15+11+12+13)/7 = 12
    mase = {m: (a / 11.8 + b / 12) / 2 for m, (a, b) in {CONSENSUS: (2, 7), "M": (3, 2), "SeasonalNaive": (12, 17)}.items()}
    assert t.loc["M", "rel_mase"] == pytest.approx(mase["M"] / mase["SeasonalNaive"])
    assert t.loc[CONSENSUS, "rel_mase"] == pytest.approx(mase[CONSENSUS] / mase["SeasonalNaive"])
    # won: M beat the consensus on Q[11] (2 < 7), lost on Q[9] (3 > 2); the consensus itself: none
    assert t.loc["M", "won"] == 0.5 and t.loc["SeasonalNaive", "won"] == 0.0 and np.isnan(t.loc[CONSENSUS, "won"])


def _eve_inputs(n=10):
    """A series whose consensus is always 2% below the outcome, and our forecast 1% above."""
    h = history()
    cons = pd.DataFrame({"unique_id": "s", "ds": Q[:n], "value": h["y"].to_numpy()[:n] / 1.02,
                         "report_day": Q[:n] + pd.Timedelta(days=30)})
    base = pd.DataFrame({"unique_id": "s", "ds": Q[:n], "mean": h["y"].to_numpy()[:n] * 1.01})
    return cons, h, base


def test_the_eve_models_by_hand():
    cons, h, base = _eve_inputs()
    eve = eve_forecasts(cons, h, base, EveConfig(window=8, min_past=4, choice_window=8))
    bias = eve[eve["model"] == "ConsensusBias"].set_index("ds")
    # the first 4 quarters have fewer than 4 past surprises: no bias model
    assert list(bias.index) == list(Q[4:10])
    # every past surprise is (y - y/1.02) / (y/1.02) = 0.02, so the bias model is exact
    np.testing.assert_allclose(bias["mean"], h.set_index("ds").loc[Q[4:10], "y"], rtol=1e-12)
    combo = eve[eve["model"] == "ConsensusCombo"].set_index("ds")
    # the combination needs 4 past quarters with the bias model: from Q[8]; weight 1 (exact)
    assert list(combo.index) == list(Q[8:10])
    np.testing.assert_allclose(combo["mean"], h.set_index("ds").loc[Q[8:10], "y"], rtol=1e-12)
    street = eve[eve["model"] == "StreetEve"].set_index("ds")
    # nested: the plain consensus until 4 quarters of the bias model are scored, then the bias model
    assert street.loc[Q[:8], "model_used"].eq(CONSENSUS).all()
    assert street.loc[Q[8:10], "model_used"].eq("ConsensusBias").all()
    # intervals from 4+ past errors of the model itself; the bias model's past errors are 0
    assert street.loc[Q[:4], "lo-80"].isna().all()
    np.testing.assert_allclose(bias.loc[Q[8:10], "lo-80"], bias.loc[Q[8:10], "mean"], rtol=1e-12)
    assert (eve["cutoff"] == eve["ds"] - pd.offsets.QuarterEnd(1)).all()


def test_no_consensus_published_after_the_eve_and_no_later_outcome_reaches_it(tmp_path):
    """Catches: an estimate of a later page (a next-day recap, a retrospective mention) chosen
    for a quarter, the outcome of the quarter being forecast, or our forecast made after it."""
    from features.consensus import ConsensusBook, read_consensus
    from features.profile import shipped_profile
    from features.guidance import load_guidance
    from features.loader import load_quarterly

    amazon = shipped_profile("amazon")
    rows = read_consensus(amazon.consensus, splits=amazon.splits)
    rows = rows[rows["metric"].isin(["net_sales_total", "operating_income_total"])].reset_index(drop=True)
    guidance = load_guidance()
    days = {q: guidance.release_date(q) for q in rows["ds"].unique() if guidance.release_date(q) != q}
    df = load_quarterly(series=["net_sales_total", "operating_income_total"])
    base = df.assign(mean=df["y"] * 1.01).drop(columns="y")  # "our forecast", dated by its cutoff
    base["cutoff"] = base["ds"] - pd.offsets.QuarterEnd(1)
    q = pd.Timestamp("2023-12-31")
    eve_day = days[q]  # 2024-02-01: the eve of the 2023Q4 report

    def run(d):
        book = ConsensusBook(d["consensus"]).with_report_days(days)
        sel = book.select()
        return eve_forecasts(sel, d["history"], d["base"])

    inputs = {"consensus": rows, "history": df, "base": base}
    assert_no_leak(run, inputs, eve_day,
                   before=rows_at_or_before("eve"), after=rows_after("eve"),
                   dates={"consensus": "published", "base": "cutoff"},
                   known_until={"history": q - pd.offsets.QuarterEnd(1), "base": q - pd.offsets.QuarterEnd(1)},
                   values={"consensus": ["value"]})


@pytest.mark.slow
def test_fcf_street_logs_its_table_to_a_real_mlflow_server(mlflow_server, isolated_cwd, monkeypatch, capsys):
    import mlflow

    from experiments.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    code = main(["street", "--series", "net_sales_total", "--models", "SeasonalNaive,GuidanceMidpoint",
                 "--base", "GuidedFoster", "--windows", "4", "--warmup", "2", "--out", str(isolated_cwd / "st")])
    out = capsys.readouterr().out
    assert code == 0, out
    table = pd.read_csv(isolated_cwd / "st" / "street.csv")
    client = mlflow.MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("amazon-street")
    (run,) = client.search_runs([exp.experiment_id])
    cons = table[(table["model"] == CONSENSUS)].iloc[0]
    assert run.data.metrics["mape.net_sales_total.Consensus"] == pytest.approx(cons["mape"])
    assert run.data.metrics["n.net_sales_total.Consensus"] == cons["n"] > 0
    assert "won.net_sales_total.StreetEve" in run.data.metrics
    assert run.data.params["base"] == "GuidedFoster" and run.info.status == "FINISHED"
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"street.csv", "street_by_year.csv", "street.md", "eve_forecasts.csv"} <= names
    assert "StreetEve" in out and "Per fiscal year" in out


def test_metrics_without_a_reported_series_are_named_not_scored():
    from experiments.cmd_street import scoreable

    sel = pd.DataFrame({"unique_id": ["eps_diluted"] * 20 + ["s"] * 16 + ["t"] * 3, "ds": Q[0]})
    reported = pd.concat([history(), history().assign(unique_id="t")])
    series, notes = scoreable(sel, reported, None, 15)
    assert series == ["s"]
    assert notes == ["eps_diluted: consensus for 20 quarters, but no reported series in the data: not scored",
                     "t: consensus for only 3 quarters (< --min-quarters 15): not scored"]


def test_the_backtest_table_puts_the_consensus_first_and_drops_the_midpoint_where_there_was_no_range():
    from experiments.leaderboard import consensus_h1_table

    cuts = [8, 9, 10]
    sn = bt_rows("SeasonalNaive", [Y[5], Y[6], Y[7]], cuts)
    mid = bt_rows("GuidanceMidpoint", [140, 150, 185], cuts)
    mid.loc[0, "model_used"] = "SeasonalNaive"  # no guided range for Q[9]: not a midpoint
    cons = pd.DataFrame({"unique_id": "s", "ds": [Q[9], Q[11]], "value": [135.0, 175.0]})
    t = consensus_h1_table(sn, mid, history(), cons)
    assert t["model"].tolist()[0] == CONSENSUS
    got = t.set_index("model")
    assert got.loc[CONSENSUS, "quarters"] == 2 and got.loc["GuidanceMidpoint", "quarters"] == 1
    assert got.loc["GuidanceMidpoint", "MAPE %"] == pytest.approx(100 * 3 / 182)
