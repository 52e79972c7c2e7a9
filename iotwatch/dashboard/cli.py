"""``iotwatch dashboard``: a live page on localhost over the stored points and the services.

It reads where the detector writes: give the detector's configuration file (``-c``, the
default ``config/detector.yaml`` when it exists) and it takes the ``influxdb:`` section
(v1 or v2, with the same ``IOTWATCH__INFLUXDB__...`` overrides and secrets), the file
sink's path when ``detector.output.sink`` is ``file``, and the detector's HTTP address.
Flags override any of these. Heavy imports stay inside ``run``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_CONFIG = 2
DEFAULT_CONFIG = "config/detector.yaml"
DEFAULT_ALERTING = "http://127.0.0.1:9102"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", metavar="FILE",
                        help=f"the detector's configuration file (default: {DEFAULT_CONFIG} "
                        "when it exists); IOTWATCH__<SECTION>__<KEY> environment variables "
                        "override its keys as they do for the detector")
    parser.add_argument("--influxdb-url", metavar="URL", help="InfluxDB to read points from")
    parser.add_argument("--api", choices=("v1", "v2"),
                        help="InfluxDB API: v1 (1.x) or v2 (2.x and 3.x: InfluxQL on /query, "
                        "token from IOTWATCH__INFLUXDB__TOKEN)")
    parser.add_argument("--database", metavar="NAME", help="v1 database")
    parser.add_argument("--bucket", metavar="NAME", help="v2 bucket")
    parser.add_argument("--points-file", type=Path, metavar="FILE",
                        help="read the detector's file sink (line protocol) instead of InfluxDB")
    parser.add_argument("--detector", metavar="URL",
                        help="the detector's HTTP API (default: its config's http: section, "
                        "else http://127.0.0.1:8081)")
    parser.add_argument("--alerting", metavar="URL", default=DEFAULT_ALERTING,
                        help="the alerting service's HTTP API (default: %(default)s; 'none' "
                        "for no alerting service)")
    parser.add_argument("--mqtt", action="store_true",
                        help="also list the newest dead letters, read from the broker in the "
                        "config's mqtt: section as a user that may read <prefix>/deadletter/# "
                        "(e.g. IOTWATCH__MQTT__USERNAME=monitor and IOTWATCH__MQTT__PASSWORD)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to serve the page on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8050,
                        help="port to serve the page on, 0 for any free one (default: "
                        "%(default)s)")
    parser.add_argument("--refresh", type=float, default=2.0, metavar="SECONDS",
                        help="how often the page refreshes (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    from detector.config import DetectorFile
    from iotwatch.config import ConfigError, build_config, load_config

    path = args.config or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).exists() else None)
    try:
        config = load_config(path, DetectorFile) if path else \
            build_config({}, DetectorFile, environ=os.environ)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    if args.refresh <= 0:
        print(f"iotwatch dashboard: --refresh must be > 0 seconds, got {args.refresh:g}",
              file=sys.stderr)
        return EXIT_CONFIG
    from iotwatch.dashboard.app import DashboardOptions, start
    from iotwatch.logs import setup_logging
    from iotwatch.mqtt import MqttError

    setup_logging(config.log, "dashboard")
    options = DashboardOptions(
        influxdb=config.influxdb.model_copy(update={k: v for k, v in (
            ("url", args.influxdb_url), ("api", args.api), ("database", args.database),
            ("bucket", args.bucket)) if v is not None}),
        points_file=_points_file(args, config),
        detector_url=args.detector or _detector_url(config),
        alerting_url=None if args.alerting == "none" else args.alerting,
        mqtt=config.mqtt if args.mqtt else None, host=args.host, port=args.port, refresh_s=args.refresh)
    try:
        dashboard = start(options)
    except MqttError as exc:
        print(f"iotwatch dashboard: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:
        print(f"iotwatch dashboard: cannot serve on {args.host}:{args.port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"iotwatch dashboard: {dashboard.url} (points from "
          f"{_describe(options)}; Ctrl-C stops)", flush=True)
    try:
        dashboard.serve_forever()
    finally:
        dashboard.close()
    return 0


def _points_file(args: argparse.Namespace, config) -> Path | None:
    if args.points_file is not None:
        return args.points_file
    if args.influxdb_url is None and config.detector.output.sink == "file":
        return config.detector.output.file
    return None


def _detector_url(config) -> str:
    http = config.http
    port = http.port or 8081
    host = "127.0.0.1" if http.host in ("0.0.0.0", "::", "") else http.host
    return f"http://{host}:{port}"


def _describe(options) -> str:
    if options.points_file is not None:
        return f"the file {options.points_file}"
    settings = options.influxdb
    where = settings.database if settings.api == "v1" else f"bucket {settings.bucket}"
    return f"InfluxDB {settings.api} at {settings.url}, {where}"
