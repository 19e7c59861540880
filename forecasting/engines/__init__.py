"""Model engines: how a model kind is fitted and forecast at one origin.

- `forecasting.engines.stats`: statsforecast models, one call per group of series sharing a
  plan, with each spec's fallback chain for short series and failed fits;
- `forecasting.engines.ml`: global scikit-learn regressors through mlforecast;
- `forecasting.engines.arima`: the ARIMA model that refuses degenerate fits;
- `forecasting.engines.distributed`: the executor that fits statistical models on a cluster.
"""
