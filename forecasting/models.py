"""One registry of model specs, used by the forecast, the backtest, the commands and the API.

A `ModelSpec` names a model and says how to build it; it holds no fitted state. Engines:

- ``stats``: a statsforecast model, built by ``build(season_length)`` with ``alias=name``;
- ``ml``: a scikit-learn regressor trained globally across series (see `forecasting.ml`);
- ``ensemble``: a combination of other specs' forecasts (see `forecasting.ensemble`);
- ``guided``: a base spec that starts from management's guidance (see `forecasting.guided`).

Adding a model is one call to `register`. Every spec has a minimum series length; a series
shorter than that is forecast by the spec's ``fallback`` (with a warning), down the chain to
``Naive``.

The three classic quarterly earnings models from the accounting literature are named models:

- Foster (1977): ARIMA(1,0,0)(0,1,0)_4 with drift -- an AR(1) in seasonal differences;
- Griffin (1977) / Watts (1975): ARIMA(0,1,1)(0,1,1)_4 -- the "airline" model;
- Brown & Rozeff (1979): ARIMA(1,0,0)(0,1,1)_4.

They are fitted by maximum likelihood (``method="ML"``): statsforecast 2.1's default
``CSS-ML`` crashes on these orders ("zero-size array to reduction operation minimum").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

SEASON_LENGTH = 4
FAMILIES = ("baseline", "statistical", "ml", "ensemble", "guided")
ENGINES = ("stats", "ml", "ensemble", "guided")


@dataclass(frozen=True)
class ModelSpec:
    """How to build one forecasting model.

    Attributes:
        name: unique name, used as column/alias everywhere (``AutoETS``, ``Foster``, ...).
        engine: ``stats``, ``ml`` or ``ensemble``.
        build: factory; for ``stats`` ``build(season_length) -> statsforecast model``; for
            ``ml`` ``build(seed) -> sklearn regressor``; unused for ensembles.
        family: ``baseline``, ``statistical``, ``ml`` or ``ensemble`` (for leaderboards).
        min_obs: the fewest observations the model fits reliably on.
        fallback: name of the spec used on shorter series (None: no fallback).
        members: for ensembles, the specs combined.
        complexity: rank for tie-breaks, lower is simpler.
        params: settings logged as run parameters.
        options: engine-specific settings (ensemble combiner, ML lags and transforms, ...).
    """

    name: str
    engine: str
    build: Callable[..., Any] | None = None
    family: str = "statistical"
    min_obs: int = 10
    fallback: str | None = "SeasonalNaive"
    members: tuple[str, ...] = ()
    complexity: int = 5
    params: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise ValueError(f"model '{self.name}': engine must be one of {ENGINES}, got '{self.engine}'")
        if self.family not in FAMILIES:
            raise ValueError(f"model '{self.name}': family must be one of {FAMILIES}, got '{self.family}'")
        if self.engine == "ensemble" and not self.members:
            raise ValueError(f"ensemble '{self.name}' needs members")


REGISTRY: dict[str, ModelSpec] = {}
#: What `fcf forecast` and `forecast()` use when no models are named.
DEFAULT_MODELS: list[str] = ["SeasonalNaive", "AutoCombo"]


def register(spec: ModelSpec, replace: bool = False) -> ModelSpec:
    """Add a spec to the registry (``replace=True`` to overwrite one of the same name)."""
    if spec.name in REGISTRY and not replace:
        raise ValueError(f"a model named '{spec.name}' is already registered; pass replace=True")
    REGISTRY[spec.name] = spec
    return spec


def get_spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(REGISTRY), n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(
            f"unknown model '{name}'{hint}; registered models: {', '.join(sorted(REGISTRY))}"
        ) from None


def resolve(models: str | Iterable[str] | None = None) -> list[ModelSpec]:
    """Turn model names into specs.

    ``None`` gives `DEFAULT_MODELS`; ``"all"`` every registered spec; a family name
    (``"statistical"``, ``"ml"``, ``"ensemble"``, ``"baseline"``) that family; a
    comma-separated string or a list gives those names. SeasonalNaive is always included:
    it is the baseline every table is measured against.
    """
    _ensure_loaded()
    if models is None:
        names = list(DEFAULT_MODELS)
    elif isinstance(models, str):
        names = [m.strip() for m in models.split(",") if m.strip()]
    else:
        names = list(models)
    out: list[str] = []
    for n in names:
        if n == "all":
            out += list(REGISTRY)
        elif n in FAMILIES:
            out += [s.name for s in REGISTRY.values() if s.family == n]
        else:
            out.append(get_spec(n).name)
    if "SeasonalNaive" not in out:
        out.insert(0, "SeasonalNaive")
    return [REGISTRY[n] for n in dict.fromkeys(out)]


def with_members(specs: Iterable[ModelSpec]) -> list[ModelSpec]:
    """Specs plus every member their ensembles need, members first."""
    seen: dict[str, ModelSpec] = {}

    def add(spec: ModelSpec):
        for m in spec.members:
            add(get_spec(m))
        seen.setdefault(spec.name, spec)

    for s in specs:
        add(s)
    return list(seen.values())


def fallback_chain(spec: ModelSpec, n_obs: int) -> ModelSpec | None:
    """The first spec down the fallback chain that fits on ``n_obs`` points (None if none)."""
    current: ModelSpec | None = spec
    seen = set()
    while current is not None and current.min_obs > n_obs:
        if current.name in seen:
            raise ValueError(f"fallback cycle at model '{current.name}'")
        seen.add(current.name)
        current = get_spec(current.fallback) if current.fallback else None
    return current


# --------------------------------------------------------------------------- built-ins
def checked_arima(**kwargs):
    """statsforecast ``ARIMA`` that refuses degenerate fits (see `forecasting.arima`)."""
    from forecasting.arima import CheckedARIMA

    return CheckedARIMA(**kwargs)


def _stats(name, factory, family="statistical", min_obs=10, fallback="SeasonalNaive",
           complexity=5, params=None, description=""):
    register(
        ModelSpec(
            name=name,
            engine="stats",
            build=factory,
            family=family,
            min_obs=min_obs,
            fallback=fallback,
            complexity=complexity,
            params=params or {},
            description=description,
        ),
        replace=True,
    )


def _register_statistical() -> None:
    from statsforecast.models import (
        AutoARIMA,
        AutoETS,
        AutoTheta,
        Naive,
        RandomWalkWithDrift,
        SeasonalNaive,
    )

    _stats("Naive", lambda m: Naive(alias="Naive"), "baseline", 2, None, 0,
           description="last value carried forward")
    _stats("SeasonalNaive", lambda m: SeasonalNaive(season_length=m, alias="SeasonalNaive"),
           "baseline", 5, "Naive", 1, {"season_length": SEASON_LENGTH},
           "value of the same quarter a year earlier; the baseline of every table")
    _stats("RandomWalkWithDrift", lambda m: RandomWalkWithDrift(alias="RandomWalkWithDrift"),
           "baseline", 3, "Naive", 1, description="random walk with drift")
    _stats("AutoETS", lambda m: AutoETS(season_length=m, alias="AutoETS"), complexity=4,
           params={"season_length": SEASON_LENGTH, "model": "ZZZ"},
           description="exponential smoothing, state space form chosen by AICc")
    _stats("AutoARIMA", lambda m: AutoARIMA(season_length=m, alias="AutoARIMA"), complexity=6,
           params={"season_length": SEASON_LENGTH}, description="seasonal ARIMA chosen by AICc")
    _stats("AutoTheta", lambda m: AutoTheta(season_length=m, alias="AutoTheta"), complexity=4,
           params={"season_length": SEASON_LENGTH}, description="theta family chosen by MSE")
    _stats("Foster", lambda m: checked_arima(order=(1, 0, 0), seasonal_order=(0, 1, 0), season_length=m,
                                     include_drift=True, method="ML", alias="Foster"),
           complexity=3, params={"order": "(1,0,0)", "seasonal_order": "(0,1,0)", "drift": True},
           description="Foster (1977): ARIMA(1,0,0)(0,1,0)_4 with drift")
    _stats("GriffinWatts", lambda m: checked_arima(order=(0, 1, 1), seasonal_order=(0, 1, 1), season_length=m,
                                           method="ML", alias="GriffinWatts"),
           complexity=3, params={"order": "(0,1,1)", "seasonal_order": "(0,1,1)"},
           description="Griffin (1977) / Watts (1975): ARIMA(0,1,1)(0,1,1)_4")
    _stats("BrownRozeff", lambda m: checked_arima(order=(1, 0, 0), seasonal_order=(0, 1, 1), season_length=m,
                                          method="ML", alias="BrownRozeff"),
           complexity=3, params={"order": "(1,0,0)", "seasonal_order": "(0,1,1)"},
           description="Brown & Rozeff (1979): ARIMA(1,0,0)(0,1,1)_4")


def _register_log_scale() -> None:
    """Log-scale twins of the fitted models, for strictly positive series (sales, capex).

    Multiplicative structure: Amazon's Q4 peak grows with the level of sales. On a series with
    a zero or negative value the twin falls back to the level-scale model.
    """
    for base in ("AutoETS", "AutoARIMA", "Foster", "GriffinWatts"):
        spec = REGISTRY[base]
        register(
            ModelSpec(
                name=f"{base}Log",
                engine="stats",
                build=_renamed(spec.build, f"{base}Log"),
                family="statistical",
                min_obs=spec.min_obs,
                fallback=base,
                complexity=spec.complexity + 1,
                params={**spec.params, "transform": "log"},
                options={"transform": "log"},
                description=f"{spec.description}, fitted to log(y)",
            ),
            replace=True,
        )


def _renamed(build, alias):
    def factory(m):
        model = build(m)
        model.alias = alias
        return model

    return factory


_LOADED = False
#: Modules that register more specs on first use (ML models, ensembles). Each is optional so
#: a missing extra dependency disables those models instead of breaking the library.
EXTENSION_MODULES: list[str] = ["forecasting.ml", "forecasting.ensemble", "forecasting.extra_models",
                                 "forecasting.guided", "forecasting.autocombo"]


def _ensure_loaded() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    _register_statistical()
    _register_log_scale()
    import importlib

    for mod in EXTENSION_MODULES:
        importlib.import_module(mod)
