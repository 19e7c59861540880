"""A universe of companies: backtest and roll up every one, each company an independent task.

A universe file (YAML, or CSV with a ``company`` column) lists companies: a shipped profile's
name, a profile path (relative to the file) or a ticker already added by ``fcf company add``
(found as ``<profiles dir>/<ticker lower>.yaml``)::

    name: shipped
    companies:
      - amazon
      - snowflake
      - {path: companies/acme.yaml}
      - {ticker: MSFT}
      - {name: amazon, settings: {rollup: false}}   # a company's own settings
    settings: {h: 4, windows: 8, warmup: 4, model: null, rollup: true, rollup_windows: 4,
               rollup_candidates: null, rollup_cutoffs: null}

``windows``/``warmup``: null takes each profile's backtest windows; ``model``: null takes each
profile's default model (the library's AutoCombo where it names none); ``rollup_candidates``
and ``rollup_cutoffs`` (node cutoffs from this many quarters before the last) make a small
roll-up for tests and benchmarks; null: the roll-up's defaults.

`run_universe(universe, engine=...)` runs `company_task` per company in this process
(``engine=None``) or as one task per company on a ``dask.distributed`` cluster (``"dask"``: a
LocalCluster of `workers` processes; ``tcp://host:port``: a running scheduler; or a
``distributed.Client``). Each task reads its company, backtests its five cash-flow series
(revenue, operating income, OCF, capex, FCF, from the profile's ``cash_flow``) and its core
series with the
company's default model (or ``settings.model``) and SeasonalNaive, and, when the profile has a
roll-up and ``settings.rollup``, backtests the FCF roll-up. A company that fails is a row of
`UniverseResult.failures`; the others go on. `UniverseResult.leaderboards` is one table per
series kind: per company, the default model's MASE, SeasonalNaive's and their ratio, and the
universe's geometric mean of the ratios. Tasks fit in one process each (``n_jobs=1``), so a
cluster's parallelism is across companies and the numbers equal a one-process run.
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from features.errors import InputError

KINDS = ("sales", "operating_income", "operating_cash_flow", "capex", "free_cash_flow")
KIND_LABEL = {"sales": "revenue", "operating_income": "operating_income", "operating_cash_flow": "ocf",
              "capex": "capex", "free_cash_flow": "fcf"}
SETTINGS = {"h": 4, "windows": None, "warmup": None, "model": None, "rollup": True, "rollup_windows": 4,
            "rollup_candidates": None, "rollup_cutoffs": None}
BASELINE = "SeasonalNaive"


class UniverseError(InputError):
    """A universe file is invalid; the message names the file and the entry."""


@dataclass(frozen=True)
class Entry:
    """One company of a universe: how it was named and the profile it resolves to."""

    label: str
    profile: str
    settings: tuple = ()  # (key, value) pairs replacing the universe's settings for this company


@dataclass
class Universe:
    name: str
    entries: list[Entry]
    settings: dict = field(default_factory=lambda: dict(SETTINGS))


@dataclass
class CompanyOutcome:
    """What one company's task returned (``error`` set when it failed)."""

    label: str
    company: str = ""
    model: str = ""
    scores: pd.DataFrame | None = None  # kind, unique_id, model, mase
    rollup: pd.DataFrame | None = None  # unique_id, model, rel_mase, coverage_80
    seconds: float = 0.0
    error: str = ""


@dataclass
class UniverseResult:
    name: str
    outcomes: list[CompanyOutcome]
    leaderboards: dict[str, pd.DataFrame]
    rollup: pd.DataFrame
    engine: str

    @property
    def failures(self) -> list[CompanyOutcome]:
        return [o for o in self.outcomes if o.error]


# --------------------------------------------------------------------------- the file
def read_universe(path: str | Path) -> Universe:
    """Read a universe file (see the module docstring); `UniverseError` names file and entry."""
    import yaml

    from features.profile import profiles_dir, shipped_profiles

    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise UniverseError(f"{where}: universe file not found (looked for {path.resolve()})")
    if path.suffix.lower() == ".csv":
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        if "company" not in table:
            raise UniverseError(f"{where}: a universe CSV needs a 'company' column")
        raw = {"name": path.stem, "companies": [c for c in table["company"] if c.strip()]}
    else:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise UniverseError(f"{where}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("companies"), list) or not raw["companies"]:
        raise UniverseError(f"{where}, key companies: expected a list of companies (names, {{path: ...}} or "
                            "{ticker: ...})")
    unknown = set(raw) - {"name", "companies", "settings"}
    if unknown:
        raise UniverseError(f"{where}, key {sorted(unknown)[0]}: unknown (known: name, companies, settings)")
    settings = dict(SETTINGS)
    for k, v in (raw.get("settings") or {}).items():
        if k not in SETTINGS:
            raise UniverseError(f"{where}, key settings.{k}: unknown (known: {', '.join(SETTINGS)})")
        settings[k] = v
    shipped = shipped_profiles()
    entries = []
    for i, item in enumerate(raw["companies"]):
        key = f"companies[{i}]"
        own: dict = {}
        if isinstance(item, dict) and isinstance(item.get("settings"), dict):
            own = dict(item["settings"])
            item = {k: v for k, v in item.items() if k != "settings"}
            bad = set(own) - set(SETTINGS)
            if bad:
                raise UniverseError(f"{where}, key {key}.settings.{sorted(bad)[0]}: unknown (known: {', '.join(SETTINGS)})")
        extra = tuple(sorted(own.items()))
        if isinstance(item, dict) and set(item) == {"name"}:
            item = str(item["name"])
        if isinstance(item, str) and item in shipped:
            entries.append(Entry(item, str(shipped[item]), extra))
        elif isinstance(item, dict) and set(item) == {"path"}:
            p = (path.parent / str(item["path"])).resolve()
            if not p.is_file():
                raise UniverseError(f"{where}, key {key}.path: profile {p} not found")
            entries.append(Entry(p.stem, str(p), extra))
        elif isinstance(item, dict) and set(item) == {"ticker"}:
            p = profiles_dir() / f"{str(item['ticker']).lower()}.yaml"
            if not p.is_file():
                raise UniverseError(f"{where}, key {key}.ticker: no profile {p}; run fcf company add {item['ticker']}")
            entries.append(Entry(str(item["ticker"]).upper(), str(p), extra))
        else:
            raise UniverseError(f"{where}, key {key}: {item!r} is not a shipped company ({', '.join(shipped)}), "
                                "{path: profile.yaml} or {ticker: TICKER}")
    return Universe(str(raw.get("name") or path.stem), entries, settings)


# --------------------------------------------------------------------------- one company
def company_task(entry: Entry, settings: dict) -> CompanyOutcome:
    """Backtest and roll up one company; never raises (a failure is the outcome's ``error``)."""
    t0 = time.perf_counter()
    try:
        out = _company(entry, {**settings, **dict(entry.settings)})
    except Exception as exc:  # one company's failure must not stop the universe
        last = traceback.extract_tb(exc.__traceback__)[-1]
        out = CompanyOutcome(entry.label, error=f"{type(exc).__name__}: {exc} ({Path(last.filename).name}:"
                                                f"{last.lineno})")
    out.seconds = time.perf_counter() - t0
    return out


def _company(entry: Entry, settings: dict) -> CompanyOutcome:
    import forecasting as fc
    from forecasting.core.metrics import pointwise, summarize

    company = fc.load_company(entry.profile, consensus=False)
    prof = company.profile
    if prof.cash_flow is None:
        raise InputError(f"{prof.name}: the profile has no cash_flow series; nothing to score")
    kinds = {k: getattr(prof.cash_flow, k) for k in KINDS}
    wanted = {*kinds.values(), *prof.core_series}  # the cash-flow series, and the profile's core series
    df = company.data[company.data["unique_id"].isin(wanted)]
    model = settings.get("model") or prof.default_model or "AutoCombo"
    overrides = {"h": int(settings["h"]), "n_windows": int(settings["windows"] or prof.backtest.get("windows", 12)),
                 "warmup_windows": int(settings["warmup"] if settings["warmup"] is not None
                                       else prof.backtest.get("warmup", 8))}
    bt = fc.backtest(df, [model, BASELINE], n_jobs=1, **overrides)
    per = summarize(pointwise(bt, df), ("unique_id", "model"))
    kind_of = {v: KIND_LABEL[k] for k, v in kinds.items()}
    scores = per.assign(kind=per["unique_id"].map(kind_of))[["kind", "unique_id", "model", "mase"]]
    rollup = None
    if settings.get("rollup") and prof.has_rollup:
        from forecasting.rollup.backtest import RollupBacktestConfig, score_rollup

        cfg = fc.RollupConfig(h=int(settings["h"]))
        if settings.get("rollup_cutoffs"):  # node cutoffs from this many quarters before the last one
            from features.calendar import fiscal_freq, quarter_label

            last = pd.Period(company.data["ds"].max(), freq=fiscal_freq(prof.fiscal_year_end_month))
            cfg = cfg.replace(first_cutoff=quarter_label(last - int(settings["rollup_cutoffs"]),
                                                         "calendar" if prof.fiscal_year_end_month == 12 else "fiscal"))
        if settings.get("rollup_candidates"):
            cfg = cfg.replace(candidates=tuple(settings["rollup_candidates"]), guided=())
        res = fc.Rollup(company, cfg).fit().backtest(RollupBacktestConfig(
            n_windows=int(settings["rollup_windows"]), direct_models=(), fiscal_years=False))
        sc = score_rollup(res).overall
        rollup = sc[sc["model"].isin(["RollupCalibrated", "Rollup", BASELINE])][
            ["unique_id", "model", "rel_mase", "coverage_80"]].reset_index(drop=True)
    return CompanyOutcome(entry.label, prof.name, model, scores.reset_index(drop=True), rollup)


# --------------------------------------------------------------------------- the universe
def _gmean(values) -> float:
    vals = [v for v in values if v > 0 and math.isfinite(v)]
    return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else float("nan")


def leaderboards(outcomes: list[CompanyOutcome]) -> dict[str, pd.DataFrame]:
    """Per series kind: company, default model, its MASE, SeasonalNaive's, the ratio; a last
    row ``universe`` with the geometric mean of the ratios."""
    out = {}
    for kind in KIND_LABEL.values():
        rows = []
        for o in outcomes:
            if o.error or o.scores is None:
                continue
            s = o.scores[o.scores["kind"] == kind].set_index("model")["mase"]
            if o.model in s and BASELINE in s:
                rows.append({"company": o.label, "model": o.model, "mase": s[o.model], "mase_seasonal_naive":
                             s[BASELINE], "rel_mase": s[o.model] / s[BASELINE]})
        table = pd.DataFrame(rows, columns=["company", "model", "mase", "mase_seasonal_naive", "rel_mase"])
        if len(table):
            table.loc[len(table)] = {"company": "universe (geometric mean)", "model": "",
                                     "mase": float("nan"), "mase_seasonal_naive": float("nan"),
                                     "rel_mase": _gmean(table["rel_mase"])}
        out[kind] = table
    return out


def _client(engine, workers: int):
    """``(client, cluster or None, label)`` for an engine spec."""
    from distributed import Client, LocalCluster

    if isinstance(engine, Client):
        return engine, None, f"dask client {engine.scheduler.address}"
    if engine == "dask":
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(cluster), cluster, f"dask LocalCluster ({workers} workers)"
    if isinstance(engine, str) and "://" in engine:
        return Client(engine), None, f"dask scheduler {engine}"
    raise UniverseError(f"engine {engine!r}: none (one process), 'dask' (a LocalCluster) or a scheduler address "
                        "like tcp://host:8786")


def run_universe(universe: Universe | str | Path, engine=None, workers: int = 2, say=None) -> UniverseResult:
    """Every company of `universe` (see the module docstring); results in the file's order."""
    if not isinstance(universe, Universe):
        universe = read_universe(universe)
    settings = universe.settings
    if engine in (None, "local", "process"):
        outcomes = []
        for e in universe.entries:
            outcomes.append(company_task(e, settings))
            if say:
                say(_line(outcomes[-1]))
        label = "one process"
    else:
        from distributed import as_completed

        client, cluster, label = _client(engine, workers)
        try:
            futures = {client.submit(company_task, e, settings, key=f"company-{i}-{e.label}", pure=False): i
                       for i, e in enumerate(universe.entries)}
            done: dict[int, CompanyOutcome] = {}
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    done[i] = fut.result()
                except Exception as exc:  # a worker lost: that company fails, the others go on
                    done[i] = CompanyOutcome(universe.entries[i].label, error=f"{type(exc).__name__}: {exc}")
                if say:
                    say(_line(done[i]))
            outcomes = [done[i] for i in range(len(universe.entries))]
        finally:
            if cluster is not None:
                client.close()
                cluster.close()
    roll = [o.rollup.assign(company=o.label) for o in outcomes if o.rollup is not None and not o.error]
    rollup = pd.concat(roll, ignore_index=True) if roll else pd.DataFrame(
        columns=["unique_id", "model", "rel_mase", "coverage_80", "company"])
    return UniverseResult(universe.name, outcomes, leaderboards(outcomes), rollup, label)


def _line(o: CompanyOutcome) -> str:
    if o.error:
        return f"{o.label}: FAILED ({o.error})"
    return f"{o.label}: {o.model} vs {BASELINE}, {o.seconds:.1f} s" + (", roll-up scored" if o.rollup is not None
                                                                      else "")


def format_result(result: UniverseResult) -> str:
    """The leaderboards and the roll-up table as markdown."""
    parts = [f"universe {result.name} ({len(result.outcomes)} companies, {result.engine}; "
             f"{len(result.failures)} failed)"]
    for kind, table in result.leaderboards.items():
        parts.append(f"\n{kind}:\n" + (table.to_markdown(index=False, floatfmt=".3f") if len(table) else "(none)"))
    if len(result.rollup):
        parts.append("\nroll-up (FCF, relative MASE vs SeasonalNaive):\n"
                     + result.rollup[["company", "unique_id", "model", "rel_mase", "coverage_80"]].to_markdown(
                         index=False, floatfmt=".3f"))
    for o in result.failures:
        parts.append(f"FAILED {o.label}: {o.error}")
    return "\n".join(parts)


def log_universe(result: UniverseResult, uri: str | None = None, experiment: str = "universe") -> str:
    """One MLflow parent run for the universe, a child per company (failed ones FAILED); returns
    the parent's id."""
    from experiments import tracking

    client = tracking.get_client(uri)
    exp_id = tracking.experiment_id(client, experiment)
    with tracking.run_group(client, exp_id, f"universe {result.name}", tags={"fcf.engine": result.engine}) as group:
        metrics = [(tracking.metric_key("rel_mase", kind, "gmean"), t["rel_mase"].iloc[-1], 0)
                   for kind, t in result.leaderboards.items() if len(t)]
        tracking.log_batch(client, group.parent, metrics, params={"companies": len(result.outcomes),
                                                                  "failed": len(result.failures)})
        for o in result.outcomes:
            run = group.child(o.label, tags={"fcf.company": o.company or o.label})
            ms = [(tracking.metric_key("seconds"), o.seconds, 0)]
            if o.scores is not None:
                ms += [(tracking.metric_key("mase", r.kind, r.model), r.mase, 0) for r in o.scores.itertuples()]
            if o.rollup is not None:
                ms += [(tracking.metric_key("rollup_rel_mase", r.unique_id, r.model), r.rel_mase, 0)
                       for r in o.rollup.itertuples()]
            tracking.log_batch(client, run, ms, params={"model": o.model}, tags={"fcf.error": o.error[:500]}
                               if o.error else None)
            tracking.end_run(client, run, ok=not o.error)
    return group.parent
