"""Leak-free features and target transforms, declared once and reused.

Two kinds of things live here:

1. **Feature frames.** Every feature function takes a long frame ``unique_id, ds, y`` (the
   training part: everything in it is known at the cutoff, its last ``ds`` per series) and a
   horizon ``h`` and returns ``(train, future)``:

   - ``train``: one row per input row, ``unique_id, ds, y`` plus feature columns;
   - ``future``: ``h`` rows per series after its last ``ds``, ``unique_id, ds`` plus the same
     feature columns, holding only what is known at the cutoff. A feature that would need an
     unreported value is NaN there (a lag-2 feature is known for steps 1-2 only).

   Passing ``cutoff`` drops rows after it first, so a frame with realised future values can
   never leak them. Exogenous drivers (`driver_features`) take their future values from a
   forecast or a scenario given by the caller, never from the realised future.

2. **Target transforms** with exact inverses, the pairs ``fit_transform``/``inverse_transform``
   of `mlforecast.target_transforms` (`TARGET_TRANSFORMS`: seasonal differencing, first
   differences, per-series standard scaling, log and per-series Box-Cox). They are fitted on
   the training part only (Box-Cox lambda, scaler mean/std, differencing tails). Log and
   Box-Cox need positive series; income and cash-flow series can be negative, so the default
   `FeatureSet` uses seasonal differencing and per-series scaling, defined for any sign.
   `TargetTransform` applies them to long frames outside mlforecast.

`FeatureSet` declares the features of the ML models once (lags, rolling means, calendar
terms, target transforms) and turns them into `mlforecast.MLForecast` arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.calendar import SEASON_LENGTH, FiscalCalendar
from features.errors import OptionError

__all__ = ["check_positive", "DEFAULT_FEATURES", "driver_features", "FeatureSet", "future_frame",
           "past_features", "PositiveLog", "TARGET_TRANSFORMS", "TargetTransform", "yoy_growth"]


# --------------------------------------------------------------------------- target transforms
def _grouped(data: np.ndarray, indptr: np.ndarray):
    """An `mlforecast` grouped array (imported here: importing mlforecast costs seconds, and
    `fcf --help` or a statistical-only run should not pay it)."""
    from mlforecast.grouped_array import GroupedArray

    return GroupedArray(data, indptr)


class PositiveLog:
    """``log(y)`` for positive series, inverse ``exp``; a `mlforecast` grouped-array transform.

    Raises a `ValueError` on a zero or negative value (use ``seasonal_diff`` + ``local_scale``
    for series that can be negative, such as operating income or free cash flow).
    """

    num_threads = 1

    def set_num_threads(self, num_threads: int) -> None:
        self.num_threads = num_threads

    def fit_transform(self, ga):
        bad = np.flatnonzero(~(ga.data > 0))
        if len(bad):
            i = int(np.searchsorted(ga.indptr, bad[0], side="right") - 1)
            raise OptionError(
                f"log transform: series #{i} has a non-positive value ({ga.data[bad[0]]}); use "
                "target transforms ('seasonal_diff', 'local_scale') for series that can be <= 0"
            )
        return _grouped(np.log(ga.data), ga.indptr)

    def update(self, ga):
        return _grouped(np.log(ga.data), ga.indptr)

    def inverse_transform(self, ga):
        return _grouped(np.exp(ga.data), ga.indptr)

    def inverse_transform_fitted(self, ga):
        return self.inverse_transform(ga)

    def take(self, idxs):
        return self

    @staticmethod
    def stack(transforms):
        return transforms[0]


def _seasonal_diff():
    from mlforecast.target_transforms import Differences

    return Differences([SEASON_LENGTH])


def _diff():
    from mlforecast.target_transforms import Differences

    return Differences([1])


def _local_scale():
    from mlforecast.target_transforms import LocalStandardScaler

    return LocalStandardScaler()


def _boxcox():
    from mlforecast.target_transforms import LocalBoxCox

    return LocalBoxCox()


#: Named target transforms: name -> (factory of a fresh transform, needs positive y, rows used).
TARGET_TRANSFORMS: dict[str, tuple[Callable[[], object], bool, int]] = {
    "seasonal_diff": (_seasonal_diff, False, SEASON_LENGTH),
    "diff": (_diff, False, 1),
    "local_scale": (_local_scale, False, 0),
    "log": (PositiveLog, True, 0),
    "boxcox": (_boxcox, True, 0),
}


def _check_target_names(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in TARGET_TRANSFORMS]
    if unknown:
        raise OptionError(f"unknown target transform(s) {unknown}; known: {', '.join(TARGET_TRANSFORMS)}")


def check_positive(df: pd.DataFrame, names: Sequence[str], what: str = "df") -> None:
    """Raise if a transform in `names` needs positive values and a series has y <= 0."""
    if not any(TARGET_TRANSFORMS[n][1] for n in names):
        return
    bad = df[~(df["y"] > 0)]
    if len(bad):
        r = bad.iloc[0]
        raise OptionError(
            f"{what}: series {r.unique_id} has y = {r.y} at {pd.Timestamp(r.ds).date()}; target "
            f"transforms {list(names)} need positive values (use 'seasonal_diff', 'local_scale')"
        )


class TargetTransform:
    """A chain of named target transforms applied to long frames, with its exact inverse.

    ``fit_transform(train)`` learns the per-series state (differencing tails, scaler
    mean/std, Box-Cox lambda) from `train` only and returns it transformed;
    ``inverse_transform(fc, columns)`` maps values on the transformed scale for the ``h``
    quarters after each series' last training quarter back to the original scale.

    Args:
        names: transform names from `TARGET_TRANSFORMS`, applied in order.
    """

    def __init__(self, names: Sequence[str] = ("seasonal_diff", "local_scale")):
        self.names = tuple(names)

    def fit_transform(self, df: pd.DataFrame) -> pd.DataFrame:
        """`df` (``unique_id, ds, y``) with ``y`` transformed; rows lost to differencing are NaN."""
        _check_target_names(self.names)
        df = df.sort_values(["unique_id", "ds"]).reset_index(drop=True)
        check_positive(df, self.names)
        sizes = df.groupby("unique_id", sort=False).size()
        need = sum(TARGET_TRANSFORMS[n][2] for n in self.names) + 1
        if (sizes < need).any():
            raise OptionError(f"series {sizes[sizes < need].index[0]} has {sizes.min()} rows; "
                             f"target transforms {list(self.names)} need at least {need}")
        self.ids_ = list(sizes.index)
        self.last_ds_ = df.groupby("unique_id", sort=False)["ds"].max()
        ga = _grouped(df["y"].to_numpy(dtype=float).copy(), np.r_[0, np.cumsum(sizes.to_numpy())])
        self.transforms_ = []
        for n in self.names:
            tfm = TARGET_TRANSFORMS[n][0]()
            ga = tfm.fit_transform(ga)
            self.transforms_.append(tfm)
        out = df.copy()
        out["y"] = ga.data
        return out

    def transform(self, fc: pd.DataFrame, columns: Sequence[str] = ("y",)) -> pd.DataFrame:
        """Transform values of the ``h`` quarters after the training data with the fitted state
        (the state is not changed): the forward map that `inverse_transform` undoes."""
        import copy

        fc, indptr = self._check_future(fc)
        out = fc.copy()
        for col in columns:
            ga = _grouped(fc[col].to_numpy(dtype=float).copy(), indptr)
            for tfm in copy.deepcopy(self.transforms_):
                ga = tfm.update(ga)
            out[col] = ga.data
        return out

    def inverse_transform(self, fc: pd.DataFrame, columns: Sequence[str] = ("y",)) -> pd.DataFrame:
        """Back-transform `columns` of `fc` (``unique_id, ds`` + columns, the same ``h`` rows
        after the last training quarter for every series) to the original scale."""
        fc, indptr = self._check_future(fc)
        out = fc.copy()
        for col in columns:
            ga = _grouped(fc[col].to_numpy(dtype=float).copy(), indptr)
            for tfm in reversed(self.transforms_):
                ga = tfm.inverse_transform(ga)
            out[col] = ga.data
        return out

    def _check_future(self, fc: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        if not hasattr(self, "transforms_"):
            raise RuntimeError("TargetTransform is not fitted; call fit_transform(train) first")
        fc = fc.sort_values(["unique_id", "ds"]).reset_index(drop=True)
        sizes = fc.groupby("unique_id", sort=False).size()
        if list(sizes.index) != self.ids_ or sizes.nunique() != 1:
            raise ValueError("inverse_transform needs the same series as fit_transform, with the "
                             f"same number of rows each; fitted on {self.ids_}")
        first = fc.groupby("unique_id", sort=False)["ds"].min()
        expected = self.last_ds_ + FiscalCalendar.infer(self.last_ds_.iloc[:1]).offset(1)
        if not (first == expected).all():
            uid = first.index[(first != expected).to_numpy()][0]
            raise ValueError(f"series {uid}: forecasts must start at {expected[uid].date()}, "
                             "the quarter after the training data")
        return fc, np.r_[0, np.cumsum(sizes.to_numpy())]


# --------------------------------------------------------------------------- feature frames
def _cut(df: pd.DataFrame, cutoff) -> pd.DataFrame:
    out = df[["unique_id", "ds", "y"]].copy()
    out["ds"] = pd.to_datetime(out["ds"])
    if cutoff is not None:
        out = out[out["ds"] <= pd.Timestamp(cutoff)]
    if out.empty:
        raise OptionError("no rows on or before the cutoff")
    return out.sort_values(["unique_id", "ds"]).reset_index(drop=True)


def future_frame(df: pd.DataFrame, h: int) -> pd.DataFrame:
    """``unique_id, ds`` for the `h` quarters after each series' last ``ds``."""
    if int(h) < 1:
        raise OptionError(f"horizon h must be >= 1, got {h}")
    last = df.groupby("unique_id", sort=True)["ds"].max()
    freq = FiscalCalendar.infer(last.iloc[:1]).freq
    parts = [pd.DataFrame({"unique_id": uid, "ds": pd.date_range(d, periods=h + 1, freq=freq)[1:]})
             for uid, d in last.items()]
    return pd.concat(parts, ignore_index=True)


def _extended(df: pd.DataFrame, h: int) -> pd.DataFrame:
    fut = future_frame(df, h).assign(y=np.nan)
    ext = pd.concat([df.assign(future_=False), fut.assign(future_=True)], ignore_index=True)
    return ext.sort_values(["unique_id", "ds"]).reset_index(drop=True)


def _split(ext: pd.DataFrame, cols: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    train = ext.loc[~ext["future_"], ["unique_id", "ds", "y"] + cols].reset_index(drop=True)
    future = ext.loc[ext["future_"], ["unique_id", "ds"] + cols].reset_index(drop=True)
    return train, future


def past_features(
    df: pd.DataFrame,
    h: int,
    lags: Sequence[int] = (1, 2, 3, 4),
    rolling_mean: Sequence[int] = (4,),
    rolling_std: Sequence[int] = (),
    yoy_lags: Sequence[int] = (1,),
    calendar: bool = True,
    cutoff=None,
    fiscal: FiscalCalendar | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Lags, rolling statistics of lag 1, lagged year-over-year growth, quarter of the fiscal year.

    Columns: ``lag{k}`` = y k quarters earlier; ``rolling_mean{w}`` / ``rolling_std{w}`` over
    the `w` quarters ending one quarter earlier; ``yoy_lag{k}`` = growth y_t/y_{t-4} - 1 of k
    quarters earlier (NaN where the base is <= 0); ``quarter`` 1-4, the quarter of the fiscal
    year of `calendar` (default: inferred from the quarter ends, see
    `features.calendar.FiscalCalendar.infer`).

    Returns ``(train, future)`` as described in the module docstring.
    """
    df = _cut(df, cutoff)
    ext = _extended(df, h)
    g = ext.groupby("unique_id", sort=False)["y"]
    cols = []
    for k in lags:
        ext[f"lag{k}"] = g.shift(int(k))
        cols.append(f"lag{k}")
    lag1 = g.shift(1)
    for w in rolling_mean:
        ext[f"rolling_mean{w}"] = lag1.groupby(ext["unique_id"]).transform(
            lambda s, w=w: s.rolling(int(w), min_periods=int(w)).mean())
        cols.append(f"rolling_mean{w}")
    for w in rolling_std:
        ext[f"rolling_std{w}"] = lag1.groupby(ext["unique_id"]).transform(
            lambda s, w=w: s.rolling(int(w), min_periods=int(w)).std())
        cols.append(f"rolling_std{w}")
    if yoy_lags:
        base = g.shift(SEASON_LENGTH)
        yoy = (ext["y"] / base.where(base > 0)) - 1
        for k in yoy_lags:
            ext[f"yoy_lag{k}"] = yoy.groupby(ext["unique_id"]).shift(int(k))
            cols.append(f"yoy_lag{k}")
    if calendar:
        ext["quarter"] = (fiscal or FiscalCalendar.infer(ext["ds"].iloc[:1])).quarter_of_year(ext["ds"])
        cols.append("quarter")
    return _split(ext, cols)


def yoy_growth(df: pd.DataFrame, cutoff=None) -> pd.DataFrame:
    """Year-over-year growth of each reported quarter: ``unique_id, ds, y, yoy`` (y/y_{-4} - 1,
    NaN where the year-earlier value is missing or <= 0). Uses only rows on or before `cutoff`."""
    df = _cut(df, cutoff)
    base = df.groupby("unique_id", sort=False)["y"].shift(SEASON_LENGTH)
    return df.assign(yoy=df["y"] / base.where(base > 0) - 1)


def driver_features(
    df: pd.DataFrame,
    target: str,
    driver: str,
    h: int,
    lags: Sequence[int] = (1,),
    driver_future: pd.DataFrame | None = None,
    cutoff=None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Lagged values of an exogenous driver series as features of a target series.

    Example: capex (``purchases_of_property_and_equipment_net_of_proceeds``) one to four
    quarters earlier as a leading indicator of ``net_sales_aws``; ``net_sales_total`` as a
    driver of ``net_sales_advertising``.

    Args:
        df: long frame holding both series; rows after `cutoff` (default: the target's last
            quarter) are ignored, so realised values of the driver are never read.
        target, driver: series names in ``df.unique_id``.
        h: quarters ahead.
        lags: driver lags; column ``{driver}_lag{k}``.
        driver_future: the driver's values for the quarters after the cutoff, ``unique_id``
            (= driver), ``ds``, ``y``: a forecast or a scenario. Needed when ``h > min(lags)``;
            future steps beyond it take the driver from here.

    Returns:
        ``(train, future)``: train = the target's rows with the driver columns (NaN before the
        driver starts); future = ``h`` rows ``unique_id, ds`` + driver columns.
    """
    for name in (target, driver):
        if name not in set(df["unique_id"]):
            raise OptionError(f"series '{name}' is not in the frame")
    if cutoff is None:
        cutoff = df.loc[df["unique_id"] == target, "ds"].max()
    df = _cut(df, cutoff)
    tgt = df[df["unique_id"] == target]
    drv = df[df["unique_id"] == driver][["ds", "y"]]
    if drv["ds"].max() != tgt["ds"].max():
        raise OptionError(f"driver '{driver}' ends at {drv['ds'].max().date()} but target '{target}' "
                         f"at {tgt['ds'].max().date()}; both must be reported up to the cutoff")
    fut_ds = future_frame(tgt, h)["ds"]
    need_future = int(h) > min(lags)
    if need_future:
        if driver_future is None:
            raise OptionError(
                f"steps beyond {min(lags)} need future values of driver '{driver}': forecast it "
                "(forecasting.rolling.forecast.forecast) or give a scenario as driver_future"
            )
        dfut = driver_future
        if "unique_id" in dfut.columns:
            dfut = dfut[dfut["unique_id"] == driver]
        dfut = dfut[["ds", "y"]].assign(ds=lambda d: pd.to_datetime(d["ds"]))
        missing = sorted(set(fut_ds[: int(h) - min(lags)]) - set(dfut["ds"]))
        if missing:
            raise OptionError(f"driver_future for '{driver}' lacks quarter(s) "
                             f"{', '.join(str(d.date()) for d in missing)}")
        dfut = dfut[dfut["ds"].isin(set(fut_ds))]
        path = pd.concat([drv, dfut], ignore_index=True)
    else:
        path = drv
    path = path.set_index("ds")["y"].sort_index()
    full = pd.date_range(path.index.min(), fut_ds.iloc[-1], freq=FiscalCalendar.infer(path.index[:1]).freq)
    path = path.reindex(full)
    train = tgt.reset_index(drop=True).copy()
    future = pd.DataFrame({"unique_id": target, "ds": fut_ds.to_numpy()})
    for k in lags:
        shifted = path.shift(int(k))
        train[f"{driver}_lag{k}"] = shifted.reindex(train["ds"]).to_numpy()
        future[f"{driver}_lag{k}"] = shifted.reindex(future["ds"]).to_numpy()
    return train, future


# --------------------------------------------------------------------------- ML feature set
@dataclass(frozen=True)
class FeatureSet:
    """The features of a global ML model, declared once (hashable, so specs can share one fit).

    Attributes:
        lags: lags of the transformed target.
        rolling_mean: windows of rolling means of lag 1 of the transformed target.
        date_features: calendar terms (pandas attributes of ``ds``, e.g. ``quarter``: the
            calendar quarter of the quarter end, which for any fiscal calendar is a fixed
            relabelling of the quarter of the fiscal year, one value per season).
        target: target transforms from `TARGET_TRANSFORMS`, applied in order.
    """

    lags: tuple[int, ...] = (1, 2, 3, 4)
    rolling_mean: tuple[int, ...] = (4,)
    date_features: tuple[str, ...] = ("quarter",)
    target: tuple[str, ...] = ("seasonal_diff", "local_scale")

    def __post_init__(self):
        _check_target_names(self.target)
        if not self.lags:
            raise OptionError("a FeatureSet needs at least one lag")

    @property
    def lost_rows(self) -> int:
        """Rows at the start of each series without a complete feature row."""
        diffs = sum(TARGET_TRANSFORMS[n][2] for n in self.target)
        look = max(max(self.lags), max((1 + w - 1 for w in self.rolling_mean), default=0))
        return diffs + look

    def min_train_obs(self, min_rows: int = 3) -> int:
        """Fewest observations a series needs to give `min_rows` training rows."""
        return self.lost_rows + min_rows

    def mlforecast_kwargs(self) -> dict:
        """``lags``, ``lag_transforms``, ``date_features``, ``target_transforms`` for `MLForecast`
        (fresh transform objects each call)."""
        from mlforecast.lag_transforms import RollingMean

        return {
            "lags": list(self.lags),
            "lag_transforms": ({1: [RollingMean(window_size=w) for w in self.rolling_mean]}
                               if self.rolling_mean else None),
            "date_features": list(self.date_features) or None,
            "target_transforms": [TARGET_TRANSFORMS[n][0]() for n in self.target],
        }


#: The default features of the ML models: lags 1-4 and a 4-quarter rolling mean of the
#: seasonally differenced, per-series standardised target, plus the quarter.
DEFAULT_FEATURES = FeatureSet()
