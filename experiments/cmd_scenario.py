"""``fcf scenario [FILE ...]``: base vs scenario FCF side by side, with fan charts.

With no FILE the two shipped scenarios run (``data/scenarios/bull.yaml`` and
``capex_heavy.yaml``). Each scenario overrides drivers of the roll-up (capex, AWS growth,
segment margins, advertising growth; see `forecasting.scenarios`); base and scenarios use the
same sample paths (same seed), so differences are the drivers' effect, not Monte Carlo noise.
The default horizon, 6 quarters, completes fiscal 2027 from a Q2 data end. A bad scenario file
exits with code 2 and names the file and key.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from experiments.cli import add_data_options
from experiments.cmd_rollup import add_rollup_options, billions, check_options

DEFAULT_OUT = "outputs/scenarios"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "scenario",
        help="compare base-case FCF with scenario files (capex, AWS growth, margins, advertising)",
        description="Run the FCF roll-up with drivers overridden by each scenario YAML file and print "
                    "base vs scenario FCF (TTM, quarterly and fiscal-year quantiles) side by side. "
                    "Without FILE, the shipped bull.yaml and capex_heavy.yaml run.",
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="scenario YAML files (default: the shipped ones)")
    add_data_options(p)
    add_rollup_options(p, horizon=6)
    p.set_defaults(func=run, out=DEFAULT_OUT)


def shipped_scenarios() -> list[Path]:
    from features.loader import shipped_data_dir

    folder = shipped_data_dir() / "scenarios"
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise FileNotFoundError(f"no shipped scenario files in {folder}; name scenario files explicitly")
    return files


def run(args: argparse.Namespace) -> int:
    from features.loader import load_quarterly
    from forecasting.scenarios import as_scenario, run_scenarios, side_by_side

    from experiments.fanchart import fan_chart
    from experiments.io import write_csv

    check_options(args)
    files = [Path(f) for f in args.files] or shipped_scenarios()
    scenarios = [as_scenario(f) for f in files]  # validate every file before any computation
    t0 = time.perf_counter()
    df = load_quarterly(args.data, args.series_config)
    res = run_scenarios(df, scenarios, h=args.horizon, model=args.model, method=args.method,
                        n_windows=args.windows, n_paths=args.paths, seed=args.seed,
                        calibrate=not args.no_calibrate)
    origin = pd.Period(res.inputs.origin, freq="Q")
    print(f"Scenarios from {origin} (model {args.model}, {args.paths} paths, seed {args.seed}, "
          f"errors scaled x{res.inputs.error_scale:.2f} by calibration); USD billions, P50 [P10, P90]\n")
    for s in scenarios:
        print(f"{s.name}: {s.description}\n  sources: {'; '.join(s.sources)}\n")
    print("Trailing-twelve-month FCF")
    print(side_by_side(res, "free_cash_flow_ttm").to_string())
    print("\nQuarterly FCF")
    print(side_by_side(res, "free_cash_flow").to_string())
    fy = res.fiscal_years()
    if len(fy):
        print("\nFiscal-year FCF (reported + simulated quarters)")
        t = fy.assign(**{c: fy[c].map(billions) for c in ("mean", "p10", "p50", "p90")})
        print(t[["scenario", "fiscal_year", "reported_quarters", "mean", "p10", "p50", "p90"]].to_string(index=False))
        drivers = res.drivers()
        print("\nFiscal-year drivers (means; capex, sales, OI, OCF, FCF in USD billions)")
        shown = drivers.copy()
        for c in ("capex", "aws_sales", "operating_income", "operating_cash_flow", "fcf"):
            shown[c] = shown[c].map(billions)
        for c in ("aws_growth", "aws_margin"):
            shown[c] = shown[c].map(lambda v: f"{100 * v:.1f}%")
        print(shown.to_string(index=False))
    out = Path(args.out)
    write_csv(res.table(), out / "scenario_quantiles.csv")
    if len(fy):
        write_csv(fy, out / "scenario_fiscal_years.csv")
        write_csv(res.drivers(), out / "scenario_drivers.csv")
    fcf_hist = df[df["unique_id"] == "free_cash_flow"].set_index("ds")["y"].rolling(4).sum().dropna()
    charts = []
    for s in scenarios:
        fans = {"base": res.simulations["base"].ttm(), s.name: res.simulations[s.name].ttm()}
        charts.append(fan_chart(fcf_hist, fans, out / f"fanchart_{s.name}.png",
                                title=f"Amazon TTM free cash flow: base vs {s.name} (from {origin})"))
    print(f"\nwrote {out}/scenario_quantiles.csv and {', '.join(c.name for c in charts)}; "
          f"{time.perf_counter() - t0:.1f}s")
    return 0
