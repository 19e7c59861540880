"""Shared fixtures: a real MLflow tracking server, an isolated working directory, small data,
and the ``--update-golden`` option (tests/test_golden.py).

``mlflow_server`` starts ``python -m mlflow server`` once per test session on a free port of
127.0.0.1 with a temporary SQLite store and artifact folder, and stops its whole process
group at the end of the session, also when tests fail or the start times out. Tests that use
it should be marked ``slow`` (the server takes 10-45 s to start on a busy machine).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

# the helpers beside the tests (`leakage`, `edgar_server`...) import by their own names; tests/ is
# a package (see tests/__init__.py), so pytest puts the repository root, not tests/, on sys.path
sys.path.insert(0, str(Path(__file__).resolve().parent))

SERVER_START_TIMEOUT_S = 150.0

# Where the environment sets PYTHONDONTWRITEBYTECODE (as this machine's does), each of the suite's ~40
# child interpreters (fcf commands, the mlflow server, dask workers, retrain runs) would compile
# mlflow, pandas and statsforecast from source again: 17 s per import instead of 5 s once the
# bytecode is cached. The suite lets them cache it in the venv, compiling only the modules it
# imports, which is why the README's test command installs without --compile-bytecode.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/golden/figures.json with the figures the code computes now "
                          "(for a change meant to move them; see tests/test_golden.py)")


@pytest.fixture
def update_golden(request) -> bool:
    """True when pytest runs with ``--update-golden``."""
    return bool(request.config.getoption("--update-golden"))
CORE3 = ["net_sales_aws", "operating_income_aws", "free_cash_flow"]


def free_port() -> int:
    """A TCP port nothing listens on right now (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(uri: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=timeout) as resp:
            return resp.status == 200
    except OSError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (uvicorn workers too), SIGKILL after 15 s."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group, if any
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(timeout=5)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """URI (``http://127.0.0.1:<port>``) of a real MLflow server for this test session."""
    root = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no background job workers
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
           "--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
           "--artifacts-destination", str(root / "artifacts"), "--serve-artifacts"]
    log = open(root / "server.log", "wb")
    proc = subprocess.Popen(cmd, cwd=root, stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not _healthy(uri):
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {proc.returncode}:\n"
                                   + (root / "server.log").read_text(errors="replace")[-3000:])
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server not healthy after {SERVER_START_TIMEOUT_S:.0f}s:\n"
                                   + (root / "server.log").read_text(errors="replace")[-3000:])
            time.sleep(0.5)
        yield uri
    finally:
        _stop(proc)
        log.close()


@pytest.fixture
def isolated_cwd(tmp_path, monkeypatch) -> Path:
    """A fresh working directory with no MLFLOW_TRACKING_URI (runs go to ./mlflow.db)."""
    monkeypatch.chdir(tmp_path)
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.setenv(var, "")  # records the original value, restored after the test even if
        monkeypatch.delenv(var)      # the code under test sets it (check_tracking_server does)
    return tmp_path


@pytest.fixture
def closed_port_uri() -> str:
    """An http URI on which nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def small_frame():
    """Three shipped series (``unique_id, ds, y``): AWS sales and operating income, FCF."""
    from features.loader import load_quarterly

    return load_quarterly(series=CORE3)


@pytest.fixture(scope="session")
def small_backtest(small_frame):
    """``(bt, history, config)``: SeasonalNaive, Naive, AutoETS; 3 windows, h=3, warm-up 2."""
    from forecasting.rolling.backtest import BacktestConfig, backtest

    config = BacktestConfig(h=3, n_windows=3, warmup_windows=2, models=("SeasonalNaive", "Naive", "AutoETS"))
    bt = backtest(small_frame, list(config.models), config)
    return bt, small_frame, config


@pytest.fixture(scope="session", autouse=True)
def _forecast_cache(tmp_path_factory):
    """forecast()'s data-vintage cache goes to a folder of this test session, not the user's.

    Under pytest-xdist every worker has its own base folder inside one folder of the session;
    the cache sits in that shared parent, so a forecast one worker fitted is read by the
    others (entries are written to a temporary file and renamed, so concurrent writers of
    one key are safe: both write the same bytes)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        path = tmp_path_factory.getbasetemp().parent / "fcf_cache"
        path.mkdir(exist_ok=True)
    else:
        path = tmp_path_factory.mktemp("fcf_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FCF_CACHE_DIR", str(path))
        if os.environ.get("PYTEST_XDIST_WORKER") and not os.environ.get("FCF_N_JOBS"):
            # the workers already use every core; a loky pool of its own per backtest would
            # oversubscribe them and re-import the models in each pool (results are equal:
            # tests/test_parallel.py checks n_jobs 1 vs 2 with explicit n_jobs)
            mp.setenv("FCF_N_JOBS", "1")
        yield path
