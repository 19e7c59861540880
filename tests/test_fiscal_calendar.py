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
