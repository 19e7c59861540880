"""Quarterly retrain: backtest the candidates, pick a champion per series, forecast, roll up,
and register the result as a new version of an MLflow model, gated against the current one.

Pure parts (no MLflow): `series_scores`, `choose_champions`, `gate`, `predict_from_state`
(what the registered pyfunc model runs), `summary_markdown`, `RetrainLock`. `retrain` runs
the whole job; every MLflow call goes through `experiments.tracking`.

Champion rule, per series: the candidate with the lowest MASE averaged over horizons 1..4 of
the backtest windows; ties (within 1e-9 relative) go to the lower `ModelSpec.complexity`;
a candidate whose MASE is not below SeasonalNaive's is never champion, so SeasonalNaive is
champion where nothing beats it.

Gate: the new champions' geometric mean over series of MASE / SeasonalNaive's MASE on this
backtest's windows must be at most the current champion's on the same windows (the current
champions' models are backtested too) times ``1 + tolerance``; otherwise the new version is
registered without the alias.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecasting.metrics import BASELINE

LOCK_FILE = ".fcf-retrain.lock"
DEFAULT_CANDIDATES = "statistical,ensemble"
STATE_VERSION = 2
#: `forecasting.rollup.RollupConfig` fields a registered model's roll-up records.
ROLLUP_KEYS = ("method", "cashflow", "n_paths", "seed", "calibrate", "candidates", "guided", "first_cutoff")
#: Horizons (quarters ahead) whose MASE chooses the champion.
CHAMPION_STEPS = 4


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
        raise ValueError(f"{PAUSE_AT_ENV}={point!r}: not a pause point; use one of {', '.join(PAUSE_POINTS)}")


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


# ------------------------------------------------------------------------- champion choice
def series_scores(points: pd.DataFrame, steps: int = CHAMPION_STEPS) -> pd.DataFrame:
    """Per series and model, MASE over horizons ``1..steps`` of `forecasting.metrics.pointwise` rows.

    Returns ``unique_id, model, n, mase, baseline_mase, rel_mase`` (baseline: SeasonalNaive).
    """
    p = points[points["step"] <= steps]
    t = p.groupby(["unique_id", "model"], observed=True)["ase"].agg(["size", "mean"]).reset_index()
    t = t.rename(columns={"size": "n", "mean": "mase"})
    base = t[t["model"] == BASELINE].set_index("unique_id")["mase"]
    if base.empty:
        raise ValueError(f"the backtest has no {BASELINE} rows: champions are measured against it")
    t["baseline_mase"] = t["unique_id"].map(base)
    t["rel_mase"] = t["mase"] / t["baseline_mase"]
    return t.sort_values(["unique_id", "mase"]).reset_index(drop=True)


def choose_champions(scores: pd.DataFrame, candidates: Sequence[str],
                     complexity: Mapping[str, int]) -> pd.DataFrame:
    """One champion per series (see the module docstring for the rule).

    Returns ``unique_id, champion, complexity, mase, baseline_mase, rel_mase, runner_up,
    runner_up_mase``.
    """
    rows = []
    allowed = set(candidates) | {BASELINE}
    for uid, g in scores[scores["model"].isin(allowed)].groupby("unique_id", sort=True):
        g = g[np.isfinite(g["mase"])]
        base = g[g["model"] == BASELINE]
        if base.empty:
            raise ValueError(f"series {uid}: no finite {BASELINE} MASE in the backtest")
        base_mase = float(base["mase"].iloc[0])
        ok = g[(g["model"] == BASELINE) | (g["mase"] < base_mase)]
        best = float(ok["mase"].min())
        tied = ok[ok["mase"] <= best * (1 + 1e-9) + 1e-12].copy()
        tied["complexity"] = [complexity.get(m, 99) for m in tied["model"]]
        win = tied.sort_values(["complexity", "mase", "model"]).iloc[0]
        rest = g[g["model"] != win["model"]].sort_values("mase")
        rows.append({"unique_id": uid, "champion": win["model"], "complexity": int(win["complexity"]),
                     "mase": float(win["mase"]), "baseline_mase": base_mase,
                     "rel_mase": float(win["mase"]) / base_mase,
                     "runner_up": rest["model"].iloc[0] if len(rest) else "",
                     "runner_up_mase": float(rest["mase"].iloc[0]) if len(rest) else np.nan})
    return pd.DataFrame(rows)


def _gm(values) -> float:
    v = np.asarray(list(values), dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.exp(np.log(v).mean())) if len(v) else float("nan")


def portfolio_score(scores: pd.DataFrame, champions: Mapping[str, str]) -> tuple[float, list[str]]:
    """Geometric mean over series of rel. MASE of the model `champions` names on each series;
    also the series for which that model has no score (left out)."""
    idx = scores.set_index(["unique_id", "model"])["rel_mase"]
    vals, missing = [], []
    for uid, model in champions.items():
        v = idx.get((uid, model), np.nan)
        (vals if np.isfinite(v) else missing).append(v if np.isfinite(v) else uid)
    return _gm(vals), missing


def gate(scores: pd.DataFrame, new: Mapping[str, str], current: Mapping[str, str] | None,
         tolerance: float = 0.02) -> dict[str, Any]:
    """Does the new champion set earn the alias? Both sets are scored on the same windows
    (`scores`), over the series both cover.

    Returns ``passed, new_score, current_score, tolerance, n_series, reason``.
    """
    if not current:
        score, _ = portfolio_score(scores, new)
        return {"passed": True, "new_score": score, "current_score": float("nan"), "tolerance": tolerance,
                "n_series": len(new), "reason": "no current champion: the first version takes the alias"}
    common = sorted(set(new) & set(current))
    have = set(zip(scores["unique_id"], scores["model"]))
    common = [s for s in common if (s, new[s]) in have and (s, current[s]) in have]
    if not common:
        return {"passed": True, "new_score": float("nan"), "current_score": float("nan"),
                "tolerance": tolerance, "n_series": 0,
                "reason": "the current champion covers none of these series: nothing to compare, alias moves"}
    new_score, _ = portfolio_score(scores, {s: new[s] for s in common})
    cur_score, _ = portfolio_score(scores, {s: current[s] for s in common})
    limit = cur_score * (1 + tolerance)
    passed = bool(new_score <= limit)
    verdict = "passed" if passed else "failed"
    reason = (f"gate {verdict}: new gm rel. MASE {new_score:.4f} vs current {cur_score:.4f} "
              f"(limit {limit:.4f} = current x (1 + {tolerance:g})) on the same windows, "
              f"{len(common)} series")
    return {"passed": passed, "new_score": new_score, "current_score": cur_score, "tolerance": tolerance,
            "n_series": len(common), "reason": reason}


@dataclass
class Selection:
    """`select_champions` output: the backtest, its tables (`tracking.backtest_tables`), the
    per-series scores (`series_scores`) and the champions (`choose_champions`)."""

    backtest: pd.DataFrame
    tables: dict
    scores: pd.DataFrame
    champions: pd.DataFrame


def select_champions(df: pd.DataFrame, config, candidates: Sequence[str],
                     progress: Callable | None = None) -> Selection:
    """Backtest ``config.models`` on `df` with `config` (a `BacktestConfig`), score every
    series over horizons ``1..min(CHAMPION_STEPS, h)`` and choose a champion per series among
    `candidates` (see the module docstring for the rule)."""
    from experiments import tracking
    from forecasting.backtest import backtest
    from forecasting.models import get_spec

    bt = backtest(df, list(config.models), config, progress=progress)
    tables = tracking.backtest_tables(bt, df, config)
    scores = series_scores(tables["points"], min(CHAMPION_STEPS, config.h))
    complexity = {m: get_spec(m).complexity for m in scores["model"].unique()}
    return Selection(bt, tables, scores, choose_champions(scores, candidates, complexity))


# ----------------------------------------------------------------------- state and predict
@dataclass
class ChampionState:
    """What the registered model needs to reproduce its forecasts.

    Attributes:
        history: long frame ``unique_id, ds, y`` of every loaded series (the roll-up needs the
            segment, capex, OCF and FCF series).
        champions: series -> champion model.
        seed, season_length, calibration_windows: as in `forecasting.forecast.forecast`.
        rollup: `forecasting.rollup.RollupConfig` settings (`ROLLUP_KEYS`); empty: no roll-up.
        guidance: the guidance rows the roll-up's guided models read (``quarterly`` and
            ``annual`` record lists), or None.
    """

    history: pd.DataFrame
    champions: dict[str, str]
    seed: int = 0
    season_length: int = 4
    calibration_windows: int = 12
    rollup: dict[str, Any] = field(default_factory=dict)
    vintage: str = ""
    guidance: dict | None = None

    @staticmethod
    def guidance_records(book) -> dict | None:
        """A `features.guidance.GuidanceBook` as JSON-ready records (dates as ISO strings)."""
        if book is None:
            return None

        def records(frame: pd.DataFrame) -> list[dict]:
            f = frame.copy()
            for c in f.columns:
                if pd.api.types.is_datetime64_any_dtype(f[c]):
                    f[c] = f[c].dt.strftime("%Y-%m-%d")
            return json.loads(f.to_json(orient="records"))

        return {"quarterly": records(book.quarterly), "annual": records(book.annual)}

    def guidance_book(self):
        """The stored guidance as a `features.guidance.GuidanceBook` (None if none)."""
        if not self.guidance:
            return None
        from features.guidance import ANNUAL_COLUMNS, QUARTERLY_COLUMNS, GuidanceBook

        q = pd.DataFrame(self.guidance["quarterly"], columns=QUARTERLY_COLUMNS)
        a = pd.DataFrame(self.guidance["annual"], columns=ANNUAL_COLUMNS)
        for f, cols in ((q, ("ds", "announced_on")), (a, ("year_end", "announced_on"))):
            for c in cols:
                f[c] = pd.to_datetime(f[c]).astype("datetime64[ns]")
        for f in (q, a):
            for c in ("low", "high"):
                f[c] = pd.to_numeric(f[c]).astype(float)
        return GuidanceBook(q, a)

    def rollup_config(self, h: int):
        """The `forecasting.rollup.RollupConfig` of the stored roll-up settings, `h` quarters ahead."""
        from forecasting.rollup import RollupConfig

        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in self.rollup.items() if k in ROLLUP_KEYS}
        return RollupConfig(h=h, **kw)

    def to_json(self) -> str:
        h = self.history.sort_values(["unique_id", "ds"])
        d = {k: v for k, v in asdict(self).items() if k != "history"}
        d["state_version"] = STATE_VERSION
        d["history"] = {"unique_id": h["unique_id"].astype(str).tolist(),
                        "ds": pd.DatetimeIndex(h["ds"]).strftime("%Y-%m-%d").tolist(),
                        "y": [float(v) for v in h["y"]]}
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> ChampionState:
        d = json.loads(text)
        if d.pop("state_version", None) != STATE_VERSION:
            raise ValueError(f"model state has an unknown format (expected state_version {STATE_VERSION})")
        hist = pd.DataFrame(d.pop("history"))
        hist["ds"] = pd.to_datetime(hist["ds"]).astype("datetime64[ns]")
        return cls(history=hist, **d)


def parse_levels(levels) -> tuple[int, ...]:
    """``"80,95"``, ``[80, 95]`` or ``80`` -> ``(80, 95)``; each level a whole percent in 1..99."""
    if isinstance(levels, str):
        parts = [p.strip() for p in levels.split(",") if p.strip()]
    elif isinstance(levels, (int, float, np.integer, np.floating)):
        parts = [levels]
    else:
        parts = list(levels)
    try:
        out = sorted({int(float(p)) for p in parts})
    except (TypeError, ValueError):
        raise ValueError(f"levels {levels!r}: give whole percents separated by commas, "
                         "e.g. '80,95'") from None
    if not out or any(not 1 <= v <= 99 for v in out):
        raise ValueError(f"levels {levels!r}: each level must be a whole percent between 1 and 99")
    return tuple(out)


def parse_scenario(scenario):
    """None / '' / NaN -> None; a JSON object string -> dict; anything else -> a file path."""
    if scenario is None or (isinstance(scenario, float) and math.isnan(scenario)):
        return None
    if isinstance(scenario, Mapping):
        return dict(scenario)
    text = str(scenario).strip()
    if not text:
        return None
    if text.startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"scenario is not valid JSON ({exc}); pass a JSON object or a YAML "
                             "file path") from None
    return text


def _fcf_rows(paths: np.ndarray, ds, uid: str, model: str, level: Sequence[int]) -> pd.DataFrame:
    out = pd.DataFrame({"unique_id": uid, "ds": pd.DatetimeIndex(ds), "model": model, "model_used": model,
                        "mean": paths.mean(axis=0)})
    for lv in sorted(level, reverse=True):
        out[f"lo-{lv}"] = np.quantile(paths, (100 - lv) / 200, axis=0)
    for lv in sorted(level):
        out[f"hi-{lv}"] = np.quantile(paths, 1 - (100 - lv) / 200, axis=0)
    return out


def predict_from_state(state: ChampionState, horizon: int = 4, levels=(80, 95), scenario=None,
                       return_simulations: bool = False):
    """Forecasts of the champions and the FCF roll-up, recomputed from `state`.

    Returns a frame ``unique_id, ds, model, model_used, mean, lo-<L>.., hi-<L>..`` (levels
    descending for ``lo``): one block per series (its champion, ``model_used`` showing a
    fallback), then ``free_cash_flow`` and ``free_cash_flow_ttm`` rows of model ``Rollup``
    (quantiles of the simulated paths) and, with a scenario, ``Rollup:<scenario name>``.
    With `return_simulations` also the dict of `forecasting.rollup.Simulation` by name.
    Same state and inputs -> identical numbers.
    """
    import warnings

    from forecasting.forecast import ShortSeriesWarning, forecast, output_columns

    if isinstance(horizon, bool) or int(horizon) != horizon or not 1 <= int(horizon) <= 8:
        raise ValueError(f"horizon {horizon!r}: a whole number of quarters between 1 and 8")
    h, level = int(horizon), parse_levels(levels)
    hist = state.history
    parts = []
    by_model: dict[str, list[str]] = {}
    for uid, model in sorted(state.champions.items()):
        by_model.setdefault(model, []).append(uid)
    for model, uids in sorted(by_model.items()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ShortSeriesWarning)
            fc = forecast(hist[hist["unique_id"].isin(uids)], h=h, models=[model], level=level,
                          season_length=state.season_length, seed=state.seed,
                          calibration_windows=state.calibration_windows)
        parts.append(fc[fc["model"] == model])
    sims = {}
    if state.rollup:
        from forecasting.bridge import FCF
        from forecasting.rollup import FCF_TTM
        from forecasting.scenarios import run_scenarios

        parsed = parse_scenario(scenario)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ShortSeriesWarning)
            res = run_scenarios(hist, [parsed] if parsed is not None else [], h=h, config=state.rollup_config(h),
                                guidance=state.guidance_book())
        for name, sim in res.simulations.items():
            label = "Rollup" if name == "base" else f"Rollup:{name}"
            sims[name] = sim
            for uid in (FCF, FCF_TTM):
                parts.append(_fcf_rows(sim.paths[uid], sim.ds, uid, label, level))
    elif parse_scenario(scenario) is not None:
        raise ValueError("this model was registered without the FCF roll-up; a scenario needs it")
    out = pd.concat(parts, ignore_index=True)[output_columns(level)]
    out["ds"] = pd.to_datetime(out["ds"]).astype("datetime64[ns]")
    for c in ("unique_id", "model", "model_used"):
        out[c] = out[c].astype(str)
    out = out.reset_index(drop=True)
    return (out, sims) if return_simulations else out


def fcf_headline(sim, q=(0.1, 0.5, 0.9)) -> pd.DataFrame:
    """TTM FCF P10/P50/P90 per forecast quarter of a `forecasting.rollup.Simulation` (USD millions)."""
    from forecasting.rollup import FCF_TTM

    qv = np.quantile(sim.paths[FCF_TTM], list(q), axis=0)
    out = pd.DataFrame({"quarter": pd.PeriodIndex(pd.DatetimeIndex(sim.ds), freq="Q").astype(str)})
    for lab, v in zip(("P10", "P50", "P90"), qv):
        out[lab] = v
    return out


# ------------------------------------------------------------------------------- summary
def summary_markdown(info: Mapping[str, Any], champions: pd.DataFrame, headline: pd.DataFrame | None) -> str:
    """The end-of-run summary (printed and logged as ``summary.md``)."""
    g = info["gate"]
    lines = [f"# Retrain {info['vintage']}", "",
             f"- data: {info['data']} (last quarter {info['last_quarter']}, sha256 {info['sha256'][:12]})",
             f"- backtest: {info['n_series']} series x {len(info['candidates'])} candidates "
             f"({', '.join(info['candidates'])}), {info['windows']} windows + {info['warmup']} warm-up, "
             f"h={info['h']}",
             f"- gate: **{'passed' if g['passed'] else 'failed'}**: {g['reason']}",
             f"- registered model: `{info['model_name']}` version {info.get('version', '?')}; alias "
             f"`{info['alias']}` -> version {info.get('alias_version', 'none')}",
             f"- MLflow run: {info.get('run_id', '')}",
             f"- run time: {info.get('runtime_s', float('nan')):.1f} s", "",
             "## Champions (MASE over horizons 1-4; rel. = MASE / SeasonalNaive's)", "",
             "| series | champion | MASE | rel. MASE | SeasonalNaive MASE | runner-up |",
             "|---|---|---:|---:|---:|---|"]
    for r in champions.itertuples(index=False):
        ru = f"{r.runner_up} ({r.runner_up_mase:.3f})" if r.runner_up else ""
        lines.append(f"| {r.unique_id} | {r.champion} | {r.mase:.3f} | {r.rel_mase:.3f} | "
                     f"{r.baseline_mase:.3f} | {ru} |")
    if headline is not None:
        lines += ["", f"## FCF headline: trailing-twelve-month FCF, USD billions "
                      f"(roll-up: per-node champions among {info.get('rollup_candidates', '')})", "",
                  "| quarter | P10 | P50 | P90 |", "|---|---:|---:|---:|"]
        for r in headline.itertuples(index=False):
            lines.append(f"| {r.quarter} | {r.P10 / 1e3:,.1f} | {r.P50 / 1e3:,.1f} | {r.P90 / 1e3:,.1f} |")
    else:
        lines += ["", "FCF roll-up: skipped (--no-rollup); the model forecasts the series only."]
    return "\n".join(lines) + "\n"


def guidance_book_for(data, series_config, choice: str = "auto"):
    """The guidance the retrain's roll-up reads (see `experiments.cli.guidance_for`)."""
    from argparse import Namespace

    from experiments.cli import guidance_for

    return guidance_for(Namespace(data=data, series_config=series_config, guidance=choice))


def book_files(data, choice: str = "auto") -> tuple[Path, ...]:
    """The guidance files behind `guidance_book_for` (their bytes are part of the data vintage)."""
    from features.guidance import ANNUAL_GUIDANCE_FILE, QUARTERLY_GUIDANCE_FILE
    from features.loader import shipped_data_dir

    folder = (Path(data).parent if data else shipped_data_dir()) if choice == "auto" else Path(choice)
    return tuple(p for p in (folder / QUARTERLY_GUIDANCE_FILE, folder / ANNUAL_GUIDANCE_FILE) if p.is_file())


# ---------------------------------------------------------------------------- the job
@dataclass
class RetrainSettings:
    """Options of `retrain` (``fcf retrain`` flags)."""

    data: str | None = None
    series_config: str | None = None
    series: list[str] | None = None
    models: str = DEFAULT_CANDIDATES
    h: int = 4
    windows: int = 12
    warmup: int = 8
    tolerance: float = 0.02
    model_name: str = "amazon-fcf"
    alias: str = "champion"
    experiment: str = "amazon-retrain"
    rollup: bool = True
    rollup_method: str = "MinTrace-wls_var"
    rollup_candidates: tuple[str, ...] | None = None
    rollup_guided: tuple[str, ...] | None = None
    rollup_first_cutoff: str | None = None
    rollup_paths: int = 1000
    guidance: str = "auto"
    seed: int = 0
    calibration_windows: int = 12
    force: bool = False
    out: str | None = "outputs/retrain"
    lock_path: str = LOCK_FILE
    plots: bool = True


@dataclass
class RetrainResult:
    status: str                      # "noop" | "registered"
    message: str
    run_id: str | None = None
    version: str | None = None
    alias_moved: bool = False
    summary: str = ""


def retrain(s: RetrainSettings, uri: str, say: Callable[[str], None] = print,
            progress: Callable | None = None) -> RetrainResult:
    """Run the retrain job against the tracking store at `uri` (already checked reachable).

    Order: load and validate the data (nothing logged on bad data), skip when a FINISHED
    retrain of this data vintage exists (unless ``force``), backtest, champions, gate,
    forecasts + roll-up, then one parent run with everything, the pyfunc model, a new model
    version and (gate passed) the alias. A failure or interrupt marks the run FAILED / KILLED.
    """
    from experiments import tracking
    from experiments.cmd_backtest import MIN_EXTRA_QUARTERS, select_series
    from features.loader import data_vintage, load_quarterly
    from forecasting.backtest import BacktestConfig
    from forecasting.models import get_spec, resolve

    t0 = time.perf_counter()
    check_pause_env()
    full = load_quarterly(s.data, s.series_config)  # DataValidationError before anything is logged
    book = guidance_book_for(s.data, s.series_config, s.guidance) if s.rollup else None
    vint = data_vintage(s.data, extra_files=book_files(s.data, s.guidance) if book is not None else ())
    vintage = vint["vintage"]
    candidates = [sp.name for sp in resolve(s.models)]
    client = tracking.get_client(uri)
    exp_id = tracking.experiment_id(client, s.experiment)
    if not s.force:
        done = tracking.finished_retrain(client, exp_id, vintage, s.model_name)
        if done is not None:
            msg = (f"nothing new: retrain run {done.info.run_id} already finished for data vintage {vintage} "
                   f"(model {s.model_name}); pass --force to retrain anyway")
            return RetrainResult("noop", msg, run_id=done.info.run_id)
    lock_abs = str(Path(s.lock_path).resolve())
    for rid in tracking.close_stale_retrains(client, exp_id, lock_abs):
        say(f"marked run {rid} KILLED: a retrain that died while holding {lock_abs}")
    unknown = [x for x in (s.series or []) if x != "all" and x not in set(full["unique_id"])]
    if unknown:
        raise ValueError(f"--series: unknown series {unknown} in {s.data or 'the shipped data'}; "
                         f"known: {', '.join(sorted(full['unique_id'].unique()))}")
    min_len = s.windows + s.h + MIN_EXTRA_QUARTERS
    series, skipped = select_series(full, s.series, min_len)
    if skipped:
        say("series skipped or flagged:\n  " + "\n  ".join(skipped))
    if not series:
        raise ValueError(f"no series to retrain: none has {min_len} quarters; name series with --series")
    df = full[full["unique_id"].isin(series)].reset_index(drop=True)
    if s.rollup:
        from forecasting.rollup import driver_frame

        try:
            driver_frame(full)
        except ValueError as exc:
            raise ValueError(f"{exc}; or pass --no-rollup to register the series forecasts only") from None
    current = tracking.champion_version(client, s.model_name, s.alias)
    cur_map = None
    if current is not None:
        cur_map = json.loads(current.tags.get(tracking.CHAMPIONS_TAG, "{}"))
        if not cur_map:
            say(f"{s.model_name}@{s.alias} (version {current.version}) has no {tracking.CHAMPIONS_TAG} tag: "
                "it was not registered by fcf retrain, so the gate has nothing to compare against")
    scored_only = []
    for m in sorted(set((cur_map or {}).values()) - set(candidates)):
        try:
            get_spec(m)
            scored_only.append(m)
        except ValueError:
            say(f"current champion model {m} is no longer registered: its series are left out of the gate")
    config = BacktestConfig(h=s.h, n_windows=s.windows, warmup_windows=s.warmup, seed=s.seed,
                            models=tuple(candidates + scored_only))
    tags = tracking.run_tags(s.data, {"run_kind": "retrain", tracking.KIND_TAG: "retrain",
                                      tracking.VINTAGE_TAG: vintage, tracking.MODEL_NAME_TAG: s.model_name,
                                      tracking.LOCK_TAG: lock_abs, "fcf.pid": os.getpid(),
                                      "fcf.host": socket.gethostname(),
                                      # set by `mlflow run` (MLproject): its launcher run
                                      **({"fcf.launcher_run": os.environ["MLFLOW_RUN_ID"]}
                                         if os.environ.get("MLFLOW_RUN_ID") else {})})
    parent = tracking.start_run(client, exp_id, f"retrain-{vintage}", tags=tags)
    status = "FAILED"
    try:
        pause_point("started")
        say(f"retrain {vintage}: {len(series)} series x {len(candidates)} candidates"
            + (f" (+ current champions' {', '.join(scored_only)} for the gate)" if scored_only else "")
            + f", {s.windows} windows + {s.warmup} warm-up, h={s.h}; MLflow run {parent}")
        sel = select_champions(df, config, candidates, progress=progress)
        bt, tables, scores, champs = sel.backtest, sel.tables, sel.scores, sel.champions
        new_map = dict(zip(champs["unique_id"], champs["champion"]))
        verdict = gate(scores, new_map, cur_map, s.tolerance)
        rollup_cfg: dict[str, Any] = {}
        if s.rollup:
            from forecasting.rollup import RollupConfig

            d = RollupConfig()
            rollup_cfg = {"method": s.rollup_method, "cashflow": d.cashflow, "n_paths": s.rollup_paths,
                          "seed": s.seed, "calibrate": True,
                          "candidates": list(s.rollup_candidates or d.candidates),
                          "guided": list(d.guided if s.rollup_guided is None else s.rollup_guided),
                          "first_cutoff": s.rollup_first_cutoff or d.first_cutoff}
        state = ChampionState(history=full, champions=new_map, seed=s.seed,
                              season_length=config.season_length,
                              calibration_windows=s.calibration_windows, rollup=rollup_cfg, vintage=vintage,
                              guidance=ChampionState.guidance_records(book) if s.rollup else None)
        fc, sims = predict_from_state(state, s.h, config.level, None, return_simulations=True)
        headline = fcf_headline(sims["base"]) if "base" in sims else None
        info = {"vintage": vintage, "data": s.data or "shipped", "last_quarter": vint["data_last_quarter"],
                "sha256": vint["data_sha256"], "n_series": len(series), "candidates": candidates,
                "windows": s.windows, "warmup": s.warmup, "h": s.h, "gate": verdict,
                "model_name": s.model_name, "alias": s.alias, "run_id": parent,
                "rollup_candidates": ",".join(rollup_cfg.get("candidates", []))}
        bt_run = tracking.log_backtest(bt, df, config, experiment=s.experiment, uri=uri, data_path=s.data,
                                       run_name=f"backtest-{vintage}", tables=tables, plots=s.plots,
                                       extra_tags={"mlflow.parentRunId": parent})
        pause_point("before-register")
        version = tracking.log_and_register(
            client, parent, state.to_json(), s.model_name, input_h=s.h, level=config.level,
            example_output=fc, version_tags={tracking.CHAMPIONS_TAG: json.dumps(new_map),
                                             tracking.VINTAGE_TAG: vintage,
                                             "fcf.gate": "passed" if verdict["passed"] else "failed"},
            description=f"champions of data vintage {vintage}; {verdict['reason']}")
        pause_point("after-register")
        alias_version = current.version if (current is not None and not verdict["passed"]) else (
            version if verdict["passed"] else None)
        info.update(version=version, alias_version=alias_version, runtime_s=time.perf_counter() - t0)
        summary = summary_markdown(info, champs, headline)
        tracking.log_retrain(client, parent, champions=champs, scores=scores, forecasts=fc,
                             headline=headline, summary=summary, verdict=verdict, version=version,
                             backtest_run=bt_run, extra_metrics={"runtime_s": info["runtime_s"]},
                             params={**config.as_params(), "candidates": ",".join(candidates),
                                     "series": ",".join(series), "tolerance": s.tolerance,
                                     "model_name": s.model_name, "alias": s.alias,
                                     **{f"rollup.{k}": (",".join(v) if isinstance(v, list) else v)
                                        for k, v in rollup_cfg.items()}})
        if s.out:
            from experiments.io import write_csv, write_text

            write_csv(champs, Path(s.out) / "champions.csv")
            write_csv(fc, Path(s.out) / "forecasts.csv")
            write_text(summary, Path(s.out) / "summary.md")
        if verdict["passed"]:  # last: the alias never points at a version whose run is incomplete
            tracking.set_alias(client, s.model_name, s.alias, version)
        status = "FINISHED"
        msg = (f"registered {s.model_name} version {version}; "
               + (f"alias '{s.alias}' -> version {version}" if verdict["passed"]
                  else f"alias '{s.alias}' stays on version {alias_version} ({verdict['reason']})"))
        return RetrainResult("registered", msg, run_id=parent, version=version,
                             alias_moved=verdict["passed"], summary=summary)
    except (KeyboardInterrupt, SystemExit):
        status = "KILLED"
        raise
    finally:
        tracking.end_run_status(client, parent, status)
