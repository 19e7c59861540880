"""More statistical specs: the theta family and complex exponential smoothing, and the
ETS/ARIMA/Theta combination benchmark of the forecasting literature.

Registered on first `forecasting.models.resolve` (listed in ``EXTENSION_MODULES``):

- ``Theta``: the standard theta method (Assimakopoulos & Nikolopoulos 2000, the M3 winner
  on quarterly data) after a multiplicative seasonal adjustment when a seasonality test
  says so; ``DynamicTheta`` / ``DynamicOptimizedTheta``: the dynamic versions of Fiorucci
  et al. (2016); ``AutoCES``: complex exponential smoothing (Svetunkov & Kourentzes).
- ``EATEnsemble``: the equal-weight mean of AutoETS, AutoARIMA and Theta, the "EAT"
  benchmark of Hyndman (2018) (M3 quarterly, R `forecast`: sMAPE 9.01 / MASE 1.064);
  ``FastEnsemble``: the mean of AutoETS, Theta and AutoTheta, without the slow AutoARIMA;
  ``ETSThetaCombo``: the mean of AutoETS and DynamicOptimizedTheta (the EAT idea without
  AutoARIMA, whose ~145 s per M3 fit on two cores rules it out of a selection that refits at
  every window); ``ThetaCombo``: the mean of Theta and DynamicOptimizedTheta.

statsforecast 2.1 needs at least 2 seasons (8 quarters) to test for seasonality; shorter
series fall back to SeasonalNaive like the other fitted models.
"""

from __future__ import annotations

from forecasting.models import SEASON_LENGTH, ModelSpec, register

#: The combination benchmark of Hyndman (2018): equal-weight mean of ETS, ARIMA and Theta.
EAT_MEMBERS = ("AutoETS", "AutoARIMA", "Theta")
#: The same idea without AutoARIMA (which takes ~90% of the time): ETS and two thetas.
FAST_MEMBERS = ("AutoETS", "Theta", "AutoTheta")
#: ETS and the dynamic optimised theta: the best pair of the M3 development windows (the
#: first candidate of AutoCombo, see `forecasting.autocombo`).
ETS_THETA_MEMBERS = ("AutoETS", "DynamicOptimizedTheta")
#: The theta family: the standard and the dynamic optimised theta method.
THETA_MEMBERS = ("Theta", "DynamicOptimizedTheta")


def _theta_family() -> None:
    from statsforecast.models import AutoCES, DynamicOptimizedTheta, DynamicTheta, Theta

    specs = [
        ("Theta", lambda m: Theta(season_length=m, alias="Theta"), 3,
         "standard theta method (M3 competition winner), multiplicative seasonal adjustment"),
        ("DynamicTheta", lambda m: DynamicTheta(season_length=m, alias="DynamicTheta"), 3,
         "dynamic standard theta model (Fiorucci et al. 2016)"),
        ("DynamicOptimizedTheta", lambda m: DynamicOptimizedTheta(season_length=m, alias="DynamicOptimizedTheta"),
         4, "dynamic optimised theta model (Fiorucci et al. 2016)"),
        ("AutoCES", lambda m: AutoCES(season_length=m, alias="AutoCES"), 4,
         "complex exponential smoothing, form chosen by AICc"),
    ]
    for name, build, complexity, description in specs:
        register(
            ModelSpec(name=name, engine="stats", build=build, family="statistical", min_obs=10,
                      fallback="SeasonalNaive", complexity=complexity,
                      params={"season_length": SEASON_LENGTH}, description=description),
            replace=True,
        )


def _ensembles() -> None:
    from forecasting.ensemble import register_ensemble

    register_ensemble("EATEnsemble", EAT_MEMBERS, "mean",
                      "mean of AutoETS, AutoARIMA and Theta (Hyndman 2018's EAT benchmark)")
    register_ensemble("FastEnsemble", FAST_MEMBERS, "mean",
                      "mean of AutoETS, Theta and AutoTheta (EAT without the slow AutoARIMA)")
    register_ensemble("ETSThetaCombo", ETS_THETA_MEMBERS, "mean",
                      "mean of AutoETS and the dynamic optimised theta model")
    register_ensemble("ThetaCombo", THETA_MEMBERS, "mean", "mean of the standard and the dynamic optimised theta")


_theta_family()
_ensembles()
