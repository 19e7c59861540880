"""The long frame every model reads, as a pandera schema: ``unique_id, ds, y``.

`SeriesFrame` is the contract between the loader (`features.loader.load_quarterly`, whose
output is validated by it) and the forecasting code (`forecasting.core.frames.check_series_frame`):

    unique_id  str        the series (a metric of the data file)
    ds         datetime   the quarter end
    y          float      the reported value, finite

one row per series and quarter. `validate_series_frame` checks a frame against it and turns
pandera's failure table into one message naming the series, the quarter and the fix.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors
from pandera.typing import Series
from features.errors import OptionError

__all__ = ["COLUMNS", "SeriesFrame", "validate_series_frame"]

COLUMNS = ("unique_id", "ds", "y")


class SeriesFrame(pa.DataFrameModel):
    """One row per series and quarter; ``y`` finite; no quarter twice in a series."""

    unique_id: Series[str] = pa.Field(nullable=False)
    ds: Series[pd.Timestamp] = pa.Field(nullable=False)
    y: Series[float] = pa.Field(nullable=False)

    @pa.check("y", name="finite")
    def _finite(cls, y: Series[float]) -> Series[bool]:
        return pd.Series(np.isfinite(y.to_numpy(dtype=float)), index=y.index)

    class Config:
        coerce = True
        strict = "filter"
        unique = ["unique_id", "ds"]


def validate_series_frame(df: pd.DataFrame, name: str = "df") -> pd.DataFrame:
    """`df` checked against `SeriesFrame`: columns ``unique_id, ds, y`` only (others dropped),
    ``ds`` as timestamps, ``y`` as float. Raises `ValueError` naming the first problem:
    a missing column, a missing, non-numeric or non-finite ``y`` (series and quarter), or a
    quarter given twice in a series."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise OptionError(f"{name} needs columns unique_id, ds, y; missing {missing}")
    frame = df[list(COLUMNS)].reset_index(drop=True)
    frame["ds"] = pd.to_datetime(frame["ds"])
    frame["y"] = pd.to_numeric(frame["y"], errors="coerce")
    try:
        return SeriesFrame.validate(frame, lazy=True)
    except SchemaErrors as exc:
        raise OptionError(_message(exc.failure_cases, frame, name)) from None


def _message(cases: pd.DataFrame, frame: pd.DataFrame, name: str) -> str:
    """One readable line for pandera's failure table (value problems before duplicates)."""
    rows = cases[cases["index"].notna()]
    bad_y = rows[rows["column"] == "y"]
    if len(bad_y):
        r = frame.loc[int(bad_y["index"].min())]
        return f"{name}: series {r['unique_id']} has a missing or non-finite y at {pd.Timestamp(r['ds']).date()}"
    if (rows["check"] == "multiple_fields_uniqueness").any():
        r = frame[frame.duplicated(["unique_id", "ds"])].iloc[0]
        return f"{name}: series {r['unique_id']} has two rows for {pd.Timestamp(r['ds']).date()}"
    first = cases.iloc[0]
    return f"{name}: column {first['column']} fails {first['check']} ({first['failure_case']})"
