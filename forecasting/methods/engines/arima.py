"""A statsforecast ``ARIMA`` that refuses degenerate fits.

On near-unit-root seasonal differences (company sales growing steadily) statsforecast 2.1's
maximum-likelihood optimiser sometimes never leaves its starting point (every coefficient
exactly 0; without regular differencing the "model" forecast is then SeasonalNaive's under
another name: Brown-Rozeff on several of the shipped sales series) or returns a
non-invertible MA coefficient (|theta| > 1, e.g. -7.8 for Brown-Rozeff on one segment's
sales). `CheckedARIMA` raises `DegenerateFitError` for such a fit; the forecast engine then
uses the spec's fallback model and says so in ``model_used``.
"""

from __future__ import annotations

import numpy as np
from statsforecast.models import ARIMA

__all__ = ["check_fit", "CheckedARIMA", "DegenerateFitError"]


class DegenerateFitError(RuntimeError):
    """A fitted model is not a usable estimate (raised so the fallback chain takes over)."""


class CheckedARIMA(ARIMA):
    """``statsforecast.models.ARIMA`` with a check of the fitted coefficients.

    ``on_degenerate``: ``"raise"`` (default) raises `DegenerateFitError`; ``"nan"`` returns NaN
    forecasts instead, so that in a statsforecast run over many series only the degenerate
    series are marked (statsforecast stops the whole run at the first exception) and the
    forecast engine refits just those, one by one, with ``"raise"``.
    """

    on_degenerate = "raise"

    def forecast(self, y, h, X=None, X_future=None, level=None, fitted=False):
        self.fit(y, X)
        try:
            check_fit(self.alias, self.model_["coef"], differenced=self.order[1] > 0)
        except DegenerateFitError:
            if self.on_degenerate != "nan":
                raise
            return _nan_forecast(h, level, len(y) if fitted else 0)
        res = self.predict(h, X_future, level)
        if fitted:
            res.update(self.predict_in_sample(level))
        return res


def check_fit(alias: str, coef: dict, differenced: bool) -> None:
    """Raise `DegenerateFitError` for a non-invertible MA term, or for all-zero coefficients
    without regular differencing (the model then *is* SeasonalNaive). With d = 1 all-zero
    coefficients are a real model: last value plus last year's change (Griffin-Watts often
    lands there on sales and beats SeasonalNaive by far)."""
    if not differenced and coef and all(float(v) == 0.0 for v in coef.values()):
        raise DegenerateFitError(
            f"{alias}: the optimiser did not move (all coefficients 0: identical to SeasonalNaive)")
    bad = {k: round(float(v), 3) for k, v in coef.items() if "ma" in k and abs(float(v)) > 1}
    if bad:
        raise DegenerateFitError(f"{alias}: non-invertible MA coefficient(s) {bad}")


def _nan_forecast(h: int, level, n_fitted: int) -> dict:
    """statsforecast's forecast dictionary filled with NaN (a refused fit)."""
    lv = sorted(level or [])
    # the key order of statsforecast's own result (its output columns follow it)
    keys = ["mean"] + [f"lo-{x}" for x in reversed(lv)] + [f"hi-{x}" for x in lv]
    res = {k: np.full(h, np.nan) for k in keys}
    if n_fitted:
        res["fitted"] = np.full(n_fitted, np.nan)
        for k in keys[1:]:
            res[f"fitted-{k}"] = np.full(n_fitted, np.nan)
    return res
