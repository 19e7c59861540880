"""``fcf company add TICKER``: a new company from SEC EDGAR (data file, series config, mapping, profile)."""

from __future__ import annotations

import argparse

from experiments.cli import EXIT_BAD_INPUT, CommandError


def add_parser(sub) -> None:
    from experiments.edgar import BASE_URL_ENV, MAX_PER_SECOND, add_edgar_options

    p = sub.add_parser("company", help="companies: add one from SEC EDGAR",
                       description="Manage company profiles.")
    inner = p.add_subparsers(dest="company_command", metavar="ACTION")
    a = inner.add_parser(
        "add", help="add a company from its SEC filings: data file, series.csv, sec_mapping.yaml, profile",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Resolve TICKER's CIK on SEC EDGAR, read its company facts and its newest 10-K's XBRL, and write\n"
            "<dir>/<name>.yaml (a profile, the choices made as comments) and <dir>/<name>/ with the quarterly\n"
            "data file, series.csv, sec_mapping.yaml and SOURCES.md. Concepts: the standard us-gaap ones for\n"
            "revenue, operating income, operating cash flow, purchases of property and equipment (net of\n"
            "proceeds and plus capitalized software where filed), capex and FCF = OCF - capex. Quarters are\n"
            "three-month values or year-to-date differences; 52/53-week periods map to their fiscal quarter.\n"
            "Reportable segments: StatementBusinessSegmentsAxis members of the 10-K with revenue and\n"
            "operating income. A missing concept is reported; the company is added with what it has.\n\n"
            "SEC fair access: a User-Agent naming you and a contact e-mail is required (--user-agent, or\n"
            f"SEC_USER_AGENT / EDGAR_IDENTITY); requests are rate limited (default {MAX_PER_SECOND:g}/s).\n"
            f"${BASE_URL_ENV} replaces the EDGAR hosts.\n\n"
            "Exit codes: 0 added; 2 missing User-Agent, unknown ticker, no usable facts, an existing profile\n"
            "(--force replaces it); 3 SEC EDGAR cannot be reached. Nothing is written on an error."),
    )
    a.add_argument("ticker", metavar="TICKER")
    a.add_argument("--dir", help="where the profile goes (default: the shipped profiles' folder)")
    a.add_argument("--name", help="the company's name in the profile and file names (default: the ticker, lower case)")
    a.add_argument("--filings", type=int, default=0,
                   help="also read the newest N 10-Q/10-K XBRL instances (segment quarters; default 0)")
    add_edgar_options(a)
    a.add_argument("--force", action="store_true", help="replace an existing profile of that name")
    a.set_defaults(func=run_add)
    p.set_defaults(func=lambda args: (p.print_help(), EXIT_BAD_INPUT)[1])


def run_add(args: argparse.Namespace) -> int:
    from experiments.company_add import add_company
    from experiments.edgar import EdgarClient, EdgarError

    if args.filings < 0:
        raise CommandError(f"--filings {args.filings}: a number of filings, 0 or more")
    try:
        client = EdgarClient(args.user_agent, max_per_second=args.max_per_second)
        result = add_company(args.ticker, out_dir=args.dir, name=args.name, client=client, filings=args.filings,
                             force=args.force, say=lambda line: print(f"fcf company add: {line}"))
    except EdgarError as exc:
        raise CommandError(f"{exc}; nothing written", exc.exit_code) from exc
    except FileExistsError as exc:
        raise CommandError(str(exc)) from exc
    for note in result.notes:
        print(f"fcf company add: {note}")
    q = ", ".join(f"{m} {n}" for m, n in result.quarters.items())
    print(f"fcf company add: wrote {result.profile} and {result.data.parent}/ (quarters: {q}); "
          f"use it with --company {result.profile}")
    return 0
