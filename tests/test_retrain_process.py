"""``fcf retrain`` as a real process against a real MLflow server: real SIGTERM / SIGINT /
SIGKILL at named points, two processes racing for the lock, a waiter taking over from a
holder that died.

The retrain's pause hook (`experiments.lock.pause_point`, environment variables
``FCF_RETRAIN_PAUSE_AT`` / ``FCF_RETRAIN_PAUSE_FILE``) holds a process at a named point and
says so in a marker file, so a signal lands where the test means it to land: before the model
version is registered, or after it is registered but before the outputs and the alias are
written. (The earlier test raised KeyboardInterrupt inside `predict_from_state` in the test's
own process: the signal handler never ran, and "nothing registered" followed from call order.)
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from experiments.cli import EXIT_INTERRUPTED, EXIT_LOCKED, main
from experiments.lock import LOCK_FILE

ARGS = ["--series", "net_sales_aws,free_cash_flow", "--models", "SeasonalNaive,Naive", "--windows", "2",
        "--warmup", "0", "--no-rollup", "--no-plots"]
OUTPUTS = ("champions.csv", "forecasts.csv", "summary.md")
START_TIMEOUT_S = 300.0
#: The installed ``fcf`` script, as cron and CI run it.
FCF = [str(Path(sys.executable).parent / "fcf")]
#: Launched the way a non-interactive shell starts a background job: with SIGINT ignored, so
#: SIGINT only works if the retrain installs its own handler.
LAUNCH = ["sh", "-c", 'trap "" INT; exec "$0" "$@"']


class Retrain:
    """One ``fcf retrain`` subprocess (output in ``<work>/<label>.log``)."""

    def __init__(self, work: Path, uri: str, names: dict, label: str, pause: str | None = None,
                 extra: tuple[str, ...] = ()):
        self.marker = work / f"{label}.paused"
        self.log_path = work / f"{label}.log"
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FCF_DATA_DIR")}
        env.update(MLFLOW_TRACKING_URI=uri, PYTHONWARNINGS="ignore")
        if pause:
            env.update(FCF_RETRAIN_PAUSE_AT=pause, FCF_RETRAIN_PAUSE_FILE=str(self.marker))
        cmd = [*LAUNCH, *FCF, "retrain", *ARGS, "--model-name", names["model"], "--experiment", names["experiment"],
               *extra]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)

    @property
    def paused(self) -> bool:
        return self.marker.exists()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_paused(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while not self.paused:
            assert self.proc.poll() is None, f"exited with {self.proc.returncode} before pausing:\n{self.log()}"
            assert time.monotonic() < deadline, f"not paused after {timeout:.0f}s:\n{self.log()}"
            time.sleep(0.1)

    def finish(self, timeout: float = START_TIMEOUT_S) -> int:
        return self.proc.wait(timeout=timeout)

    def holds_open(self, path: Path) -> bool:
        """Whether the process has `path` open (Linux /proc): it is at the lock."""
        fd_dir = Path(f"/proc/{self.proc.pid}/fd")
        try:
            return any(os.path.realpath(fd_dir / fd) == str(path.resolve()) for fd in os.listdir(fd_dir))
        except OSError:
            return False


@pytest.fixture
def procs():
    """Started `Retrain`s; any still running at the end of the test is killed (by its pid)."""
    started: list[Retrain] = []
    yield started
    for r in started:
        if r.proc.poll() is None:
            r.proc.kill()
            r.proc.wait(timeout=30)


@pytest.fixture
def names():
    tag = uuid.uuid4().hex[:8]
    return {"model": f"fcf-proc-{tag}", "experiment": f"retrain-proc-{tag}"}


def _client(uri):
    from mlflow import MlflowClient

    return MlflowClient(uri)


def _runs(client, experiment):
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], "tags.`fcf.kind` = 'retrain'") if exp else []


def _versions(client, model):
    return sorted(v.version for v in client.search_model_versions(f"name = '{model}'"))


def _alias(client, model, alias="champion"):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model, alias).version
    except MlflowException:
        return None


def _retrain_in_process(work: Path, uri: str, names: dict, monkeypatch) -> tuple[int, str]:
    monkeypatch.chdir(work)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(["retrain", *ARGS, "--model-name", names["model"], "--experiment", names["experiment"]])
    return code, out.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("point", ["before-register", "after-register"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_real_signal_leaves_a_killed_run_the_old_outputs_and_a_consistent_registry(
        mlflow_server, tmp_path, names, procs, monkeypatch, sig, point):
    """Catches: a handler that does not mark the run KILLED, outputs written before the end,
    the alias moved to a version whose run did not finish, a killed run counted as done."""
    out = tmp_path / "outputs" / "retrain"
    out.mkdir(parents=True)
    for f in OUTPUTS:  # a previous retrain's outputs
        (out / f).write_bytes(f"previous {f}\n".encode())
    r = Retrain(tmp_path, mlflow_server, names, "job", pause=point)
    procs.append(r)
    r.wait_paused()
    r.proc.send_signal(sig)
    assert r.finish(60) == EXIT_INTERRUPTED, r.log()
    assert "fcf: interrupted" in r.log() and "Traceback" not in r.log()

    client = _client(mlflow_server)
    [run] = _runs(client, names["experiment"])
    assert run.info.status == "KILLED"
    assert {f: (out / f).read_bytes() for f in OUTPUTS} == {f: f"previous {f}\n".encode() for f in OUTPUTS}
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)  # no temporary file left
    if point == "before-register":
        assert _versions(client, names["model"]) == []
    else:  # registered, but the alias never points at a version whose run was killed
        assert _versions(client, names["model"]) == ["1"]
        assert client.get_model_version(names["model"], "1").run_id == run.info.run_id
    assert _alias(client, names["model"]) is None

    # the killed run does not count as done: the next retrain of the same data does the work
    code, text = _retrain_in_process(tmp_path, mlflow_server, names, monkeypatch)
    assert code == 0, text
    new = "1" if point == "before-register" else "2"
    assert _alias(client, names["model"]) == new and _versions(client, names["model"])[-1] == new
    assert client.get_run(client.get_model_version(names["model"], new).run_id).info.status == "FINISHED"
    assert all((out / f).read_bytes() != f"previous {f}\n".encode() for f in OUTPUTS)


@pytest.mark.slow
def test_two_retrains_race_for_the_lock_and_a_waiter_runs_when_the_holder_dies(
        mlflow_server, tmp_path, names, procs):
    """Two processes started together: exactly one gets the lock, the other exits 4 naming the
    holder. A third with ``--wait`` queues on the lock; the holder is killed with SIGKILL (no
    clean-up at all); the OS releases its flock, the waiter takes it, marks the dead holder's
    run KILLED and finishes. Catches: no lock, a lock that a dead process keeps, a waiter that
    gives up or never closes the dead holder's run."""
    a = Retrain(tmp_path, mlflow_server, names, "a", pause="started")
    b = Retrain(tmp_path, mlflow_server, names, "b", pause="started")
    procs += [a, b]
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        done = [r for r in (a, b) if r.proc.poll() is not None]
        paused = [r for r in (a, b) if r.paused]
        assert len(paused) < 2, "both retrains passed the lock"
        if done and paused:
            break
        assert len(done) < 2, f"both exited:\n{a.log()}\n{b.log()}"
        assert time.monotonic() < deadline, f"no winner after {START_TIMEOUT_S:.0f}s:\n{a.log()}\n{b.log()}"
        time.sleep(0.1)
    [loser], [holder] = done, paused
    assert loser.proc.returncode == EXIT_LOCKED, loser.log()
    assert "another retrain holds" in loser.log() and f"pid={holder.proc.pid}" in loser.log()

    lock = tmp_path / LOCK_FILE
    waiter = Retrain(tmp_path, mlflow_server, names, "waiter", extra=("--wait", "300"))
    procs.append(waiter)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not waiter.holds_open(lock):  # the waiter is at the lock, polling
        assert waiter.proc.poll() is None, waiter.log()
        assert time.monotonic() < deadline, waiter.log()
        time.sleep(0.1)
    time.sleep(1.5)
    assert waiter.proc.poll() is None and holder.proc.poll() is None  # still queued behind the holder

    client = _client(mlflow_server)
    [ghost] = _runs(client, names["experiment"])
    assert ghost.info.status == "RUNNING" and ghost.data.tags["fcf.pid"] == str(holder.proc.pid)
    holder.proc.send_signal(signal.SIGKILL)
    assert holder.finish(30) == -signal.SIGKILL

    assert waiter.finish() == 0, waiter.log()
    assert f"marked run {ghost.info.run_id} KILLED" in waiter.log()
    assert client.get_run(ghost.info.run_id).info.status == "KILLED"
    assert _versions(client, names["model"]) == ["1"] and _alias(client, names["model"]) == "1"
    assert lock.read_text() == ""  # released by the waiter on exit
