"""``iotwatch summarize``: hourly and daily summaries of a recording, offline.

The same code as the detector service: each reading goes through the detection engine
(for the anomaly and alert counts; ``--config`` configures it and declares counters in
``detector.summaries.streams``), in file order, into the same per-stream rollups.
Periods still open at the end of the file are written too (the service would write them
when the next period's first reading arrives). Every stream is summarised here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

EXIT_USAGE = 2
COLUMNS = ("period_start", "site", "device", "metric", "count", "mean", "min", "max", "sum",
           "anomalies", "alerts", "late")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Write hourly.csv and daily.csv (UTC periods) with mean, min, max, count, anomaly and "
        "alert counts (and sum for counters) per stream of a publisher recording "
        "(readings.csv: ts,site,device,metric,value).")
    parser.add_argument("readings", metavar="READINGS.csv", type=Path)
    parser.add_argument("--out", type=Path, metavar="DIR", required=True,
                        help="directory for hourly.csv and daily.csv")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="detector service YAML: engine settings and summary counters")
    parser.add_argument("--no-detect", action="store_true",
                        help="skip the engine (anomaly and alert counts stay 0; much faster)")


def run(args: argparse.Namespace) -> int:
    from detector.evaluate.datasets import DatasetError
    from iotwatch.cli import usage_errors
    from iotwatch.config import ConfigError

    return usage_errors("iotwatch summarize", (DatasetError, ConfigError, UsageError),
                        lambda: _run(args))


class UsageError(Exception):
    """A command-line argument that cannot be used."""


def _run(args: argparse.Namespace) -> int:
    from detector.evaluate.cli import load_engine_settings
    from detector.summaries.settings import SummarySettings

    if not args.readings.is_file():
        raise UsageError(f"{args.readings}: file not found (expected the publisher's "
                         f"readings.csv: ts,site,device,metric,value)")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out}: exists and is not a directory")
    if args.config is not None and not args.config.is_file():
        raise UsageError(f"--config {args.config}: file not found")
    section = load_engine_settings(args.config) if args.config else None
    settings = getattr(section, "summaries", None) or SummarySettings()
    settings = settings.model_copy(update={"enabled": True})
    engine = None
    if not args.no_detect:
        from detector.engine import Engine, EngineSettings

        engine = Engine(section if section is not None else EngineSettings())
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {args.out}: cannot create the directory: {exc.strerror}") \
            from None
    hourly, daily, readings = summarize(args.readings, settings, engine)
    for name, rows in (("hourly.csv", hourly), ("daily.csv", daily)):
        write_csv(args.out / name, rows)
    print(f"{readings:,} readings -> {len(hourly)} hourly and {len(daily)} daily rows in "
          f"{args.out}")
    return 0


def summarize(path: Path, settings, engine) -> tuple[list[dict], list[dict], int]:
    """(hourly rows, daily rows, readings) of the recording at ``path``."""
    from detector.evaluate.datasets import recording_rows
    from detector.summaries.rollup import Rollup
    from detector.summaries.settings import resolve

    rollups: dict[tuple[str, str, str], Rollup] = {}
    out: dict[str, list[dict]] = {"hour": [], "day": []}

    def emit(stream: tuple[str, str, str], summaries) -> None:
        for s in summaries:
            out[s.period].append(_row(stream, s))

    count = 0
    for row in recording_rows(path):
        stream = (row.site, row.device, row.metric)
        rollup = rollups.get(stream)
        if rollup is None:
            rollup = rollups[stream] = Rollup(bool(resolve(settings, "/".join(stream))))
        anomaly = alert = False
        if engine is not None:
            outcome = engine.process(row.site, row.device, row.metric, row.ts, row.value)
            anomaly = outcome.anomaly
            alert = outcome.event is not None and outcome.event.state == "firing"
        emit(stream, rollup.add(row.ts, row.value, anomaly=anomaly, alert=alert))
        count += 1
    for stream, rollup in rollups.items():
        emit(stream, rollup.flush())
    return (sorted(out["hour"], key=_order), sorted(out["day"], key=_order), count)


def _row(stream: tuple[str, str, str], s) -> dict:
    from iotwatch.timeparse import format_rfc3339

    return {"period_start": format_rfc3339(s.start), "site": stream[0], "device": stream[1],
            "metric": stream[2], "count": s.count, "mean": s.mean, "min": s.min, "max": s.max,
            "sum": "" if s.sum is None else s.sum, "anomalies": s.anomalies,
            "alerts": s.alerts, "late": s.late}


def _order(row: dict) -> tuple:
    return (row["period_start"], row["site"], row["device"], row["metric"])


def write_csv(path: Path, rows: list[dict]) -> None:
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
