"""Appending filed values to a data file: new quarters, restatements as later vintages,
identical values never repeated, old lines kept byte for byte."""

from __future__ import annotations

import pandas as pd

from features.loader import load_quarterly
from features.sec.merge import merge_rows, read_file_rows, render
from features.sec.quarters import ASOF, ROW_COLUMNS

HEADER = "metric,fiscal_quarter,period_end,value_musd,source\n"
FILE = HEADER + ("sales,2024Q1,2024-03-31,1000,10-Q\n"
                 "sales,2024Q2,2024-06-30,1100,10-Q\n"
                 "sales,2024Q3,2024-09-30,\"1,200\",\"10-Q, first print\"\n")


def rows(*items) -> pd.DataFrame:
    """Rows as `quarterly_rows` returns them: (quarter, end, value, asof)."""
    return pd.DataFrame([{"metric": "sales", "fiscal_quarter": q, "period_end": e, "value_musd": v,
                          "source": f"10-Q XBRL (accn {asof})", "vintage": "", ASOF: asof}
                         for q, e, v, asof in items], columns=[*ROW_COLUMNS, ASOF])


def test_new_quarter_restatement_and_unchanged(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text(FILE)
    header, existing, text = read_file_rows(path)
    new = rows(("2024Q2", "2024-06-30", "1100", "2024-07-30"),     # same value: not repeated
               ("2024Q3", "2024-09-30", "1201", "2025-01-31"),     # restated
               ("2024Q4", "2024-12-31", "1300", "2025-01-31"))     # new quarter
    m = merge_rows(existing, new)
    assert m.unchanged == 1
    assert m.append[["fiscal_quarter", "value_musd", "vintage"]].values.tolist() == [
        ["2024Q3", "1201", "2025-01-31"], ["2024Q4", "1300", ""]]
    assert m.restated[["fiscal_quarter", "previous_musd"]].values.tolist() == [["2024Q3", "1200"]]
    assert m.new_quarters == ["2024Q4"]
    out = render(header, text, m.append)
    path.write_text(out)
    # the old lines are unchanged apart from the added empty vintage field
    assert out.splitlines()[1:4] == [ln + "," for ln in FILE.splitlines()[1:]]
    assert out.splitlines()[0] == HEADER.strip() + ",vintage"
    df = load_quarterly(path)
    assert df["y"].tolist() == [1000.0, 1100.0, 1201.0, 1300.0]  # the later vintage wins
    # merging again finds nothing new
    header, existing, text = read_file_rows(path)
    again = merge_rows(existing, new)
    assert again.append.empty and again.unchanged == 3


def test_without_restatement_the_file_keeps_its_bytes_and_columns(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text(FILE)
    header, existing, text = read_file_rows(path)
    m = merge_rows(existing, rows(("2024Q4", "2024-12-31", "13", "2025-01-31")))
    out = render(header, text, m.append)
    assert out == FILE + "sales,2024Q4,2024-12-31,13,10-Q XBRL (accn 2025-01-31)\n"


def test_a_file_newer_than_the_filing_is_not_overridden(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("metric,fiscal_quarter,period_end,value_musd,vintage\n"
                    "sales,2024Q1,2024-03-31,10,\n"
                    "sales,2024Q1,2024-03-31,10.5,2025-03-01\n")
    _, existing, _ = read_file_rows(path)
    m = merge_rows(existing, rows(("2024Q1", "2024-03-31", "9", "2024-04-30"),))
    assert m.append.empty and len(m.stale) == 1 and m.stale["file_vintage"].item() == "2025-03-01"
    # the value of the latest vintage counts: 10.5 again is no change
    m = merge_rows(existing, rows(("2024Q1", "2024-03-31", "10.5", "2025-04-30"),))
    assert m.append.empty and m.unchanged == 1


def test_crlf_and_bom_files_keep_their_line_endings(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + FILE.replace("\n", "\r\n").encode())
    header, existing, text = read_file_rows(path)
    assert header[0] == "metric" and len(existing) == 3
    out = render(header, text, merge_rows(existing, rows(("2024Q4", "2024-12-31", "13", "x"),)).append)
    assert out.startswith("\ufeffmetric") and out.endswith("13,10-Q XBRL (accn x)\r\n")
    assert "\n" not in out.replace("\r\n", "")
