"""Model engines: how a model kind is fitted and forecast at one origin.

- `forecasting.methods.engines.stats`: statsforecast models, one call per group of series sharing a
  plan, with each spec's fallback chain for short series and failed fits;
- `forecasting.methods.engines.ml`: global scikit-learn regressors through mlforecast;
- `forecasting.methods.engines.arima`: the ARIMA model that refuses degenerate fits;
- `forecasting.methods.engines.distributed`: the executor that fits statistical models on a cluster.
"""
