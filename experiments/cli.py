"""The ``fcf`` command line.

Each subcommand lives in its own module ``experiments/cmd_<name>.py`` with two functions:
``add_parser(subparsers)`` (which sets ``func`` on its parser) and the function it names.
Modules are imported when the parser is built; heavy imports happen inside the commands.

Exit codes (also in the README):
    0  success (also: a retrain that found nothing new to do)
    1  unexpected error (a bug: please report the traceback)
    2  bad input: data file, scenario or claims file, or arguments
    3  a server cannot be reached (the MLflow tracking server, SEC EDGAR)
    4  another retrain holds the lock
    130 interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
import warnings
from pathlib import Path

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_TRACKING, EXIT_LOCKED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130

#: Where a traceback goes.
BUG_REPORTS = "the project's issue tracker"

#: Subcommand modules, in the order `fcf --help` lists them.
COMMAND_MODULES = [
    "experiments.cmd_forecast",
    "experiments.cmd_backtest",
    "experiments.cmd_rollup",
    "experiments.cmd_scenario",
    "experiments.cmd_claims",
    "experiments.cmd_street",
    "experiments.cmd_retrain",
    "experiments.cmd_benchmark",
    "experiments.cmd_data",
    "experiments.cmd_company",
    "experiments.cmd_universe",
]


class CommandError(Exception):
    """An error the user can fix; `exit_code` says which kind (see the module docstring)."""

    def __init__(self, message: str, exit_code: int = EXIT_BAD_INPUT):
        super().__init__(message)
        self.exit_code = exit_code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fcf",
        description="Backtested forecasts of a company's reported quarterly segments, rolled up to free cash "
                    "flow (the shipped companies: Amazon, the default, and Snowflake; --company).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # command not built yet
            raise
        module.add_parser(sub)
    return parser


def add_data_options(p: argparse.ArgumentParser) -> None:
    """Options every command that reads data shares."""
    p.add_argument("--company", help="company profile: a shipped name (amazon, snowflake) or a profile YAML file "
                                     "(default: the profile of --data's file, else amazon)")
    p.add_argument("--data", help="quarterly CSV (default: the company's data file)")
    p.add_argument("--series-config", help="series config CSV (default: series.csv beside the data file)")
    p.add_argument("--series", help="comma-separated series to use (default: every modelled series)")


def profile_for(args: argparse.Namespace):
    """The `features.profile.CompanyProfile` of a command: ``--company`` (a shipped name or a
    YAML file), else the shipped profile whose data file is ``--data``, else (no ``--data``)
    the default company's; None for a data file no profile describes (library defaults)."""
    from features.profile import load_profile, profile_for_data, shipped_profile

    company = getattr(args, "company", None)
    if company:
        path = Path(company)
        return load_profile(path) if path.suffix in (".yaml", ".yml") else shipped_profile(company)
    return profile_for_data(getattr(args, "data", None))


def company_profile(args: argparse.Namespace):
    """`profile_for`, falling back to the default company's profile (with a note) for a data file
    no profile describes: the commands that need a company's structure (roll-up, scenarios,
    claims, retrain) read such a file as the default company's."""
    from features.profile import DEFAULT_COMPANY, shipped_profile

    profile = profile_for(args)
    if profile is None:
        profile = shipped_profile(DEFAULT_COMPANY)
        print(f"fcf: no company profile names {args.data}; reading it with the {profile.name} profile "
              "(pass --company NAME or a profile YAML for another company)", file=sys.stderr)
    return profile


def data_path(args: argparse.Namespace, profile) -> str | None:
    """``--data``, else the profile's data file (None: the shipped default)."""
    if getattr(args, "data", None):
        return args.data
    return str(profile.data) if profile is not None else None


def add_guidance_option(p: argparse.ArgumentParser) -> None:
    """``--guidance``: where the guidance files are (see `guidance_for`)."""
    p.add_argument("--guidance", default="auto",
                   help="folder holding the guidance files (<company>_guidance_quarterly.csv, ...); 'auto' "
                        "(default): the company profile's, else beside the data file when they are there; "
                        "'none': no guidance")


def guidance_for(args: argparse.Namespace, profile=None):
    """The `features.guidance.GuidanceBook` `--guidance` names (None for 'none', or 'auto' with
    no guidance files); bad files raise `DataValidationError`."""
    from features.guidance import guidance_files, load_guidance_files

    choice = getattr(args, "guidance", "auto") or "auto"
    try:
        files = guidance_files(profile, getattr(args, "data", None), choice)
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from None
    month = profile.fiscal_year_end_month if profile is not None else 12
    return load_guidance_files(files, getattr(args, "series_config", None), month)


def consensus_for(args: argparse.Namespace, profile, guidance=None):
    """The company's `features.consensus.ConsensusBook` (None: its profile names no consensus
    file), its quarters' report days taken from `guidance`'s release dates where it has them;
    bad rows raise `DataValidationError`."""
    from features.consensus import profile_consensus

    book = profile_consensus(profile, getattr(args, "series_config", None))
    if book is None or guidance is None:
        return book
    days = {}
    for q in book.rows["ds"].unique():
        day = guidance.release_date(q)
        if day != pd_timestamp(q):  # the release date is known (else the book's own fallback)
            days[q] = day
    return book.with_report_days(days)


def pd_timestamp(value):
    import pandas as pd

    return pd.Timestamp(value).normalize()


def checked_tracking_uri(no_track: bool = False, untracked_hint: bool = True) -> str | None:
    """The tracking URI after a fast reachability check (None with ``--no-track``).

    Commands call it before any heavy work, so a dead server fails in seconds with exit code
    3. `untracked_hint=False` drops the "pass --no-track" advice (for commands that cannot
    run untracked, such as the retrain, which registers models).
    """
    if no_track:
        return None
    from experiments import tracking

    try:
        return tracking.check_tracking_server(tracking.tracking_uri())
    except tracking.TrackingError as exc:
        message = str(exc) if untracked_hint else str(exc).replace("; pass --no-track to skip tracking", "")
        raise CommandError(message, EXIT_TRACKING) from exc


def check_horizon_option(value: int, flag: str = "--horizon") -> int:
    """A horizon option within 1..`forecasting.core.frames.MAX_HORIZON`, else a `CommandError` (exit 2)."""
    from forecasting.core.frames import MAX_HORIZON, check_horizon

    try:
        return check_horizon(value, flag, MAX_HORIZON)
    except ValueError:
        raise CommandError(f"{flag} {value}: must be between 1 and {MAX_HORIZON} quarters") from None


def check_out_folder(path: str | Path | None, flag: str = "--out") -> None:
    """Before any work: an output folder is a folder, or can be made where a folder is writable."""
    if path is None:
        return
    path = Path(path)
    for existing in (path, *path.parents):
        if existing.exists():
            if not existing.is_dir():
                raise CommandError(f"{flag} {path}: {existing} is a file, not a folder")
            if not os.access(existing, os.W_OK | os.X_OK):
                raise CommandError(f"{flag} {path}: cannot write in {existing}")
            return


def split_list(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(message)s",
    )
    for noisy in ("mlflow", "alembic", "urllib3", "numba", "fsspec", "distributed", "edgar"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    from features.errors import DataValidationError, InputError
    from features.profile import ProfileError

    original_format = warnings.formatwarning
    warnings.formatwarning = _format_warning  # printed warnings read as messages, not code
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            result = args.func(args)
        return int(result or 0)
    except DataValidationError as exc:
        print(f"fcf: bad input data: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ProfileError as exc:
        print(f"fcf: bad company profile: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except CommandError as exc:
        print(f"fcf: {exc}", file=sys.stderr)
        return exc.exit_code
    except InputError as exc:  # scenario, claims and option errors (data and profile: above)
        print(f"fcf: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FileNotFoundError as exc:  # an input file the user named is not there
        print(f"fcf: {exc.strerror + ': ' + str(exc.filename) if exc.filename else exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        if exc.filename is None:  # not about a file the user named: a bug (or the system)
            return _report_bug(args.command)
        # an output that cannot be written (a file where a folder goes, no permission)
        print(f"fcf: cannot write {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("fcf: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:  # anything else is a bug in the library, not the user's input
        return _report_bug(args.command)
    finally:
        warnings.formatwarning = original_format


def _report_bug(command: str) -> int:
    """The traceback of the exception being handled, a line saying it is a bug; exit code 1."""
    traceback.print_exc()
    print(f"fcf: internal error in 'fcf {command}': this is a bug, not bad input; please report it "
          f"with the traceback above ({BUG_REPORTS})", file=sys.stderr)
    return EXIT_ERROR


def _format_warning(message, category, filename, lineno, line=None) -> str:
    return f"fcf: {category.__name__}: {message}\n"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
