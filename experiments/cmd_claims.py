"""``fcf claims [FILE]``: how likely are a claims file's claims under the roll-up's forecast?

Prints one row per claim: the probability under the base case and under each scenario, the
model's median of the claimed quantity beside the claimed value, and the realised outcome
where the periods have been reported (`forecasting.claims.run.run_claims`); then where
reported quarters landed against management's guided ranges, and the reliability of the
same kinds of claims generated at past cutoffs (of the claims given 0.7-0.8, how many came
true). Without FILE the company profile's claims file runs (Amazon's:
``data/claims/amazon_2026.yaml``); without ``--scenarios`` the profile's scenario files do.
Logged to MLflow (experiment ``<company>-claims``) unless ``--no-track``. A bad claims or
scenario file exits with code 2 before any model is fitted; an unreachable tracking server
exits with code 3.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from experiments.cli import (
    EXIT_TRACKING,
    CommandError,
    add_data_options,
    check_horizon_option,
    checked_tracking_uri,
    data_path,
    guidance_for,
)
from experiments.cmd_rollup import add_rollup_options, check_options, rollup_config

DEFAULT_OUT = "outputs/claims"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "claims",
        help="probability of each claim in a claims file under the FCF roll-up's forecast distribution",
        description="Evaluate a claims YAML file (series or derived quantity, period, condition) against the "
                    "roll-up's Monte Carlo paths: probability under the base case and each scenario, the model's "
                    "median beside the claimed value, the realised outcome where reported, and a reliability "
                    "table of claims generated at past cutoffs. Without FILE the company profile's claims run.",
    )
    p.add_argument("file", nargs="?", metavar="FILE", help="claims YAML file (default: the company profile's)")
    add_data_options(p)
    add_rollup_options(p, horizon=6)
    p.add_argument("--scenarios", default=None,
                   help="comma-separated scenario YAML files to evaluate the claims under (default: the shipped "
                        "ones in data/scenarios; 'none': base case only)")
    p.add_argument("--calibration-horizon", type=int, default=4,
                   help="quarters ahead of the claims generated at past cutoffs for the reliability table (default 4)")
    p.add_argument("--no-reliability", action="store_true", help="skip the reliability table of past claims")
    p.add_argument("--experiment", default=None, help="MLflow experiment (default <company>-claims)")
    p.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    p.set_defaults(func=run, out=DEFAULT_OUT)


def shipped_claims(profile) -> Path:
    """The company profile's claims file."""
    path = profile.claims
    if path is None or not path.is_file():
        raise FileNotFoundError(f"company profile '{profile.name}' ships no claims file ({path}); name a claims file")
    return path


def scenario_files(option: str | None, profile) -> list[Path]:
    from experiments.cli import split_list
    from experiments.cmd_scenario import shipped_scenarios

    if option is None:
        return shipped_scenarios(profile)
    if option.strip() == "none":
        return []
    return [Path(f) for f in split_list(option) or []]


# --------------------------------------------------------------------------- tables
def _p(v) -> str:
    return "n/a" if pd.isna(v) else f"{v:.2f}"


def claims_view(report) -> pd.DataFrame:
    """The printed claims table: id, P (base and per scenario), median, claimed, realised."""
    from experiments.claims_text import with_text

    t = with_text(report.table, report.claims)
    view = pd.DataFrame({"claim": t["id"], "P": t["probability_recal"].map(_p), "P paths": t["probability"].map(_p),
                         "P raw": t["probability_raw"].map(_p)})
    for name in report.scenarios:
        view[f"P {name}"] = t[f"p.{name}"].map(_p)
    view["model median"] = [m if len(m) <= 40 else m[:37] + "..." for m in t["median"]]
    view["claimed"] = t["claimed"]
    held = t["held"].map({True: "held: ", False: "failed: "}).fillna("")
    view["realised"] = held + t["realised"]
    return view


def notes(report) -> list[str]:
    """Per claim: its text, source, reading and how it was evaluated."""
    from forecasting.claims.run import ROLLUP_METHOD

    out = []
    for c, r in zip(report.claims.claims, report.table.itertuples()):
        line = f"{c.id}: {c.text}. Source: {c.source}."
        if c.note:
            line += f" Read as: {c.note}."
        if r.status != "evaluated":
            line += f" NOT EVALUABLE: {r.reason}."
        elif r.method != ROLLUP_METHOD:
            line += f" Distribution: {r.method}."
        out.append(line)
    return out


def guidance_view(report) -> pd.DataFrame:
    g = report.guidance
    if g.empty:
        return g
    return pd.DataFrame({"metric": g["metric"], "window": g["window"], "quarters": g["first"] + ".." + g["last"],
                         "n": g["n"], "below": g["below"], "inside": g["inside"], "above": g["above"],
                         "share inside": g["share_inside"].map("{:.0%}".format),
                         "share above": g["share_above"].map("{:.0%}".format)})


def recalibration_note(report) -> str:
    """How the claims file's probabilities were recalibrated (and on how many past claims)."""
    n = int(report.table["map_claims"].max()) if len(report.table) else 0
    if not n:
        return ("P is the share of the roll-up's paths on which the claim holds (too few past claims resolved to "
                "learn a recalibration map).")
    return (f"P is recalibrated: a beta-calibration map learnt on the {n} past claims of the reliability study "
            "(recent ones weigh more), applied to P raw (the share of the roll-up's raw-spread paths on which the "
            "claim holds); P paths: the share of its calibrated paths; per scenario: calibrated paths.")


def scores_view(scores: pd.DataFrame) -> pd.DataFrame:
    """Brier score, its decomposition and the expected calibration error per forecaster."""
    return pd.DataFrame({"forecaster": scores["forecaster"], "claims": scores["n"],
                         **{c.capitalize() if c != "ece" else "ECE": scores[c].map("{:.3f}".format)
                            for c in ("brier", "reliability", "resolution", "uncertainty", "ece")}})


def reliability_view(rel: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"probability": rel["bin"], "claims": rel["n"],
                         "mean P": rel["mean_probability"].map(_p), "came true": rel["observed"].map(_p),
                         "90% interval (cutoffs resampled)": [f"{_p(a)}-{_p(b)}" for a, b in
                                                              zip(rel["observed_lo"], rel["observed_hi"])]})


def brier_view(brier: pd.DataFrame) -> pd.DataFrame:
    b = brier[brier["kind"] == "all"]
    return pd.DataFrame({"forecaster": b["forecaster"], "claims": b["n"], "Brier": b["brier"].map("{:.3f}".format),
                         "90% interval": [f"{a:.3f}-{c:.3f}" for a, c in zip(b["brier_lo"], b["brier_hi"])]})


def headline(report) -> str:
    """One sentence on the 0.7-0.8 bin (the issue's question), from the reliability table."""
    rel = report.reliability
    row = rel[rel["bin"] == "0.7-0.8"]
    if row.empty or not row["n"].iloc[0]:
        return "No past claim was given a probability of 0.7-0.8."
    r = row.iloc[0]
    true = int(round(r["observed"] * r["n"]))
    return (f"Of the {int(r['n'])} past claims given a probability of 0.7-0.8 (mean {r['mean_probability']:.2f}), "
            f"{true} came true ({r['observed']:.0%}; 90% interval over resampled cutoffs "
            f"{r['observed_lo']:.0%}-{r['observed_hi']:.0%}).")


def header(report, config) -> str:
    p = report.params
    sim = report.result.simulation
    q = sim.series.calendar.labels(sim.ds)
    spread = (f"spread x{report.result.inputs.spread_scale:.2f} from the roll-up's recent misses"
              if config.calibrate else "raw bootstrap spread")
    return (f"Claims of {report.claims.name} ({report.claims.source}) under the roll-up from {p['origin']} "
            f"({config.n_paths} paths to {q[-1]}, {spread}; guidance: {p['guidance']})")


def markdown(report, config) -> str:
    from experiments.leaderboard import to_markdown

    parts = [f"# {header(report, config)}", to_markdown(claims_view(report)), recalibration_note(report),
             "\n".join(f"- {n}" for n in notes(report))]
    if not report.guidance.empty:
        parts += ["## Where reported quarters landed against the guided ranges", to_markdown(guidance_view(report))]
    if report.reliability is not None:
        parts += [f"## Reliability of {report.params['calibration_claims']} claims generated at "
                  f"{report.params['calibration_cutoffs']} past cutoffs", headline(report),
                  "Recalibrated probabilities (nested: each cutoff's map learnt on claims resolved by it)",
                  to_markdown(reliability_view(report.reliability)),
                  "The roll-up paths' probabilities", to_markdown(reliability_view(report.reliability_paths)),
                  to_markdown(brier_view(report.brier)), to_markdown(scores_view(report.scores))]
    return "\n\n".join(parts) + "\n"


# --------------------------------------------------------------------------- the command
def run(args: argparse.Namespace) -> int:
    from experiments.io import write_csv, write_text
    from experiments.plots import claims_reliability_png
    from experiments.track_backtest import RunContext
    from experiments.track_runs import log_claims
    from experiments.tracking import TrackingError
    from features.loader import load_quarterly
    from features.consensus import profile_consensus
    from forecasting.claims.file import load_claims
    from forecasting.claims.run import run_claims
    from forecasting.scenarios.run import as_scenario

    profile = check_options(args)
    check_horizon_option(args.calibration_horizon, "--calibration-horizon")
    path = Path(args.file) if args.file else shipped_claims(profile)
    claims = load_claims(path, profile.calendar)  # every input is validated before any computation
    scenarios = [as_scenario(f, profile) for f in scenario_files(args.scenarios, profile)]
    consensus = profile_consensus(profile, args.series_config)  # a bad file exits 2 here, before any fit
    uri = checked_tracking_uri(args.no_track)
    t0 = time.perf_counter()
    data = data_path(args, profile)
    df = load_quarterly(data, args.series_config)
    config = rollup_config(args)
    report = run_claims(df, profile, claims, config, guidance_for(args, profile), scenarios,
                        calibration_h=None if args.no_reliability else args.calibration_horizon, consensus=consensus)
    print(header(report, config) + "\n")
    print(claims_view(report).to_string(index=False))
    print("\n" + recalibration_note(report) + "\n")
    for line in notes(report):
        print(f"- {line}")
    if not report.guidance.empty:
        print("\nWhere reported quarters landed against management's guided ranges (latest range per quarter)")
        print(guidance_view(report).to_string(index=False))
    if report.reliability is not None:
        p = report.params
        print(f"\nReliability: {p['calibration_claims']} claims generated at {p['calibration_cutoffs']} past cutoffs "
              f"(up to {args.calibration_horizon} quarters ahead; thresholds from what was known at each cutoff), "
              "probability from the roll-up's paths made then")
        print("Recalibrated probabilities (nested: the map at each cutoff learnt on past claims resolved by it)")
        print(reliability_view(report.reliability).to_string(index=False))
        print("\nThe roll-up paths' probabilities before recalibration")
        print(reliability_view(report.reliability_paths).to_string(index=False))
        print("\n" + headline(report))
        print("\nBrier score (lower is better; a constant 0.5 scores 0.250)")
        print(brier_view(report.brier).to_string(index=False))
        print("\nBrier decomposition (reliability: lower is better; resolution: higher) and expected calibration error")
        print(scores_view(report.scores).to_string(index=False))
    out = Path(args.out)
    from experiments.claims_text import with_text

    write_csv(with_text(report.table, report.claims), out / "claims.csv")
    write_csv(with_text(report.by_scenario, report.claims), out / "claims_by_scenario.csv")
    text = markdown(report, config)
    md = write_text(text, out / "claims.md")
    written = ["claims.csv", "claims_by_scenario.csv", md.name]
    if not report.guidance.empty:
        write_csv(report.guidance, out / "guidance_outcomes.csv")
        written.append("guidance_outcomes.csv")
    if report.reliability is not None:
        write_csv(report.calibration, out / "calibration_claims.csv")
        write_csv(report.reliability, out / "reliability.csv")
        write_csv(report.brier, out / "brier.csv")
        write_csv(report.scores, out / "brier_decomposition.csv")
        claims_reliability_png(report, out / "reliability.png")
        written += ["calibration_claims.csv", "reliability.csv", "brier.csv", "brier_decomposition.csv",
                    "reliability.png"]
    print(f"\nwrote {out}/{', '.join(written)}; {time.perf_counter() - t0:.1f}s")
    if uri is not None:
        try:
            context = RunContext(experiment=args.experiment or profile.experiment("claims"), uri=uri,
                                 data_path=data, tags={"company": profile.name})
            run_id = log_claims(report, context, markdown=text)
        except TrackingError as exc:
            raise CommandError(str(exc), EXIT_TRACKING) from exc
        print(f"logged MLflow run {run_id} to {uri}")
    return 0
