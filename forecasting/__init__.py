"""Forecasting: models, backtests, reconciliation, the FCF roll-up, scenarios and claims.

The public surface, one import (``import forecasting as fc``)::

    company = fc.load_company(name)              # profile + quarters + guidance (+ consensus)
    res = fc.Rollup(company).fit().forecast()    # what `fcf rollup` computes
    fc.forecast(company.data, h=8); fc.backtest(...); fc.leaderboard(fc.pointwise(bt, df))
    fc.models(); fc.register(spec)               # the model registry

The names load lazily (module `__getattr__`), so ``import forecasting`` stays cheap and `fcf
--help` pays for none of it. Subpackages, lowest first (a module imports its own subpackage or
lower ones only; `tests/test_architecture.py`): `core`, `methods`, `rolling`, `reconcile`,
`rollup`, `scenarios`, `claims`. Importing any module of `forecasting.methods` registers the
built-in models, so the model registry is full whichever module is imported first.
"""

from __future__ import annotations

import importlib

#: Public name -> the module that defines it.
_EXPORTS = {
    "Company": "features.company",
    "load_company": "features.company",
    "forecast": "forecasting.rolling.forecast",
    "backtest": "forecasting.rolling.backtest",
    "BacktestConfig": "forecasting.rolling.backtest",
    "pointwise": "forecasting.core.metrics",
    "leaderboard": "forecasting.core.metrics",
    "ModelSpec": "forecasting.methods.registry",
    "models": "forecasting.methods.registry",
    "register": "forecasting.methods.registry",
    "get_spec": "forecasting.methods.registry",
    "Rollup": "forecasting.estimator",
    "NotFittedError": "forecasting.estimator",
    "RollupConfig": "forecasting.rollup.config",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'forecasting' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
