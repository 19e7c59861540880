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


def predict_from_state(state: ChampionState, horizon: int = 4, levels=(80, 95), scenario=None,
                       return_simulations: bool = False):
    """Forecasts of the champions and the FCF roll-up, recomputed from `state`.

    Returns a frame ``unique_id, ds, model, model_used, mean, lo-<L>.., hi-<L>..`` (levels
    descending for ``lo``): one block per series (its champion, ``model_used`` showing a
    fallback), then ``free_cash_flow`` and ``free_cash_flow_ttm`` rows of model ``Rollup``
    (quantiles of the simulated paths) and, with a scenario, ``Rollup:<scenario name>``.
    With `return_simulations` also the dict of `forecasting.rollup.paths.Simulation` by name.
    Same state and inputs -> identical numbers.
    """
    if isinstance(horizon, (float, np.floating)) and float(horizon).is_integer():
        horizon = int(horizon)
    h, level = check_horizon(horizon, "horizon", MAX_HORIZON), parse_levels(levels)
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
        from forecasting.scenarios.run import run_scenarios

        parsed = parse_scenario(scenario)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ShortSeriesWarning)
            res = run_scenarios(hist, state.profile(), [parsed] if parsed is not None else [], h=h,
                                config=state.rollup_config(h), guidance=state.guidance_book())
        for name, sim in res.simulations.items():
            label = "Rollup" if name == "base" else f"Rollup:{name}"
            sims[name] = sim
            for uid in (sim.series.fcf, sim.series.fcf_ttm):
                parts.append(_fcf_rows(sim.paths[uid], sim.ds, uid, label, level))
    elif parse_scenario(scenario) is not None:
        raise OptionError("this model was registered without the FCF roll-up; a scenario needs it")
    out = pd.concat(parts, ignore_index=True)[output_columns(level)]
    out["ds"] = pd.to_datetime(out["ds"]).astype("datetime64[ns]")
    for c in ("unique_id", "model", "model_used"):
        out[c] = out[c].astype(str)
    out = out.reset_index(drop=True)
    return (out, sims) if return_simulations else out


def fcf_headline(sim, q=(0.1, 0.5, 0.9)) -> pd.DataFrame:
    """TTM FCF P10/P50/P90 per forecast quarter of a `forecasting.rollup.paths.Simulation` (USD millions)."""
    qv = np.quantile(sim.paths[sim.series.fcf_ttm], list(q), axis=0)
    out = pd.DataFrame({"quarter": sim.series.calendar.labels(sim.ds)})
    for lab, v in zip(("P10", "P50", "P90"), qv):
        out[lab] = v
    return out
