"""One retrain at a time: the lock file, and the pause hook tests use to stop a real retrain.

`RetrainLock` is an exclusive ``fcntl.flock`` on ``.fcf-retrain.lock`` (in the working
directory): a second retrain refuses (exit 4) or waits; the OS releases the lock when the
process dies, so a stale file from a killed run is reused. `pause_point` holds a retrain at a
named point when ``FCF_RETRAIN_PAUSE_AT`` says so (the process tests send signals there).
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path
from features.errors import OptionError

LOCK_FILE = ".fcf-retrain.lock"


class LockedError(RuntimeError):
    """Another retrain holds the lock (the CLI exits with code 4)."""


# ------------------------------------------------------------------------------ pause hook
#: Named points of `retrain` at which `pause_point` can hold it: the parent run is open, the
#: model version is about to be registered, it has just been registered (outputs and alias not
#: yet written).
PAUSE_POINTS = ("started", "before-register", "after-register")
PAUSE_AT_ENV = "FCF_RETRAIN_PAUSE_AT"
PAUSE_FILE_ENV = "FCF_RETRAIN_PAUSE_FILE"
PAUSE_MAX_S = 600.0


def check_pause_env() -> None:
    """Refuse an unknown ``FCF_RETRAIN_PAUSE_AT`` value (it would never pause)."""
    point = os.environ.get(PAUSE_AT_ENV)
    if point and point not in PAUSE_POINTS:
        raise OptionError(f"{PAUSE_AT_ENV}={point!r}: not a pause point; use one of {', '.join(PAUSE_POINTS)}")


def pause_point(name: str) -> None:
    """Hook for tests that stop a real ``fcf retrain`` process at a known point.

    When the environment variable ``FCF_RETRAIN_PAUSE_AT`` equals `name`, write
    ``"<name> pid=<pid>"`` to the file named by ``FCF_RETRAIN_PAUSE_FILE`` (atomically) and
    wait there, up to `PAUSE_MAX_S` seconds, for a signal (SIGTERM / SIGINT end the run as
    KILLED, SIGKILL leaves it RUNNING for the next lock holder to close). Otherwise nothing.
    """
    if os.environ.get(PAUSE_AT_ENV) != name:
        return
    marker = os.environ.get(PAUSE_FILE_ENV)
    if marker:
        from experiments.io import write_text

        write_text(f"{name} pid={os.getpid()}\n", marker)
    deadline = time.monotonic() + PAUSE_MAX_S
    while time.monotonic() < deadline:
        time.sleep(0.05)


# ----------------------------------------------------------------------------------- lock
class RetrainLock:
    """Exclusive ``fcntl.flock`` on `path` holding ``pid host started``; released on exit and
    automatically by the OS when the process dies (a stale file from a killed run is reused).

    Args:
        wait_s: seconds to wait for the lock (0: fail at once).
    Raises:
        LockedError: naming the holder's PID when the lock is still held after `wait_s`.
    """

    def __init__(self, path: str | Path = LOCK_FILE, wait_s: float = 0.0, poll_s: float = 0.5):
        self.path = Path(path).resolve()
        self.wait_s = wait_s
        self.poll_s = poll_s
        self.fd_: int | None = None

    def __enter__(self) -> RetrainLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + max(self.wait_s, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = self.holder()
                    os.close(fd)
                    raise LockedError(
                        f"another retrain holds {self.path} ({holder or 'holder unknown'}); wait for it, "
                        f"or pass --wait SECONDS to queue behind it") from None
                time.sleep(self.poll_s)
        os.ftruncate(fd, 0)
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        os.write(fd, f"pid={os.getpid()} host={socket.gethostname()} started={started}\n".encode())
        self.fd_ = fd
        return self

    def holder(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8").strip()
        except OSError:
            return ""

    def __exit__(self, *exc) -> None:
        if self.fd_ is not None:
            os.ftruncate(self.fd_, 0)
            fcntl.flock(self.fd_, fcntl.LOCK_UN)
            os.close(self.fd_)
            self.fd_ = None
