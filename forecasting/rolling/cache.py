"""A disk cache of base forecasts, keyed by data vintage: a rolling window is fitted once.

The base forecasts made at one cutoff (`forecasting.methods.dispatch.forecast_base`) depend only on the
rows up to that cutoff, the models and their settings, and the installed code. `forecast()`
recomputes the same earlier windows at every call to calibrate intervals and choose
combinations; with this cache a repeated call, or the next quarter's call (all windows but
the newest are unchanged), reads them back instead.

Key (sha256 of all of it): the training rows (``unique_id, ds, y`` bytes), the guidance known
at the cutoff (guided models), the horizon, the interval levels, the season length, the seed,
each model spec (name, engine, settings,
fallback chain), the versions of Python, numpy, pandas, statsforecast, mlforecast,
scikit-learn and LightGBM, and a hash of this library's own source files (an edited checkout
never reads forecasts of the previous code).

Location: ``$FCF_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/fcf-forecasting`` (default
``~/.cache/fcf-forecasting``): a user cache folder outside the repository. ``FCF_CACHE=0``
turns the cache off. Entries are pickled frames written atomically (temporary file, then
rename), so a killed process never leaves a half-written entry; an unreadable entry is
ignored and rewritten. While a process fits entries it holds a lock per key (``<key>.lock``,
`computing`): another process asking for the same entries at the same time (two ``fcf``
commands on one vintage, two test workers) waits, then reads them instead of fitting them
again. The folder is kept under ``FCF_CACHE_MAX_MB`` megabytes (default 500):
after a write, the entries used least recently are removed. Delete the folder to clear it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import platform
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import pandas as pd

from forecasting.core.frames import switched_on
from forecasting.methods.registry import get_spec

__all__ = ["cache_dir", "code_fingerprint", "computing", "enabled", "FORMAT", "key", "load", "MAX_MB", "PACKAGES",
           "prune", "save", "spec_signature"]

FORMAT = 1
#: Default size limit of the cache folder, in megabytes (``FCF_CACHE_MAX_MB``).
MAX_MB = 500
#: Packages whose versions are part of every key.
PACKAGES = ("numpy", "pandas", "statsforecast", "mlforecast", "scikit-learn", "lightgbm", "coreforecast")


def cache_dir() -> Path:
    """The cache folder (see the module docstring); not created here."""
    if os.environ.get("FCF_CACHE_DIR"):
        return Path(os.environ["FCF_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "fcf-forecasting"


def enabled(cache: bool | None = None) -> bool:
    """`cache` if given, else on unless ``FCF_CACHE`` is ``0``/``false``/``no``/``off``."""
    if cache is not None:
        return bool(cache)
    return switched_on("FCF_CACHE")


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Versions of the numeric packages and a hash of this library's forecasting source."""
    from importlib.metadata import PackageNotFoundError, version

    h = hashlib.sha256(f"format{FORMAT} python{platform.python_version()}".encode())
    for pkg in PACKAGES:
        try:
            h.update(f"{pkg}={version(pkg)};".encode())
        except PackageNotFoundError:
            h.update(f"{pkg}=none;".encode())
    root = Path(__file__).resolve().parents[1]
    for folder in ("forecasting", "features"):
        for path in sorted((root / folder).rglob("*.py")):
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def spec_signature(spec) -> str:
    """What makes a spec's forecasts what they are: its settings and its fallback chain."""
    parts, seen = [], set()
    current = spec
    while current is not None and current.name not in seen:
        seen.add(current.name)
        parts.append(repr((current.name, current.kind, current.family, current.min_obs, current.fallback,
                           current.members, sorted((k, repr(v)) for k, v in dict(current.params).items()),
                           sorted((k, repr(v)) for k, v in dict(current.options).items()))))
        current = get_spec(current.fallback) if current.fallback else None
    return "|".join(parts)


def key(train: pd.DataFrame, specs: Sequence, settings, guidance=None) -> str:
    """The cache key of the base forecasts of `specs` on `train` with `settings` (a
    `forecasting.core.frames.FitSettings`; see the module docstring); `guidance` (a
    `features.guidance.GuidanceBook` known at the cutoff) enters with its rows."""
    h_ = hashlib.sha256(code_fingerprint().encode())
    h_.update(repr((settings.h, tuple(sorted(settings.level)), settings.season_length, settings.seed)).encode())
    for spec in specs:
        h_.update(spec_signature(spec).encode())
    h_.update(pd.util.hash_pandas_object(train[["unique_id", "ds", "y"]], index=False).to_numpy().tobytes())
    if guidance is not None:
        h_.update(repr(getattr(guidance, "asof", None)).encode())
        for name in ("quarterly", "annual"):
            frame = getattr(guidance, name, None)
            if frame is not None and len(frame):
                h_.update(name.encode())
                h_.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h_.hexdigest()


def load(k: str) -> tuple[pd.DataFrame, list[str]] | None:
    """The cached ``(forecasts, warning messages)`` for key `k`, or None."""
    path = cache_dir() / k[:2] / f"{k}.pkl"
    try:
        with open(path, "rb") as f:
            value = pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ValueError):
        return None
    if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], pd.DataFrame)):
        return None
    try:
        os.utime(path)  # recently used: pruned last
    except OSError:
        pass
    return value


def save(k: str, value: tuple[pd.DataFrame, list[str]]) -> None:
    """Write an entry atomically; a cache that cannot be written is skipped silently."""
    folder = cache_dir() / k[:2]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{k}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, folder / f"{k}.pkl")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        return


@contextmanager
def computing(keys: Sequence[str]) -> Iterator[None]:
    """Hold an exclusive lock on each key of `keys` (taken in sorted order, so two processes
    wanting overlapping sets cannot deadlock) while their entries are computed; the caller
    then loads again what another process wrote meanwhile. Released when the block ends or
    the process dies (``flock``). Where locks are not available (no ``fcntl``, a read-only
    folder) it does nothing: the only cost is fitting an entry twice."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    held = []
    try:
        for k in sorted(set(keys)):
            try:
                folder = cache_dir() / k[:2]
                folder.mkdir(parents=True, exist_ok=True)
                f = open(folder / f"{k}.lock", "ab")
            except OSError:
                continue
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            except OSError:
                f.close()
                continue
            held.append(f)
        yield
    finally:
        for f in held:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
            finally:
                f.close()


def prune(max_mb: float | None = None) -> int:
    """Remove the least recently used entries until the folder holds at most `max_mb` megabytes
    (default ``FCF_CACHE_MAX_MB`` or `MAX_MB`); returns the number of entries removed."""
    if max_mb is None:
        try:
            max_mb = float(os.environ.get("FCF_CACHE_MAX_MB", MAX_MB))
        except ValueError:
            max_mb = MAX_MB
    entries = []
    for path in cache_dir().glob("*/*.pkl"):
        try:
            st = path.stat()
        except OSError:
            continue
        entries.append((st.st_mtime, st.st_size, path))
    total = sum(size for _, size, _ in entries)
    removed = 0
    for _, size, path in sorted(entries):
        if total <= max_mb * 1e6:
            break
        try:
            path.unlink()
        except OSError:
            continue
        path.with_suffix(".lock").unlink(missing_ok=True)
        total -= size
        removed += 1
    return removed
