"""``fcf retrain`` end to end against a real MLflow server (fixture ``mlflow_server``).

One module-scoped registry goes through the life of a model: the first retrain (version 1 +
alias), a re-run on the same data (no-op), a new quarter (version 2, alias per the gate), a
forced re-run that fails a strict gate (version 3 without the alias), bad data (exit 2,
registry untouched). Small settings: 3 series, SeasonalNaive/Naive/AutoETS, 3 windows, roll-up
with SeasonalNaive nodes. Interrupted and killed retrains, and the lock across processes, are
tested with real processes and real signals in test_retrain_process.py.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

from experiments.cli import EXIT_BAD_INPUT, EXIT_LOCKED, EXIT_TRACKING, main
from forecasting.rolling.champions import choose_champions, gate, series_scores
from experiments.lock import LOCK_FILE, RetrainLock

SERIES = "net_sales_aws,operating_income_aws,free_cash_flow"
FAST = ["--series", SERIES, "--models", "SeasonalNaive,Naive,AutoETS", "--windows", "3", "--warmup", "2",
        "--rollup-candidates", "AutoETS,SeasonalNaive", "--rollup-guided", "GuidedAutoETS",
        "--rollup-first-cutoff", "2019Q4", "--paths", "200", "--no-plots"]


def fcf(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["retrain", *args])
    return code, out.getvalue() + err.getvalue()


def copy_data(dst: Path) -> Path:
    from features.loader import shipped_data_dir

    src = shipped_data_dir()
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("amzn_quarterly.csv", "series.csv"):
        shutil.copy(src / name, dst / name)
    return dst / "amzn_quarterly.csv"


def append_quarter(path: Path, factor: float = 1.02) -> str:
    """Append the quarter after the newest one for every metric reported in it: the newest
    value x `factor` (sums and differences such as FCF = OCF - net capex stay consistent)."""
    raw = pd.read_csv(path, dtype={"value_musd": str})
    last = raw["fiscal_quarter"].max()
    new_q = pd.Period(last, freq="Q") + 1
    rows = raw[raw["fiscal_quarter"] == last].copy()
    rows["fiscal_quarter"] = str(new_q)
    rows["period_end"] = new_q.end_time.strftime("%Y-%m-%d")
    rows["value_musd"] = [f"{float(v) * factor:.0f}" for v in rows["value_musd"]]
    rows["source"] = f"test: {last} x {factor}"
    pd.concat([raw, rows], ignore_index=True).to_csv(path, index=False)
    return str(new_q)


# --------------------------------------------------------------------------- unit tests
def _scores(table: dict[str, dict[str, float]]) -> pd.DataFrame:
    rows = [{"unique_id": s, "model": m, "step": 1, "ase": v} for s, d in table.items() for m, v in d.items()]
    return series_scores(pd.DataFrame(rows))


def test_champion_rule_ties_and_baseline():
    scores = _scores({
        "a": {"SeasonalNaive": 1.0, "AutoETS": 0.5, "Foster": 0.5, "AutoARIMA": 0.7},   # tie -> simpler
        "b": {"SeasonalNaive": 1.0, "AutoETS": 1.0, "Naive": 1.3},                     # equal: never
        "c": {"SeasonalNaive": 1.0, "AutoETS": 0.9, "AutoARIMA": 0.2},                 # not a candidate
    })
    cx = {"SeasonalNaive": 1, "Foster": 3, "AutoETS": 4, "AutoARIMA": 6, "Naive": 0}
    ch = choose_champions(scores, ["AutoETS", "Foster", "Naive"], cx).set_index("unique_id")
    assert ch.loc["a", "champion"] == "Foster" and ch.loc["a", "rel_mase"] == pytest.approx(0.5)
    assert ch.loc["b", "champion"] == "SeasonalNaive" and ch.loc["b", "rel_mase"] == 1.0
    assert ch.loc["c", "champion"] == "AutoETS"


def test_gate_compares_both_sets_on_the_same_scores():
    scores = _scores({"a": {"SeasonalNaive": 1.0, "AutoETS": 0.5, "Naive": 0.8},
                      "b": {"SeasonalNaive": 1.0, "AutoETS": 0.8, "Naive": 0.9}})
    first = gate(scores, {"a": "AutoETS"}, None)
    assert first.passed and "first version" in first.reason
    ok = gate(scores, {"a": "AutoETS", "b": "AutoETS"}, {"a": "Naive", "b": "Naive"}, 0.02)
    assert ok.passed and ok.new_score == pytest.approx((0.5 * 0.8) ** 0.5)
    bad = gate(scores, {"a": "Naive", "b": "Naive"}, {"a": "AutoETS", "b": "AutoETS"}, 0.02)
    assert not bad.passed and "failed" in bad.reason
    # within the tolerance: 0.8/0.9 worse by 2% is allowed at 0.03, refused at 0.01
    near = {"a": "SeasonalNaive"}
    s2 = _scores({"a": {"SeasonalNaive": 1.0, "AutoETS": 0.98}})
    assert gate(s2, near, {"a": "AutoETS"}, 0.03).passed
    assert not gate(s2, near, {"a": "AutoETS"}, 0.01).passed


def test_lock_refuses_waits_and_survives_stale_file(tmp_path):
    path = tmp_path / LOCK_FILE
    path.write_text("pid=999999 host=gone\n")  # stale: nobody holds the flock
    with RetrainLock(path) as held:
        assert f"pid={__import__('os').getpid()}" in held.holder()
        t0 = time.monotonic()
        with pytest.raises(Exception, match="another retrain holds"):
            with RetrainLock(path, wait_s=0.6, poll_s=0.1):
                pass
        assert time.monotonic() - t0 >= 0.5
    with RetrainLock(path):  # released on exit
        pass


def test_unreachable_tracking_server_fails_fast(isolated_cwd, closed_port_uri, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", closed_port_uri)
    t0 = time.monotonic()
    code, out = fcf(*FAST)
    assert code == EXIT_TRACKING, out
    assert time.monotonic() - t0 < 10
    assert "cannot be reached" in out and closed_port_uri in out
    assert not (isolated_cwd / "outputs").exists()


def test_held_lock_exits_4(isolated_cwd):
    with RetrainLock(isolated_cwd / LOCK_FILE):
        code, out = fcf(*FAST)
    assert code == EXIT_LOCKED, out
    assert "another retrain holds" in out and "--wait" in out


# ------------------------------------------------------------------- against the server
@pytest.fixture(scope="module")
def registry(mlflow_server, tmp_path_factory):
    """A fresh model name and experiment on the session server; cwd = a scratch folder."""
    import mlflow.tracking._tracking_service.utils as tracking_utils
    from mlflow import MlflowClient

    work = tmp_path_factory.mktemp("retrain")
    name = f"amazon-fcf-test-{uuid.uuid4().hex[:8]}"
    experiment = f"retrain-test-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as mp, tracking_utils._use_tracking_uri(mlflow_server):
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        mp.chdir(work)
        yield {"name": name, "experiment": experiment, "work": work, "uri": mlflow_server,
               "client": MlflowClient(mlflow_server),
               "args": [*FAST, "--model-name", name, "--experiment", experiment]}


def versions(reg) -> list[str]:
    return sorted(v.version for v in reg["client"].search_model_versions(f"name = '{reg['name']}'"))


def runs(reg):
    exp = reg["client"].get_experiment_by_name(reg["experiment"])
    return reg["client"].search_runs([exp.experiment_id], "tags.`fcf.kind` = 'retrain'") if exp else []


@pytest.fixture(scope="module")
def first(registry):
    """The first retrain of the registry's model."""
    t0 = time.perf_counter()
    code, out = fcf(*registry["args"])
    assert code == 0, out
    return {"out": out, "seconds": time.perf_counter() - t0}


@pytest.mark.slow
def test_first_retrain_registers_version_1_as_champion(registry, first):
    client, name = registry["client"], registry["name"]
    assert versions(registry) == ["1"]
    mv = client.get_model_version_by_alias(name, "champion")
    assert mv.version == "1" and mv.tags["fcf.gate"] == "passed"
    run = client.get_run(mv.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["fcf.model_version"] == "1"
    assert run.data.tags["fcf.kind"] == "retrain" and run.data.tags["fcf.vintage"].startswith("2026Q2-")
    assert {"champion_mase.net_sales_aws", "gate.new_score", "fcf_ttm_headline.p50"} <= set(run.data.metrics)
    arts = {a.path for a in client.list_artifacts(mv.run_id)}
    assert {"model", "forecasts.csv", "champions.csv", "summary.md"} <= arts
    out = first["out"]
    for text in ("Champions", "gate: **passed**", "version 1", "trailing-twelve-month FCF", "P10",
                 "run time"):
        assert text in out
    for f in ("champions.csv", "forecasts.csv", "summary.md"):
        assert (registry["work"] / "outputs" / "retrain" / f).is_file()
    assert not list((registry["work"] / "outputs" / "retrain").glob(".*.tmp"))


@pytest.mark.slow
def test_champion_alias_reproduces_the_runs_forecasts(registry, first, tmp_path):
    import mlflow.pyfunc

    client, name = registry["client"], registry["name"]
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    mv = client.get_model_version_by_alias(name, "champion")
    path = client.download_artifacts(mv.run_id, "forecasts.csv", str(tmp_path))
    stored = pd.read_csv(path, parse_dates=["ds"], float_precision="round_trip")
    got = model.predict(model.input_example)
    pd.testing.assert_frame_equal(got, stored)
    assert set(got["model"]) >= {"Rollup"} and got["unique_id"].nunique() == 4


@pytest.mark.slow
def test_same_data_is_a_no_op(registry, first):
    before = len(runs(registry))
    t0 = time.perf_counter()
    code, out = fcf(*registry["args"])
    assert code == 0, out
    assert "nothing new" in out and "--force" in out
    assert versions(registry) == ["1"] and len(runs(registry)) == before
    assert time.perf_counter() - t0 < first["seconds"] / 2


@pytest.mark.slow
def test_new_quarter_gets_a_gated_version_and_a_strict_gate_keeps_the_alias(registry, first, tmp_path):
    client, name = registry["client"], registry["name"]
    data = copy_data(tmp_path / "data")
    assert append_quarter(data) == "2026Q3"
    code, out = fcf(*registry["args"], "--data", str(data))
    assert code == 0, out
    assert versions(registry) == ["1", "2"]
    v2 = client.get_model_version(name, "2")
    run = client.get_run(v2.run_id)
    decision = run.data.tags["fcf.gate"]
    assert v2.tags["fcf.gate"] == decision and run.data.tags["fcf.vintage"].startswith("2026Q3-")
    alias = client.get_model_version_by_alias(name, "champion").version
    assert alias == ("2" if decision == "passed" else "1")
    # the same candidates on the same windows cannot do worse than the current champions
    assert decision == "passed", run.data.tags["fcf.gate_reason"]

    # same data again, forced, with a gate that demands a 1% improvement: identical champions fail it
    code, out = fcf(*registry["args"], "--data", str(data), "--force", "--tolerance", "-0.01", "--no-rollup")
    assert code == 0, out
    assert versions(registry) == ["1", "2", "3"]
    v3 = client.get_model_version(name, "3")
    run3 = client.get_run(v3.run_id)
    assert v3.tags["fcf.gate"] == "failed" and run3.data.tags["fcf.gate"] == "failed"
    assert "gate failed" in run3.data.tags["fcf.gate_reason"]
    m = run3.data.metrics
    assert m["gate.new_score"] == pytest.approx(m["gate.current_score"])
    assert client.get_model_version_by_alias(name, "champion").version == "2"
    assert "stays on version 2" in out


@pytest.mark.slow
def test_bad_data_aborts_before_anything_is_registered(registry, first, tmp_path):
    data = copy_data(tmp_path / "bad")
    text = data.read_text().splitlines()
    i = next(k for k, line in enumerate(text) if line.startswith("net_sales_aws,2020Q1"))
    text[i] = text[i].replace(text[i].split(",")[3], "12x3", 1)
    data.write_text("\n".join(text) + "\n")
    before_v, before_r = versions(registry), len(runs(registry))
    code, out = fcf(*registry["args"], "--data", str(data), "--force")
    assert code == EXIT_BAD_INPUT, out
    assert "amzn_quarterly.csv" in out and "Traceback" not in out
    assert versions(registry) == before_v and len(runs(registry)) == before_r


# ---------------------------------------------------------------------------- scheduling
REPO = Path(__file__).resolve().parents[1]


def test_mlproject_entry_points_build_fcf_commands():
    from mlflow.projects import _project_spec

    project = _project_spec.load_project(str(REPO))
    assert {"forecast", "backtest", "retrain"} <= set(project._entry_points)
    cmd = project.get_entry_point("retrain").compute_command(
        {"windows": "3", "data": "/tmp/my data.csv", "model_name": "x"}, "/tmp")
    assert "fcf retrain" in cmd and "--windows 3" in cmd and "'/tmp/my data.csv'" in cmd
    parsed = main.__globals__["build_parser"]().parse_args(
        ["retrain", "--models", "statistical,ensemble", "--windows", "3", "--warmup", "8", "--horizon", "4",
         "--tolerance", "0.02", "--model-name", "x", "--wait", "0",
         "--out", "o", "--lock-file", "l"])
    assert parsed.windows == 3 and parsed.model_name == "x"


def test_cron_and_ci_schedules_agree():
    import yaml

    cron = [ln for ln in (REPO / "ops" / "crontab").read_text().splitlines() if ln and not ln.startswith("#")]
    assert len(cron) == 1 and cron[0].startswith("0 6 5 2,5,8,11 * ") and "fcf retrain" in cron[0]
    wf = yaml.safe_load((REPO / ".github" / "workflows" / "quarterly-retrain.yml").read_text())
    assert wf[True]["schedule"] == [{"cron": "0 6 5 2,5,8,11 *"}]  # YAML reads the key `on` as True
    steps = " ".join(str(s.get("run", "")) for s in wf["jobs"]["retrain"]["steps"])
    assert "pip install -q -c constraints.txt -e ." in steps and "fcf retrain" in steps


# ------------------------------------------------------------ --update-data: SEC EDGAR first
@pytest.mark.slow
def test_update_data_turns_a_restatement_into_a_new_vintage_retrain(registry, first, tmp_path, monkeypatch,
                                                                    closed_port_uri):
    """The data file holds an earlier 2022Q4 North America sales figure (93,000) and was retrained;
    with --update-data the 10-K (served by a local EDGAR-format server) restates it to 93,363 as a
    new vintage row, so the retrain runs again on a new data vintage. Then, with no network, the
    update says so and the retrain goes on with the data it has (nothing new to do)."""
    from edgar_server import EdgarServer, amazon_routes

    from features.loader import data_vintage, shipped_data_dir

    data = copy_data(tmp_path / "restated")
    shutil.copy(shipped_data_dir() / "sec_mapping.yaml", data.parent / "sec_mapping.yaml")
    row = "net_sales_north_america,2022Q4,2022-12-31,"
    data.write_text(data.read_text().replace(row + "93363,", row + "93000,"))
    args = [*registry["args"], "--data", str(data), "--no-rollup"]
    code, out = fcf(*args)
    assert code == 0, out
    v0 = data_vintage(data).vintage
    n_versions = len(versions(registry))

    monkeypatch.setenv("SEC_USER_AGENT", "fcf-forecasting tests tests@example.com")
    with EdgarServer(amazon_routes()) as server:
        monkeypatch.setenv("FCF_SEC_BASE_URL", server.url)
        code, out = fcf(*args, "--update-data")
    assert code == 0, out
    assert "restated net_sales_north_america 2022Q4: 93363 (was 93000), vintage 2023-02-03" in out
    assert "nothing new" not in out
    v1 = data_vintage(data).vintage
    assert v1 != v0 and v1.startswith("2026Q2-")
    assert len(versions(registry)) == n_versions + 1
    done = [r for r in runs(registry) if r.data.tags.get("fcf.vintage") == v1]
    assert [r.info.status for r in done] == ["FINISHED"]
    assert data.read_text().splitlines()[-1].endswith(",2023-02-03")

    monkeypatch.setenv("FCF_SEC_BASE_URL", closed_port_uri)
    code, out = fcf(*args, "--update-data")
    assert code == 0, out
    assert "data update skipped: cannot reach SEC EDGAR" in out and "going on with the data it has" in out
    assert "nothing new" in out and len(versions(registry)) == n_versions + 1


def test_update_data_without_a_user_agent_exits_2_before_any_work(isolated_cwd, monkeypatch):
    for var in ("SEC_USER_AGENT", "EDGAR_IDENTITY"):
        monkeypatch.delenv(var, raising=False)
    code, out = fcf(*FAST, "--update-data")
    assert code == EXIT_BAD_INPUT, out
    assert "requires a declared User-Agent" in out and not (isolated_cwd / "mlflow.db").exists()
