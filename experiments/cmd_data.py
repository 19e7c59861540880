"""``fcf data update``: new quarters and restatements from SEC EDGAR into a company's data file."""

from __future__ import annotations

import argparse

from experiments.cli import EXIT_BAD_INPUT, CommandError


def add_parser(sub) -> None:
    from experiments.edgar import BASE_URL_ENV, MAX_PER_SECOND, add_edgar_options

    p = sub.add_parser("data", help="data files: update a company's quarters from SEC EDGAR",
                       description="Manage the quarterly data files.")
    inner = p.add_subparsers(dest="data_command", metavar="ACTION")
    u = inner.add_parser(
        "update",
        help="fetch new quarters (and restatements) from SEC EDGAR into the data file",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Fetch a company's filings from SEC EDGAR and add what is new to its quarterly data file:\n"
            "new quarters, and restated values as new rows with a later vintage (never an overwrite;\n"
            "identical values are not repeated). Which XBRL concepts and segment/product members make\n"
            "each metric is read from sec_mapping.yaml beside the data file. Three-month values are used\n"
            "where the filing gives them; Q4 = fiscal year - nine months; cash flows from year-to-date\n"
            "differences. The result is validated like any data file and written in one rename.\n\n"
            "SEC fair access: a User-Agent naming you and a contact e-mail is required (--user-agent, or\n"
            "the environment variable SEC_USER_AGENT or EDGAR_IDENTITY), and requests are rate limited\n"
            f"(default {MAX_PER_SECOND:g}/s; the SEC allows 10/s). ${BASE_URL_ENV} replaces the EDGAR hosts\n"
            "(a mirror).\n\n"
            "Exit codes: 0 updated or nothing new; 2 missing User-Agent, unknown ticker, a filing\n"
            "without the expected facts, or an invalid result; 3 SEC EDGAR cannot be reached. On any\n"
            "error the data file is left exactly as it was."),
    )
    u.add_argument("--data", help="quarterly CSV to update (default: the shipped Amazon data); created when absent")
    u.add_argument("--mapping", help="SEC mapping YAML (default: sec_mapping.yaml beside the data file)")
    u.add_argument("--ticker", help="company ticker (default: the mapping's ticker)")
    u.add_argument("--filings", type=int, default=4,
                   help="newest 10-Q/10-K filings to read, for companies mapped to XBRL instances (default 4)")
    add_edgar_options(u)
    u.add_argument("--companyfacts", help="read this local SEC company-facts JSON instead of fetching (offline)")
    u.add_argument("--dry-run", action="store_true", help="report what would change, write nothing")
    u.set_defaults(func=run_update)
    p.set_defaults(func=lambda args: (p.print_help(), EXIT_BAD_INPUT)[1])


def run_update(args: argparse.Namespace) -> int:
    from experiments.data_update import update_data
    from experiments.edgar import EdgarClient, EdgarError

    if args.filings < 1:
        raise CommandError(f"--filings {args.filings}: read at least one filing")
    try:
        client = None
        if args.companyfacts is None:
            client = EdgarClient(args.user_agent, max_per_second=args.max_per_second)
        result = update_data(args.data, mapping=args.mapping, client=client, ticker=args.ticker,
                             filings=args.filings, companyfacts=args.companyfacts, dry_run=args.dry_run)
    except EdgarError as exc:
        raise CommandError(f"{exc}; the data file is unchanged", exc.exit_code) from exc
    print(f"fcf data update: {result.message}")
    return 0
