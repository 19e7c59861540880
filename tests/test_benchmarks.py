"""M3 benchmark: metric definitions, the benchmark-data loader, the published sanity check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from experiments.benchmarks import m3


def _frame(uid, values, start="2000-03-31"):
    return pd.DataFrame({"unique_id": uid, "ds": pd.date_range(start, periods=len(values), freq="QE"),
                         "y": np.asarray(values, dtype=float)})


def _smape(y, f) -> float:
    """M3 sMAPE of one series through `m3.score` (utilsforecast's smape x 200)."""
    train = _frame("A", [1, 2, 3, 4, 5, 7, 9, 11])
    test = _frame("A", y, start="2002-03-31")
    return float(m3.score(test.drop(columns="y").assign(model="m", mean=f), test, train)["sMAPE"].iloc[0])


def test_smape_matches_hand_computation():
    # 200*|10-12|/(10+12) = 18.1818...; a perfect forecast 0; 0/0 counted as 0
    assert _smape([10.0, 20.0, 0.0], [12.0, 20.0, 0.0]) == pytest.approx((400 / 22) / 3)
    # symmetric in y and f, bounded by 200
    assert _smape([5.0], [-5.0]) == pytest.approx(200.0)
    assert _smape([3.0], [7.0]) == pytest.approx(_smape([7.0], [3.0]))


def test_score_hand_example():
    train = _frame("A", [1, 2, 3, 4, 5, 7, 9, 11])  # seasonal diffs 4,5,6,7 -> scale 5.5
    test = _frame("A", [10, 20], start="2002-03-31")
    fc = test.drop(columns="y").assign(model="m", mean=[12.0, 20.0])
    per = m3.score(fc, test, train)
    assert per["sMAPE"].iloc[0] == pytest.approx((400 / 22 + 0) / 2)
    assert per["MASE"].iloc[0] == pytest.approx(((2 + 0) / 2) / 5.5)
    # averaging is per series first, then over series
    train_b = _frame("B", [2, 2, 2, 2, 4, 4, 4, 4])  # scale 2
    test_b = _frame("B", [4, 4], start="2002-03-31")
    fc_b = test_b.drop(columns="y").assign(model="m", mean=[4.0, 8.0])
    per = m3.score(pd.concat([fc, fc_b]), pd.concat([test, test_b]), pd.concat([train, train_b]))
    summary = m3.model_means(per)
    exp_b_smape = (0 + 200 * 4 / 12) / 2
    assert summary["sMAPE"].iloc[0] == pytest.approx(((400 / 22) / 2 + exp_b_smape) / 2)
    assert summary["MASE"].iloc[0] == pytest.approx((1 / 5.5 + 2 / 2) / 2)


def test_score_names_a_missing_forecast():
    train = _frame("A", [1, 2, 3, 4, 5, 7, 9, 11])
    test = _frame("A", [10, 20], start="2002-03-31")
    fc = test.iloc[:1].drop(columns="y").assign(model="m", mean=[12.0])
    with pytest.raises(ValueError, match="model m: no forecast for series A"):
        m3.score(fc, test, train)


@pytest.fixture(scope="module")
def m3_data():
    return m3.load_m3()


def test_loader_gives_756_series_with_an_8_quarter_holdout(m3_data):
    train, test = m3_data
    assert train["unique_id"].nunique() == test["unique_id"].nunique() == 756
    assert (test.groupby("unique_id").size() == 8).all()
    assert len(train) + len(test) == 37004
    assert train.groupby("unique_id").size().min() == 16
    # quarter-end calendar, gap-free, and the test quarters follow the training quarters
    assert (train["ds"] + pd.offsets.QuarterEnd(0) == train["ds"]).all()
    first_test = test.groupby("unique_id")["ds"].min()
    last_train = train.groupby("unique_id")["ds"].max()
    assert (first_test == last_train + pd.offsets.QuarterEnd(1)).all()
    assert test.groupby("unique_id")["period"].min().equals(train.groupby("unique_id")["period"].max() + 1)


def test_loader_series_limit_and_errors(tmp_path):
    train, test = m3.load_m3(series_limit=3)
    assert list(train["unique_id"].unique()) == ["N0646", "N0647", "N0648"]
    with pytest.raises(FileNotFoundError, match="m3_quarterly.csv"):
        m3.load_m3(tmp_path / "none.csv")
    raw = pd.read_csv(m3.default_path())
    raw = raw[raw["unique_id"] == "N0646"].copy()
    raw.loc[raw.index[-8], "split"] = "train"  # N0646 now has 7 test rows
    bad = tmp_path / "bad.csv"
    raw.to_csv(bad, index=False)
    with pytest.raises(ValueError, match="series N0646 has 7 test rows"):
        m3.load_m3(bad)


def test_seasonal_naive_reproduces_the_published_figures(m3_data):
    """Hyndman (2018): R snaive on M3 quarterly, sMAPE 11.06 / MASE 1.425."""
    train, test = m3_data
    fc = m3.run_plain(train, "SeasonalNaive")
    row = m3.model_means(m3.score(fc, test, train)).iloc[0]
    assert row["n_series"] == 756
    assert round(row["sMAPE"], 2) == 11.06 or abs(row["sMAPE"] - 11.065) < 1e-3
    assert row["MASE"] == pytest.approx(1.425, abs=5e-4)


def test_library_seasonal_naive_equals_plain_statsforecast():
    """The library's public API, fed the M3 calendar, gives the same forecasts as statsforecast."""
    train, test = m3.load_m3(series_limit=4)
    lib = m3.run_library(train, ["SeasonalNaive"])
    plain = m3.run_plain(train, "SeasonalNaive")
    merged = lib.merge(plain, on=["unique_id", "ds"], suffixes=("_lib", "_plain"))
    assert len(merged) == 4 * 8
    np.testing.assert_allclose(merged["mean_lib"], merged["mean_plain"])
    table = m3.model_means(m3.score(lib, test, train))
    assert table["model"].tolist() == ["SeasonalNaive"]


@pytest.mark.slow  # creating the MLflow SQLite store takes 5-30 s on a busy machine
def test_fcf_benchmark_m3_end_to_end(tmp_path, monkeypatch, capsys):
    """The command on 5 series: table with library, statsforecast and published rows, CSV, MLflow run."""
    from mlflow import MlflowClient

    from experiments.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "m3.csv"
    rc = main(["benchmark", "m3", "--series-limit", "5", "--models", "SeasonalNaive",
               "--plain", "SeasonalNaive", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "R EAT = mean(ets, auto.arima, thetaf)" in printed and "first 5 series only" in printed
    table = pd.read_csv(out)
    assert set(table["kind"]) == {"library", "statsforecast", "published"}
    lib = table[table["method"] == "library SeasonalNaive"].iloc[0]
    plain = table[table["method"] == "statsforecast SeasonalNaive"].iloc[0]
    assert lib["n_series"] == 5 and lib["sMAPE"] == pytest.approx(plain["sMAPE"])
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("benchmarks")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["series_limit"] == "5"
    assert run.data.metrics["smape.library SeasonalNaive"] == pytest.approx(lib["sMAPE"])
    assert "mase.statsforecast SeasonalNaive" in run.data.metrics
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["m3_quarterly.csv"]


def test_fcf_benchmark_without_a_subcommand_prints_help(capsys):
    from experiments.cli import main

    assert main(["benchmark"]) == 2
    assert "m3" in capsys.readouterr().out
