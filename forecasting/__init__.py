"""Forecasting: models, backtests, reconciliation, the FCF roll-up, scenarios and claims.

Subpackages, lowest first (a module imports its own subpackage or lower ones only;
`tests/test_architecture.py`): `core`, `methods`, `rolling`, `reconcile`, `rollup`,
`scenarios`, `claims`. Importing any module of `forecasting.methods` registers the built-in
models, so the model registry is full whichever module is imported first.
"""
