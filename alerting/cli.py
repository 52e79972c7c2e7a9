"""``iotwatch alert``: run the alerting service (alerts in, e-mail and webhooks out)."""

from __future__ import annotations

import argparse
import sys

DEFAULT_CONFIG = "config/alerting.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", default=DEFAULT_CONFIG, metavar="FILE",
                        help="configuration file (default: %(default)s); any key can be "
                        "overridden with IOTWATCH__<SECTION>__<KEY> environment variables "
                        "(secrets such as IOTWATCH__MQTT__PASSWORD only this way)")
    parser.add_argument("--check", action="store_true",
                        help="validate the configuration, build the receivers and exit")


def run(args: argparse.Namespace) -> int:
    from alerting.config import AlertingFile
    from iotwatch import IotwatchError
    from iotwatch.config import ConfigError, load_config
    from iotwatch.logs import fatal, setup_logging

    try:
        config = load_config(args.config, AlertingFile)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    setup_logging(config.log, "alerting")
    if args.check:
        from alerting.receivers import build_targets
        from alerting.templates import LinkTemplate

        try:
            targets = build_targets(config.alerting.receivers,
                                    LinkTemplate(config.alerting.dashboard_url))
        except ValueError as exc:
            print(f"{args.config}: {exc}", file=sys.stderr)
            return 2
        names = sorted(spec.target.name for specs in targets.values() for spec in specs)
        print(f"{args.config}: ok ({', '.join(names)})")
        return 0

    from alerting import app
    from iotwatch.paths import PathProblem, output_file

    try:
        output_file(config.alerting.database, "alerting.database")
    except PathProblem as exc:
        fatal("iotwatch alert", str(exc))
        return 2
    try:
        return app.run(config)
    except ValueError as exc:  # a receiver that cannot be built (template file, ...)
        print(f"{args.config}: {exc}", file=sys.stderr)
        return 2
    except IotwatchError as exc:  # broker or database unusable at start-up
        fatal("iotwatch alert", str(exc))
        return 1
