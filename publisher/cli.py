"""``iotwatch publish``: run the simulated fleet, or replay recorded CSV data.

Heavy imports stay inside ``run`` so ``iotwatch --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_CONFIG = "config/publisher.yaml"
EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", metavar="FILE",
                        help=f"configuration file (default: {DEFAULT_CONFIG}, or built-in "
                        "defaults when it is absent and --fleet or --replay is given); any "
                        "key can be overridden with IOTWATCH__<SECTION>__<KEY> variables")
    parser.add_argument("--fleet", metavar="FILE",
                        help="fleet file to run (overrides publisher.fleet_file)")
    parser.add_argument("--replay", metavar="FILE_OR_DIR",
                        help="replay recorded CSV data instead of simulating (NAB "
                        "timestamp,value files, SKAB semicolon files, or alike)")
    parser.add_argument("--windows", metavar="FILE",
                        help="NAB label windows of the replayed files (combined_windows.json): "
                        "written and sent as labels, like an anomaly column of SKAB files")
    parser.add_argument("--audio", metavar="FILE_OR_DIR",
                        help="publish per-frame sound features of WAV files (RMS, peak, crest, "
                        "spectral centroid and flatness, band energies) as streams of the "
                        "device named like each file")
    parser.add_argument("--frame-ms", type=_positive_float, default=100.0, metavar="N",
                        help="audio frame length in milliseconds (default 100)")
    parser.add_argument("--bands", default="0-250,250-1000,1000-4000,4000-8000",
                        metavar="LOW-HIGH,...", help="audio energy bands in Hz")
    parser.add_argument("--site", help="site of replayed devices (default: replay)")
    parser.add_argument("--metric",
                        help="metric name of a replayed file's single value column")
    parser.add_argument("--seed", type=int, help="random seed (same seed, same data)")
    bound = parser.add_mutually_exclusive_group()
    bound.add_argument("--count", type=_positive_int, metavar="N",
                       help="sampling ticks per stream (replay: rows per file)")
    bound.add_argument("--duration", type=_positive_float, metavar="SECONDS",
                       help="simulated seconds to run (replay: seconds of each recording)")
    parser.add_argument("--start", metavar="RFC3339",
                        help="first simulated timestamp, e.g. 2026-01-20T00:00:00Z")
    parser.add_argument("--speed", type=_speed, metavar="N|max",
                        help="simulated seconds per wall-clock second (1 = real time; "
                        "0 or max = as fast as possible)")
    parser.add_argument("--payload", choices=("single", "device"),
                        help="one message per reading, or one per device and instant")
    parser.add_argument("--out", metavar="DIR",
                        help="write DIR/readings.csv and DIR/labels.jsonl instead of "
                        "publishing (no broker needed)")
    parser.add_argument("--labels", metavar="FILE",
                        help="also write the injected faults here when publishing")
    parser.add_argument("--check", action="store_true",
                        help="validate the configuration and the fleet, then exit")


def run(args: argparse.Namespace) -> int:
    from iotwatch.config import ConfigError
    from iotwatch.logs import fatal, setup_logging
    from iotwatch.mqtt import MqttError
    from iotwatch.paths import PathProblem, output_dir, output_file
    from publisher import app
    from publisher.audio import AudioError
    from publisher.replay import ReplayError

    if args.audio and (args.replay or args.fleet):
        print("iotwatch publish: --audio cannot be combined with --replay or --fleet",
              file=sys.stderr)
        return EXIT_CONFIG
    try:
        config, fleet, source_name = _load(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    if args.check:
        print(f"{source_name}: ok")
        return 0
    setup_logging(config.log, "publisher")
    labels_file = config.publisher.labels_file
    try:  # outputs before the work: a run may last hours
        if args.out:
            output_dir(Path(args.out), "--out")
        elif labels_file is not None:
            output_file(labels_file, "--labels" if args.labels else "publisher.labels_file")
    except PathProblem as exc:
        fatal("iotwatch publish", str(exc))
        return EXIT_CONFIG
    try:
        return app.run(config, fleet=fleet,
                       replay=Path(args.replay) if args.replay else None,
                       out_dir=Path(args.out) if args.out else None, audio=_audio(args))
    except (ReplayError, AudioError) as exc:  # the recording is not what was expected
        fatal("iotwatch publish", str(exc))
        return EXIT_CONFIG
    except MqttError as exc:
        fatal("iotwatch publish", str(exc))
        return EXIT_UNAVAILABLE
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG


def _load(args: argparse.Namespace):
    """The configuration with the command-line options applied, and the fleet to run."""
    from iotwatch.config import ConfigError, build_config, load_config
    from publisher.config import PublisherFile, PublisherSettings
    from publisher.fleet import load_fleet

    path = args.config or DEFAULT_CONFIG
    if args.config is None and not Path(path).exists() and (args.fleet or args.replay
                                                            or args.audio):
        config, base = PublisherFile(), Path.cwd()
    else:
        config = load_config(path, PublisherFile)
        base = Path(path).resolve().parent
    overrides = {key: value for key, value in {
        "seed": args.seed, "start": args.start, "speed": args.speed, "payload": args.payload,
        "labels_file": args.labels}.items() if value is not None}
    if args.count is not None:
        overrides.update(count=args.count, duration_s=None)
    if args.duration is not None:
        overrides.update(duration_s=args.duration, count=None)
    merged = config.publisher.model_dump() | overrides
    merged["replay"].update({key: value for key, value in {
        "site": args.site, "metric": args.metric, "windows": args.windows}.items()
        if value is not None})
    # Validated again, so an option is checked exactly like the key it overrides.
    settings = build_config(merged, PublisherSettings, environ={}, source="command line")
    config = config.model_copy(update={"publisher": settings})
    if args.replay:
        return config, None, args.replay
    if args.audio:
        return config, None, args.audio
    if args.fleet:
        fleet_path = Path(args.fleet)
    elif settings.fleet_file is not None:
        fleet_path = settings.fleet_file if settings.fleet_file.is_absolute() \
            else base / settings.fleet_file
    elif settings.fleet is not None:
        return config, settings.fleet, path
    else:
        raise ConfigError(["publisher.fleet_file: no fleet to run: set publisher.fleet_file "
                           "(or an inline publisher.fleet), or pass --fleet FILE or "
                           "--replay FILE_OR_DIR"], path)
    return config, load_fleet(fleet_path), str(fleet_path)


def _audio(args: argparse.Namespace):
    """The --audio source's options (None without --audio); bands checked here."""
    if not args.audio:
        return None
    from publisher.audio import AudioOptions, parse_bands

    return AudioOptions(Path(args.audio), args.frame_ms, parse_bands(args.bands))


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _speed(text: str) -> float:
    if text.lower() == "max":
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or max, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (0 = as fast as possible), got {text}")
    return value
