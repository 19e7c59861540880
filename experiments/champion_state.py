"""What a registered model needs to reproduce its forecasts, and the forecasts it makes.

`ChampionState` is the registered pyfunc model's only artifact (``state.json``): the training
frame snapshot, the champion of each series, the seed and calibration settings, the company
profile the roll-up reads, the roll-up settings and the guidance rows. `predict_from_state`
recomputes the champions' forecasts and the FCF roll-up from it (what the pyfunc model in
`experiments.flavor` runs): the same state and input give identical numbers. Pure: no MLflow.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.profile import CompanyProfile, load_profile, shipped_profile
from forecasting.rolling.forecast import forecast
from forecasting.core.frames import MAX_HORIZON, ShortSeriesWarning, check_horizon, interval_quantiles, output_columns
from features.errors import OptionError

#: Format of ``state.json``; version 2 states (without ``company``) load as the default company's.
STATE_VERSION = 3
#: `forecasting.rollup.config.RollupConfig` fields a registered model's roll-up records.
ROLLUP_KEYS = ("method", "cashflow", "n_paths", "seed", "calibrate", "candidates", "guided", "first_cutoff")


@dataclass
class ChampionState:
    """What the registered model needs to reproduce its forecasts.

    Attributes:
        history: long frame ``unique_id, ds, y`` of every loaded series (the roll-up needs the
            segment, capex, OCF and FCF series).
        champions: series -> champion model.
        seed, season_length, calibration_windows: as in `forecasting.rolling.forecast.forecast`.
        rollup: `forecasting.rollup.config.RollupConfig` settings (`ROLLUP_KEYS`); empty: no roll-up.
        guidance: the guidance rows the roll-up's guided models read (``quarterly`` and
            ``annual`` record lists), or None.
        company: the shipped profile's name, or the path of the profile file.
    """

    history: pd.DataFrame
    champions: dict[str, str]
    seed: int = 0
    season_length: int = 4
    calibration_windows: int = 12
    rollup: dict[str, Any] = field(default_factory=dict)
    vintage: str = ""
    guidance: dict | None = None
    company: str = "amazon"

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

    def profile(self) -> CompanyProfile:
        """The company profile of the stored roll-up (shipped by name, else from its file)."""
        return load_profile(self.company) if self.company.endswith((".yaml", ".yml")) else shipped_profile(self.company)

    def rollup_config(self, h: int):
        """The `forecasting.rollup.config.RollupConfig` of the stored roll-up settings, `h` quarters ahead."""
        from forecasting.rollup.config import RollupConfig

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
        version = d.pop("state_version", None)
        if version not in (2, STATE_VERSION):  # version 2: before profiles, always the shipped company
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
        raise OptionError(f"levels {levels!r}: give whole percents separated by commas, "
                         "e.g. '80,95'") from None
    if not out or any(not 1 <= v <= 99 for v in out):
        raise OptionError(f"levels {levels!r}: each level must be a whole percent between 1 and 99")
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
            raise OptionError(f"scenario is not valid JSON ({exc}); pass a JSON object or a YAML "
                             "file path") from None
    return text


def _fcf_rows(paths: np.ndarray, ds, uid: str, model: str, level: Sequence[int]) -> pd.DataFrame:
    out = pd.DataFrame({"unique_id": uid, "ds": pd.DatetimeIndex(ds), "model": model, "model_used": model,
                        "mean": paths.mean(axis=0)})
    for col, q in interval_quantiles(level).items():
        out[col] = np.quantile(paths, q, axis=0)
    return out


def _category_series(state: ChampionState) -> tuple[str, ...]:
    """The revenue-category series a scenario of the company may grow, present in the history."""
    have = set(state.history["unique_id"])
    return tuple(c.series for c in state.profile().categories.values() if c.series in have)


@dataclass
class StoredFit:
    """A registered model's fit: what `predict_from_state` computed at training time.

    Attributes:
        h, level: the horizon and interval levels it was computed for.
        forecasts: the output frame (champions' rows, then the roll-up's ``Rollup`` rows).
        inputs: the roll-up's `forecasting.rollup.paths.RollupInputs` at the data end (point
            forecasts, error windows, bridge; revenue categories included so a category scenario
            works), or None without a roll-up. A scenario re-simulates from them: the same
            numbers as a refit, in milliseconds.
        vintage: the state's data vintage (a fit answers only for its own state).
    """

    h: int
    level: tuple[int, ...]
    forecasts: pd.DataFrame
    inputs: Any = None
    vintage: str = ""

    def answers(self, horizon, levels) -> bool:
        """True when `horizon` is the fit's horizon and `levels` a subset of its levels."""
        h, level = _check_request(horizon, levels)
        return h == self.h and set(level) <= set(self.level)

    def predict(self, horizon, levels=(80, 95), scenario=None, state: ChampionState | None = None,
                return_simulations: bool = False):
        """The stored forecasts for `horizon` (must be the fit's) and `levels` (a subset of the
        fit's), plus a scenario's ``Rollup:<name>`` rows re-simulated from the stored inputs
        (`state` gives the company profile the scenario is checked against)."""
        h, level = _check_request(horizon, levels)
        if not self.answers(h, level):
            raise OptionError(f"this model stores its fit for horizon {self.h} and levels "
                             f"{','.join(map(str, self.level))}; got horizon {h}, levels "
                             f"{','.join(map(str, level))}: ask for those, or refit (params={{'refit': True}})")
        parts = [self.forecasts]
        sims = {}
        parsed = parse_scenario(scenario)
        if self.inputs is not None:
            from forecasting.rollup.paths import simulate

            if return_simulations:  # the base rows are stored; its paths only when asked for
                sims["base"] = simulate(self.inputs)
            if parsed is not None:
                from forecasting.scenarios.run import adjuster, as_scenario

                if state is None:
                    raise OptionError("a scenario needs the model's state (its company profile)")
                sc = as_scenario(parsed, state.profile())
                if sc.name == "base":
                    raise OptionError("a scenario may not be named 'base'")
                sims[sc.name] = simulate(self.inputs, adjust=adjuster(sc))
                for uid in (sims[sc.name].series.fcf, sims[sc.name].series.fcf_ttm):
                    parts.append(_fcf_rows(sims[sc.name].paths[uid], sims[sc.name].ds, uid,
                                           f"Rollup:{sc.name}", self.level))
        elif parsed is not None:
            raise OptionError("this model was registered without the FCF roll-up; a scenario needs it")
        out = _finish(pd.concat(parts, ignore_index=True), level)
        return (out, sims) if return_simulations else out

    def to_bytes(self) -> bytes:
        import pickle

        return pickle.dumps({"format": FIT_VERSION, "h": self.h, "level": list(self.level),
                             "forecasts": self.forecasts, "inputs": self.inputs, "vintage": self.vintage},
                            protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, data: bytes) -> StoredFit:
        import pickle

        d = pickle.loads(data)
        if not isinstance(d, dict) or d.get("format") != FIT_VERSION:
            raise ValueError(f"stored fit has an unknown format (expected format {FIT_VERSION})")
        return cls(h=int(d["h"]), level=tuple(d["level"]), forecasts=d["forecasts"], inputs=d["inputs"],
                   vintage=d.get("vintage", ""))


#: Format of the pickled `StoredFit` (``fit.pkl``); another format is refused, not guessed.
FIT_VERSION = 1


def _check_request(horizon, levels) -> tuple[int, tuple[int, ...]]:
    if isinstance(horizon, (float, np.floating)) and float(horizon).is_integer():
        horizon = int(horizon)
    return check_horizon(horizon, "horizon", MAX_HORIZON), parse_levels(levels)


def _finish(out: pd.DataFrame, level: Sequence[int]) -> pd.DataFrame:
    out = out[output_columns(level)].copy()
    out["ds"] = pd.to_datetime(out["ds"]).astype("datetime64[ns]")
    for c in ("unique_id", "model", "model_used"):
        out[c] = out[c].astype(str)
    return out.reset_index(drop=True)


def fit_state(state: ChampionState, horizon: int = 4, levels=(80, 95)) -> StoredFit:
    """Fit every champion on the state's history and the FCF roll-up (minutes): the `StoredFit`
    a registered model keeps, answering `horizon` and `levels` (and any scenario) without a refit."""
    h, level = _check_request(horizon, levels)
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
    inputs = None
    if state.rollup:
        from forecasting.rollup.paths import rollup, simulate

        config = state.rollup_config(h)
        config = config.replace(extra=tuple(dict.fromkeys([*config.extra, *_category_series(state)])))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ShortSeriesWarning)
            inputs = rollup(hist, state.profile(), config, state.guidance_book()).inputs
        sim = simulate(inputs)
        for uid in (sim.series.fcf, sim.series.fcf_ttm):
            parts.append(_fcf_rows(sim.paths[uid], sim.ds, uid, "Rollup", level))
    return StoredFit(h=h, level=level, forecasts=_finish(pd.concat(parts, ignore_index=True), level),
                     inputs=inputs, vintage=state.vintage)


def predict_from_state(state: ChampionState, horizon: int = 4, levels=(80, 95), scenario=None,
                       return_simulations: bool = False):
    """Forecasts of the champions and the FCF roll-up, recomputed from `state` (a refit:
    `fit_state` then `StoredFit.predict`).

    Returns a frame ``unique_id, ds, model, model_used, mean, lo-<L>.., hi-<L>..`` (levels
    descending for ``lo``): one block per series (its champion, ``model_used`` showing a
    fallback), then ``free_cash_flow`` and ``free_cash_flow_ttm`` rows of model ``Rollup``
    (quantiles of the simulated paths) and, with a scenario, ``Rollup:<scenario name>``.
    With `return_simulations` also the dict of `forecasting.rollup.paths.Simulation` by name.
    Same state and inputs -> identical numbers.
    """
    h, level = _check_request(horizon, levels)
    parsed = parse_scenario(scenario)
    if parsed is not None and state.rollup:
        from forecasting.scenarios.run import as_scenario

        as_scenario(parsed, state.profile())  # a bad scenario fails before any model is fitted
    elif parsed is not None:
        raise OptionError("this model was registered without the FCF roll-up; a scenario needs it")
    return fit_state(state, h, level).predict(h, level, parsed, state=state,
                                              return_simulations=return_simulations)


def fcf_headline(sim, q=(0.1, 0.5, 0.9)) -> pd.DataFrame:
    """TTM FCF P10/P50/P90 per forecast quarter of a `forecasting.rollup.paths.Simulation` (USD millions)."""
    qv = np.quantile(sim.paths[sim.series.fcf_ttm], list(q), axis=0)
    out = pd.DataFrame({"quarter": sim.series.calendar.labels(sim.ds)})
    for lab, v in zip(("P10", "P50", "P90"), qv):
        out[lab] = v
    return out
