"""``iotwatch demo``: the whole pipeline on this machine, shown working within a minute.

Exit status: 0 when every injected fault was detected and every alert reached both local
receivers, 1 otherwise, 130 when interrupted (Ctrl-C or SIGTERM: everything it started is
stopped first).
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=_positive, default=45.0, metavar="SECONDS",
                        help="how long the simulated plant publishes (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=7,
                        help="seed of the simulated plant (default: %(default)s)")
    parser.add_argument("--embedded-broker", action="store_true",
                        help="use the embedded Python broker even if Mosquitto is installed")
    parser.add_argument("--file-store", action="store_true",
                        help="store points in a local file even if influxd is installed")
    parser.add_argument("--keep", action="store_true",
                        help="keep the run's directory (configs, logs, stored points)")
    parser.add_argument("--no-dashboard", dest="dashboard", action="store_false",
                        help="do not serve the live web page (iotwatch dashboard) during the run")
    view = parser.add_mutually_exclusive_group()
    view.add_argument("--live", dest="live", action="store_true", default=None,
                      help="redraw a live screen (default on a terminal)")
    view.add_argument("--no-live", dest="live", action="store_false",
                      help="print a status line every few seconds instead")


def run(args: argparse.Namespace) -> int:
    from iotwatch.demo.app import DemoOptions, run_demo

    options = DemoOptions(duration_s=args.duration, seed=args.seed,
                          embedded_broker=args.embedded_broker, file_store=args.file_store,
                          keep=args.keep, live=args.live, dashboard=args.dashboard)
    return run_demo(options, sys.stdout)


def _positive(text: str) -> float:
    from iotwatch.demo.configs import MIN_DURATION_S

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not MIN_DURATION_S <= value <= 86_400:
        raise argparse.ArgumentTypeError(f"must be between {MIN_DURATION_S:g} and 86400 "
                                         f"seconds (warm-up, faults, cool-down), got {text}")
    return value
