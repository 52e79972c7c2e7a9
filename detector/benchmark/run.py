"""``iotwatch bench``: the detector's sustained rate as a share of the broker's ceiling.

One run, one broker (the project's Mosquitto config), one load generator, so every
ratio compares like with like on whatever the machine is doing at the time:

1. **ceiling**: the load generator publishes flat out to a bare paho subscriber (QoS 1,
   automatic acks; ``detector.benchmark.baresub``) and, when ``mosquitto_sub`` is
   installed, to a C subscriber as a reference for what the broker itself carries;
2. **detector**: ``python -m detector`` with the default engine, default checkpoint and
   alert settings, writing to a real database: every stream is warmed past the tree
   window, then the generator publishes flat out and the detector's acknowledgements
   (sent only once points are written or spooled) give its sustained rate;
3. **latency** at half that rate: publish -> stored for the probe streams, polled from
   the database every few milliseconds;
4. **verified**: every reading published is counted back out of the database.

The generator's own rate is printed beside each phase: a ceiling is only a ceiling if
the load offered is faster than what is measured.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from detector.benchmark.loadgen import is_probe
from iotwatch.demo.brokers import DemoBroker, start_mosquitto
from iotwatch.demo.processes import Child, ProcessGroup
from iotwatch.demo.stores import start_influxd
from iotwatch.ports import free_port, wait_until

SITE = "bench"
READINGS = f"iotwatch/readings/{SITE}/#"
# Enough for the bare subscriber to be measured for about ``duration`` seconds at the
# Python QoS 1 ceiling of this kind of machine (~40-60k msg/s, shared/MEASURED.md).
CEILING_RATE_GUESS = 40_000
# The most readings one phase may leave queued in the broker for a slower consumer: well
# under the project's max_queued_messages (1,000,000), beyond which Mosquitto drops them.
MAX_BACKLOG = 400_000


@dataclass(frozen=True)
class BenchOptions:
    """What ``iotwatch bench`` measures: streams, seconds per phase, warm-up per stream."""

    streams: int = 10_000
    duration_s: float = 30.0
    warmup: int | None = None  # readings per stream; default: the tree window + 10
    probes: int = 100          # streams whose points the latency phase follows
    c_reference: bool = True


Progress = Callable[[str], None]


def run_bench(options: BenchOptions, workdir: Path, progress: Progress) -> dict[str, Any]:
    """Run every phase and return the results (the JSON document ``--json`` writes)."""
    warmup = options.warmup if options.warmup is not None else _tree_window() + 10
    probes = max(1, min(options.probes, options.streams // 10))
    started_load = os.getloadavg()
    with ProcessGroup(workdir / "logs") as group:
        (workdir / "logs").mkdir(parents=True, exist_ok=True)
        broker = start_mosquitto(group, workdir)
        store = start_influxd(group, workdir)
        progress(f"Mosquitto on {broker.host}:{broker.port} (project config), InfluxDB 1.x at "
                 f"{store.url}; {options.streams:,} streams, {probes} probe streams")
        load = _Load(broker, options.streams, probes)
        ceiling_count = min(MAX_BACKLOG, max(10_000, int(CEILING_RATE_GUESS
                                                          * options.duration_s)))
        ceiling = _paho_ceiling(broker, load, ceiling_count, progress)
        c_reference = _c_ceiling(broker, load, ceiling_count, progress) \
            if options.c_reference and shutil.which("mosquitto_sub") else None
        detector = _detector(group, workdir, broker, store, load, warmup, options, progress)
    ratio = detector["msgs_per_s"] / ceiling["msgs_per_s"]
    return {
        "streams": options.streams, "duration_s": options.duration_s,
        "warmup_per_stream": warmup, "sink": "influxdb v1",
        "ceiling_msgs_per_s": ceiling["msgs_per_s"],
        "ceiling_offered_msgs_per_s": ceiling["offered_msgs_per_s"],
        "c_reference_msgs_per_s": None if c_reference is None else c_reference["msgs_per_s"],
        "detector_msgs_per_s": detector["msgs_per_s"],
        "detector_offered_msgs_per_s": detector["offered_msgs_per_s"],
        "ratio": round(ratio, 3),
        "latency_ms": detector["latency_ms"],
        "latency_rate_msgs_per_s": detector["latency_rate"],
        "bytes_per_stream": detector["bytes_per_stream"],
        "cpu_us_per_msg": detector["cpu_us_per_msg"],
        "longest_pause_ms": detector["longest_pause_ms"],
        "published": detector["published"], "stored": detector["stored"],
        "load_average": {"start": [round(x, 2) for x in started_load],
                         "end": [round(x, 2) for x in os.getloadavg()]},
    }


def _tree_window() -> int:
    from detector.engine import EngineSettings

    return EngineSettings().detectors.hst.window_size


# -- load ---------------------------------------------------------------------------------------

class _Load:
    """Runs the generator as its own process; remembers how many readings went out."""

    def __init__(self, broker: DemoBroker, streams: int, probes: int) -> None:
        self.broker = broker
        self.streams = streams
        self.probes = probes
        self.published = 0

    def start(self, count: int, rate: float = 0.0) -> subprocess.Popen:
        argv = [sys.executable, "-m", "detector.benchmark.loadgen", "--host", self.broker.host,
                "--port", str(self.broker.port), "--streams", str(self.streams),
                "--probes", str(self.probes), "--count", str(count),
                "--first", str(self.published), "--rate", str(rate), "--site", SITE]
        self.published += count
        env = {**os.environ, "MQTT_PASSWORD": self.broker.passwords["publisher"]}
        return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)

    @staticmethod
    def finish(process: subprocess.Popen) -> dict[str, Any]:
        out, _ = process.communicate(timeout=3600)
        if process.returncode != 0:
            raise BenchError(f"load generator failed ({process.returncode}): {out.strip()}")
        return json.loads(out.strip().splitlines()[-1])


class BenchError(Exception):
    """A phase could not run; the message says which and why."""


# -- ceilings -----------------------------------------------------------------------------------

def _paho_ceiling(broker: DemoBroker, load: _Load, count: int,
                  progress: Progress) -> dict[str, Any]:
    progress(f"ceiling: {count:,} readings to a bare paho subscriber")
    env = {**os.environ, "MQTT_PASSWORD": broker.passwords["monitor"]}
    subscriber = subprocess.Popen(
        [sys.executable, "-m", "detector.benchmark.baresub", "--host", broker.host,
         "--port", str(broker.port), "--filter", READINGS, "--count", str(count)],
        env=env, stdout=subprocess.PIPE, text=True)
    if subscriber.stdout.readline().strip() != "ready":
        raise BenchError("the bare subscriber did not subscribe")
    offered = load.finish(load.start(count))
    out, _ = subscriber.communicate(timeout=3600)
    result = json.loads(out.strip().splitlines()[-1])
    if not result.get("complete"):
        raise BenchError(f"the bare subscriber received {result.get('received')} of {count}")
    progress(f"  bare paho subscriber {result['msgs_per_s']:,} msg/s; "
             f"load generator offered {offered['msgs_per_s']:,} msg/s")
    return {"msgs_per_s": result["msgs_per_s"], "offered_msgs_per_s": offered["msgs_per_s"]}


def _c_ceiling(broker: DemoBroker, load: _Load, count: int,
               progress: Progress) -> dict[str, Any] | None:
    """``mosquitto_sub -C`` with a receive timestamp per line: the broker's C-speed pace."""
    progress(f"C reference: {count:,} readings to mosquitto_sub")
    out_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"iotwatch-bench-sub-{os.getpid()}.txt"
    with open(out_path, "wb") as out:
        subscriber = subprocess.Popen(
            ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-u", "monitor",
             "-P", broker.passwords["monitor"], "-q", "1", "-t", READINGS, "-C", str(count),
             "-F", "%U"], stdout=out, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # mosquitto_sub says nothing when it has subscribed
        offered = load.finish(load.start(count))
        try:
            subscriber.wait(timeout=600)
        except subprocess.TimeoutExpired:
            subscriber.kill()
            return None
    lines = out_path.read_bytes().split(b"\n")
    out_path.unlink(missing_ok=True)
    stamps = [float(line) for line in lines if line.strip()]
    if len(stamps) < count or stamps[-1] <= stamps[0]:
        return None
    rate = round((len(stamps) - 1) / (stamps[-1] - stamps[0]))
    progress(f"  mosquitto_sub {rate:,} msg/s; load generator offered "
             f"{offered['msgs_per_s']:,} msg/s")
    return {"msgs_per_s": rate}


# -- the detector -------------------------------------------------------------------------------

class _Detector:
    """``python -m detector`` with the default engine, checkpoints and alerts."""

    def __init__(self, group: ProcessGroup, workdir: Path, broker: DemoBroker, store) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        config = {
            "mqtt": {"host": broker.host, "port": broker.port, "username": "detector",
                     "client_id": "bench-detector"},
            "influxdb": {"url": store.url, "database": store.database},
            "http": {"host": "127.0.0.1", "port": port},
            "log": {"level": "WARNING"},
            "detector": {"spool": {"dir": str(workdir / "spool")},
                         "checkpoint": {"path": str(workdir / "checkpoint.bin")}},
        }
        path = workdir / "detector.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        env = {**os.environ, "IOTWATCH__MQTT__PASSWORD": broker.passwords["detector"]}
        self.child: Child = group.start("detector", [sys.executable, "-m", "detector",
                                                     "--config", str(path)], env=env)
        wait_until(self._ready, 120, interval=0.2, what="the detector's /health")

    def _ready(self) -> bool:
        if not self.child.running():
            raise BenchError(f"the detector exited:\n{self.child.log_tail()}")
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=5) as answer:
                return answer.status == 200
        except OSError:
            return False

    def acks(self) -> int:
        return int(self.metric("iotwatch_detector_acks_total") or 0)

    def metric(self, name: str) -> float | None:
        return self.series(name).get(name)

    def series(self, name: str) -> dict[str, float]:
        """Every sample of metric ``name`` (labels included in the key)."""
        found = {}
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as answer:
            for line in answer.read().decode().splitlines():
                if line.startswith((name + " ", name + "{")):
                    key, _, value = line.rpartition(" ")
                    found[key] = float(value)
        return found

    def wait_acked(self, total: int, progress: Progress, what: str) -> list[tuple[float, int]]:
        """Poll the ack counter until ``total``; return the (time, acks) samples."""
        samples: list[tuple[float, int]] = []
        last_report = time.monotonic()
        while True:
            if not self.child.running():
                raise BenchError(f"the detector exited:\n{self.child.log_tail()}")
            now, acked = time.monotonic(), self.acks()
            samples.append((now, acked))
            if acked >= total:
                return samples
            if now - last_report >= 5:
                progress(f"  {what}: {acked:,} of {total:,} acknowledged")
                last_report = now
            time.sleep(0.25)

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.child.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.child.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _detector(group: ProcessGroup, workdir: Path, broker: DemoBroker, store, load: _Load,
              warmup: int, options: BenchOptions, progress: Progress) -> dict[str, Any]:
    detector = _Detector(group, workdir, broker, store)
    rss_before = detector.rss_bytes()
    warm_count = warmup * options.streams
    progress(f"detector: warm-up, {warmup} readings per stream ({warm_count:,})")
    warm_started = time.monotonic()
    expected = detector.acks() + warm_count  # the ceiling phases' readings never reach it
    for start in range(0, warm_count, MAX_BACKLOG // 2):  # the broker never holds more
        chunk = min(MAX_BACKLOG // 2, warm_count - start)
        detector.wait_acked(expected - warm_count + start - MAX_BACKLOG // 2, progress,
                            "warm-up")
        load.finish(load.start(chunk))
    detector.wait_acked(expected, progress, "warm-up")
    warm_rate = warm_count / (time.monotonic() - warm_started)
    bytes_per_stream = round((detector.rss_bytes() - rss_before) / options.streams)

    count = min(MAX_BACKLOG, max(options.streams, int(warm_rate * options.duration_s)))
    progress(f"detector: {count:,} readings flat out")
    cpu_before = detector.cpu_seconds()
    expected += count
    offered = load.finish(load.start(count))
    samples = detector.wait_acked(expected, progress, "flat out")
    cpu = detector.cpu_seconds() - cpu_before
    rate = sustained_rate(samples)
    progress(f"  detector {rate:,} msg/s sustained; load generator offered "
             f"{offered['msgs_per_s']:,} msg/s ({offered['msgs_per_s'] / rate:.1f}x)")

    latency_rate = max(1.0, round(rate / 2))
    latency_count = max(options.streams, int(latency_rate * options.duration_s))
    progress(f"latency: {latency_count:,} readings at {latency_rate:,.0f} msg/s")
    poller = _ProbePoller(store.url, store.database)
    expected += latency_count
    load.finish(load.start(latency_count, latency_rate))
    detector.wait_acked(expected, progress, "latency")
    expected_probes = _probe_readings(load.published - latency_count, latency_count,
                                      options.streams, load.probes)
    try:
        wait_until(lambda: len(poller.latencies) >= expected_probes, 60, interval=0.1,
                   what=f"{expected_probes} probe points to be stored (seen "
                   f"{len(poller.latencies)}; last query error: {poller.error})")
    finally:
        poller.close()
    published = warm_count + count + latency_count
    # Acknowledged also means spooled: give a spool replay a minute to reach the database.
    stored = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        stored = count_stored(store.url, store.database)
        if stored >= published:
            break
        time.sleep(1)
    unstored = {} if stored >= published else {
        "rejected": {key.split('"')[1]: value for key, value in
                     detector.series("iotwatch_detector_rejected_total").items() if '"' in key},
        "spool_points": detector.metric("iotwatch_detector_spool_points"),
        "points_spooled": detector.metric("iotwatch_detector_points_spooled_total"),
        "write_errors": {key.split('"')[1]: value for key, value in
                         detector.series("iotwatch_detector_write_errors_total").items()
                         if '"' in key},
        "engine_errors": detector.metric("iotwatch_detector_engine_errors_total")}
    if unstored:
        progress(f"  {published - stored:,} readings not in the database: {unstored}")
    pauses = detector.series("iotwatch_detector_longest_pause_seconds")
    return {"longest_pause_ms": {key.split('"')[1]: round(value * 1000, 1)
                                 for key, value in pauses.items() if '"' in key} or None,
            "msgs_per_s": rate, "offered_msgs_per_s": offered["msgs_per_s"],
            "published": published, "unstored": unstored or None,
            "cpu_us_per_msg": round(cpu / count * 1e6, 1), "bytes_per_stream": bytes_per_stream,
            "latency_rate": latency_rate, "latency_ms": _percentiles(poller.latencies),
            "stored": stored}


def sustained_rate(samples: list[tuple[float, float]]) -> int:
    """Acks per second between 10 % and 90 % of the phase (start-up and tail left out)."""
    first_acks, last_acks = samples[0][1], samples[-1][1]
    low = first_acks + 0.1 * (last_acks - first_acks)
    high = first_acks + 0.9 * (last_acks - first_acks)
    inside = [(t, a) for t, a in samples if low <= a <= high]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        inside = [samples[0], samples[-1]]
    (t0, a0), (t1, a1) = inside[0], inside[-1]
    return round((a1 - a0) / max(t1 - t0, 1e-6))


def _probe_readings(first: int, count: int, streams: int, probes: int) -> int:
    """How many of readings ``first .. first + count - 1`` belong to a probe stream."""
    return sum(1 for i in range(first, first + count) if is_probe(i % streams, streams, probes))


class _ProbePoller:
    """Asks the database for new probe points every few ms; keeps publish -> stored times.

    Each poll looks back ``SLACK_S`` behind the newest point seen, because a point of an
    earlier timestamp (another stream, the same millisecond) can become visible later;
    points already seen are recognised by series and time.
    """

    SLACK_S = 0.5

    def __init__(self, url: str, database: str, interval_s: float = 0.01) -> None:
        self.url, self.database, self.interval_s = url, database, interval_s
        self.latencies: list[float] = []
        self.error: str | None = None
        self._seen: set[tuple[str, int]] = set()
        self._newest_us = int(time.time() * 1e6)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probe-poller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            since_ns = (self._newest_us - int(self.SLACK_S * 1e6)) * 1000
            query = (f"SELECT value, device FROM readings WHERE metric = 'probe' "
                     f"AND time > {since_ns}")
            try:
                rows = _influxql(self.url, self.database, query, epoch="u")
            except (OSError, BenchError, ValueError) as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                continue
            seen = time.time()
            for stamp_us, _value, device in rows:
                if (device, stamp_us) in self._seen:
                    continue
                self._seen.add((device, stamp_us))
                self.latencies.append(seen - stamp_us / 1e6)
                self._newest_us = max(self._newest_us, stamp_us)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


def _influxql(url: str, database: str, query: str, epoch: str = "ms") -> list[list[Any]]:
    params = urllib.parse.urlencode({"db": database, "q": query, "epoch": epoch})
    with urllib.request.urlopen(f"{url}/query?{params}", timeout=30) as answer:
        result = json.load(answer)["results"][0]
    if "error" in result:
        raise BenchError(f"InfluxDB rejected {query!r}: {result['error']}")
    series = result.get("series") or []
    return series[0]["values"] if series else []


def count_stored(url: str, database: str) -> int:
    rows = _influxql(url, database, f"SELECT count(value) FROM readings WHERE site = '{SITE}'")
    return int(rows[0][1]) if rows else 0


def _percentiles(latencies: list[float]) -> dict[str, float | None]:
    if len(latencies) < 2:
        return {"p50": None, "p95": None, "p99": None, "samples": len(latencies)}
    cuts = statistics.quantiles(sorted(latencies), n=100, method="inclusive")
    return {"p50": round(cuts[49] * 1000, 1), "p95": round(cuts[94] * 1000, 1),
            "p99": round(cuts[98] * 1000, 1), "samples": len(latencies)}
