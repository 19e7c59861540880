"""Matplotlib figures of backtests (Agg canvas, no pyplot: nothing global changes on import).

One figure per series: the reported values, and for each shown model one panel with every
cutoff's forecast path and its 80% interval.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from features.calendar import FiscalCalendar

from forecasting.core.metrics import BASELINE


def series_figure(history: pd.DataFrame, bt: pd.DataFrame, models: Sequence[str], level: int = 80,
                  title: str = "", scores: dict[str, float] | None = None):
    """Figure of one series' backtest.

    Args:
        history: ``ds, y`` of the series (all reported quarters).
        bt: the series' backtest rows (``cutoff, ds, model, mean, lo-L, hi-L``).
        models: the models to draw, one panel each.
        scores: optional relative MASE per model, shown in the panel titles.
    Returns: a `matplotlib.figure.Figure` (Agg canvas).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import DateFormatter, YearLocator
    from matplotlib.figure import Figure

    # fixed margins and yearly ticks: constrained layout and auto date ticks triple the cost
    fig = Figure(figsize=(9, 2.8 * len(models) + 0.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(models), 1, sharex=True, squeeze=False)[:, 0]
    fig.subplots_adjust(left=0.11, right=0.98, top=1 - 0.7 / fig.get_figheight(),
                        bottom=0.35 / fig.get_figheight(), hspace=0.22)
    first = bt["cutoff"].min() - FiscalCalendar.infer(bt["cutoff"].iloc[:1]).offset(8)
    hist = history[history["ds"] >= first].sort_values("ds")
    cuts = sorted(bt["cutoff"].unique())
    for ax, model in zip(axes, models):
        rows = bt[bt["model"] == model]
        ax.plot(hist["ds"], hist["y"], color="black", lw=1.6, marker="o", ms=2.5, label="reported", zorder=3)
        for i, cut in enumerate(cuts):
            r = rows[rows["cutoff"] == cut].sort_values("ds")
            if r.empty:
                continue
            color = f"C{i % 10}"
            anchor = hist[hist["ds"] == cut]
            xs = list(anchor["ds"]) + list(r["ds"])
            ys = list(anchor["y"]) + list(r["mean"])
            ax.plot(xs, ys, color=color, lw=1.0, alpha=0.9)
            ax.fill_between(r["ds"], r[f"lo-{level}"], r[f"hi-{level}"], color=color, alpha=0.12, lw=0)
        label = model if not scores or model not in scores else f"{model} (rel. MASE {scores[model]:.2f})"
        ax.set_title(label, fontsize=9, loc="left")
        ax.set_ylabel("USD m")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left", fontsize=8)
    axes[-1].xaxis.set_major_locator(YearLocator())
    axes[-1].xaxis.set_major_formatter(DateFormatter("%Y"))
    fig.suptitle(f"{title or 'backtest'}: forecast from each cutoff (lines), {level}% intervals (bands)",
                 fontsize=10)
    return fig


def shown_models(series_table: pd.DataFrame, uid: str, overall_best: str | None = None) -> list[str]:
    """SeasonalNaive, the series' best model and the overall best (when different)."""
    g = series_table[series_table["unique_id"] == uid]
    out = [BASELINE] if (g["model"] == BASELINE).any() else []
    others = g[g["model"] != BASELINE].dropna(subset=["mase"])
    if len(others):
        out.append(others.loc[others["mase"].idxmin(), "model"])
    if overall_best and overall_best not in out and (g["model"] == overall_best).any():
        out.append(overall_best)
    return out


def safe_name(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.-]", "_", str(text))


def save_series_plots(bt: pd.DataFrame, history: pd.DataFrame, series_table: pd.DataFrame,
                      folder: str | Path, level: int = 80, overall_best: str | None = None) -> list[Path]:
    """One PNG per series in `folder` (``<series>.png``); returns the paths.

    `series_table` is the per series x model summary (``unique_id, model, mase, rel_mase``).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for uid, rows in bt.groupby("unique_id"):
        models = shown_models(series_table, uid, overall_best)
        if not models:
            continue
        g = series_table[series_table["unique_id"] == uid].set_index("model")["rel_mase"]
        fig = series_figure(history[history["unique_id"] == uid], rows, models, level, title=str(uid),
                            scores={m: float(g[m]) for m in models if m in g.index and m != BASELINE})
        path = folder / f"{safe_name(uid)}.png"
        fig.savefig(path, dpi=90)
        paths.append(path)
    return paths


def reliability_figure(tables: dict[str, pd.DataFrame], title: str = ""):
    """Reliability diagram of claim probabilities: per forecaster (name -> a
    `forecasting.claims.calibration.reliability` table) the share of claims that came true
    against the bin's mean probability, with the band over resampled cutoffs and each bin's
    count below (first forecaster's counts). Returns a `matplotlib.figure.Figure` (Agg canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 7.2))
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    fig.subplots_adjust(left=0.12, right=0.97, top=0.92, bottom=0.08, hspace=0.08)
    top.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="calibrated")
    width = 0.8 / max(len(tables), 1) / 10
    for i, (name, rel) in enumerate(tables.items()):
        r = rel[rel["n"] > 0]
        color = f"C{i}"
        top.fill_between(r["mean_probability"], r["observed_lo"], r["observed_hi"], color=color, alpha=0.15, lw=0)
        top.plot(r["mean_probability"], r["observed"], color=color, marker="o", lw=1.4, label=name)
        centres = np.arange(len(rel)) / 10 + 0.05
        bottom.bar(centres + (i - (len(tables) - 1) / 2) * width, rel["n"], width=width, color=color, alpha=0.7)
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("share that came true")
    top.grid(alpha=0.3)
    top.legend(loc="upper left", fontsize=8)
    bottom.set_xlabel("probability given (bins of 0.1; dots at the bin's mean)")
    bottom.set_ylabel("claims")
    bottom.grid(alpha=0.3)
    fig.suptitle(title or "Reliability of claim probabilities (bands: 90% over resampled cutoffs)", fontsize=10)
    return fig


def save_reliability_plot(tables: dict[str, pd.DataFrame], path: str | Path, title: str = "") -> Path:
    """`reliability_figure` written as a PNG at `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    reliability_figure(tables, title).savefig(path, dpi=90)
    return path


def claims_reliability_png(report, path: str | Path) -> Path:
    """The reliability diagram of a `forecasting.claims.run.ClaimsReport`: its recalibrated
    probabilities beside the roll-up paths' ones."""
    p = report.params
    tables = {"recalibrated": report.reliability, "roll-up paths (calibrated spread)": report.reliability_paths}
    title = (f"Reliability of {p['calibration_claims']} claims at {p['calibration_cutoffs']} past cutoffs "
             "(bands: 90%, cutoffs resampled)")
    return save_reliability_plot(tables, path, title)
