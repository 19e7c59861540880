"""The contracts every forecasting subpackage shares: the frame columns and their checks
(`frames`), the no-look-ahead rule for past forecasts (`past`), the opt-in record of which
outcomes a learned step read (`provenance`) and the backtest metrics (`metrics`).

The lowest subpackage: it imports only `features` (see `tests/test_architecture.py`)."""
