"""The loader on the shipped Amazon data, and the accounting identities that data must obey.

Every number asserted here is one printed by Amazon (quoted in data/SOURCES.md) or an
identity between reported lines; the documented basis differences are asserted to be
exactly the documented ones, so a new exception fails the suite.
"""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from features.loader import (
    data_vintage,
    load_quarterly,
    read_annual,
    read_quarterly,
    read_series_config,
    shipped_data_dir,
)
from features.aggregates import trailing_twelve_months

SEGMENTS = ("north_america", "international", "aws")
NET_CAPEX = "purchases_of_property_and_equipment_net_of_proceeds"
#: Amazon's reported quarters may differ from the fiscal-year total by rounding (SOURCES.md).
ROUNDING = 2.0


@pytest.fixture(scope="module")
def quarterly() -> pd.DataFrame:
    return load_quarterly()


@pytest.fixture(scope="module")
def all_rows() -> pd.DataFrame:
    """Every validated quarterly row (also before model_from), wide: period x metric."""
    return read_quarterly().pivot(index="period", columns="metric", values="y")


@pytest.fixture(scope="module")
def annual() -> pd.DataFrame:
    a = read_annual()
    a["year"] = a["period"].dt.year
    return a.pivot(index="year", columns="metric", values="y")


def _raw_rows(name: str) -> list[dict[str, str]]:
    with open(shipped_data_dir() / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- loader contract
def test_every_modelled_series_is_loaded_from_its_model_from(quarterly):
    config = read_series_config()
    assert list(quarterly.columns) == ["unique_id", "ds", "y"]
    assert set(quarterly["unique_id"]) == set(config.modelled)
    assert len(config.modelled) == 20
    first = quarterly.groupby("unique_id")["ds"].min()
    for metric in config.modelled:
        assert pd.Period(first[metric], freq="Q") == config.model_from[metric], metric
    assert "principal_repayments_of_financing_obligations" not in set(quarterly["unique_id"])


def test_ds_are_gap_free_quarter_ends_and_y_is_float(quarterly):
    assert pd.api.types.is_datetime64_any_dtype(quarterly["ds"])
    assert quarterly["y"].dtype == np.float64
    assert np.isfinite(quarterly["y"]).all()
    assert quarterly["ds"].dt.is_quarter_end.all()
    assert (quarterly["ds"] == quarterly["ds"].dt.normalize()).all()
    assert not quarterly.duplicated(["unique_id", "ds"]).any()
    for uid, g in quarterly.groupby("unique_id"):
        expected = pd.date_range(g["ds"].min(), g["ds"].max(), freq="QE")
        assert list(g["ds"]) == list(expected), f"{uid} has a hole or is unsorted"
    # every series ends at the newest reported quarter
    assert quarterly.groupby("unique_id")["ds"].max().eq(pd.Timestamp("2026-06-30")).all()


def test_loader_finds_the_shipped_data_from_any_working_directory(tmp_path, monkeypatch, quarterly):
    monkeypatch.delenv("FCF_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert (shipped_data_dir() / "amzn_quarterly.csv").is_file()
    pd.testing.assert_frame_equal(load_quarterly(), quarterly)
    assert len(read_annual()) > 0


def test_fcf_data_dir_overrides_the_shipped_folder(tmp_path, monkeypatch):
    (tmp_path / "amzn_quarterly.csv").write_text(
        "metric,fiscal_quarter,period_end,value_musd\n"
        + "".join(f"widgets,2024Q{q},{e},{v}\n" for q, e, v in
                  [(1, "2024-03-31", 1), (2, "2024-06-30", 2), (3, "2024-09-30", 3)])
    )
    monkeypatch.setenv("FCF_DATA_DIR", str(tmp_path))
    assert shipped_data_dir() == tmp_path
    assert load_quarterly()["y"].tolist() == [1.0, 2.0, 3.0]


def test_series_selection_keeps_only_the_named_series():
    df = load_quarterly(series=["net_sales_aws", "free_cash_flow"])
    assert set(df["unique_id"]) == {"net_sales_aws", "free_cash_flow"}
    assert df.groupby("unique_id").size().to_dict() == {"free_cash_flow": 70, "net_sales_aws": 46}


# --------------------------------------------------------------------------- TTM
def test_ttm_fcf_is_the_rolling_four_quarter_sum(quarterly):
    df = load_quarterly(include_ttm=True)
    ttm = df[df["unique_id"] == "free_cash_flow_ttm"].set_index("ds")["y"]
    fcf = quarterly[quarterly["unique_id"] == "free_cash_flow"].set_index("ds")["y"]
    expected = fcf.rolling(4).sum().dropna()
    pd.testing.assert_series_equal(ttm, expected, check_names=False)
    assert len(ttm) == len(fcf) - 3
    # the quarterly series themselves are unchanged
    pd.testing.assert_frame_equal(
        df[df["unique_id"] != "free_cash_flow_ttm"].reset_index(drop=True), quarterly
    )


def test_include_ttm_also_works_with_a_series_selection():
    df = load_quarterly(series=["free_cash_flow", "net_sales_aws"], include_ttm=True)
    assert set(df["unique_id"]) == {"free_cash_flow", "free_cash_flow_ttm", "net_sales_aws"}
    df = load_quarterly(series=["free_cash_flow_ttm"], include_ttm=True)
    assert set(df["unique_id"]) == {"free_cash_flow_ttm"} and len(df) == 67


@pytest.mark.parametrize(
    ("series", "quarter_end", "printed", "tolerance"),
    [
        # Q4 2019 release: TTM FCF $25.8B and TTM operating cash flow $38.5B (SOURCES.md)
        ("free_cash_flow", "2019-12-31", 25_800, 50),
        ("operating_cash_flow", "2019-12-31", 38_500, 50),
        # FY2018 FCF $19.4B
        ("free_cash_flow", "2018-12-31", 19_400, 50),
        # FY2024: FCF 38,219 = 115,877 - (82,999 - 5,341); OCF 115,877
        ("free_cash_flow", "2024-12-31", 38_219, 0),
        ("operating_cash_flow", "2024-12-31", 115_877, 0),
        (NET_CAPEX, "2024-12-31", 82_999 - 5_341, 0),
    ],
)
def test_ttm_matches_values_amazon_printed(series, quarter_end, printed, tolerance):
    df = load_quarterly(series=[series + "_ttm"])
    assert set(df["unique_id"]) == {series + "_ttm"}
    value = df.loc[df["ds"] == pd.Timestamp(quarter_end), "y"].item()
    assert abs(value - printed) <= tolerance, f"TTM {series} at {quarter_end}: {value} vs {printed}"


def test_ttm_needs_four_present_quarters():
    df = pd.DataFrame({"unique_id": "x", "ds": pd.date_range("2020-03-31", periods=5, freq="QE"),
                       "y": [1.0, 2.0, 3.0, 4.0, 5.0]})
    assert trailing_twelve_months(df, "x")["y"].tolist() == [10.0, 14.0]
    with pytest.raises(ValueError, match="series 'nope' is not in the frame"):
        trailing_twelve_months(df, "nope")


# --------------------------------------------------------------------------- provenance
def test_every_shipped_row_keeps_a_source():
    for name in ("amzn_quarterly.csv", "amzn_annual.csv"):
        rows = _raw_rows(name)
        assert rows and "source" in rows[0], f"{name} lost its source column"
        empty = [i + 2 for i, r in enumerate(rows) if not (r["source"] or "").strip()]
        assert not empty, f"{name}: rows without a source on lines {empty[:10]}"


def test_secondary_rows_are_exactly_those_from_the_secondary_sources():
    """SOURCES.md marks sources 8, 12, 13 and 14 SECONDARY; their rows must stay marked."""
    marked = {(r["metric"], r["fiscal_quarter"]) for r in _raw_rows("amzn_quarterly.csv")
              if "secondary" in r["source"].lower()}
    q = lambda a, b: [str(p) for p in pd.period_range(a, b, freq="Q")]  # noqa: E731
    aws = ("net_sales_aws", "operating_income_aws")
    expected = set()
    expected |= {(m, p) for m in aws for p in q("2019Q4", "2022Q4")}  # source 8
    expected |= {(m, p) for m in ("net_sales_north_america", "net_sales_international", *aws)
                 for p in ("2016Q2", "2016Q3", "2017Q3")}  # source 12
    groups = ("online_stores", "physical_stores", "third_party_seller_services",
              "subscription_services", "advertising", "other")
    expected |= {(f"net_sales_{g}", "2025Q4") for g in groups}  # source 13
    expected |= {(m, p) for m in aws for p in ("2016Q1", "2016Q4", "2017Q1", "2017Q2", "2017Q4",
                                               "2018Q1", "2018Q2", "2018Q4")}  # source 14
    assert marked == expected
    assert not any("secondary" in r["source"].lower() for r in _raw_rows("amzn_annual.csv"))


def test_data_vintage_identifies_the_file():
    v = data_vintage()
    assert v.data_last_quarter == "2026Q2"
    assert len(v.data_sha256) == 64
    assert v.vintage == f"2026Q2-{v.data_sha256[:12]}"


# --------------------------------------------------------------------------- identities
@pytest.mark.parametrize(("kind", "n_quarters"), [("net_sales", 42), ("operating_income", 39)])
def test_segments_sum_to_the_total_in_every_quarter(all_rows, kind, n_quarters):
    """NA + International + AWS = total, wherever all three segments exist.

    2014 segment operating income is excluded: the 2015 recast of 2014 (source 7) reports
    segment OI before stock-based compensation and "other operating expense", which are not
    allocated to segments, so it does not sum to total OI. The excluded gap is checked too.
    """
    parts = all_rows[[f"{kind}_{s}" for s in SEGMENTS]]
    total = all_rows[f"{kind}_total"]
    both = parts.notna().all(axis=1) & total.notna()
    gap = parts[both].sum(axis=1) - total[both]
    checked = gap.index
    if kind == "operating_income":
        pre_sbc = gap.index.year == 2014
        assert pre_sbc.sum() == 4
        assert (gap[pre_sbc] > 0).all(), "pre-SBC segment OI must exceed total OI"
        gap = gap[~pre_sbc]
    assert len(checked) == n_quarters  # the gaps SOURCES.md lists are the only ones
    assert gap.abs().max() <= ROUNDING, gap[gap.abs() > ROUNDING].to_dict()
    # the segment quarters start in 2014 (recast) and run to the newest quarter
    assert str(checked.min()) == "2014Q1" and str(checked.max()) == "2026Q2"


def test_product_groups_sum_to_total_net_sales(all_rows):
    groups = ["online_stores", "physical_stores", "third_party_seller_services",
              "subscription_services", "advertising", "aws", "other"]
    parts = all_rows[[f"net_sales_{g}" for g in groups]].dropna()
    assert len(parts) == 14
    gap = parts.sum(axis=1) - all_rows.loc[parts.index, "net_sales_total"]
    assert gap.abs().max() <= ROUNDING


def test_fcf_is_operating_cash_flow_minus_net_capex(all_rows, annual):
    for frame, label in ((all_rows, "quarter"), (annual, "year")):
        cols = ["operating_cash_flow", NET_CAPEX, "free_cash_flow"]
        w = frame[cols]
        assert w.notna().all(axis=1).all(), f"a {label} lacks one of {cols}"
        gap = w["operating_cash_flow"] - w[NET_CAPEX] - w["free_cash_flow"]
        assert (gap == 0).all(), f"FCF identity fails in {label}s {gap[gap != 0].index.tolist()}"
    assert len(all_rows["free_cash_flow"].dropna()) == 70
    assert len(annual["free_cash_flow"].dropna()) == 17


def test_net_capex_is_gross_purchases_minus_proceeds(all_rows):
    gross = all_rows["purchases_of_property_and_equipment"].dropna()
    assert str(gross.index.min()) == "2017Q3"
    net = gross - all_rows.loc[gross.index, "proceeds_from_property_and_equipment_sales_and_incentives"]
    assert (net == all_rows.loc[gross.index, NET_CAPEX]).all()


def test_annual_segments_sum_to_the_annual_total(annual):
    """The annual file has FY2014-16 on the recast after-SBC basis, so every year sums."""
    for kind in ("net_sales", "operating_income"):
        parts = annual[[f"{kind}_{s}" for s in SEGMENTS]].dropna()
        assert parts.index.min() == 2014
        gap = parts.sum(axis=1) - annual.loc[parts.index, f"{kind}_total"]
        assert (gap == 0).all(), f"{kind}: {gap[gap != 0].to_dict()}"


def _quarter_sums(all_rows: pd.DataFrame, annual: pd.DataFrame) -> pd.DataFrame:
    """Per metric and fiscal year with four reported quarters: annual value, quarter sum, gap."""
    years = all_rows.groupby(all_rows.index.year)
    sums, counts = years.sum(min_count=1), years.count()
    rows = []
    for metric in annual.columns:
        if metric not in sums.columns:
            continue
        for year, value in annual[metric].dropna().items():
            if counts[metric].get(year, 0) == 4:
                total = sums.loc[year, metric]
                rows.append((metric, year, value, total, total - value))
    return pd.DataFrame(rows, columns=["metric", "year", "annual", "quarters", "gap"])


def test_quarters_sum_to_the_fiscal_year(all_rows, annual):
    """Four reported quarters add up to the annual file's fiscal year within rounding.

    The one documented exception (SOURCES.md, "Definition and basis notes"): FY2014 segment
    operating income. The quarterly 2014 recast is before SBC and other operating expense;
    the annual FY2014 values (10-K FY2016) are after them. Exactly those three cells differ,
    and together by exactly the amount by which the 2014 quarterly segments exceed total OI.
    """
    sums = _quarter_sums(all_rows, annual)
    assert len(sums) >= 150
    off = sums[sums["gap"].abs() > ROUNDING]
    assert set(zip(off["metric"], off["year"])) == {
        (f"operating_income_{s}", 2014) for s in SEGMENTS
    }, off.to_string()
    q2014 = all_rows.loc[all_rows.index.year == 2014]
    unallocated = (q2014[[f"operating_income_{s}" for s in SEGMENTS]].sum(axis=1)
                   - q2014["operating_income_total"]).sum()
    assert off["gap"].sum() == unallocated == 1630
    # the operating cash flow restatements are consistent between the files: 2015 as
    # originally reported, 2016 on the ASU 2016-09 basis, 2017 on the ASU 2016-18 basis
    ocf = sums[sums["metric"] == "operating_cash_flow"].set_index("year")
    assert ocf.loc[[2015, 2016, 2017], "gap"].abs().max() <= 1


def test_documented_operating_cash_flow_basis(annual):
    """SOURCES.md: FY2015 as originally reported (not the FY2017 10-K's 12,039), FY2016 on
    the ASU 2016-09 basis (not the FY2018 10-K's 17,203), FY2017 on the restricted-cash basis,
    so FY2017 FCF is 8,307 (8,376 on the originally reported OCF of 18,434)."""
    ocf, fcf, capex = annual["operating_cash_flow"], annual["free_cash_flow"], annual[NET_CAPEX]
    assert ocf[2015] != 12_039
    assert ocf[2016] != 17_203
    assert fcf[2017] == 8_307
    assert 18_434 - capex[2017] == 8_376
    assert annual.loc[2024, ["net_sales_total", "operating_income_total", "operating_cash_flow",
                             "free_cash_flow"]].tolist() == [637_959, 68_593, 115_877, 38_219]


def test_ttm_needs_four_consecutive_quarters():
    """Bug caught (review): a rolling sum over rows made a 'TTM' across a missing quarter."""
    from features.aggregates import trailing_twelve_months

    ds = pd.date_range("2020-03-31", periods=8, freq="QE").delete(3)  # 2020Q4 missing
    df = pd.DataFrame({"unique_id": "x", "ds": ds, "y": np.arange(1.0, 8.0)})
    t = trailing_twelve_months(df, "x")
    # 2021Q1-Q4 is the only run of four consecutive quarters (y = 4, 5, 6, 7)
    assert list(t["ds"].dt.strftime("%Y-%m-%d")) == ["2021-12-31"]
    assert list(t["y"]) == [22.0]
