"""The ``iotwatch`` command: one subcommand per service, dispatched lazily.

Each subcommand lives in its service's ``cli`` module, which exposes
``add_arguments(parser)`` and ``run(args) -> int`` and keeps heavy imports inside
``run`` so ``iotwatch --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from iotwatch import __version__

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "publish": ("publisher.cli", "run the simulated sensor fleet or replay recorded data"),
    "detect": ("detector.cli", "run the detector service (MQTT in, InfluxDB and alerts out)"),
    "alert": ("alerting.cli", "run the alerting service (alerts in, email and webhooks out)"),
    "evaluate": ("detector.evaluate.cli", "score detectors offline on labelled data"),
    "train": ("detector.models.cli", "fit a model (isolation forest, one-class SVM, k-means, "
              "autoencoder) on recorded normal data"),
    "tune": ("detector.models.tune_cli", "search a detector's or a model's parameters on "
             "labelled data"),
    "demo": ("iotwatch.demo.cli", "run the whole pipeline locally and show it working"),
    "bench": ("detector.benchmark.cli", "measure the detector against the broker's ceiling"),
    "dashboard": ("iotwatch.dashboard.cli", "serve a live web page of streams, alerts and services"),
    "summarize": ("detector.summaries.cli", "hourly and daily summaries of a recording"),
}

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iotwatch", description="Watch IoT sensor streams over MQTT and tell people "
        "when something is wrong.")
    parser.add_argument("--version", action="version", version=f"iotwatch {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        try:
            module = importlib.import_module(module_name)
            add_arguments = module.add_arguments
        except (ImportError, AttributeError) as exc:
            sub.set_defaults(handler=_unavailable(name, exc))
            continue
        add_arguments(sub)
        sub.set_defaults(handler=module.run)
    config = commands.add_parser(
        "config", help="work with configuration files",
        description="Work with the services' YAML configuration files (config/*.yaml). "
        "'iotwatch config check FILE...' validates them and prints every error with its "
        "key path; environment overrides (IOTWATCH__<SECTION>__<KEY>) are applied as the "
        "services apply them.")
    config_commands = config.add_subparsers(dest="config_command", metavar="ACTION",
                                            required=True)
    check = config_commands.add_parser(
        "check", help="validate configuration files and print every error",
        description="Validate each FILE; print one 'FILE: key.path: message' line per error. "
        "Exit 0 when all are valid, 2 otherwise.")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(handler=_config_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130


def usage_errors(prog: str, errors: tuple[type[BaseException], ...],
                 work: Callable[[], int]) -> int:
    """``work()``; an expected error instead prints ``prog: error: <line>`` per line, exit 2.

    >>> usage_errors("iotwatch x", (ValueError,), lambda: int("nope"))
    2
    """
    try:
        return work()
    except errors as exc:
        for line in str(exc).splitlines():
            print(f"{prog}: error: {line}", file=sys.stderr)
        return EXIT_USAGE


def run_service(command: str) -> None:
    """Entry for ``python -m <package>``: same as ``iotwatch <command> ...``."""
    sys.exit(main([command, *sys.argv[1:]]))


def _config_check(args: argparse.Namespace) -> int:
    from iotwatch.config import check_files

    errors = check_files(args.files)
    for line in errors:
        print(line)
    if errors:
        return EXIT_USAGE
    for path in args.files:
        print(f"{path}: ok")
    return 0


def _unavailable(name: str, exc: Exception):
    def handler(_args: argparse.Namespace) -> int:
        print(f"iotwatch {name} is not available: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return handler


if __name__ == "__main__":
    sys.exit(main())
