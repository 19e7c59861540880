"""A universe of the shipped companies, a synthetic one and a broken one (small configurations):
the same numbers in one process and on a 2-worker dask.distributed LocalCluster, the broken
company reported without stopping the others, one MLflow parent run with a child per company."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from experiments.benchmarks.universe_scale import synthetic_universe
from experiments.cli import main
from experiments.universe import BASELINE, log_universe, read_universe, run_universe

SMALL = {"h": 2, "windows": 2, "warmup": 0, "model": "AutoETS", "rollup": True, "rollup_windows": 2,
         "rollup_candidates": ["AutoETS", "SeasonalNaive"], "rollup_cutoffs": 8}


@pytest.fixture(scope="module", autouse=True)
def no_cache():
    """Every fit computed, none read from the data-vintage cache: the cluster's numbers must not
    be the one-process run's read back (the workers inherit the environment)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FCF_CACHE", "0")
        yield


@pytest.fixture(scope="module")
def universe_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("universe")
    synthetic_universe(root / "syn", 1, seed=11)  # one segment: a small tree
    broken = root / "broken.yaml"
    broken.write_text(yaml.safe_dump({"name": "broken", "data": "no_such_file.csv"}))
    path = root / "universe.yaml"
    path.write_text(yaml.safe_dump({"name": "test", "settings": SMALL, "companies": [
        {"name": "amazon", "settings": {"rollup": False}}, "snowflake",
        {"path": "syn/syn0000.yaml", "settings": {"rollup": False}}, {"path": "broken.yaml"}]}))
    return path


@pytest.fixture(scope="module")
def local(universe_file):
    return run_universe(universe_file)


def test_one_process_scores_every_company_and_reports_the_broken_one(local):
    assert [o.label for o in local.outcomes] == ["amazon", "snowflake", "syn0000", "broken"]
    assert [o.label for o in local.failures] == ["broken"] and "no_such_file.csv" in local.failures[0].error
    for kind in ("revenue", "operating_income", "ocf", "capex", "fcf"):
        table = local.leaderboards[kind]
        assert list(table["company"]) == ["amazon", "snowflake", "syn0000", "universe (geometric mean)"]
        assert (table["model"].iloc[:-1] == "AutoETS").all() and (table["mase_seasonal_naive"].iloc[:-1] > 0).all()
    assert set(local.rollup["company"]) == {"snowflake"}  # the others' own settings: no roll-up (test time)
    naive = local.rollup[local.rollup["model"] == BASELINE]
    assert (naive["rel_mase"] - 1).abs().max() < 1e-12


def test_a_local_cluster_gives_the_same_numbers(universe_file, local):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        remote = run_universe(universe_file, engine=client)
    assert remote.engine.startswith("dask client")
    assert [o.error == "" for o in remote.outcomes] == [o.error == "" for o in local.outcomes]
    for kind, table in local.leaderboards.items():
        pd.testing.assert_frame_equal(remote.leaderboards[kind], table, rtol=1e-9)
    pd.testing.assert_frame_equal(remote.rollup, local.rollup, rtol=1e-9)


def test_one_parent_run_with_a_child_per_company(local, tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent = log_universe(local, uri)
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(parent)
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{parent}'")
    status = {c.info.run_name: c.info.status for c in children}
    assert status == {"amazon": "FINISHED", "snowflake": "FINISHED", "syn0000": "FINISHED", "broken": "FAILED"}
    assert run.data.metrics["rel_mase.fcf.gmean"] == pytest.approx(local.leaderboards["fcf"]["rel_mase"].iloc[-1])


def test_a_bad_universe_file_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "u.yaml"
    bad.write_text(yaml.safe_dump({"companies": ["amazon", "nosuchco"]}))
    with pytest.raises(Exception, match=r"companies\[1\]"):
        read_universe(bad)
    assert main(["universe", str(bad), "--no-track"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "u.yaml, key companies[1]" in err[0]


def test_synthetic_companies_have_the_shapes_of_real_ones(tmp_path):
    from features.loader import load_quarterly

    uni = read_universe(synthetic_universe(tmp_path, 6, seed=0))
    sizes, negative = [], 0
    for e in uni.entries:
        df = load_quarterly(str(tmp_path / e.label / "quarterly.csv"))
        sizes.append(df["unique_id"].nunique())
        fcf = df[df["unique_id"] == "free_cash_flow"]["y"].to_numpy()
        ocf = df[df["unique_id"] == "operating_cash_flow"].set_index("ds")["y"]
        capex = df[df["unique_id"] == "capex"].set_index("ds")["y"]
        assert abs(fcf - (ocf - capex).to_numpy()).max() < 1e-9
        negative += bool((fcf < 0).any())
    assert min(sizes) >= 5 and max(sizes) <= 19 and len(set(sizes)) > 1 and negative >= 1


def test_the_benchmark_refuses_bad_sizes(capsys):
    assert main(["benchmark", "universe", "--companies", "fifty"]) == 2
    assert "--companies" in capsys.readouterr().err
