"""Model specs and the registry they live in; the built-in specs are in `forecasting.methods.catalogue`.

A `ModelSpec` names a model and says how to build it; it holds no fitted state. Kinds:

- ``stats``: a statsforecast model, built by ``build(season_length)`` with ``alias=name``
  (`forecasting.methods.engines.stats`);
- ``ml``: a scikit-learn regressor trained globally across series (`forecasting.methods.engines.ml`);
- ``ensemble``: a combination of other specs' forecasts (`forecasting.methods.ensemble`);
- ``guided``: a base spec that starts from management's guidance (`forecasting.methods.guided`).

Adding a model is one call to `register`. Every spec has a minimum series length; a series
shorter than that is forecast by the spec's ``fallback`` (with a warning), down the chain to
``Naive``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from features.errors import OptionError

__all__ = ["FAMILIES", "KINDS", "ModelSpec", "REGISTRY", "registered", "models", "register", "get_spec",
           "with_members", "fallback_chain", "chain"]

FAMILIES = ("baseline", "statistical", "ml", "ensemble", "guided")
KINDS = ("stats", "ml", "ensemble", "guided")


@dataclass(frozen=True)
class ModelSpec:
    """How to build one forecasting model.

    Attributes:
        name: unique name, used as column/alias everywhere (``AutoETS``, ``Foster``, ...).
        kind: ``stats``, ``ml``, ``ensemble`` or ``guided`` (which engine fits it).
        build: factory; for ``stats`` ``build(season_length) -> statsforecast model``; for
            ``ml`` ``build(seed) -> sklearn regressor``; unused for ensembles.
        family: ``baseline``, ``statistical``, ``ml``, ``ensemble`` or ``guided`` (for leaderboards).
        min_obs: the fewest observations the model fits reliably on.
        fallback: name of the spec used on shorter series (None: no fallback).
        members: for ensembles, the specs combined.
        complexity: rank for tie-breaks, lower is simpler.
        params: settings logged as run parameters.
        options: settings of the kind (ensemble combiner, ML lags and transforms, ...).
    """

    name: str
    kind: str
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
        if self.kind not in KINDS:
            raise OptionError(f"model '{self.name}': kind must be one of {KINDS}, got '{self.kind}'")
        if self.family not in FAMILIES:
            raise OptionError(f"model '{self.name}': family must be one of {FAMILIES}, got '{self.family}'")
        if self.kind == "ensemble" and not self.members:
            raise OptionError(f"ensemble '{self.name}' needs members")


#: Every registered spec by name. Importing the `forecasting` package fills it with the built-in
#: specs (`forecasting/__init__.py` imports `forecasting.methods.catalogue`), so it is full whichever
#: module a user imports first.
REGISTRY: dict[str, ModelSpec] = {}


def registered(family: str | None = None) -> list[str]:
    """The names of every registered model (of one `family`), in registration order."""
    if family is not None and family not in FAMILIES:
        raise OptionError(f"unknown family '{family}'; families: {', '.join(FAMILIES)}")
    return [n for n, s in REGISTRY.items() if family is None or s.family == family]


def models(family: str | None = None) -> dict[str, str]:
    """Every registered model (of one `family`) and its family, in registration order."""
    return {n: REGISTRY[n].family for n in registered(family)}


def register(spec: ModelSpec, replace: bool = False) -> ModelSpec:
    """Add a spec to the registry (``replace=True`` to overwrite one of the same name)."""
    if spec.name in REGISTRY and not replace:
        raise OptionError(f"a model named '{spec.name}' is already registered; pass replace=True")
    REGISTRY[spec.name] = spec
    return spec


def get_spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(REGISTRY), n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise OptionError(
            f"unknown model '{name}'{hint}; registered models: {', '.join(sorted(REGISTRY))}"
        ) from None


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
            raise OptionError(f"fallback cycle at model '{current.name}'")
        seen.add(current.name)
        current = get_spec(current.fallback) if current.fallback else None
    return current


def chain(spec: ModelSpec) -> list[ModelSpec]:
    """`spec` and every spec it needs: its members and base (recursively) and their fallbacks."""
    seen: dict[str, ModelSpec] = {}

    def add(s: ModelSpec) -> None:
        if s.name in seen:
            return
        seen[s.name] = s
        for name in (*s.members, s.options.get("base"), s.fallback):
            if name:
                add(get_spec(name))

    add(spec)
    return list(seen.values())
