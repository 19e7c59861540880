"""``fcf scenario [FILE ...]``: base vs scenario FCF side by side, with fan charts.

With no FILE the company profile's scenarios run (Amazon's: ``data/scenarios/*.yaml``). Each
scenario overrides drivers of the roll-up (capex, a segment's growth, segment margins, a revenue
category's growth; the keys are the profile's ``scenario_drivers``, see
`forecasting.scenarios.file`); base and scenarios use the same sample paths (same seed), so
differences are the drivers' effect, not Monte Carlo noise. The default horizon, 6 quarters,
completes the next fiscal year from a second-quarter data end. Each claim is printed beside
what the reported quarters say about it (`forecasting.scenarios.file.reported_checks`). The
run is logged to MLflow (experiment ``<company>-scenarios``) unless ``--no-track``. A bad
scenario file exits with code 2 and names the file and key; an unreachable tracking server
exits with code 3 before any work.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path


from experiments.cli import EXIT_TRACKING, CommandError, add_data_options, checked_tracking_uri, data_path, guidance_for
from experiments.cmd_rollup import add_rollup_options, billions, check_options, rollup_config

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
    p.add_argument("--experiment", default=None, help="MLflow experiment (default <company>-scenarios)")
    p.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    p.set_defaults(func=run, out=DEFAULT_OUT)


def shipped_scenarios(profile) -> list[Path]:
    """The company profile's scenario files."""
    files = [p for p in profile.scenarios if p.is_file()]
    if not files:
        raise FileNotFoundError(f"company profile '{profile.name}' ships no scenario files; name scenario files")
    return files


def run(args: argparse.Namespace) -> int:
    from experiments.fanchart import fan_chart
    from experiments.io import write_csv
    from experiments.track_backtest import RunContext
    from experiments.track_runs import log_scenarios
    from experiments.tracking import TrackingError
    from features.aggregates import trailing_twelve_months
    from features.loader import load_quarterly
    from forecasting.scenarios.file import reported_checks
    from forecasting.scenarios.run import as_scenario, run_scenarios

    profile = check_options(args)
    files = [Path(f) for f in args.files] or shipped_scenarios(profile)
    scenarios = [as_scenario(f, profile) for f in files]  # validate every file before any computation
    uri = checked_tracking_uri(args.no_track)
    t0 = time.perf_counter()
    data = data_path(args, profile)
    df = load_quarterly(data, args.series_config)
    res = run_scenarios(df, profile, scenarios, h=args.horizon, config=rollup_config(args),
                        guidance=guidance_for(args, profile))
    origin = profile.calendar.label(res.inputs.origin)
    print(f"Scenarios from {origin} ({args.paths} paths, seed {args.seed}, spread x{res.inputs.spread_scale:.2f} "
          f"from the roll-up's recent misses); USD billions, P50 [P10, P90]\n")
    checks = {s.name: reported_checks(s, df, profile) for s in scenarios}
    for s in scenarios:
        print(f"{s.name}: {s.description}\n  sources: {'; '.join(s.sources)}")
        for line in checks[s.name]:
            print(f"  reported data: {line}")
        print()
    print("Trailing-twelve-month FCF")
    print(side_by_side(res, profile.cash_flow.fcf_ttm).to_string())
    print("\nQuarterly FCF")
    print(side_by_side(res, profile.cash_flow.free_cash_flow).to_string())
    fy = res.fiscal_years()
    if len(fy):
        print("\nFiscal-year FCF (reported + simulated quarters)")
        t = fy.assign(**{c: fy[c].map(billions) for c in ("mean", "p10", "p50", "p90")})
        print(t[["scenario", "fiscal_year", "reported_quarters", "mean", "p10", "p50", "p90"]].to_string(index=False))
        drivers = res.drivers()
        print("\nFiscal-year drivers (means; capex, sales, OI, OCF, FCF in USD billions)")
        shown = drivers.copy()
        for c in shown.columns:
            if c in ("capex", "operating_income", "operating_cash_flow", "fcf") or c.endswith("_sales"):
                shown[c] = shown[c].map(billions)
            elif c.endswith(("_growth", "_margin")):
                shown[c] = shown[c].map(lambda v: f"{100 * v:.1f}%")
        print(shown.to_string(index=False))
    out = Path(args.out)
    write_csv(res.table(), out / "scenario_quantiles.csv")
    if len(fy):
        write_csv(fy, out / "scenario_fiscal_years.csv")
        write_csv(res.drivers(), out / "scenario_drivers.csv")
    fcf_hist = trailing_twelve_months(df, profile.cash_flow.free_cash_flow).set_index("ds")["y"]
    charts = []
    for s in scenarios:
        fans = {"base": res.simulations["base"].ttm(), s.name: res.simulations[s.name].ttm()}
        charts.append(fan_chart(fcf_hist, fans, out / f"fanchart_{s.name}.png",
                                title=f"{profile.title} TTM free cash flow: base vs {s.name} (from {origin})"))
    print(f"\nwrote {out}/scenario_quantiles.csv and {', '.join(c.name for c in charts)}; "
          f"{time.perf_counter() - t0:.1f}s")
    if uri is not None:
        try:
            context = RunContext(experiment=args.experiment or profile.experiment("scenarios"), uri=uri,
                                 data_path=data, tags={"company": profile.name})
            run_id = log_scenarios(res, context, fanchart_paths=charts,
                                   checks=checks)
        except TrackingError as exc:
            raise CommandError(str(exc), EXIT_TRACKING) from exc
        print(f"logged MLflow run {run_id} to {uri}")
    return 0


def side_by_side(result, series: str | None = None, qs: Sequence[float] = (0.1, 0.5, 0.9)):
    """The printed table of a `forecasting.scenarios.run.ScenarioResult`: one row per quarter,
    one column per scenario, ``P50 [P10, P90]`` in USD billions (`series`: default TTM FCF)."""
    from forecasting.core.frames import quantile_label
    series = series or result.inputs.series.fcf_ttm
    t = result.table()
    t = t[t["unique_id"] == series]
    lo, mid, hi = (quantile_label(q) for q in qs)
    t = t.assign(cell=[f"{m / 1e3:,.1f} [{a / 1e3:,.1f}, {b / 1e3:,.1f}]" for m, a, b in zip(t[mid], t[lo], t[hi])])
    out = t.pivot(index="ds", columns="scenario", values="cell")
    out.index = result.inputs.series.calendar.labels(out.index)
    return out[list(result.simulations)]
