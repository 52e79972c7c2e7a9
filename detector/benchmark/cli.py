"""``iotwatch bench``: detector throughput, latency and cost against the broker's ceiling.

Needs Mosquitto and InfluxDB 1.x installed (Debian: ``mosquitto influxdb``); starts its own
on free loopback ports. Prints progress, then the table; ``--json FILE`` writes the results.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from iotwatch.cli import EXIT_USAGE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--streams", type=_positive_int, default=10_000,
                        help="distinct streams the load cycles over (default 10000)")
    parser.add_argument("--duration", type=float, default=30.0, metavar="S",
                        help="seconds each measured phase aims for (default 30)")
    parser.add_argument("--warmup", type=int, default=None, metavar="N",
                        help="readings per stream before measuring (default: tree window + 10)")
    parser.add_argument("--probes", type=_positive_int, default=100,
                        help="streams whose points the latency phase follows (default 100)")
    parser.add_argument("--no-c-reference", action="store_true",
                        help="skip the mosquitto_sub reference")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results here")


def run(args: argparse.Namespace) -> int:
    from detector.benchmark.run import BenchError, BenchOptions, run_bench
    from iotwatch.demo.brokers import mosquitto_available

    missing = mosquitto_available() or (None if shutil.which("influxd") else
                                        "influxd is not installed (Debian package: influxdb)")
    if missing:
        print(f"iotwatch bench: {missing}", file=sys.stderr)
        return EXIT_USAGE
    if args.json is not None and not args.json.parent.is_dir():
        print(f"iotwatch bench: --json {args.json}: {args.json.parent} is not a directory",
              file=sys.stderr)
        return EXIT_USAGE
    options = BenchOptions(streams=args.streams, duration_s=args.duration, warmup=args.warmup,
                           probes=args.probes, c_reference=not args.no_c_reference)
    started = time.monotonic()

    def progress(text: str) -> None:
        print(f"[{time.monotonic() - started:6.0f} s] {text}", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="iotwatch-bench-"))
    try:
        results = run_bench(options, workdir, progress)
    except BenchError as exc:
        print(f"iotwatch bench: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(render(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


def render(results: dict[str, Any]) -> str:
    """The results as the table ``iotwatch bench`` prints.

    >>> print(render({"streams": 10, "ceiling_msgs_per_s": 40000,
    ...     "ceiling_offered_msgs_per_s": 90000, "c_reference_msgs_per_s": None,
    ...     "detector_msgs_per_s": 10000, "detector_offered_msgs_per_s": 80000, "ratio": 0.25,
    ...     "latency_ms": {"p50": 3.0, "p95": 9.5, "p99": 20.0, "samples": 500},
    ...     "latency_rate_msgs_per_s": 5000, "bytes_per_stream": 15000,
    ...     "cpu_us_per_msg": 80.0, "published": 100, "stored": 100, "longest_pause_ms": {"checkpoint": 21.0, "write_stage": 3.5},
    ...     "load_average": {"start": [0.5, 0.4, 0.3], "end": [1.0, 0.6, 0.4]}}))
    iotwatch bench, 10 streams, QoS 1 (load average 0.50 at start, 1.00 at end)
    <BLANKLINE>
    | consumer | msg/s | offered by the load generator | ratio to bare paho |
    |---|---:|---:|---:|
    | bare paho subscriber (ceiling) | 40,000 | 90,000 | 1.00 |
    | iotwatch detect, default engine, InfluxDB 1.x | 10,000 | 80,000 | **0.250** |
    <BLANKLINE>
    publish -> stored at 5,000 msg/s (half the sustained rate), 500 probe readings: p50 3.0 ms, p95 9.5 ms, p99 20.0 ms
    state per stream after warm-up: 15.0 KB; detector CPU per reading: 80.0 us
    longest pause of the processing thread: checkpoint 21.0 ms, write_stage 3.5 ms
    stored: 100 of 100 published readings counted back from the database
    """
    rows = [("bare paho subscriber (ceiling)", results["ceiling_msgs_per_s"],
             results["ceiling_offered_msgs_per_s"], 1.0)]
    if results.get("c_reference_msgs_per_s"):
        rows.insert(0, ("mosquitto_sub (C reference)", results["c_reference_msgs_per_s"], None,
                        results["c_reference_msgs_per_s"] / results["ceiling_msgs_per_s"]))
    rows.append(("iotwatch detect, default engine, InfluxDB 1.x",
                 results["detector_msgs_per_s"], results["detector_offered_msgs_per_s"],
                 results["ratio"]))
    load = results["load_average"]
    out = [f"iotwatch bench, {results['streams']:,} streams, QoS 1 (load average "
           f"{load['start'][0]:.2f} at start, {load['end'][0]:.2f} at end)", "",
           "| consumer | msg/s | offered by the load generator | ratio to bare paho |",
           "|---|---:|---:|---:|"]
    for name, rate, offered, ratio in rows:
        shown = f"**{ratio:.3f}**" if name.startswith("iotwatch") else f"{ratio:.2f}"
        out.append(f"| {name} | {rate:,} | {'' if offered is None else f'{offered:,}'} | "
                   f"{shown} |")
    latency = results["latency_ms"]
    out += ["", f"publish -> stored at {results['latency_rate_msgs_per_s']:,.0f} msg/s (half "
            f"the sustained rate), {latency['samples']:,} probe readings: p50 {latency['p50']} "
            f"ms, p95 {latency['p95']} ms, p99 {latency['p99']} ms",
            f"state per stream after warm-up: {results['bytes_per_stream'] / 1000:.1f} KB; "
            f"detector CPU per reading: {results['cpu_us_per_msg']} us",
            "longest pause of the processing thread: "
            + (", ".join(f"{kind} {ms} ms" for kind, ms in results["longest_pause_ms"].items())
               if results.get("longest_pause_ms") else "not reported"),
            f"stored: {results['stored']:,} of {results['published']:,} published readings "
            "counted back from the database"]
    return "\n".join(out)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value
