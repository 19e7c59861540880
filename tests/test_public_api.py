"""The public surface: ``import forecasting as fc`` is cheap, lazy, and gives the numbers the
module functions give (`fcf rollup`'s loading recipe included)."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

import forecasting as fc
from features.guidance import guidance_files, load_guidance_files
from features.loader import load_quarterly
from forecasting.rollup.paths import rollup
from tests.test_rollup import AMAZON, SMALL


def test_every_public_name_resolves_and_is_listed():
    for name in fc.__all__:
        assert getattr(fc, name) is not None, name
    assert set(fc.__all__) <= set(dir(fc))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        fc.nope


def test_import_forecasting_loads_no_heavy_library():
    code = ("import sys, forecasting\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('pandas', 'numpy', 'statsforecast', 'mlforecast', 'sklearn', 'lightgbm', 'mlflow'))\n"
            "print(heavy[:5])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_fcf_help_loads_no_model_or_tracking_library():
    """Building the ``fcf`` parser (``fcf --help``, a typo's usage line) imports no model library
    and not MLflow: they cost seconds (statsforecast brings statsmodels and dask)."""
    code = ("import sys, experiments.cli as c\nc.build_parser()\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('statsforecast', 'mlforecast', 'sklearn', 'lightgbm', 'mlflow', 'statsmodels', 'dask'))\n"
            "print(heavy[:5])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_the_registry_is_full_through_the_public_names():
    listed = fc.models()
    assert len(listed) >= 39 and listed["SeasonalNaive"] == "baseline" and listed["GuidedFoster"] == "guided"
    assert list(fc.models("guided")) == [n for n, f in listed.items() if f == "guided"]
    assert fc.get_spec("AutoETS").name == "AutoETS"


def test_load_company_reads_what_fcf_rollup_reads():
    company = fc.load_company("amazon")
    assert company.name == "amazon" and company.profile == AMAZON
    pd.testing.assert_frame_equal(company.data, load_quarterly(str(AMAZON.data)))
    book = load_guidance_files(guidance_files(AMAZON, None, "auto"), None, AMAZON.fiscal_year_end_month)
    assert company.guidance.fingerprint() == book.fingerprint()
    assert company.consensus is not None  # Amazon's profile names a consensus file
    assert fc.load_company(AMAZON.path, guidance=False).profile == AMAZON  # a profile YAML path


def test_an_unfitted_rollup_says_fit_first():
    r = fc.Rollup(fc.load_company("amazon", consensus=False), SMALL)
    assert r.config is SMALL and not hasattr(r, "pipeline_")
    with pytest.raises(fc.NotFittedError, match=r"call \.fit\(\) first"):
        r.forecast()


@pytest.mark.slow
def test_rollup_object_gives_the_numbers_of_the_functions():
    company = fc.load_company("amazon")
    model = fc.Rollup(company, SMALL).fit()
    assert model.config_.first_cutoff == SMALL.first_cutoff
    assert model.config_.extra == ("net_sales_advertising",)  # the profile's revenue category
    ours = model.forecast()
    theirs = rollup(company.data, AMAZON, model.config_, company.guidance)
    pd.testing.assert_frame_equal(ours.quarterly, theirs.quarterly)
    pd.testing.assert_frame_equal(ours.ttm, theirs.ttm)
    assert ours.params == theirs.params
    plain = rollup(company.data, AMAZON, SMALL, company.guidance)  # the category changes no FCF number
    pd.testing.assert_frame_equal(ours.ttm, plain.ttm)
    # the fitted pipeline answers a scenario file with a revenue-category driver (advertising
    # growth: its series is forecast on top of the fitted pipeline) as run_scenarios does
    from forecasting.scenarios.run import run_scenarios

    bull = AMAZON.scenarios[0]
    assert bull.name == "bull.yaml" and "advertising_growth" in bull.read_text()
    mine = model.scenarios([bull])
    direct = run_scenarios(company.data, AMAZON, [bull], h=SMALL.h, config=model.config_, guidance=company.guidance)
    pd.testing.assert_frame_equal(mine.table(), direct.table())
    ttm = mine.table().query("unique_id == 'free_cash_flow_ttm'").pivot(index="ds", columns="scenario", values="mean")
    assert (ttm["bull"] != ttm["base"]).all()
