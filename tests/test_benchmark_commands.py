"""``fcf backtest --shift``, ``fcf benchmark tourism`` and ``fcf benchmark speed`` on small inputs."""

from __future__ import annotations

import pandas as pd
import pytest

from experiments.cli import EXIT_BAD_INPUT, main

SMALL = ["backtest", "--series", "net_sales_aws,free_cash_flow", "--models", "Naive",
         "--windows", "2", "--horizon", "2", "--warmup", "1", "--no-track"]


def test_shift_moves_every_cutoff_earlier(isolated_cwd, capsys):
    assert main(SMALL + ["--out", "now"]) == 0
    assert main(SMALL + ["--shift", "12", "--out", "before"]) == 0
    out = capsys.readouterr().out
    assert "cutoffs 12 quarters earlier" in out
    now = pd.read_csv(isolated_cwd / "now" / "backtest.csv", parse_dates=["cutoff"])
    before = pd.read_csv(isolated_cwd / "before" / "backtest.csv", parse_dates=["cutoff"])
    moved = sorted(c - pd.offsets.QuarterEnd(12) for c in now["cutoff"].unique())
    assert sorted(before["cutoff"].unique()) == moved
    assert main(SMALL + ["--shift", "-1"]) == EXIT_BAD_INPUT


def test_shift_skips_default_series_too_short_for_the_earlier_windows(isolated_cwd, capsys):
    from features.loader import load_quarterly

    from experiments.champions import MIN_EXTRA_QUARTERS, select_series
    from features.profile import shipped_profile

    df = load_quarterly()
    keep, skipped = select_series(df, None, 12 + 4 + MIN_EXTRA_QUARTERS + 12, shipped_profile("amazon").core_series)
    sizes = df.groupby("unique_id").size()
    assert keep and all(sizes[s] >= 38 for s in keep)
    assert "net_sales_north_america" not in keep
    assert any(s.startswith("net_sales_north_america: 30 quarters") for s in skipped)


def test_tourism_benchmark_on_a_few_series(tmp_path, capsys):
    out = tmp_path / "tourism.csv"
    rc = main(["benchmark", "tourism", "--series-limit", "4", "--models", "SeasonalNaive",
               "--plain", "SeasonalNaive", "--out", str(out), "--no-track"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "SNaive (Tourism competition)" in printed and "first 4 series only" in printed
    table = pd.read_csv(out)
    lib = table[table["method"] == "library SeasonalNaive"].iloc[0]
    plain = table[table["method"] == "statsforecast SeasonalNaive"].iloc[0]
    assert lib["n_series"] == 4 and lib["MAPE"] == pytest.approx(plain["MAPE"])
    pub = table[table["kind"] == "published"].set_index("method")
    assert pub.loc["SNaive (Tourism competition)", "MAPE"] == 16.46


def test_tourism_seasonal_naive_reproduces_the_published_mape():
    """Athanasopoulos et al. (2011), Table 5: SNaive MAPE 16.46 on the 427 quarterly series."""
    from experiments.benchmarks import m3

    train, test = m3.load_m3(m3.default_path("tourism"))
    assert train["unique_id"].nunique() == 427
    row = m3.model_means(m3.score(m3.run_plain(train, "SeasonalNaive"), test, train)).iloc[0]
    assert row["MAPE"] == pytest.approx(16.46, abs=5e-3)


@pytest.mark.slow
def test_speed_benchmark_reports_before_and_after(tmp_path, capsys):
    out = tmp_path / "speed.csv"
    rc = main(["benchmark", "speed", "--parts", "forecast,m3", "--models", "Naive", "--m3-series", "6",
               "--out", str(out), "--no-track"])
    assert rc == 0
    table = pd.read_csv(out).set_index(["part", "figure"])["value"]
    for key in ("before_one_process_s", "after_cold_s", "after_warm_s", "before_over_after_cold"):
        assert table[("forecast", key)] > 0
    assert table[("m3", "n_series")] == 6 and table[("m3", "same_numbers")] == 1.0
    assert table[("m3", "before_over_after")] > 0
