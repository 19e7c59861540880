"""MLflow tracking of backtests, against a real server and the embedded SQLite default."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from experiments import tracking
from experiments.track_backtest import RunContext, log_backtest


@pytest.fixture(scope="module")
def local_store_cwd(tmp_path_factory):
    """One working directory, so one ./mlflow.db, for this module's local-store tests (creating
    an MLflow SQLite store runs its ~50 schema migrations: 5-15 s on a busy machine)."""
    path = tmp_path_factory.mktemp("local_store")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(path)
        for var in ("MLFLOW_TRACKING_URI", "MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
            mp.setenv(var, "")
            mp.delenv(var)
        yield path


def _read_back(uri: str, parent_id: str, bt, config):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    parent = client.get_run(parent_id)
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
                                  order_by=["attributes.start_time ASC"])
    return client, parent, children


def _check_logged(uri: str, parent_id: str, bt, history, config):
    from forecasting.core.metrics import leaderboard, pointwise

    client, parent, children = _read_back(uri, parent_id, bt, config)
    models = {c.info.run_name: c for c in children}
    assert set(models) == {"SeasonalNaive", "Naive", "AutoETS"}
    assert children[0].info.run_name == "SeasonalNaive", "the baseline child run comes first"
    assert all(c.info.status == "FINISHED" for c in children) and parent.info.status == "FINISHED"
    # params: the backtest config and the model spec
    ets = models["AutoETS"]
    assert ets.data.params["h"] == str(config.h) and ets.data.params["n_windows"] == str(config.n_windows)
    assert ets.data.params["family"] == "statistical" and ets.data.params["model.season_length"] == "4"
    assert ets.data.metrics["fallback_share"] == 0.0  # three long series: AutoETS always fits
    assert parent.data.params["warmup_windows"] == str(config.warmup_windows)
    # tags: vintage, version, best run
    from features.loader import data_vintage

    vintage = data_vintage()
    assert parent.data.tags["vintage"] == vintage.vintage
    # what a person comparing runs sees in the MLflow UI: a model-training experiment (the runs
    # table, not the GenAI overview), a parent named by data vintage, models and settings, and
    # the data as every run's dataset input
    exp = client.get_experiment(parent.info.experiment_id)
    assert exp.tags[tracking.EXPERIMENT_KIND_TAG] == tracking.MODEL_TRAINING == "custom_model_development"
    name = parent.info.run_name
    assert name.startswith("backtest ") and vintage.vintage[:15] in name and f"h{config.h}" in name
    assert set(name.split()[1].split("+")) == {"Naive", "AutoETS"} and f"w{config.n_windows}" in name
    for run in (parent, ets):
        [inp] = client.get_run(run.info.run_id).inputs.dataset_inputs
        assert inp.dataset.name == f"amzn_quarterly@{vintage.vintage}"
        assert inp.dataset.digest == vintage.data_sha256[:12] and inp.dataset.source_type == "local"
        assert "amzn_quarterly.csv" in inp.dataset.source
        assert {t.key: t.value for t in inp.tags}["mlflow.data.context"] == "training"
    assert parent.data.tags["fcf_version"] == tracking.library_version() != "unknown"
    board = leaderboard(pointwise(bt, history))
    best = board["model"].iloc[0]
    assert parent.data.tags["best_run"] == models[best].info.run_id
    assert np.isclose(models[best].data.metrics["gm_rel_mase"], board["gm_rel_mase"].iloc[0])
    # a per-series metric history with the horizon as step
    hist = client.get_metric_history(ets.info.run_id, "mase.net_sales_aws")
    assert sorted(m.step for m in hist) == list(range(1, config.h + 1))
    points = pointwise(bt, history)
    p = points[(points["model"] == "AutoETS") & (points["unique_id"] == "net_sales_aws")]
    expected = p.groupby("step")["ase"].mean()
    got = {m.step: m.value for m in hist}
    assert np.allclose([got[s] for s in expected.index], expected.to_numpy())
    rel = client.get_metric_history(ets.info.run_id, "rel_mase")
    assert sorted(m.step for m in rel) == list(range(1, config.h + 1))
    # artifacts on the parent
    top = {f.path for f in client.list_artifacts(parent_id)}
    assert {"backtest.csv", "pointwise.csv", "leaderboard.md", "leaderboard.html", "plots"} <= top
    pngs = {f.path for f in client.list_artifacts(parent_id, "plots")}
    assert pngs == {f"plots/{s}.png" for s in bt["unique_id"].unique()}
    md = Path(client.download_artifacts(parent_id, "leaderboard.md")).read_text()
    assert "SeasonalNaive" in md and "AutoETS" in md and "Per horizon" in md


@pytest.mark.slow
def test_log_backtest_to_real_server(mlflow_server, small_backtest, isolated_cwd):
    bt, history, config = small_backtest
    assert tracking.check_tracking_server(mlflow_server) == mlflow_server
    parent_id = log_backtest(bt, history, config, RunContext(experiment="test-server", uri=mlflow_server))
    _check_logged(mlflow_server, parent_id, bt, history, config)
    assert not (isolated_cwd / "mlflow.db").exists(), "a server run must not write the local store"


def test_log_backtest_to_local_sqlite_default(small_backtest, local_store_cwd):
    bt, history, config = small_backtest
    uri = tracking.tracking_uri()
    assert uri == f"sqlite:///{local_store_cwd.resolve() / 'mlflow.db'}"
    parent_id = log_backtest(bt, history, config, RunContext(experiment="amazon-backtest"))
    assert (local_store_cwd / "mlflow.db").is_file()
    assert any((local_store_cwd / "mlartifacts").rglob("leaderboard.html"))
    _check_logged(uri, parent_id, bt, history, config)


def test_unreachable_server_fails_fast(closed_port_uri):
    t0 = time.monotonic()
    with pytest.raises(tracking.TrackingError, match=closed_port_uri.replace(".", r"\.")):
        tracking.check_tracking_server(closed_port_uri, timeout_s=2)
    assert time.monotonic() - t0 < 5


def test_unroutable_server_times_out_within_budget():
    # 10.255.255.1 is a non-routed private address: the connection hangs until the timeout
    t0 = time.monotonic()
    with pytest.raises(tracking.TrackingError, match="10.255.255.1"):
        tracking.check_tracking_server("http://10.255.255.1:5000", timeout_s=1.5)
    assert time.monotonic() - t0 < 4


@pytest.mark.parametrize("status, reachable", [(401, True), (503, False), (404, False)])
def test_server_status_codes(status, reachable, isolated_cwd):
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server naming)
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    uri = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        if reachable:  # up but asking for credentials: MLflow's client will send them
            assert tracking.check_tracking_server(uri, timeout_s=2) == uri
        else:
            with pytest.raises(tracking.TrackingError, match=f"HTTP {status}"):
                tracking.check_tracking_server(uri, timeout_s=2)
    finally:
        server.shutdown()
        server.server_close()


def test_tracking_uri_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://example.invalid:5000")
    assert tracking.tracking_uri() == "http://example.invalid:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert tracking.tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"


def test_log_batch_chunks_within_mlflow_limits(local_store_cwd):
    client = tracking.get_client()
    calls = []
    real = client.log_batch

    def counting(run_id, metrics=(), params=(), tags=()):  # the real call, counted
        calls.append((len(metrics), len(params), len(tags)))
        return real(run_id, metrics=metrics, params=params, tags=tags)

    client.log_batch = counting
    run_id = tracking.start_run(client, tracking.experiment_id(client, "chunks"), "chunks")
    metrics = [("m", float(i), i) for i in range(2300)] + [("nan", float("nan"), 0)]
    n = tracking.log_batch(client, run_id, metrics, params={f"p{i}": i for i in range(150)}, tags={"t": 1})
    assert n == len(calls) == 3
    assert all(sum(c) <= 1000 and c[1] <= 100 and c[2] <= 100 for c in calls)
    assert len(client.get_metric_history(run_id, "m")) == 2300
    run = client.get_run(run_id)
    assert len(run.data.params) == 150 and "nan" not in run.data.metrics


def test_run_tags_have_vintage_version_and_commit():
    tags = tracking.run_tags()
    assert {"vintage", "data_sha256", "data_last_quarter", "fcf_version"} <= set(tags)
    commit = tracking.git_commit()
    assert commit is None or tags["git_commit"] == commit


def test_run_names_tell_two_runs_apart():
    from features.loader import data_vintage

    v = data_vintage()
    a = tracking.run_name("backtest", v, ["SeasonalNaive", "StatsMLCombo"], h=4, w=12)
    b = tracking.run_name("backtest", v, ["SeasonalNaive", "AutoCombo"], h=4, w=12)
    c = tracking.run_name("backtest", v, ["SeasonalNaive", "StatsMLCombo"], h=8, w=12)
    assert len({a, b, c}) == 3
    assert a == f"backtest StatsMLCombo h4 w12 {v.vintage[:15]}"
    many = tracking.run_name("backtest", "2026Q2-abcdef123456", [f"M{i}" for i in range(9)], h=4)
    assert many == "backtest M0+M1+7 more h4 2026Q2-abcdef12"
    assert tracking.runs_url("http://host:5000/", "3") == (
        "http://host:5000/#/experiments/3/runs?workflowType=machine_learning")


def test_an_existing_experiment_is_marked_as_model_training(local_store_cwd):
    client = tracking.get_client()
    exp_id = client.create_experiment("old-kind")  # as an earlier version created it: no kind tag
    assert tracking.EXPERIMENT_KIND_TAG not in client.get_experiment(exp_id).tags
    assert tracking.experiment_id(client, "old-kind") == exp_id
    assert client.get_experiment(exp_id).tags[tracking.EXPERIMENT_KIND_TAG] == tracking.MODEL_TRAINING


def test_a_run_group_that_raises_leaves_the_parent_and_its_children_failed(tmp_path):
    """Every logger (backtest, roll-up, scenarios, claims, benchmarks) opens its runs through
    `run_group`. Catches a failure half-way leaving runs RUNNING forever in the UI, or a
    successful group left unfinished."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = tracking.get_client(uri)
    exp_id = tracking.experiment_id(client, "run-group")
    with pytest.raises(RuntimeError, match="half-way"):
        with tracking.run_group(client, exp_id, "broken", tags={"run_kind": "test"}) as group:
            done = group.child("done")
            tracking.end_run(client, done)
            running = group.child("running")
            raise RuntimeError("half-way")
    read = MlflowClient(uri)
    assert {r: read.get_run(r).info.status for r in (group.parent, done, running)} == dict.fromkeys(
        (group.parent, done, running), "FAILED")
    assert read.get_run(running).data.tags["mlflow.parentRunId"] == group.parent
    with tracking.run_group(client, exp_id, "fine") as ok:
        child = ok.child("child")
        tracking.end_run(client, child)
    assert read.get_run(ok.parent).info.status == read.get_run(child).info.status == "FINISHED"
