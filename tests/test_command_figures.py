"""The numbers the ``fcf`` commands print and write, pinned on the shipped data.

``tests/test_golden.py`` pins the library's figures; this file pins what a person running the
commands gets, through the commands themselves (`experiments.cli.main`, the files of ``--out``):

- ``fcf forecast --models StatsMLCombo,AutoETS`` on three series, 4 quarters ahead: every
  AutoETS and SeasonalNaive value, StatsMLCombo's points;
- ``fcf backtest`` on four series, 4 windows + 4 warm-up: the leaderboard;
- ``fcf rollup --backtest`` with the small configuration (candidates AutoETS and SeasonalNaive,
  guided GuidedAutoETS, node cutoffs from 2019Q4): relative MASE, coverage and scaled CRPS of
  the roll-up and the direct models per horizon, fiscal-year relative MASE, the TTM quantiles.

The figures are in ``tests/golden/commands.json`` with a relative tolerance each, set from
how far the figure moves across machines (BLAS kernels, thread counts, worker processes, SIMD
width, libm variants, and the moves issue 18 saw on an AVX-512 machine): 5 x that spread, at
least 1e-6, as ``python tests/golden/measure.py --apply`` measured and wrote it (its output:
``tests/golden/spread.json``). A figure whose tolerance would pass 0.5% is kept with
``"compared": false`` and not compared. ``--update-golden`` rewrites the values (keeping the
tolerances: run the measuring script again after it) and prints what moved.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

GOLDEN = Path(__file__).parent / "golden" / "commands.json"
STABLE, LOOSE = 1e-6, 1e-3
FORECAST = ["forecast", "--models", "StatsMLCombo,AutoETS", "--series",
            "net_sales_aws,free_cash_flow,operating_income_total", "-H", "4"]
BACKTEST = ["backtest", "--series", "net_sales_aws,operating_income_aws,free_cash_flow,net_sales_total",
            "--models", "SeasonalNaive,AutoETS,StatsCombo,AutoCombo", "--windows", "4", "--warmup", "4",
            "--no-track"]
ROLLUP = ["rollup", "--candidates", "AutoETS,SeasonalNaive", "--guided-candidates", "GuidedAutoETS",
          "--first-cutoff", "2019Q4", "--backtest", "--no-track"]


def _run(argv: list[str]) -> None:
    from experiments.cli import main

    assert main(argv) == 0, f"fcf {' '.join(argv)} failed"


def command_figures(tmp: Path) -> dict[str, tuple[float, float]]:
    """``name -> (value, relative tolerance)`` from the three commands' output files."""
    out: dict[str, tuple[float, float]] = {}
    _run([*FORECAST, "--out", str(tmp / "forecast.csv")])
    fc = pd.read_csv(tmp / "forecast.csv")
    for r in fc.to_dict("records"):
        q = str(pd.Period(r["ds"], freq="Q"))
        combo = r["model"] == "StatsMLCombo"
        for c in ("mean",) if combo else ("mean", "lo-80", "hi-80", "lo-95", "hi-95"):
            out[f"forecast/{r['model']}/{r['unique_id']}/{q}/{c}"] = (float(r[c]), LOOSE if combo else STABLE)
    _run([*BACKTEST, "--out", str(tmp / "backtest")])
    board = pd.read_csv(tmp / "backtest" / "leaderboard.csv").set_index("model")
    for m, row in board.iterrows():
        tol = LOOSE if m == "AutoCombo" else STABLE
        for c in ("gm_rel_mase", "mean_mase", "coverage_80", "coverage_95"):
            out[f"backtest/{m}/{c}"] = (float(row[c]), tol)
    _run([*ROLLUP, "--out", str(tmp / "rollup")])
    scores = pd.read_csv(tmp / "rollup" / "rollup_scores.csv")
    keep = scores[scores["model"].isin(["SeasonalNaive", "Rollup", "RollupCalibrated", "AutoETS", "FCFChampion"])]
    for r in keep.itertuples(index=False):
        for c in ("rel_mase", "coverage_80", "scaled_crps"):
            v = float(getattr(r, c))
            if math.isfinite(v):
                out[f"rollup_backtest/{r.unique_id}/{r.model}/h{r.step}/{c}"] = (v, STABLE)
    fy = pd.read_csv(tmp / "rollup" / "rollup_fiscal_years.csv")
    for r in fy.itertuples(index=False):
        out[f"rollup_backtest/fiscal_year/{r.which}/{r.model}/rel_mase"] = (float(r.rel_mase), STABLE)
    quant = pd.read_csv(tmp / "rollup" / "rollup_quantiles.csv")
    for r in quant.itertuples(index=False):
        q = str(pd.Period(r.ds, freq="Q"))
        for c in ("mean", "p10", "p50", "p90"):
            out[f"rollup/{r.unique_id}/{q}/{c}"] = (float(getattr(r, c)), STABLE)
    return out


def mismatches(golden: dict, got: dict[str, tuple[float, float]]) -> list[str]:
    """Lines naming each figure missing, new, or off by more than its tolerance."""
    lines = [f"{k}: in the golden file, not computed" for k in sorted(set(golden) - set(got))]
    lines += [f"{k}: computed, not in the golden file" for k in sorted(set(got) - set(golden))]
    for k in sorted(set(golden) & set(got)):
        if not golden[k].get("compared", True):  # moves more than 0.5% across machines: named, not compared
            continue
        g, rtol = golden[k]["value"], golden[k]["rtol"]
        v = got[k][0]
        if not math.isclose(v, g, rel_tol=rtol, abs_tol=1e-12):
            lines.append(f"{k}: golden {g:.8g}, now {v:.8g} (tolerance {rtol:g})")
    return lines


def test_mismatches_names_the_figure_that_moved():
    golden = {"a": {"value": 1.0, "rtol": 1e-6}, "b": {"value": 2.0, "rtol": 1e-3},
              "u": {"value": 5.0, "rtol": 0.02, "compared": False}}
    assert mismatches(golden, {"a": (1.0 + 1e-9, 1e-6), "b": (2.001, 1e-3), "u": (9.0, 0.02)}) == []
    golden.pop("u")
    assert mismatches(golden, {"a": (1.01, 1e-6), "c": (0.0, 1e-6)}) == [
        "b: in the golden file, not computed", "c: computed, not in the golden file",
        "a: golden 1, now 1.01 (tolerance 1e-06)"]


@pytest.mark.slow
def test_commands_give_the_pinned_numbers(tmp_path, isolated_cwd, update_golden):
    got = command_figures(tmp_path)
    if update_golden:
        from experiments.io import write_text

        old = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
        entries = {k: {**old.get(k, {"rtol": t}), "value": v} for k, (v, t) in got.items()}
        write_text(json.dumps(entries, indent=1) + "\n", GOLDEN)
        moved = [f"{k}: {old.get(k, {}).get('value')} -> {v}" for k, (v, _) in got.items()
                 if old.get(k, {}).get("value") != v]
        print("\n".join([f"updated {GOLDEN}; figures that moved:", *moved]))
        return
    golden = json.loads(GOLDEN.read_text())
    assert len(golden) >= 100
    bad = mismatches(golden, got)
    assert not bad, ("the commands' numbers moved beyond their tolerance:\n  " + "\n  ".join(bad[:40])
                     + "\nIf the change is meant to move them: python -m pytest tests/test_command_figures.py "
                     "--update-golden and commit tests/golden/commands.json with the reason")
