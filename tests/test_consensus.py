"""Consensus files: the shipped one loads, every broken row is named, the selection rule picks
the stated row, and nothing published after a day reaches it."""

from __future__ import annotations

import pandas as pd
import pytest

from features.consensus import ConsensusBook, Split, load_consensus, profile_consensus, read_consensus
from features.errors import DataValidationError
from features.profile import profile_from_dict, shipped_profile

HEADER = ("fiscal_quarter,metric,consensus_value,provider,published,source_url,consensus_timing,confirmations,"
          "confirming_origins,reported_value_on_page,eps_basis,notes\n")
GOOD = "2026Q1,net_sales_total,177000,LSEG,2026-04-28,https://a.example/1,pre-report,2,,,,\n"
METRICS = ["net_sales_total", "net_sales_aws", "operating_income_total"]
SPLIT = (Split(pd.Timestamp("2022-06-06"), 20.0),)


def write(tmp_path, text, name="c.csv"):
    p = tmp_path / name
    p.write_text(HEADER + text)
    return p


def test_the_shipped_file_loads_with_its_counts_and_split_adjusted_eps():
    book = profile_consensus(shipped_profile("amazon"))
    r = book.rows
    assert len(r) == 757
    pre = r[(r["timing"] == "pre-report")]
    assert pre.groupby("metric")["ds"].nunique()[["net_sales_total", "net_sales_aws", "operating_income_total",
                                                  "eps_diluted"]].tolist() == [45, 35, 20, 44]
    # 2021Q4 EPS was printed pre-split ($3.61 expected then): 0.1805 on today's share count
    eps = r[(r["metric"] == "eps_diluted") & (r["ds"] == pd.Timestamp("2021-12-31")) & (r["printed"] == 3.61)]
    assert len(eps) and (eps["value"] - 3.61 / 20).abs().max() < 1e-12
    post = r[(r["metric"] == "eps_diluted") & (r["ds"] >= pd.Timestamp("2022-06-30"))]
    assert (post["value"] == post["printed"]).all()


@pytest.mark.parametrize("row, problem", [
    ("2026Q1,net_sales_totl,177000,LSEG,2026-04-28,https://b,pre-report,0,,,,\n",
     "unknown metric 'net_sales_totl' (did you mean 'net_sales_total'?)"),
    ("2026Q1,net_sales_total,$177B,LSEG,2026-04-28,https://b,pre-report,0,,,,\n",
     "consensus_value '$177B' is not a number"),
    ("2026Q5,net_sales_total,177000,LSEG,2026-04-28,https://b,pre-report,0,,,,\n",
     "fiscal_quarter '2026Q5' is not a quarter"),
    ("2026Q1,net_sales_total,177000,LSEG,,https://b,pre-report,0,,,,\n",
     "published '' is not a date"),
    ("2026Q1,net_sales_total,177000,LSEG,28/04/2026,https://b,pre-report,0,,,,\n",
     "published '28/04/2026' is not a date"),
    ("2026Q1,net_sales_total,177000,LSEG,2026-04-28,https://b,prereport,0,,,,\n",
     "consensus_timing 'prereport' is not one of pre-report, early (did you mean 'pre-report'?)"),
    ("2026Q1,net_sales_total,177000,LSEG,2026-03-15,https://b,pre-report,0,,,,\n",
     "a pre-report estimate is published after its quarter ends"),
    ("2026Q1,net_sales_total,177000,LSEG,2026-04-02,https://b,early,0,,,,\n",
     "an early estimate is published before its quarter ends"),
    ("2026Q1,net_sales_total,177000,LSEG,2026-04-28,https://b,pre-report,two,,,,\n",
     "confirmations 'two' is not a whole number"),
    ("2026Q1,net_sales_total,177000,LSEG,2026-04-28,https://b,pre-report,0,,181.5B,,\n",
     "reported_value_on_page '181.5B' is not a number"),
    ("2026Q1,net_sales_total,177000,LSEG,2026-04-28,https://b,pre-report,0,,,post-split,\n",
     "eps_basis 'post-split' on a money metric"),
    ("2026Q1,eps_diluted,1.65,LSEG,2026-04-28,https://b,pre-report,0,,,reverse split,\n",
     "eps_basis 'reverse split' is not one of"),
    ("2026Q1,eps_diluted,33.0,LSEG,2026-04-28,https://b,pre-report,0,,,pre-split,\n",
     "no split after that date in the company profile"),
    ("2021Q4,eps_diluted,3.61,LSEG,2022-02-02,https://b,pre-report,0,,,pre-split (divide by 10),\n",
     "eps_basis says divide by 10 but the profile's splits after 2022-02-02 make 20"),
    ("2021Q4,eps_diluted,3.61,LSEG,2022-02-02,https://b,pre-report,0,,,,\n",
     "eps_basis is empty for a per-share estimate of a quarter before the split"),
    (GOOD.replace("177000", "178000"), "the same page (https://a.example/1) twice for 2026Q1, both pre-report (also line 2)"),
])
def test_each_bad_row_is_named_with_file_line_and_problem(tmp_path, row, problem):
    path = write(tmp_path, GOOD + row)
    with pytest.raises(DataValidationError) as err:
        read_consensus(path, METRICS, splits=SPLIT)
    assert err.value.line == 3 and err.value.file == str(path)
    assert str(err.value).startswith("c.csv, line 3")
    assert problem in str(err.value), str(err.value)


def test_a_missing_column_and_an_empty_file_are_errors(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text(HEADER.replace("published,", "") + "")
    with pytest.raises(DataValidationError, match="missing column 'published'"):
        read_consensus(p)
    with pytest.raises(DataValidationError, match="no consensus rows"):
        read_consensus(write(tmp_path, ""))


def test_a_retrospective_mention_of_an_early_estimate_is_kept(tmp_path):
    path = write(tmp_path, GOOD + "2026Q1,net_sales_total,175000,x,2026-04-20,https://b,early,0,,,,"
                                  "retrospective mention\n")
    assert len(read_consensus(path, METRICS)) == 2


def test_the_bad_shipped_row_kinds_exit_2_from_the_command_line(tmp_path, capsys):
    from experiments.cli import main

    bad = write(tmp_path, GOOD + "2026Q1,net_sales_total,abc,LSEG,2026-04-28,https://b,pre-report,0,,,,\n")
    profile = tmp_path / "p.yaml"
    data = shipped_profile("amazon").data
    profile.write_text(f"name: acme\ndata: {data}\nconsensus: {bad}\n")
    assert main(["street", "--company", str(profile), "--no-track", "--windows", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["fcf: bad input data: c.csv, line 3, series net_sales_total: consensus_value 'abc' is not a number"]


SELECTION = (
    GOOD  # line 2: 2 confirmations, 2026-04-28
    + "2026Q1,net_sales_total,176500,FactSet,2026-04-27,https://b/2,pre-report,2,,,,\n"  # 3: same count, earlier
    + "2026Q1,net_sales_total,177200,Zacks,2026-04-29,https://b/3,pre-report,2,,,,\n"  # 4: same count, latest
    + "2026Q1,net_sales_total,180000,unnamed,2026-04-25,https://b/4,pre-report,5,,,,LOW RELIABILITY: template\n"
    + "2026Q1,net_sales_total,170000,unnamed,2026-03-01,https://b/5,early,9,,,,\n"  # early: never selected
    + "2026Q1,net_sales_total,177100,LSEG,2026-04-30,https://b/6,pre-report,3,,181519,,\n"  # after the report day
)


def test_selection_takes_the_most_confirmed_then_the_latest_up_to_the_report_day(tmp_path):
    book = ConsensusBook(read_consensus(write(tmp_path, SELECTION), METRICS))
    # no report day given: the first page printing the outcome (line 7, 2026-04-30) sets it
    assert book.report_day(pd.Timestamp("2026-03-31")) == pd.Timestamp("2026-04-30")
    s = book.select()
    assert s[["value", "line", "candidates"]].iloc[0].tolist() == [177100, 7, 4]
    # the release was on 2026-04-29: line 7 (printed the day after) is out, and among lines 2-4
    # (two confirmations each) the latest, line 4, wins; the flagged and the early row never count
    s = book.with_report_days({"2026-03-31": "2026-04-29"}).select()
    assert s[["value", "line", "candidates", "low", "high"]].iloc[0].tolist() == [177200, 4, 3, 176500, 177200]


def test_ties_in_confirmations_and_date_go_to_the_provider_order(tmp_path):
    text = ("2026Q1,net_sales_total,177000,Zacks,2026-04-28,https://a/1,pre-report,1,,,,\n"
            "2026Q1,net_sales_total,177300,FactSet,2026-04-28,https://a/2,pre-report,1,,,,\n")
    assert ConsensusBook(read_consensus(write(tmp_path, text))).select()["value"].tolist() == [177300]


def test_nothing_published_after_a_day_reaches_the_book_at_that_day(tmp_path):
    book = ConsensusBook(read_consensus(write(tmp_path, SELECTION), METRICS))
    day = pd.Timestamp("2026-04-27")
    seen = book.at(day)
    assert seen.asof == day and (seen.rows["published"] <= day).all()
    assert sorted(seen.rows["line"]) == [3, 5, 6]
    # the estimate the book holds on 2026-04-27 is the only unflagged pre-report row it had then
    assert seen.select()["value"].tolist() == [176500]
    assert book.at("2026-02-01").select().empty  # nothing pre-report before the quarter ended


def test_at_a_past_day_the_shipped_book_holds_no_later_page():
    book = profile_consensus(shipped_profile("amazon"))
    day = pd.Timestamp("2024-02-01")  # the 2023Q4 release
    seen = book.at(day)
    assert len(seen.rows) < len(book.rows) and seen.rows["published"].max() <= day
    picked = seen.select()
    assert picked["published"].max() <= day
    assert pd.Timestamp("2024-03-31") not in set(picked["ds"])  # 2024Q1 pre-report pages come later


def test_the_profile_names_the_file_and_its_splits(tmp_path):
    p = profile_from_dict({"name": "acme", "data": "q.csv",
                           "consensus": {"file": "acme_consensus.csv",
                                         "splits": [{"effective": "2020-01-02", "ratio": 4}]}}, base=tmp_path)
    assert p.consensus == (tmp_path / "acme_consensus.csv").resolve()
    assert p.splits == (Split(pd.Timestamp("2020-01-02"), 4.0),)
    from features.profile import ProfileError

    with pytest.raises(ProfileError, match="consensus.splits"):
        profile_from_dict({"name": "acme", "data": "q.csv",
                           "consensus": {"file": "x.csv", "splits": [{"effective": "2020-01-02", "ratio": 0}]}})
    with pytest.raises(ProfileError, match="did you mean 'file'"):
        profile_from_dict({"name": "acme", "data": "q.csv", "consensus": {"fil": "x.csv"}})


def test_another_company_file_in_the_same_shape_just_works(tmp_path):
    (tmp_path / "series.csv").write_text("metric,model_from,nonnegative,description\nrevenue,2020Q1,true,x\n")
    path = tmp_path / "acme_consensus.csv"
    path.write_text(HEADER + "FY2026Q1,revenue,1000,x,2025-05-20,https://a,pre-report,0,,,,\n"
                             "FY2026Q1,eps_diluted,0.5,x,2025-05-20,https://a,pre-report,0,,,,\n")
    book = load_consensus(path, year_end_month=1)  # fiscal year ending in January: Q1 ends 2025-04-30
    assert set(book.rows["ds"]) == {pd.Timestamp("2025-04-30")}
    with pytest.raises(DataValidationError, match="unknown metric 'net_sales_total'"):
        path.write_text(HEADER + "FY2026Q1,net_sales_total,1000,x,2025-05-20,https://a,pre-report,0,,,,\n")
        load_consensus(path, year_end_month=1)
