"""``iotwatch detect``: run the detector service.

Heavy imports stay inside ``run`` so ``iotwatch --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys

EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", default="config/detector.yaml", metavar="FILE",
                        help="configuration file (default: %(default)s); any key can be "
                        "overridden with IOTWATCH__<SECTION>__<KEY> environment variables")
    parser.add_argument("--check", action="store_true",
                        help="validate the configuration and exit")


def run(args: argparse.Namespace) -> int:
    from detector.config import DetectorFile
    from iotwatch.config import ConfigError, load_config
    from iotwatch.logs import fatal, setup_logging
    from iotwatch.mqtt import MqttError

    try:
        config = load_config(args.config, DetectorFile)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    from detector.models.artifact import ModelError
    from detector.models.service import prepare

    try:
        # Trained models are refused here, before anything connects (docs/models.md).
        prepare(config.detector)
    except ModelError as exc:
        for line in str(exc).splitlines():
            print(f"{args.config}: detector.{line}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check:
        print(f"{args.config}: ok")
        return 0
    setup_logging(config.log, "detector")
    problem = _unwritable(config)
    if problem:
        fatal("iotwatch detect", problem)
        return EXIT_CONFIG
    from detector import app
    from detector.sink import SinkConfigError
    from detector.spool import SpoolError

    try:
        if config.detector.input.source == "nats":
            from detector.distributed import app as distributed

            return distributed.run(config)
        return app.run(config)
    except ConfigError as exc:  # e.g. the NATS server's partitions differ from nats.partitions
        fatal("iotwatch detect", str(exc))
        return EXIT_CONFIG
    except (MqttError, SpoolError, SinkConfigError) as exc:
        fatal("iotwatch detect", str(exc))
        return EXIT_UNAVAILABLE


def _unwritable(config) -> str | None:
    """The first of the service's paths it could not write, said in one line."""
    from iotwatch.paths import PathProblem, output_dir, output_file

    section = config.detector
    try:
        output_dir(section.spool.dir, "detector.spool.dir")
        output_file(section.checkpoint.path, "detector.checkpoint.path")
        if section.output.sink == "file":
            output_file(section.output.file, "detector.output.file")
    except PathProblem as exc:
        return str(exc)
    return None
