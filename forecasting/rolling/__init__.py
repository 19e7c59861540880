"""Rolling origins: the backtest (`backtest`), the newest-quarter `forecast()` with its
calibration windows (`forecast`), the cutoffs run side by side (`parallel`) and read back from
the data-vintage cache (`cache`), and the street's consensus beside our forecasts (`street`).

Uses the models (`forecasting.methods`); knows nothing of a company's segment tree."""
