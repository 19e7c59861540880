"""Fan charts of simulated FCF: reported history, then P5-P95 and P10-P90 bands and the median.

matplotlib's non-interactive Agg backend is selected inside `fan_chart`, never on import.
Files are written atomically (`experiments.io.atomic_write`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from experiments.io import atomic_write

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")


def fan_chart(
    history: pd.Series,
    fans: Mapping[str, pd.DataFrame],
    path: str | Path,
    title: str = "Amazon free cash flow",
    ylabel: str = "USD billions",
    history_quarters: int = 16,
) -> Path:
    """Draw one fan per entry of `fans` after the reported `history` and save a PNG.

    Args:
        history: reported values indexed by quarter-end date (USD millions).
        fans: label -> quantile frame ``ds, p5, p10, p50, p90, p95`` (USD millions), e.g.
            `forecasting.rollup.paths.Simulation.ttm()`; the first is drawn with full bands, the
            others with their P10-P90 band and median.
        path: the PNG to write.
    Returns: `path`.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    if not fans:
        raise ValueError("fan_chart: nothing to draw (no quantile frames given)")
    hist = history.sort_index().iloc[-history_quarters:] / 1e3
    fig, ax = plt.subplots(figsize=(9, 5))
    try:
        ax.plot(hist.index, hist.to_numpy(), color="black", marker="o", ms=3, label="reported")
        for i, (label, q) in enumerate(fans.items()):
            c = COLORS[i % len(COLORS)]
            x = pd.DatetimeIndex([hist.index[-1], *q["ds"]]) if len(hist) else pd.DatetimeIndex(q["ds"])
            last = [hist.iloc[-1]] if len(hist) else []

            def col(name):  # used within this iteration only
                return [*last, *(q[name].to_numpy() / 1e3)]  # noqa: B023

            if i == 0:
                ax.fill_between(x, col("p5"), col("p95"), color=c, alpha=0.15, lw=0, label=f"{label} P5-P95")
            ax.fill_between(x, col("p10"), col("p90"), color=c, alpha=0.3 if i == 0 else 0.18, lw=0,
                            label=f"{label} P10-P90")
            ax.plot(x, col("p50"), color=c, lw=2, label=f"{label} median")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        fig.autofmt_xdate()
        fig.tight_layout()
        return atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110))
    finally:
        plt.close(fig)
