"""Publisher throughput as a ratio to a bare paho publisher, measured in one run.

    python bench/publisher_bench.py [--streams 1000] [--count 60000] [--json results.json]

Starts a real Mosquitto with the project's configuration (the test harness's code) and
runs, one after the other, each as its own process, QoS 1, 1,000 in flight:

1. ceiling: ``bench/publish_load.py``, a bare paho loop publishing prebuilt-size readings;
2. ``python -m publisher`` at ``--speed max``, a fleet of ``--streams`` streams
   (100-metric devices), single-metric payloads, ``--count`` readings in all;
3. the same fleet with per-device payloads (100 readings a message);
4. the same fleet to files (``--out``): the simulation's own cost, no broker.

Rates are from the publisher's summary (first to last acknowledgement) and the bare
loop's own timing; CPU is the child's user+system time per reading. No pass/fail.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "tests"))

from harness.mosquitto import broker_private_dir, make_credentials, start_local_broker  # noqa: E402

PUBLISH = PROJECT / "bench" / "publish_load.py"
METRICS_PER_DEVICE = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--count", type=int, default=60_000, help="readings per phase")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.streams % METRICS_PER_DEVICE:
        raise SystemExit(f"--streams must be a multiple of {METRICS_PER_DEVICE}")
    workdir = Path(tempfile.mkdtemp(prefix="publisher-bench-"))
    credentials_dir = broker_private_dir("publisher-bench-credentials-")
    broker = start_local_broker(workdir / "mosquitto", make_credentials(credentials_dir))
    try:
        results = {
            "streams": args.streams, "readings": args.count,
            "ceiling": ceiling(broker, args),
            "single": publisher(broker, workdir, args, "single"),
            "device": publisher(broker, workdir, args, "device"),
            "files": files(workdir, args),
        }
    finally:
        broker.close()
        shutil.rmtree(credentials_dir, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ceiling(broker, args) -> dict[str, Any]:
    cpu = child_cpu()
    out = subprocess.run(
        [sys.executable, str(PUBLISH), "--host", broker.host, "--port", str(broker.port),
         "--streams", str(args.streams), "--count", str(args.count), "--site", "bench-raw"],
        env={**os.environ, "MQTT_PASSWORD": broker.password("publisher")},
        capture_output=True, text=True, check=True).stdout
    seconds = float(re.search(r"published \d+ in ([\d.]+) s", out).group(1))
    return {"readings_per_s": args.count / seconds, "messages_per_s": args.count / seconds,
            "cpu_us_per_reading": (child_cpu() - cpu) / args.count * 1e6}


def fleet_file(workdir: Path, streams: int) -> Path:
    path = workdir / "fleet.yaml"
    metrics = {f"m{i:03d}": {"unit": "C", "baseline": 20.0, "noise": 0.5,
                             "daily": {"amplitude": 2.0, "peak_hour": 15},
                             "drift": {"std": 0.3, "tau_h": 6}, "resolution": 0.01,
                             "range": [-40, 125]} for i in range(METRICS_PER_DEVICE)}
    path.write_text(yaml.safe_dump({
        "templates": {"rack": {"interval_s": 10, "jitter_s": 0.5, "metrics": metrics}},
        "sites": {"bench": {"devices": [{"name": "rack-{n:03d}", "template": "rack",
                                         "count": streams // METRICS_PER_DEVICE}]}},
        "faults": {"random": {"rate_per_stream_per_hour": 0.1}}}))
    return path


def publisher(broker, workdir: Path, args, payload: str) -> dict[str, Any]:
    config = workdir / f"publisher-{payload}.yaml"
    config.write_text(yaml.safe_dump({
        "mqtt": broker.mqtt_section("publisher", max_inflight=1000),
        "log": {"level": "INFO"},
        "publisher": {"fleet_file": str(fleet_file(workdir, args.streams)), "speed": 0,
                      "count": args.count // args.streams, "payload": payload,
                      "truth": False, "start": "2026-01-20T00:00:00Z",
                      "progress_interval_s": 0}}))
    cpu = child_cpu()
    result = subprocess.run([sys.executable, "-m", "publisher", "--config", str(config)],
                            env={**os.environ, **broker.env("publisher")}, cwd=PROJECT,
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"publisher failed ({result.returncode}):\n{result.stderr[-3000:]}")
    summary = re.search(r"summary: (\d+) readings in (\d+) messages, (\d+) acknowledged "
                        r"\(\d+/s over ([\d.]+) s\)", result.stderr)
    readings, messages, _acked, seconds = summary.groups()
    seconds = float(seconds)
    return {"readings_per_s": int(readings) / seconds, "messages_per_s": int(messages) / seconds,
            "cpu_us_per_reading": (child_cpu() - cpu) / int(readings) * 1e6}


def files(workdir: Path, args) -> dict[str, Any]:
    cpu, started = child_cpu(), time.monotonic()
    subprocess.run([sys.executable, "-m", "publisher", "--fleet",
                    str(fleet_file(workdir, args.streams)), "--count",
                    str(args.count // args.streams), "--out", str(workdir / "out")],
                   cwd=PROJECT, capture_output=True, check=True)
    elapsed = time.monotonic() - started
    rows = sum(1 for _ in (workdir / "out" / "readings.csv").open()) - 1
    return {"readings_per_s": rows / elapsed,
            "cpu_us_per_reading": (child_cpu() - cpu) / rows * 1e6}


def report(results: dict[str, Any]) -> None:
    raw = results["ceiling"]["readings_per_s"]
    print(f"{results['streams']} streams, {results['readings']} readings per phase, QoS 1")
    print(f"{'':28}{'readings/s':>12}{'messages/s':>12}{'ratio':>8}{'CPU us/reading':>16}")
    for name, label in (("ceiling", "bare paho publisher"), ("single", "publisher, single"),
                        ("device", "publisher, device form"), ("files", "publisher, --out")):
        row = results[name]
        print(f"{label:28}{row['readings_per_s']:>12,.0f}"
              f"{row.get('messages_per_s', 0):>12,.0f}{row['readings_per_s'] / raw:>8.2f}"
              f"{row['cpu_us_per_reading']:>16.0f}")


if __name__ == "__main__":
    main()
