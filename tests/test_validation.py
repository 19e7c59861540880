"""Bad input files: each gets a `DataValidationError` naming the file, line, series and problem.

Every bad file is the shipped CSV copied into tmp_path with one line changed, so the tests
also prove that the shipped file itself passes (the copy is valid until it is edited).
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest

from features.errors import DataValidationError, DataWarning
from features.loader import (
    load_quarterly,
    read_annual,
    read_quarterly,
    read_series_config,
    shipped_data_dir,
)

DATA = "amzn_quarterly.csv"


def shipped_copy(tmp_path: Path, name: str = DATA, config: bool = True) -> Path:
    """Copy a shipped file (and, unless `config` is False, series.csv beside it)."""
    target = tmp_path / name
    shutil.copy(shipped_data_dir() / name, target)
    if config:
        shutil.copy(shipped_data_dir() / "series.csv", tmp_path / "series.csv")
    return target


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def find_line(path: Path, prefix: str) -> int:
    """1-based line number of the line starting with `prefix` (exactly one must)."""
    hits = [i + 1 for i, ln in enumerate(lines_of(path)) if ln.startswith(prefix)]
    assert len(hits) == 1, f"{prefix!r} found on lines {hits}"
    return hits[0]


def edit_field(path: Path, prefix: str, column: int, value: str) -> int:
    """Set field `column` (0-based, among the first four) of the line starting with `prefix`."""
    lineno = find_line(path, prefix)
    lines = lines_of(path)
    fields = lines[lineno - 1].split(",", 4)
    fields[column] = value
    lines[lineno - 1] = ",".join(fields)
    path.write_text("".join(lines), encoding="utf-8")
    return lineno


def value_of(path: Path, prefix: str) -> float:
    return float(lines_of(path)[find_line(path, prefix) - 1].split(",")[3])


def assert_names(err: DataValidationError, file: Path, line: int | None, series: str | None, *words):
    """The message (and the first problem's fields) name file, line, series and problem."""
    msg = str(err)
    assert file.name in msg
    assert err.file == str(file)
    if line is not None:
        assert f"line {line}" in msg and err.line == line
    if series is not None:
        assert f"series {series}" in msg and err.series == series
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"


# --------------------------------------------------------------------------- the good files
def test_shipped_copy_is_valid(tmp_path):
    path = shipped_copy(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        df = load_quarterly(path)
    assert df["unique_id"].nunique() == 20


def test_annual_file_validates():
    a = read_annual()
    assert list(a.columns) == ["metric", "period", "ds", "y"]
    assert a["ds"].dt.is_year_end.all()
    assert not a.duplicated(["metric", "period"]).any()
    assert a.loc[(a["metric"] == "net_sales_total") & (a["period"].dt.year == 2024), "y"].item() == 637_959


def test_bad_annual_file_names_line_and_series(tmp_path):
    path = shipped_copy(tmp_path, "amzn_annual.csv")
    line = edit_field(path, "net_sales_total,2020,", 2, "2020-11-30")
    with pytest.raises(DataValidationError) as e:
        read_annual(path)
    assert_names(e.value, path, line, "net_sales_total", "is not a quarter end")


# --------------------------------------------------------------------------- columns
def test_missing_column(tmp_path):
    path = shipped_copy(tmp_path)
    text = path.read_text().replace("metric,fiscal_quarter,period_end,value_musd,",
                                    "metric,fiscal_quarter,period_end,value,", 1)
    path.write_text(text)
    with pytest.raises(DataValidationError) as e:
        read_quarterly(path)
    assert_names(e.value, path, 1, None, "missing column 'value_musd'")


def test_unknown_column_suggests_the_closest(tmp_path):
    path = shipped_copy(tmp_path)
    path.write_text(path.read_text().replace("value_musd,source", "value_musd,sourse", 1))
    with pytest.raises(DataValidationError) as e:
        read_quarterly(path)
    assert_names(e.value, path, 1, None, "unknown column 'sourse'", "did you mean 'source'?")


# --------------------------------------------------------------------------- rows
def test_unknown_metric_suggests_the_closest(tmp_path):
    path = shipped_copy(tmp_path)
    line = edit_field(path, "net_sales_aws,2020Q1,", 0, "net_sales_awz")
    with pytest.raises(DataValidationError) as e:
        read_quarterly(path)
    assert_names(e.value, path, line, "net_sales_awz", "unknown metric 'net_sales_awz'",
                 "did you mean 'net_sales_aws'?")


def test_duplicate_quarter_with_different_values(tmp_path):
    path = shipped_copy(tmp_path)
    first = find_line(path, "net_sales_aws,2020Q1,")
    with path.open("a") as f:
        f.write("net_sales_aws,2020Q1,2020-03-31,10300,a second source\n")
    last = len(lines_of(path))
    with pytest.raises(DataValidationError) as e:
        read_quarterly(path)
    assert_names(e.value, path, last, "net_sales_aws", "duplicate fiscal_quarter 2020Q1",
                 "10219, 10300", f"lines {first}, {last}")


def test_duplicate_quarter_with_the_same_value_is_kept_once(tmp_path):
    path = shipped_copy(tmp_path)
    with path.open("a") as f:
        f.write("net_sales_aws,2020Q1,2020-03-31,10219,a corroborating source\n")
    pd.testing.assert_frame_equal(load_quarterly(path), load_quarterly())


def test_gap_after_model_from(tmp_path):
    path = shipped_copy(tmp_path)
    gone = find_line(path, "net_sales_aws,2020Q1,")
    lines = lines_of(path)
    del lines[gone - 1]
    path.write_text("".join(lines))
    with pytest.raises(DataValidationError) as e:
        load_quarterly(path)
    # the line named is the first row after the hole (2020Q2 moved up to the deleted line)
    assert lines[gone - 1].startswith("net_sales_aws,2020Q2,")
    assert_names(e.value, path, gone, "net_sales_aws", "missing quarter(s) 2020Q1",
                 "after the first modelled quarter 2015Q1", "set model_from")


def test_gap_before_model_from_is_allowed(tmp_path):
    """NA segment sales have holes in 2016-2018; series.csv models them from 2019Q1."""
    path = shipped_copy(tmp_path)
    df = load_quarterly(path, series=["net_sales_north_america"])
    assert df["ds"].min() == pd.Timestamp("2019-03-31")
    rows = read_quarterly(path)
    assert (rows["metric"] == "net_sales_north_america").sum() > len(df)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("n/a", ["value_musd 'n/a' is not a number"]),
        ("", ["empty value_musd"]),
        ("inf", ["value_musd 'inf' is not a finite number"]),
    ],
)
def test_bad_value(tmp_path, value, words):
    path = shipped_copy(tmp_path)
    line = edit_field(path, "operating_cash_flow,2012Q3,", 3, value)
    with pytest.raises(DataValidationError) as e:
        read_quarterly(path)
    assert_names(e.value, path, line, "operating_cash_flow", *words)


def test_thousands_separators_are_accepted(tmp_path):
    path = shipped_copy(tmp_path)
    edit_field(path, "net_sales_aws,2020Q1,", 3, '"10,219"')
    df = load_quarterly(path, series=["net_sales_aws"])
    assert df.loc[df["ds"] == pd.Timestamp("2020-03-31"), "y"].item() == 10_219.0


def test_period_end_not_a_quarter_end(tmp_path):
    path = shipped_copy(tmp_path)
    line = edit_field(path, "free_cash_flow,2019Q2,", 2, "2019-06-29")
    with pytest.raises(DataValidationError) as e:
        read_quarterly(path)
    assert_names(e.value, path, line, "free_cash_flow", "period_end 2019-06-29 is not a quarter end")


def test_period_end_not_a_date(tmp_path):
    path = shipped_copy(tmp_path)
    line = edit_field(path, "free_cash_flow,2019Q2,", 2, "June 2019?")
    with pytest.raises(DataValidationError) as e:
        read_quarterly(path)
    assert_names(e.value, path, line, "free_cash_flow", "'June 2019?' is not a date")


def test_period_end_disagrees_with_fiscal_quarter(tmp_path):
    path = shipped_copy(tmp_path)
    line = edit_field(path, "free_cash_flow,2019Q2,", 2, "2019-09-30")
    with pytest.raises(DataValidationError) as e:
        read_quarterly(path)
    assert_names(e.value, path, line, "free_cash_flow",
                 "period_end 2019-09-30 disagrees with fiscal_quarter 2019Q2 (expected 2019-06-30)")


def test_bad_fiscal_quarter(tmp_path):
    path = shipped_copy(tmp_path)
    line = edit_field(path, "free_cash_flow,2019Q2,", 1, "2019-Q2")
    with pytest.raises(DataValidationError) as e:
        read_quarterly(path)
    assert_names(e.value, path, line, "free_cash_flow", "fiscal_quarter '2019-Q2' is not a quarter")


def test_negative_net_sales(tmp_path):
    path = shipped_copy(tmp_path)
    line = edit_field(path, "net_sales_aws,2020Q1,", 3, "-10219")
    with pytest.raises(DataValidationError) as e:
        read_quarterly(path)
    assert_names(e.value, path, line, "net_sales_aws", "negative value -10219")


def test_negative_income_is_fine(tmp_path):
    path = shipped_copy(tmp_path)
    edit_field(path, "operating_income_total,2012Q4,", 3, "-405")
    df = load_quarterly(path, series=["operating_income_total"])
    assert df.loc[df["ds"] == pd.Timestamp("2012-12-31"), "y"].item() == -405.0


def test_every_problem_is_listed(tmp_path):
    path = shipped_copy(tmp_path)
    a = edit_field(path, "free_cash_flow,2019Q2,", 3, "x")
    b = edit_field(path, "net_sales_aws,2020Q1,", 3, "-1")
    with pytest.raises(DataValidationError) as e:
        read_quarterly(path)
    assert "2 problem(s)" in str(e.value)
    assert {(p.line, p.series) for p in e.value.problems} == {(a, "free_cash_flow"), (b, "net_sales_aws")}


def test_line_numbers_count_blank_lines(tmp_path):
    """A blank line in the file must not shift the line numbers of later rows."""
    path = shipped_copy(tmp_path)
    lines = lines_of(path)
    lines.insert(5, "\n")
    path.write_text("".join(lines))
    line = edit_field(path, "net_sales_aws,2020Q1,", 3, "n/a")
    with pytest.raises(DataValidationError) as e:
        read_quarterly(path)
    assert_names(e.value, path, line, "net_sales_aws", "is not a number")


# --------------------------------------------------------------------------- unit mix-up
def test_unit_mixup_is_a_warning_naming_line_and_series(tmp_path):
    path = shipped_copy(tmp_path)
    value = value_of(path, "net_sales_aws,2020Q1,")
    line = edit_field(path, "net_sales_aws,2020Q1,", 3, f"{value * 1000:.0f}")
    with pytest.warns(DataWarning) as caught:
        df = load_quarterly(path, series=["net_sales_aws"])
    assert len(caught) == 1
    msg = str(caught[0].message)
    assert f"{path.name}, line {line}, series net_sales_aws" in msg and "unit mix-up" in msg
    assert df.loc[df["ds"] == pd.Timestamp("2020-03-31"), "y"].item() == value * 1000


def test_unit_mixup_in_the_newest_quarter_is_a_warning(tmp_path):
    """The realistic case: a user appends the new quarter in USD thousands."""
    path = shipped_copy(tmp_path)
    value = value_of(path, "operating_cash_flow,2026Q2,")
    line = edit_field(path, "operating_cash_flow,2026Q2,", 3, f"{value * 1000:.0f}")
    with pytest.warns(DataWarning, match=f"line {line}, series operating_cash_flow: value .* unit mix-up"):
        read_quarterly(path)


def test_value_in_thousands_is_a_warning(tmp_path):
    path = shipped_copy(tmp_path)
    value = value_of(path, "net_sales_total,2021Q3,")
    line = edit_field(path, "net_sales_total,2021Q3,", 3, f"{value / 1000:.3f}")
    with pytest.warns(DataWarning, match=f"line {line}, series net_sales_total"):
        read_quarterly(path)


# --------------------------------------------------------------------------- without a config
def test_user_csv_without_config_with_a_hole_hints_at_model_from(tmp_path):
    """The shipped file has holes before model_from; without series.csv they are errors."""
    path = shipped_copy(tmp_path, config=False)
    with pytest.raises(DataValidationError) as e:
        load_quarterly(path)
    msg = str(e.value)
    assert "missing quarter(s)" in msg and "set model_from in series.csv" in msg
    assert "no series config was found beside the data file" in msg
    na = [p for p in e.value.problems if p.series == "net_sales_north_america"]
    assert len(na) == 1 and "2016Q1" in na[0].problem and na[0].line is not None


def test_small_user_csv_with_a_hole_gets_the_same_error(tmp_path):
    path = tmp_path / "acme.csv"
    path.write_text("metric,fiscal_quarter,period_end,value_musd\n"
                    "revenue,2023Q1,2023-03-31,10\nrevenue,2023Q2,2023-06-30,11\n"
                    "revenue,2023Q4,2023-12-31,13\nrevenue,2024Q1,2024-03-31,14\n")
    with pytest.raises(DataValidationError) as e:
        load_quarterly(path)
    assert_names(e.value, path, 4, "revenue", "missing quarter(s) 2023Q3 after the first modelled quarter 2023Q1",
                 "set model_from in series.csv", "no series config was found beside the data file")


def test_user_csv_without_config_loads_any_metric_names(tmp_path):
    path = tmp_path / "acme.csv"
    ends = pd.date_range("2022-03-31", periods=10, freq="QE")
    rows = ["metric,fiscal_quarter,period_end,value_musd"]
    for metric, base in (("revenue", 500.0), ("ebitda", -20.0)):
        rows += [f"{metric},{pd.Period(d, freq='Q')},{d.date()},{base + 10 * i}" for i, d in enumerate(ends)]
    path.write_text("\n".join(rows) + "\n")
    df = load_quarterly(path)
    assert sorted(df["unique_id"].unique()) == ["ebitda", "revenue"]
    assert df.groupby("unique_id").size().tolist() == [10, 10]
    assert df["y"].min() == -20.0
    with pytest.raises(DataValidationError, match="no modelled series 'revenu' \\(did you mean 'revenue'"):
        load_quarterly(path, series=["revenu"])


def test_user_csv_can_name_its_own_config(tmp_path):
    path = tmp_path / "acme.csv"
    path.write_text("metric,fiscal_quarter,period_end,value_musd\n"
                    "sales,2023Q1,2023-03-31,1\nsales,2023Q3,2023-09-30,3\nsales,2023Q4,2023-12-31,4\n"
                    "sales,2024Q1,2024-03-31,5\n")
    cfg = tmp_path / "my_series.csv"
    cfg.write_text("metric,model_from,nonnegative\nsales,2023Q3,true\n")
    df = load_quarterly(path, config=cfg)
    assert df["y"].tolist() == [3.0, 4.0, 5.0]


# --------------------------------------------------------------------------- series.csv
def test_series_config_bad_quarter(tmp_path):
    path = shipped_copy(tmp_path)
    cfg = tmp_path / "series.csv"
    line = edit_field(cfg, "net_sales_aws,", 1, "2015-Q1")
    with pytest.raises(DataValidationError) as e:
        load_quarterly(path)
    assert_names(e.value, cfg, line, "net_sales_aws", "model_from '2015-Q1' is not a quarter like 2019Q1")


def test_series_config_duplicate_metric(tmp_path):
    shipped_copy(tmp_path)
    cfg = tmp_path / "series.csv"
    with cfg.open("a") as f:
        f.write("net_sales_aws,2016Q1,true,again\n")
    with pytest.raises(DataValidationError) as e:
        read_series_config(cfg)
    assert_names(e.value, cfg, len(lines_of(cfg)), "net_sales_aws", "metric listed twice")


def test_series_config_bad_flag(tmp_path):
    shipped_copy(tmp_path)
    cfg = tmp_path / "series.csv"
    line = edit_field(cfg, "free_cash_flow,", 2, "maybe")
    with pytest.raises(DataValidationError) as e:
        read_series_config(cfg)
    assert_names(e.value, cfg, line, "free_cash_flow", "nonnegative 'maybe' is not true/false")


# --------------------------------------------------------------------------- files
def test_file_not_found(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(DataValidationError) as e:
        load_quarterly(path)
    assert_names(e.value, path, None, None, "file not found")


@pytest.mark.parametrize(
    "content",
    [
        b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\xb7\xfa\xff\xfe\x00\x01" * 4,  # a zipped xlsx
        b"",  # empty file
    ],
)
def test_not_a_csv(tmp_path, content):
    path = tmp_path / "sales.xlsx"
    path.write_bytes(content)
    with pytest.raises(DataValidationError) as e:
        load_quarterly(path)
    assert_names(e.value, path, None, None, "not a readable CSV file")


def test_header_only_file_has_no_data_rows(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("metric,fiscal_quarter,period_end,value_musd\n")
    with pytest.raises(DataValidationError, match="no data rows"):
        load_quarterly(path)


# --------------------------------------------------------------------------- vintages
def test_later_vintage_replaces_the_earlier_row(tmp_path):
    path = tmp_path / "restated.csv"
    path.write_text(
        "metric,fiscal_quarter,period_end,value_musd,vintage\n"
        "ocf,2016Q1,2016-03-31,-1,2016-04-28\n"
        "ocf,2016Q2,2016-06-30,3,2016-07-28\n"
        "ocf,2016Q1,2016-03-31,-2,2017-04-27\n"  # restated under ASU 2016-09
        "ocf,2016Q3,2016-09-30,4,2016-10-27\n"
    )
    df = load_quarterly(path)
    assert df["y"].tolist() == [-2.0, 3.0, 4.0]


def test_same_vintage_twice_with_different_values_is_an_error(tmp_path):
    path = tmp_path / "restated.csv"
    path.write_text(
        "metric,fiscal_quarter,period_end,value_musd,vintage\n"
        "ocf,2016Q1,2016-03-31,-1,2016-04-28\n"
        "ocf,2016Q1,2016-03-31,-2,2016-04-28\n"
    )
    with pytest.raises(DataValidationError) as e:
        load_quarterly(path)
    assert_names(e.value, path, 3, "ocf", "duplicate fiscal_quarter 2016Q1")


def test_vintages_are_compared_as_dates_not_text(tmp_path):
    """'2016-4-28' is earlier than '2016-04-30' although it sorts after it as text."""
    path = tmp_path / "restated.csv"
    path.write_text(
        "metric,fiscal_quarter,period_end,value_musd,vintage\n"
        "ocf,2016Q1,2016-03-31,-2,2016-04-30\n"
        "ocf,2016Q1,2016-03-31,-1,2016-4-28\n"
        "ocf,2016Q2,2016-06-30,3,\n"
        "ocf,2016Q2,2016-06-30,5,2017-07-27\n"  # a dated restatement replaces an undated original
    )
    assert load_quarterly(path)["y"].tolist() == [-2.0, 5.0]


def test_bad_vintage(tmp_path):
    path = tmp_path / "restated.csv"
    path.write_text(
        "metric,fiscal_quarter,period_end,value_musd,vintage\n"
        "ocf,2016Q1,2016-03-31,-1,2016-04-28\n"
        "ocf,2016Q1,2016-03-31,-2,Q1 2017 10-Q\n"
    )
    with pytest.raises(DataValidationError) as e:
        load_quarterly(path)
    assert_names(e.value, path, 3, "ocf", "vintage 'Q1 2017 10-Q' is not a date")


def test_excel_saved_csv_with_bom_and_crlf_loads(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfmetric,fiscal_quarter,period_end,value_musd\r\n"
                     b"revenue,2023Q1,2023-03-31,10\r\nrevenue,2023Q2,2023-06-30, 11 \r\n")
    df = load_quarterly(path)
    assert df["unique_id"].tolist() == ["revenue", "revenue"] and df["y"].tolist() == [10.0, 11.0]


def test_model_from_after_the_last_quarter_is_an_error_not_a_silent_drop(tmp_path):
    path = shipped_copy(tmp_path)
    cfg = tmp_path / "series.csv"
    edit_field(cfg, "net_sales_advertising,", 1, "2027Q1")
    last = find_line(path, "net_sales_advertising,2026Q2,")
    with pytest.raises(DataValidationError) as e:
        load_quarterly(path)
    assert_names(e.value, path, last, "net_sales_advertising",
                 "model_from 2027Q1 is after the last reported quarter 2026Q2", "set model_from in series.csv")


def test_asking_for_an_unmodelled_series_says_why():
    with pytest.raises(DataValidationError) as e:
        load_quarterly(series=["principal_repayments_of_financing_obligations", "net_sales_awz"])
    first, second = e.value.problems
    assert first.series == "principal_repayments_of_financing_obligations"
    assert "validated but not modelled: its model_from in series.csv is empty" in first.problem
    assert second.problem == "no modelled series 'net_sales_awz' (did you mean 'net_sales_aws'?)"
