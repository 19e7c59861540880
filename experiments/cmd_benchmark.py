"""``fcf benchmark``: external accuracy (M3 quarterly) and speed benchmarks.

``fcf benchmark m3``    the library's models vs plain statsforecast vs the published M3 figures;
``fcf benchmark tourism`` the same on the Tourism competition's quarterly series;
``fcf benchmark speed`` before/after ratios: fcf forecast, the Amazon backtest, the M3 run, start-up;
``fcf benchmark universe`` a synthetic universe's cost per company, one process vs a LocalCluster.
"""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    from experiments.benchmarks import m3, speed, universe_scale

    p = sub.add_parser(
        "benchmark",
        help="external accuracy (M3 quarterly) and speed benchmarks",
        description="Benchmarks: 'm3' scores the library on the M3 competition's 756 quarterly series "
                    "beside the published figures; 'speed' times fcf forecast, the Amazon backtest and the "
                    "M3 run before and after parallel cutoffs and the data-vintage cache.",
    )
    which = p.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    pm = which.add_parser("m3", help="M3 quarterly accuracy (sMAPE, MASE) vs published figures",
                          description=m3.__doc__.splitlines()[0])
    m3.add_arguments(pm)
    pm.set_defaults(func=m3.run, dataset="m3")
    pt = which.add_parser("tourism", help="Tourism quarterly accuracy (MAPE, sMAPE, MASE) vs published figures",
                          description="The library on the Tourism competition's 427 quarterly series (h = 8): "
                                      "a final check on data nothing was chosen on.")
    m3.add_arguments(pt)
    pt.set_defaults(func=m3.run, dataset="tourism")
    ps = which.add_parser("speed", help="before/after: fcf forecast, Amazon backtest, M3 run; cold vs warm start",
                          description=speed.__doc__.splitlines()[0])
    speed.add_arguments(ps)
    ps.set_defaults(func=speed.run)
    pu = which.add_parser("universe", help="universe scale: synthetic companies, one process vs a LocalCluster",
                          description=universe_scale.__doc__.splitlines()[0])
    universe_scale.add_arguments(pu)
    pu.set_defaults(func=universe_scale.run)
    p.set_defaults(func=_usage(p))


def _usage(p: argparse.ArgumentParser):
    def run(args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    return run
