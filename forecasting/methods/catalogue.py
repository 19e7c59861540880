"""The built-in models, registered in one place, and `resolve` from names to specs.

Importing this module fills the registry of `forecasting.methods.registry` with every built-in spec, in
this order (the order of ``"all"`` and of the families):

- baselines and statistical models (statsforecast, season length 4): ``Naive``,
  ``SeasonalNaive``, ``RandomWalkWithDrift``, ``AutoETS``, ``AutoARIMA``, ``AutoTheta`` and the
  three classic quarterly earnings models of the accounting literature, fitted by maximum
  likelihood (statsforecast 2.1's default ``CSS-ML`` crashes on these orders):

  - ``Foster`` (1977): ARIMA(1,0,0)(0,1,0)_4 with drift, an AR(1) in seasonal differences;
  - ``GriffinWatts`` (Griffin 1977, Watts 1975): ARIMA(0,1,1)(0,1,1)_4, the "airline" model;
  - ``BrownRozeff`` (1979): ARIMA(1,0,0)(0,1,1)_4;

- log-scale twins (``AutoETSLog``, ``AutoARIMALog``, ``FosterLog``, ``GriffinWattsLog``) for
  strictly positive series with multiplicative seasonality (a fourth-quarter peak that grows
  with sales); on a series with a non-positive value they fall back to the level model;
- global ML models (`forecasting.methods.engines.ml`): ``RidgeML``, ``ElasticNetML``, ``HistGBML``,
  ``LightGBMML``;
- ensembles (`forecasting.methods.ensemble`): ``MedianEnsemble``, ``WeightedEnsemble``,
  ``MedianStatML``, ``WeightedStatML``, ``StatsCombo``, ``StatsMLCombo``, ``MLCombo``;
- the theta family and complex exponential smoothing: ``Theta`` (Assimakopoulos &
  Nikolopoulos 2000, the M3 winner on quarterly data), ``DynamicTheta`` /
  ``DynamicOptimizedTheta`` (Fiorucci et al. 2016), ``AutoCES`` (Svetunkov & Kourentzes), and
  the combination benchmarks ``EATEnsemble`` (Hyndman 2018: ETS, ARIMA, Theta),
  ``FastEnsemble`` (without the slow AutoARIMA), ``ETSThetaCombo``, ``ThetaCombo``;
- guided models (`forecasting.methods.guided`): ``GuidanceMidpoint`` and ``Guided<base>``;
- ``AutoCombo`` (`forecasting.methods.autocombo`), the library's default model.

statsforecast 2.1 needs at least 2 seasons (8 quarters) to test for seasonality; shorter
series fall back to SeasonalNaive like the other fitted models.
"""

from __future__ import annotations

from collections.abc import Iterable

from features.calendar import SEASON_LENGTH
from forecasting.methods.autocombo import WINDOWS, register_selector
from forecasting.methods.engines.ml import register_regressor
from forecasting.methods.ensemble import register_ensemble
from forecasting.methods.guided import register_guided
from forecasting.core.metrics import BASELINE
from forecasting.methods.registry import FAMILIES, REGISTRY, ModelSpec, get_spec, register

__all__ = ["AUTO_CANDIDATES", "AUTO_MARGIN", "checked_arima", "COMBO_MEMBERS", "default_models",
           "DEFAULT_MODELS", "EAT_MEMBERS", "ETS_THETA_MEMBERS", "FAST_MEMBERS", "LIBRARY_DEFAULT",
           "ML_MEMBERS", "resolve", "STAT_ML_MEMBERS", "STATISTICAL_MEMBERS", "STATS_ML_COMBO_MEMBERS",
           "THETA_MEMBERS"]

#: The library's default model: what `forecast()` uses on a frame without a company profile
#: that names its own (`features.profile.CompanyProfile.default_model`).
LIBRARY_DEFAULT = "AutoCombo"
DEFAULT_MODELS: list[str] = [BASELINE, LIBRARY_DEFAULT]

STATISTICAL_MEMBERS = ("AutoETS", "AutoARIMA", "AutoTheta", "Foster", "GriffinWatts")
STAT_ML_MEMBERS = ("AutoETS", "AutoTheta", "GriffinWatts", "RidgeML", "HistGBML")
#: The exponential-smoothing, Foster and airline models on both scales.
COMBO_MEMBERS = ("AutoETS", "Foster", "GriffinWatts", "AutoETSLog", "FosterLog", "GriffinWattsLog")
#: The four global ML models.
ML_MEMBERS = ("ElasticNetML", "RidgeML", "HistGBML", "LightGBMML")
#: StatsCombo plus the four global ML models: on the shipped company's 11 core series (12
#: windows, h=4, one run) the ML members lower the geometric-mean relative MASE from 0.513 to
#: 0.484 (ElasticNetML alone: 0.525); chosen among six candidate mixes on those same windows.
STATS_ML_COMBO_MEMBERS = COMBO_MEMBERS + ML_MEMBERS
#: The combination benchmark of Hyndman (2018): equal-weight mean of ETS, ARIMA and Theta.
EAT_MEMBERS = ("AutoETS", "AutoARIMA", "Theta")
#: The same idea without AutoARIMA (which takes ~90% of the time): ETS and two thetas.
FAST_MEMBERS = ("AutoETS", "Theta", "AutoTheta")
#: ETS and the dynamic optimised theta: the best pair of the M3 development windows.
ETS_THETA_MEMBERS = ("AutoETS", "DynamicOptimizedTheta")
#: The theta family: the standard and the dynamic optimised theta method.
THETA_MEMBERS = ("Theta", "DynamicOptimizedTheta")
#: AutoCombo's candidates, the prior first: the ETS + theta pair, the mixes of the
#: seasonal-difference models, the theta family, the ML members, and ETS and theta alone.
AUTO_CANDIDATES = ("ETSThetaCombo", "StatsMLCombo", "StatsCombo", "ThetaCombo", "MLCombo", "AutoETS",
                   "DynamicOptimizedTheta")
#: How much better than the prior (ETSThetaCombo) another candidate must score to be chosen.
AUTO_MARGIN = 0.05


def checked_arima(**kwargs):
    """statsforecast ``ARIMA`` that refuses degenerate fits (`forecasting.methods.engines.arima`)."""
    from forecasting.methods.engines.arima import CheckedARIMA

    return CheckedARIMA(**kwargs)


def _stats(name, factory, family="statistical", min_obs=10, fallback="SeasonalNaive",
           complexity=5, params=None, description=""):
    register(ModelSpec(name=name, kind="stats", build=factory, family=family, min_obs=min_obs,
                       fallback=fallback, complexity=complexity, params=params or {},
                       description=description), replace=True)


def _sf(cls: str, seasonal: bool = True, **kwargs):
    """A factory ``m -> statsforecast.models.<cls>(...)`` that imports statsforecast when a model is
    built, not when the registry fills: the registry, ``fcf --help`` and the commands that fit
    nothing start without statsforecast's 3-6 s of imports (statsmodels, scipy, dask)."""
    def build(m):
        import statsforecast.models as sfm

        return getattr(sfm, cls)(**({"season_length": m} if seasonal else {}), alias=cls, **kwargs)

    build.__qualname__ = f"_sf({cls})"
    return build


def _statistical() -> None:
    _stats("Naive", _sf("Naive", seasonal=False), "baseline", 2, None, 0,
           description="last value carried forward")
    _stats("SeasonalNaive", _sf("SeasonalNaive"),
           "baseline", 5, "Naive", 1, {"season_length": SEASON_LENGTH},
           "value of the same quarter a year earlier; the baseline of every table")
    _stats("RandomWalkWithDrift", _sf("RandomWalkWithDrift", seasonal=False),
           "baseline", 3, "Naive", 1, description="random walk with drift")
    _stats("AutoETS", _sf("AutoETS"), complexity=4,
           params={"season_length": SEASON_LENGTH, "model": "ZZZ"},
           description="exponential smoothing, state space form chosen by AICc")
    _stats("AutoARIMA", _sf("AutoARIMA"), complexity=6,
           params={"season_length": SEASON_LENGTH}, description="seasonal ARIMA chosen by AICc")
    _stats("AutoTheta", _sf("AutoTheta"), complexity=4,
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


def _renamed(build, alias):
    def factory(m):
        model = build(m)
        model.alias = alias
        return model

    return factory


def _log_scale() -> None:
    for base in ("AutoETS", "AutoARIMA", "Foster", "GriffinWatts"):
        spec = REGISTRY[base]
        register(ModelSpec(name=f"{base}Log", kind="stats", build=_renamed(spec.build, f"{base}Log"),
                           family="statistical", min_obs=spec.min_obs, fallback=base,
                           complexity=spec.complexity + 1, params={**spec.params, "transform": "log"},
                           options={"transform": "log"}, description=f"{spec.description}, fitted to log(y)"),
                 replace=True)


def _ml() -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import ElasticNet, Ridge

    register_regressor("RidgeML", lambda seed: Ridge(alpha=1.0), complexity=6,
                       description="global ridge regression on lags of the seasonally differenced, "
                                   "per-series standardised target")
    register_regressor("ElasticNetML", lambda seed: ElasticNet(alpha=0.05, l1_ratio=0.5, random_state=seed),
                       complexity=6, description="global elastic net on the same features as RidgeML")
    register_regressor("HistGBML", lambda seed: HistGradientBoostingRegressor(
        max_iter=100, learning_rate=0.05, max_leaf_nodes=8, min_samples_leaf=10, early_stopping=False,
        random_state=seed), complexity=8,
        description="global histogram gradient boosting (scikit-learn) on the same features")
    register_regressor("LightGBMML", _lightgbm, complexity=8, description="global LightGBM on the same features")


def _lightgbm(seed: int):
    """LightGBM is a core dependency (a member of StatsMLCombo): imported when used, so a broken
    install fails here, loudly, instead of silently changing the combination."""
    from lightgbm import LGBMRegressor

    return LGBMRegressor(n_estimators=100, learning_rate=0.05, num_leaves=8, min_child_samples=10,
                         subsample=1.0, random_state=seed, n_jobs=1, deterministic=True, verbose=-1)


def _ensembles() -> None:
    register_ensemble("MedianEnsemble", STATISTICAL_MEMBERS, "median")
    register_ensemble("WeightedEnsemble", STATISTICAL_MEMBERS, "weighted")
    register_ensemble("MedianStatML", STAT_ML_MEMBERS, "median")
    register_ensemble("WeightedStatML", STAT_ML_MEMBERS, "weighted")
    register_ensemble("StatsCombo", COMBO_MEMBERS, "mean",
                      "mean of AutoETS, Foster and Griffin-Watts, each on the level and the log scale")
    register_ensemble("StatsMLCombo", STATS_ML_COMBO_MEMBERS, "mean",
                      "mean of StatsCombo's six statistical models and the four global ML models")
    register_ensemble("MLCombo", ML_MEMBERS, "mean", "mean of the four global ML models")


def _theta_family() -> None:
    _stats("Theta", _sf("Theta"), complexity=3,
           params={"season_length": SEASON_LENGTH},
           description="standard theta method (M3 competition winner), multiplicative seasonal adjustment")
    _stats("DynamicTheta", _sf("DynamicTheta"), complexity=3,
           params={"season_length": SEASON_LENGTH}, description="dynamic standard theta model (Fiorucci et al. 2016)")
    _stats("DynamicOptimizedTheta",
           _sf("DynamicOptimizedTheta"), complexity=4,
           params={"season_length": SEASON_LENGTH}, description="dynamic optimised theta model (Fiorucci et al. 2016)")
    _stats("AutoCES", _sf("AutoCES"), complexity=4,
           params={"season_length": SEASON_LENGTH}, description="complex exponential smoothing, form chosen by AICc")
    register_ensemble("EATEnsemble", EAT_MEMBERS, "mean",
                      "mean of AutoETS, AutoARIMA and Theta (Hyndman 2018's EAT benchmark)")
    register_ensemble("FastEnsemble", FAST_MEMBERS, "mean",
                      "mean of AutoETS, Theta and AutoTheta (EAT without the slow AutoARIMA)")
    register_ensemble("ETSThetaCombo", ETS_THETA_MEMBERS, "mean",
                      "mean of AutoETS and the dynamic optimised theta model")
    register_ensemble("ThetaCombo", THETA_MEMBERS, "mean", "mean of the standard and the dynamic optimised theta")


def _guided() -> None:
    register_guided("GuidanceMidpoint", "SeasonalNaive", "midpoint",
                    "the middle of management's range next quarter (and a stated year's remainder), "
                    "seasonal naive after: the baseline of what management already said")
    for base in ("AutoETS", "Foster", "AutoARIMALog", "StatsCombo", "StatsMLCombo"):
        register_guided(f"Guided{base}", base)


def _default() -> None:
    register_selector(
        LIBRARY_DEFAULT, AUTO_CANDIDATES, windows=WINDOWS, margin=AUTO_MARGIN,
        description="one combination per data set and origin, chosen on the last 8 windows known at the "
                    "origin among " + ", ".join(AUTO_CANDIDATES))


for _register in (_statistical, _log_scale, _ml, _ensembles, _theta_family, _guided, _default):
    _register()


def default_models(default: str | None = None) -> list[str]:
    """``[SeasonalNaive, default]``: `default` (a company profile's choice) or `LIBRARY_DEFAULT`."""
    return [BASELINE, get_spec(default).name if default else LIBRARY_DEFAULT]


def resolve(models: str | Iterable[str] | None = None, default: str | None = None) -> list[ModelSpec]:
    """Turn model names into specs.

    ``None`` gives `default_models(default)`; ``"all"`` every registered spec; a family name
    (``"statistical"``, ``"ml"``, ``"ensemble"``, ``"baseline"``, ``"guided"``) that family; a
    comma-separated string or a list gives those names. SeasonalNaive is always included:
    it is the baseline every table is measured against.
    """
    if models is None:
        names = default_models(default)
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
    if BASELINE not in out:
        out.insert(0, BASELINE)
    return [REGISTRY[n] for n in dict.fromkeys(out)]
