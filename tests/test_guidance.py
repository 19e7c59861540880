"""Guidance files: the shipped ones load, every broken row is named, nothing is seen too early."""

from __future__ import annotations

import pandas as pd
import pytest

from features.errors import DataValidationError
from features.guidance import GuidanceBook, load_guidance, read_annual_guidance, read_quarterly_guidance

Q_HEADER = "metric,fiscal_quarter,period_end,announced_on,low_musd,high_musd,quality,source\n"
A_HEADER = "fiscal_year,announced_on,low_musd,high_musd,wording,source\n"
GOOD_Q = "net_sales_total,2026Q3,2026-09-30,2026-07-30,197000,202000,release_text,x\n"


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_shipped_files_load_with_their_known_rows():
    book = load_guidance()
    q, a = book.quarterly, book.annual
    assert len(q) == 92 and set(q["metric"]) == {"net_sales_total", "operating_income_total"}
    last = q[q["ds"] == pd.Timestamp("2026-09-30")].set_index("metric")
    assert (last.loc["net_sales_total", "low"], last.loc["net_sales_total", "high"]) == (197000, 202000)
    assert (last.loc["operating_income_total", "low"], last.loc["operating_income_total", "high"]) == (22500, 26500)
    # the undated shareholder-letter row of the shared file is left out (see data/SOURCES.md)
    assert len(a) == 11
    assert book.year_total("purchases_of_property_and_equipment_net_of_proceeds", 2026) == 220000
    assert a["low"].isna().sum() == 2  # two direction-only statements carry no number


@pytest.mark.parametrize("row, problem", [
    ("net_sales_total,2026Q3,2026-09-30,2026-07-30,202000,197000,x,y\n", "low_musd 202000 is above high_musd 197000"),
    ("net_sales_total,2026Q3,2026-09-30,2026-10-02,197000,202000,x,y\n", "after the guided quarter's end 2026-09-30"),
    ("net_sales_totl,2026Q3,2026-09-30,2026-07-30,197000,202000,x,y\n", "did you mean 'net_sales_total'"),
    ("net_sales_total,2026Q5,2026-09-30,2026-07-30,197000,202000,x,y\n", "is not a quarter like"),
    ("net_sales_total,2026Q3,2026-09-29,2026-07-30,197000,202000,x,y\n", "disagrees with fiscal_quarter 2026Q3"),
    ("net_sales_total,2026Q3,2026-09-30,July 30,197000,202000,x,y\n", "announced_on 'July 30' is not a date"),
    ("net_sales_total,2026Q3,2026-09-30,2026-07-30,197000,,x,y\n", "give both low_musd and high_musd"),
    ("net_sales_total,2026Q3,2026-09-30,2026-07-30,abc,202000,x,y\n", "is not a number"),
    (GOOD_Q, "duplicate guidance for 2026Q3 announced on 2026-07-30 (also line 2)"),
])
def test_quarterly_errors_name_file_line_and_problem(tmp_path, row, problem):
    path = write(tmp_path, "g.csv", Q_HEADER + GOOD_Q + row)
    with pytest.raises(DataValidationError) as err:
        read_quarterly_guidance(path, metrics=["net_sales_total", "operating_income_total"])
    assert err.value.line == 3
    assert str(err.value).startswith("g.csv, line 3")
    assert problem in str(err.value)


def test_a_revised_range_with_a_later_date_is_not_a_duplicate(tmp_path):
    path = write(tmp_path, "g.csv", Q_HEADER + GOOD_Q
                 + "net_sales_total,2026Q3,2026-09-30,2026-08-15,198000,203000,x,y\n")
    q = read_quarterly_guidance(path)
    assert len(q) == 2
    book = GuidanceBook(q)
    assert book.range_for("net_sales_total", "2026-09-30") == (198000, 203000)
    assert book.known_at("2026-08-01").range_for("net_sales_total", "2026-09-30") == (197000, 202000)


@pytest.mark.parametrize("row, problem", [
    ("2026,spring 2026,200000,200000,w,s\n", "cannot be dated"),
    ("2026,2027-01-05,200000,200000,w,s\n", "after the end of fiscal 2026"),
    ("2026,2026-07-30,220000,200000,w,s\n", "above high_musd"),
    ("2026,2026-07-30,,200000,w,s\n", "give both low_musd and high_musd"),
    ("26,2026-07-30,200000,200000,w,s\n", "is not a year like 2026"),
    ("2026,2026-02-05,1,1,w,s\n", "duplicate statement about fiscal 2026 announced on 2026-02-05"),
])
def test_annual_errors_name_file_line_and_problem(tmp_path, row, problem):
    path = write(tmp_path, "capex.csv", A_HEADER + "2026,2026-02-05,200000,200000,w,s\n" + row)
    with pytest.raises(DataValidationError) as err:
        read_annual_guidance(path)
    assert str(err.value).startswith("capex.csv, line 3")
    assert problem in str(err.value)


def test_direction_only_statement_is_kept_without_a_number(tmp_path):
    path = write(tmp_path, "capex.csv", A_HEADER + "2027,2026-07-30,,,more than 2026,s\n")
    a = read_annual_guidance(path)
    assert len(a) == 1 and a["low"].isna().all()
    assert GuidanceBook(annual=a).year_total("purchases_of_property_and_equipment_net_of_proceeds", 2027) is None


def test_a_cutoff_sees_what_was_said_on_the_day_its_quarter_was_reported():
    book = load_guidance()
    capex = "purchases_of_property_and_equipment_net_of_proceeds"
    # 2025Q4 was reported on 2026-02-05: the 2026Q1 range and the ~200B capex statement, not the 220B one
    at = book.at_cutoff("2025-12-31")
    assert at.asof == pd.Timestamp("2026-02-05")
    assert at.range_for("net_sales_total", "2026-03-31") is not None
    assert at.range_for("net_sales_total", "2026-06-30") is None
    assert at.year_total(capex, 2026) == 200000
    assert (at.quarterly["announced_on"] <= at.asof).all() and (at.annual["announced_on"] <= at.asof).all()
    # 2026Q1 was reported on 2026-04-29 (guidance held at ~200B); 2026Q2 on 2026-07-30 (raised to ~220B)
    assert book.at_cutoff("2026-03-31").year_total(capex, 2026) == 200000
    assert book.at_cutoff("2026-06-30").year_total(capex, 2026) == 220000
    # a quarter with no release date known falls back to its own last day (hides, never leaks)
    assert book.release_date("2010-06-30") == pd.Timestamp("2010-06-30")


def test_quarterly_guidance_in_a_january_fiscal_year(tmp_path):
    """A company whose fiscal year ends in January guides its own quarters: ``FY2026Q2`` ends
    2025-07-31. Catches the reader parsing labels as calendar quarters (it refused the row, or
    checked it against 2026-06-30) and a cutoff's release date missing its next quarter's row."""
    path = write(tmp_path, "g.csv", Q_HEADER
                 + "revenue,FY2026Q2,2025-07-31,2025-05-28,1035,1040,release_text,x\n"
                 + "revenue,FY2026Q3,2025-10-31,2025-08-27,1125,1130,release_text,x\n")
    q = read_quarterly_guidance(path, year_end_month=1)
    assert q["ds"].tolist() == [pd.Timestamp("2025-07-31"), pd.Timestamp("2025-10-31")]
    book = GuidanceBook(q)
    assert book.release_date(pd.Timestamp("2025-07-31")) == pd.Timestamp("2025-08-27")
    assert book.at_cutoff(pd.Timestamp("2025-04-30")).range_for("revenue", "2025-07-31") == (1035, 1040)
    with pytest.raises(DataValidationError, match="disagrees with fiscal_quarter FY2026Q2"):
        read_quarterly_guidance(path)  # read as a calendar year, FY2026Q2 would end 2026-06-30
