"""Fiscal quarters that end on any month end: `features.calendar` and the loader on
Snowflake's file (fiscal years ending on 31 January, ``FY2026Q1`` labels)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from features.calendar import (
    fiscal_quarter,
    implied_year_end_month,
    parse_quarter_label,
    period_end,
    quarter,
    quarter_label,
    year_end_month,
)
from features.errors import DataValidationError
from features.loader import data_vintage, load_quarterly, read_quarterly, shipped_data_dir

SNOW = shipped_data_dir() / "companies" / "snowflake"


def test_calendar_labels_periods_and_ends():
    p = fiscal_quarter(pd.Timestamp("2025-04-30"), 1)
    assert quarter_label(p, "fiscal") == "FY2026Q1" and period_end(p) == pd.Timestamp("2025-04-30")
    assert period_end(quarter(2026, 4, 1)) == pd.Timestamp("2026-01-31")
    assert period_end(quarter(2024, 3)) == pd.Timestamp("2024-09-30") and quarter_label(quarter(2024, 3)) == "2024Q3"
    assert year_end_month(p) == 1 and year_end_month(quarter(2024, 1)) == 12
    assert implied_year_end_month(pd.Timestamp("2025-04-30"), 1) == 1
    assert implied_year_end_month(pd.Timestamp("2024-09-30"), 4) == 9  # a September fiscal year
    assert parse_quarter_label("FY2026Q1") == ("fiscal", 2026, 1) and parse_quarter_label("2024Q3") == (
        "calendar", 2024, 3)
    assert parse_quarter_label("2024-Q3") is None and parse_quarter_label("FY2024Q5") is None


def test_snowflake_file_loads_with_its_fiscal_quarter_ends():
    df = load_quarterly(SNOW / "snow_quarterly.csv")
    assert list(df.columns) == ["unique_id", "ds", "y"]
    assert df["unique_id"].nunique() == 7
    assert set(df["ds"].dt.month) == {1, 4, 7, 10} and df["ds"].dt.is_month_end.all()
    for uid, g in df.groupby("unique_id"):
        expected = pd.date_range(g["ds"].min(), g["ds"].max(), freq="QE-JAN")
        assert list(g["ds"]) == list(expected), f"{uid} has a hole"
    rev = df[df["unique_id"] == "revenue"]
    assert rev["ds"].min() == pd.Timestamp("2019-10-31") and rev["ds"].max() == pd.Timestamp("2025-04-30")
    assert len(rev) == 23 and rev["y"].iloc[-1] == pytest.approx(1042.074)
    rows = read_quarterly(SNOW / "snow_quarterly.csv")
    assert rows["period"].iloc[0].freqstr == "Q-JAN" and rows.attrs["label_style"] == "fiscal"
    v = data_vintage(SNOW / "snow_quarterly.csv")
    assert v.data_last_quarter == "FY2026Q1" and v.vintage.startswith("FY2026Q1-")


@pytest.fixture
def snow_copy(tmp_path) -> Path:
    for name in ("snow_quarterly.csv", "series.csv"):
        shutil.copy(SNOW / name, tmp_path / name)
    return tmp_path / "snow_quarterly.csv"


def edit(path: Path, prefix: str, column: int, value: str) -> int:
    lines = path.read_text().splitlines(keepends=True)
    i = next(k for k, ln in enumerate(lines) if ln.startswith(prefix))
    fields = lines[i].split(",")
    fields[column] = value
    lines[i] = ",".join(fields)
    path.write_text("".join(lines))
    return i + 1


@pytest.mark.parametrize(("prefix", "column", "value", "words"), [
    ("revenue,FY2025Q2,", 2, "2024-07-30", ["period_end 2024-07-30 is not a month end"]),
    ("revenue,FY2025Q2,", 2, "2024-08-31", ["period_end 2024-08-31 puts FY2025Q2 in a fiscal year ending in "
                                            "February", "has fiscal years ending in January"]),
    ("revenue,FY2025Q2,", 2, "2023-07-31", ["period_end 2023-07-31 disagrees with fiscal_quarter FY2025Q2 "
                                            "(expected 2024-07-31)"]),
    ("revenue,FY2025Q2,", 1, "2025Q2", ["fiscal_quarter '2025Q2' is labelled in another style than line 2"]),
    ("revenue,FY2025Q2,", 1, "FY2025-Q2", ["fiscal_quarter 'FY2025-Q2' is not a quarter like 2024Q3 (or FY2024Q3)"]),
])
def test_bad_fiscal_rows_name_line_series_and_problem(snow_copy, prefix, column, value, words):
    line = edit(snow_copy, prefix, column, value)
    with pytest.raises(DataValidationError) as e:
        read_quarterly(snow_copy)
    msg = str(e.value)
    assert f"snow_quarterly.csv, line {line}, series revenue" in msg
    for w in words:
        assert w in msg, msg


def test_a_hole_in_fiscal_quarters_is_found(snow_copy):
    lines = [ln for ln in snow_copy.read_text().splitlines(keepends=True) if not ln.startswith("revenue,FY2024Q2,")]
    snow_copy.write_text("".join(lines))
    with pytest.raises(DataValidationError) as e:
        load_quarterly(snow_copy)
    assert "series revenue: missing quarter(s) FY2024Q2 after the first modelled quarter FY2020Q3" in str(e.value)


def test_model_from_in_fiscal_labels(snow_copy):
    cfg = snow_copy.parent / "series.csv"
    cfg.write_text(cfg.read_text().replace("revenue,FY2020Q3,", "revenue,FY2023Q1,"))
    rev = load_quarterly(snow_copy, series=["revenue"])
    assert rev["ds"].min() == pd.Timestamp("2022-04-30") and len(rev) == 13
    cfg.write_text(cfg.read_text().replace("revenue,FY2023Q1,", "revenue,FY2027Q1,"))
    with pytest.raises(DataValidationError) as e:
        load_quarterly(snow_copy)
    assert "model_from FY2027Q1 is after the last reported quarter FY2026Q1" in str(e.value)


def test_a_december_company_may_use_fiscal_labels(tmp_path):
    path = tmp_path / "widgets.csv"
    path.write_text("metric,fiscal_quarter,period_end,value_musd\n"
                    + "".join(f"w,FY2024Q{q},{e},{q}\n" for q, e in
                              [(1, "2024-03-31"), (2, "2024-06-30"), (3, "2024-09-30"), (4, "2024-12-31")]))
    assert load_quarterly(path)["y"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert data_vintage(path).data_last_quarter == "FY2024Q4"


# --------------------------------------------------------------------------- end to end
def test_the_calendar_object_on_a_january_fiscal_year():
    from features.calendar import FiscalCalendar

    cal = FiscalCalendar(1)
    ds = pd.DatetimeIndex(["2025-04-30", "2025-07-31", "2025-10-31", "2026-01-31", "2026-04-30"])
    assert cal.freq == "QE-JAN" and cal.on_grid(ds) and not cal.on_grid(["2025-06-30"])
    assert list(cal.quarter_of_year(ds)) == [1, 2, 3, 4, 1]
    assert list(cal.fiscal_year(ds)) == [2026, 2026, 2026, 2026, 2027]
    assert list(cal.steps([ds[0]] * 5, ds)) == [0, 1, 2, 3, 4]
    assert ds[0] + cal.offset(3) == ds[3] and cal.year_end(2026) == ds[3]
    assert cal.labels(ds[:1]) == ["FY2026Q1"] and cal.parse("FY2026Q2").end_time.normalize() == ds[1]
    assert FiscalCalendar.infer(ds) == cal and FiscalCalendar.infer(["2024-09-30"]) == FiscalCalendar(12)


def test_forecast_and_backtest_run_on_the_fiscal_quarter_ends():
    """Snowflake's quarters (ending in January, April, July, October) through the forecasting
    core: forecast quarters, backtest cutoffs and steps all on its own quarter ends."""
    from forecasting.rolling.backtest import BacktestConfig, backtest
    from forecasting.rolling.forecast import forecast

    df = load_quarterly(SNOW / "snow_quarterly.csv", series=["revenue", "free_cash_flow"])
    fc = forecast(df, h=3, models=["AutoETS"], calibration_windows=4)
    assert list(fc["ds"].drop_duplicates()) == list(pd.to_datetime(["2025-07-31", "2025-10-31", "2026-01-31"]))
    assert (fc["lo-80"] <= fc["hi-80"]).all() and fc["mean"].notna().all()
    bt = backtest(df, ["AutoETS"], BacktestConfig(h=2, n_windows=3, warmup_windows=2))
    cuts = sorted(bt["cutoff"].unique())
    assert list(cuts) == list(pd.to_datetime(["2024-04-30", "2024-07-31", "2024-10-31"])) and set(bt["step"]) == {1, 2}
    assert all(d.month in (1, 4, 7, 10) for d in bt["ds"])
    assert bt["lo-80"].notna().all()  # conformal calibration found its past windows on this grid


@pytest.mark.slow
def test_a_snowflake_backtest_is_tracked_with_its_data_and_calendar(tmp_path, monkeypatch, capsys):
    from mlflow import MlflowClient

    from experiments.cli import main

    monkeypatch.chdir(tmp_path)
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)
    assert main(["backtest", "--company", "snowflake", "--models", "SeasonalNaive,AutoETS", "--windows", "3",
                 "--warmup", "2", "--series", "revenue,operating_income"]) == 0
    out = capsys.readouterr().out
    assert "AutoETS" in out and "(default) = AutoCombo" in out  # Snowflake's profile names no default
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("snowflake-backtest")
    [parent] = client.search_runs([exp.experiment_id], filter_string="tags.run_kind = 'backtest'")
    assert parent.data.tags["data_last_quarter"] == "FY2026Q1" and parent.data.tags["company"] == "snowflake"
    [inp] = parent.inputs.dataset_inputs
    assert inp.dataset.name.startswith("snow_quarterly@FY2026Q1-")
    assert parent.info.run_name.startswith("backtest AutoETS h4 w3 FY2026Q1-")
