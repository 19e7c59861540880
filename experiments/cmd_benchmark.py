"""``fcf benchmark``: external accuracy (M3 quarterly) and speed benchmarks.

``fcf benchmark m3``    the library's models vs plain statsforecast vs the published M3 figures;
``fcf benchmark speed`` cold vs warm process, Amazon backtest + roll-up, series per second.
"""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    from experiments.benchmarks import m3, speed

    p = sub.add_parser(
        "benchmark",
        help="external accuracy (M3 quarterly) and speed benchmarks",
        description="Benchmarks: 'm3' scores the library on the M3 competition's 756 quarterly series "
                    "beside the published figures; 'speed' measures start-up, pipeline and throughput.",
    )
    which = p.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    pm = which.add_parser("m3", help="M3 quarterly accuracy (sMAPE, MASE) vs published figures",
                          description=m3.__doc__.splitlines()[0])
    m3.add_arguments(pm)
    pm.set_defaults(func=m3.run)
    ps = which.add_parser("speed", help="cold vs warm process, Amazon backtest + roll-up, M3 series/s",
                          description=speed.__doc__.splitlines()[0])
    speed.add_arguments(ps)
    ps.set_defaults(func=speed.run)
    p.set_defaults(func=_usage(p))


def _usage(p: argparse.ArgumentParser):
    def run(args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    return run
