"""``iotwatch train``: fit a model on normal data and save MODEL.joblib + MODEL.json.

Heavy imports stay inside :func:`run` so ``iotwatch --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_USAGE = 2
FORMATS = ("nab", "skab", "iotwatch", "influxdb")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from detector.models.kinds import KINDS

    parser.description = (
        "Fit a model on recorded normal data (labelled rows are left out), calibrate its "
        "scores on the held-out tail, and save MODEL.joblib with its metadata MODEL.json. "
        "Use it in config/detector.yaml (models:) or with iotwatch evaluate --model.")
    parser.add_argument("data", metavar="DATA",
                        help="data directory (NAB, SKAB or a publisher recording), or the "
                        "InfluxDB 1.x URL with --format influxdb")
    parser.add_argument("--format", choices=FORMATS,
                        help="data format (default: detected from the files)")
    parser.add_argument("--labels", type=Path, metavar="FILE",
                        help="labels file (NAB windows JSON or labels.jsonl); labelled rows "
                        "are not trained on")
    parser.add_argument("--model", required=True, choices=sorted(KINDS), help="model kind")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--stream", metavar="GLOB",
                        help="train a stream model on the streams site/device/metric matching "
                        "GLOB (MQTT wildcards; default: every stream)")
    target.add_argument("--device", metavar="SITE/DEVICE",
                        help="train a device model on the vector of this device's metrics")
    parser.add_argument("--params", nargs="*", default=[], metavar="KEY=VALUE",
                        help="model parameters (see docs/models.md), e.g. n_clusters=12")
    parser.add_argument("--windows", default="8,32", metavar="N,N",
                        help="rolling windows of the features (default %(default)s)")
    parser.add_argument("--lags", default="1,2", metavar="N,N",
                        help="lags of the features (default %(default)s; '' for none)")
    parser.add_argument("--first-rows", type=int, metavar="N",
                        help="train on each file's first N rows only (SKAB: 400)")
    parser.add_argument("--holdout", type=float, default=0.2, metavar="F",
                        help="share of the training data (its tail) held out to calibrate "
                        "(default %(default)s)")
    parser.add_argument("--far", type=float, default=0.01, metavar="F",
                        help="false-alarm rate on held-out normal data the saved threshold "
                        "stands for (default %(default)s)")
    parser.add_argument("--seed", type=int, default=42, metavar="N")
    influx = parser.add_argument_group("InfluxDB 1.x (--format influxdb)")
    influx.add_argument("--database", default="iotwatch")
    influx.add_argument("--measurement", default="readings")
    influx.add_argument("--start", metavar="TIME", help="RFC 3339 or epoch seconds")
    influx.add_argument("--end", metavar="TIME", help="RFC 3339 or epoch seconds")
    parser.add_argument("--out", type=Path, required=True, metavar="MODEL.joblib")
    parser.add_argument("--quiet", action="store_true", help="no progress")


def run(args: argparse.Namespace) -> int:
    from detector.evaluate.datasets import DatasetError
    from iotwatch.cli import usage_errors
    from iotwatch.timeparse import TimestampError

    return usage_errors("iotwatch train", (DatasetError, TimestampError, ValueError),
                        lambda: _run(args))


def parse_params(items: list[str], defaults: dict[str, Any]) -> dict[str, Any]:
    """``KEY=VALUE`` strings typed like the defaults (numbers, true/false, strings).

    >>> parse_params(["n_clusters=12", "gamma=0.5"], {"n_clusters": 8, "gamma": "scale"})
    {'n_clusters': 12, 'gamma': 0.5}
    """
    import yaml

    params: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--params: expected KEY=VALUE, got {item!r}")
        if key not in defaults:
            raise ValueError(f"--params: unknown parameter {key!r} "
                             f"(known: {', '.join(sorted(defaults))})")
        params[key] = yaml.safe_load(text)
    return params


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ValueError(f"--{what}: expected comma-separated integers, got {text!r}") from None


def _run(args: argparse.Namespace) -> int:
    from detector.models import artifact, data, kinds
    from detector.models.features import FeatureSpec
    from detector.models.train import fit
    from iotwatch.timeparse import parse_timestamp

    spec = FeatureSpec(_ints(args.windows, "windows"), _ints(args.lags, "lags"))
    params = parse_params(args.params, kinds.KINDS[args.model])
    if args.out.suffix != ".joblib":
        raise ValueError(f"--out must end in .joblib, got {args.out}")
    if args.format == "influxdb":
        if not args.start or not args.end:
            raise ValueError("--format influxdb needs --start and --end")
        training = data.from_influxdb(args.data, args.database, parse_timestamp(args.start),
                                      parse_timestamp(args.end), stream=args.stream,
                                      device=args.device, measurement=args.measurement)
    else:
        data_dir = Path(args.data)
        if not data_dir.is_dir():
            raise ValueError(f"DATA {data_dir} is not a directory")
        training = data.from_files(data_dir, args.format, args.labels, stream=args.stream,
                                   device=args.device, first_rows=args.first_rows)
    print(f"training {args.model} on {training.rows:,} rows of {training.scope} "
          f"{training.target} ({len(training.series)} series, metrics "
          f"{', '.join(training.metrics)})", file=sys.stderr)
    model = fit(args.model, training, spec, params, holdout=args.holdout, far=args.far,
                seed=args.seed, progress=None if args.quiet else _progress(args.model))
    meta = artifact.save(model, args.out)
    cal = model.calibration
    print(f"wrote {args.out} and {meta}: {model.training['fit_rows']:,} rows fitted, "
          f"{cal.rows:,} held out; threshold {cal.threshold:.4g} "
          f"(false alarms on held-out normal rows: {cal.false_alarm_rate:.2%})")
    return 0


UNITS = {"autoencoder": "epochs", "isolation_forest": "trees"}


def _progress(kind: str):
    import time

    started = time.monotonic()
    unit = UNITS.get(kind, "steps")

    def show(stage: str, done: int, total: int) -> None:
        if stage != "fit":
            return
        elapsed = time.monotonic() - started
        eta = elapsed / done * (total - done) if done else 0.0
        end = "\n" if done >= total else ""
        tail = f"done in {elapsed:.1f} s" if done >= total else f"ETA {eta:.0f} s"
        print(f"\rfitting {kind}: {done}/{total} {unit} ({100 * done / total:.0f}%), {tail}",
              end=end, file=sys.stderr, flush=True)

    return show
