"""Forecasting: models, backtests, reconciliation, the FCF roll-up, scenarios and claims.

Importing the package registers the built-in models (`forecasting.catalogue`), so the model
registry (`forecasting.models.REGISTRY`, `get_spec`, `registered`, `catalogue.resolve`) is full
whichever module is imported first: the registry no longer fills only as a side effect of
importing the catalogue.
"""

from forecasting import catalogue as _catalogue  # noqa: F401  (registers the built-in specs)
