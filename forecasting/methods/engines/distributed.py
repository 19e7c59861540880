"""Run the statistical models on a cluster: statsforecast's Fugue backend (Dask, Spark, Ray).

Selected by one argument, ``engine`` (the executor; a model's kind is `ModelSpec.kind`), of
`forecasting.rolling.forecast.forecast`, `forecasting.methods.dispatch.forecast_base` and
`forecasting.rolling.backtest.backtest`:

- ``None`` / ``"local"``: statsforecast in this process (the default);
- ``"dask"``: the active ``dask.distributed`` client (``Client(address)`` or
  ``get_client()``); if none is active, Fugue starts a local one;
- a ``dask.distributed.Client``: that client's cluster (e.g. ``Client("tcp://scheduler:8786")``);
- any other Fugue engine: ``"spark"`` or a ``SparkSession``, ``"ray"`` (needs the extra
  packages ``fugue[spark]`` / ``fugue[ray]``).

Only the model fitting is distributed: the series are partitioned by ``unique_id`` into a Dask
data frame and each worker runs ``StatsForecast(n_jobs=1).forecast`` on its partition (this is
what ``StatsForecast(...).forecast(df=dask_df)`` does); validation, fallbacks for short or
failing series, ensembles and interval calibration stay on the client, so the results equal
the local path's (each series is fitted by the same deterministic code). ML models (mlforecast)
always run locally.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from features.errors import OptionError

__all__ = ["check_engine", "is_distributed", "LOCAL", "statsforecast_forecast", "to_pandas_input"]

LOCAL = (None, "local", "pandas")


def is_distributed(engine: Any) -> bool:
    """True when `engine` selects a cluster rather than this process."""
    return not (engine is None or (isinstance(engine, str) and engine in LOCAL))


def check_engine(engine: Any) -> Any:
    """Validate `engine` early (before any model is fitted); returns it unchanged."""
    if not is_distributed(engine):
        return engine
    if isinstance(engine, str):
        known = ("dask", "spark", "ray")
        if engine not in known:
            raise OptionError(
                f"engine must be None/'local', one of {known}, a dask.distributed.Client or a "
                f"Fugue execution engine; got '{engine}'"
            )
        try:
            __import__(f"fugue_{engine}")
            if engine == "dask":
                import dask.distributed  # noqa: F401
        except ImportError as exc:
            extra = "fcf-forecasting[distributed]" if engine == "dask" else f"fugue[{engine}]"
            raise OptionError(
                f"engine='{engine}' needs {exc.name}; install it with pip install '{extra}'"
            ) from None
    try:
        import fugue  # noqa: F401
    except ImportError:
        raise OptionError("a distributed engine needs fugue; pip install 'fcf-forecasting[distributed]'") from None
    return engine


def to_pandas_input(df: Any) -> tuple[pd.DataFrame, bool]:
    """A pandas copy of `df` and whether it was a Dask data frame (which then selects Dask).

    A Dask data frame is gathered on the client so that its series can be validated; the model
    fitting is then distributed again by `statsforecast_forecast`.
    """
    if isinstance(df, pd.DataFrame):
        return df, False
    try:
        import dask.dataframe as dd
    except ImportError:
        return df, False
    if isinstance(df, dd.DataFrame):
        return df.compute(), True
    return df, False


def _n_workers(engine: Any) -> int:
    client = engine
    if not _is_client(client):
        try:
            from dask.distributed import get_client

            client = get_client()
        except (ImportError, ValueError):
            return 2
    return max(1, len(client.nthreads()))


def _is_client(obj: Any) -> bool:
    try:
        from dask.distributed import Client
    except ImportError:
        return False
    return isinstance(obj, Client)


def _float64_backend():
    """statsforecast's `FugueBackend`, returning float64 forecasts.

    statsforecast 2.1's backend declares every forecast column ``float32`` in its output schema,
    which rounds forecasts to ~7 significant digits (e.g. 23296.2556 -> 23296.2559) and would make
    the distributed results differ from the local ones; this subclass declares ``float64``.
    """
    import numpy as np
    from fugue import Schema
    from statsforecast.distributed.fugue import FugueBackend

    class Float64FugueBackend(FugueBackend):
        def _get_output_schema(self, **kwargs) -> Schema:
            schema = super()._get_output_schema(**kwargs)
            return Schema([(f.name, np.float64) if f.name not in (kwargs["id_col"], kwargs["time_col"])
                           else (f.name, f.type) for f in schema.fields])

    return Float64FugueBackend


def statsforecast_forecast(
    df: pd.DataFrame,
    models: list,
    h: int,
    level: Sequence[int],
    freq: str,
    engine: Any,
) -> pd.DataFrame:
    """``StatsForecast(models).forecast(df, h, level)`` with the fitting done by `engine`.

    Args:
        df: long pandas frame ``unique_id, ds, y``.
        models: statsforecast model objects (unique aliases).
        engine: see the module docstring.

    Returns:
        statsforecast's forecast frame as pandas (``unique_id, ds, <alias>, <alias>-lo-95, ...``),
        sorted by ``unique_id, ds``, with ``unique_id`` as strings.
    """
    data: Any = df[["unique_id", "ds", "y"]].copy()
    data["unique_id"] = data["unique_id"].astype(str)
    if engine == "dask" or _is_client(engine):
        import dask.dataframe as dd

        n_series = data["unique_id"].nunique()
        data = dd.from_pandas(data, npartitions=max(1, min(n_series, 2 * _n_workers(engine))), sort=False)
    backend = _float64_backend()(engine=engine)
    res = backend.forecast(
        df=data, freq=freq, models=models, fallback_model=None, X_df=None, h=h,
        level=list(level) if level else None, fitted=False, prediction_intervals=None,
        id_col="unique_id", time_col="ds", target_col="y",
    )
    import fugue.api as fa

    out = fa.as_pandas(res) if not isinstance(res, pd.DataFrame) else res
    out["unique_id"] = out["unique_id"].astype(str)
    for c in out.columns.drop(["unique_id", "ds"]):
        out[c] = out[c].astype("float64")  # Fugue returns nullable Float64 columns
    out["ds"] = pd.to_datetime(out["ds"]).astype(df["ds"].dtype)
    return out.sort_values(["unique_id", "ds"]).reset_index(drop=True)
