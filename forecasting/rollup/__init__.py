"""The FCF roll-up: its series and settings (`config`), per-node champions (`selection`), the
point forecasts reconciled at every cutoff (`pipeline`), the bootstrap of correlated errors
(`simulate`), the sample paths and their spread calibration (`paths`, `rollup()`), and the
roll-up scored at past cutoffs (`backtest`).

Built on `forecasting.rolling` (node forecasts) and `forecasting.reconcile`."""
