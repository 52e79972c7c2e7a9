"""Detector throughput and latency as a ratio to the raw ceiling, measured in one run.

    python bench/throughput.py [--streams 1000] [--count 60000] [--rate MSGS_PER_S]
                               [--sink file|influxdb] [--json results.json]

Starts a real Mosquitto with the project's configuration (the test harness's code), then
under the same load from a separate publisher process (QoS 1, ``--streams`` streams):

1. ceiling: a bare paho subscriber (QoS 1, automatic acks) receives the readings;
2. detector: ``python -m detector`` with the default engine receives, scores, learns,
   stores (``--sink file``: line protocol appended and fsync'd; ``influxdb``: a real
   InfluxDB 1.x) and acknowledges them.

Each is measured twice: flat out (messages/s from first to last message handled) and at
a fixed rate, by default half the slower of the two flat-out rates so neither side is
queueing (latency percentiles, publish -> received for the ceiling, publish -> stored
for the detector). Every stream is first warmed past
the tree detector's window, which does no work until its first window fills. Memory per
1,000 streams is the detector's resident memory after warm-up minus before, scaled.
No pass/fail: the numbers are printed (and written as JSON with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "tests"))

from harness.influx import start_local_influxdb  # noqa: E402
from harness.mosquitto import broker_private_dir, make_credentials, start_local_broker  # noqa: E402
from harness.process import free_port, wait_until  # noqa: E402

PUBLISH = PROJECT / "bench" / "publish_load.py"
SITE = "bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--count", type=int, default=60_000, help="messages, flat-out phase")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="messages/s in the latency phase (default: half of the lower "
                        "flat-out rate, so neither side is queueing)")
    parser.add_argument("--latency-count", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=None,
                        help="readings per stream before measuring (default: HST window + 10)")
    parser.add_argument("--sink", choices=("file", "influxdb"), default="file")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.warmup is None:
        from detector.engine import EngineSettings

        args.warmup = EngineSettings().detectors.hst.window_size + 10

    workdir = Path(tempfile.mkdtemp(prefix="iotwatch-bench-"))
    credentials_dir = broker_private_dir("iotwatch-bench-credentials-")
    broker = start_local_broker(workdir / "mosquitto", make_credentials(credentials_dir))
    influx = start_local_influxdb(workdir / "influxdb") if args.sink == "influxdb" else None
    try:
        print(f"broker on {broker.host}:{broker.port}; {args.streams} streams; "
              f"{args.count} messages flat out, then {args.latency_count} at "
              f"{f'{args.rate:g}/s' if args.rate else 'half the slower capacity'}", flush=True)
        ceiling = ceiling_throughput(broker, args)
        args.ceiling_rate = ceiling["msgs_per_s"]
        detector = measure_detector(broker, influx, workdir, args)
        ceiling.update(ceiling_latency(broker, args))
        print(f"ceiling  {ceiling}", flush=True)
        print(f"detector {detector}", flush=True)
        results = report(ceiling, detector, args)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        if influx is not None:
            influx.close()
        broker.close()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(credentials_dir, ignore_errors=True)


# -- load -----------------------------------------------------------------------------------

def publish(broker, count: int, streams: int, rate: float = 0.0) -> subprocess.Popen:
    env = {**os.environ, "MQTT_PASSWORD": broker.password("publisher")}
    return subprocess.Popen(
        [sys.executable, str(PUBLISH), "--host", broker.host, "--port", str(broker.port),
         "--streams", str(streams), "--count", str(count), "--rate", str(rate),
         "--site", SITE], env=env, stdout=subprocess.PIPE, text=True)


def finish(publisher: subprocess.Popen) -> None:
    out, _ = publisher.communicate(timeout=600)
    if publisher.returncode != 0:
        raise SystemExit(f"publisher failed ({publisher.returncode}): {out}")


# -- ceiling: a bare subscriber ----------------------------------------------------------------

class BareSubscriber:
    """Receives and timestamps; nothing else (the most any Python subscriber can do)."""

    def __init__(self, broker) -> None:
        self.received: list[tuple[float, bytes]] = []
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-bare-{os.getpid()}",
                             protocol=mqtt.MQTTv311)
        client.username_pw_set("monitor", broker.password("monitor"))
        subscribed = threading.Event()
        client.on_connect = lambda c, *_: c.subscribe(f"iotwatch/readings/{SITE}/#", qos=1)
        client.on_subscribe = lambda *_: subscribed.set()
        client.on_message = lambda _c, _u, m: self.received.append((time.time(), m.payload))
        client.connect(broker.host, broker.port, keepalive=60)
        client.loop_start()
        if not subscribed.wait(30):
            raise SystemExit("bare subscriber: no SUBACK")
        self.client = client

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def ceiling_throughput(broker, args) -> dict[str, Any]:
    subscriber = BareSubscriber(broker)
    try:
        finish(publish(broker, args.count, args.streams))
        wait_until(lambda: len(subscriber.received) >= args.count, 600, interval=0.01,
                   what="the bare subscriber to receive everything")
        times = [t for t, _ in subscriber.received]
    finally:
        subscriber.close()
    return {"msgs_per_s": round((len(times) - 1) / (times[-1] - times[0]))}


def ceiling_latency(broker, args) -> dict[str, Any]:
    subscriber = BareSubscriber(broker)
    try:
        finish(publish(broker, args.latency_count, args.streams, args.rate))
        wait_until(lambda: len(subscriber.received) >= args.latency_count, 600, interval=0.01,
                   what="the bare subscriber to receive the latency run")
        latencies = [t - orjson.loads(p)["ts"] / 1000 for t, p in subscriber.received]
    finally:
        subscriber.close()
    return percentiles(latencies)


# -- the detector service ------------------------------------------------------------------------

class Service:
    def __init__(self, broker, influx, workdir: Path, args) -> None:
        self.points = workdir / "points.lp"
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        influx_section: dict[str, Any] = {"batch_size": 5000, "flush_interval_s": 1.0}
        output: dict[str, Any] = {"sink": args.sink, "file": str(self.points)}
        if influx is not None:
            influx_section.update(url=influx.url, database=influx.database)
        config = {
            "mqtt": {"host": broker.host, "port": broker.port, "username": "detector",
                     "client_id": "bench-detector"},
            "influxdb": influx_section,
            "http": {"host": "127.0.0.1", "port": port},
            "log": {"level": "WARNING"},
            "detector": {"output": output,
                         "spool": {"dir": str(workdir / "spool")},
                         "checkpoint": {"path": str(workdir / "checkpoint.bin"),
                                        "interval_s": 3600}},
        }
        path = workdir / "detector.yaml"
        path.write_text(yaml.safe_dump(config))
        env = {**os.environ, "IOTWATCH__MQTT__PASSWORD": broker.password("detector")}
        self.log = open(workdir / "detector.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen([sys.executable, "-m", "detector", "--config", str(path)],
                                        cwd=PROJECT, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        wait_until(self._healthy, 120, what="detector /health")

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            raise SystemExit(f"detector exited {self.process.returncode}; see its log")
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[-1])
        return 0.0

    def buckets(self, name: str) -> list[tuple[float, float]]:
        """A histogram's cumulative buckets from /metrics: [(upper bound, count), ...]."""
        found = []
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(name + '_bucket{le="'):
                    bound = line.split('le="', 1)[1].split('"', 1)[0]
                    found.append((float(bound), float(line.split()[-1])))
        return found

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_acked(self, total: float, timeout: float = 1200) -> None:
        wait_until(lambda: self.metric("iotwatch_detector_acks_total") >= total, timeout,
                   interval=0.05, what=f"{total:.0f} acknowledged readings")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(120)
        self.log.close()


class Tail:
    """Times the moment each reading's point appears in the line-protocol file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: list[tuple[float, int]] = []  # (appeared, ts ms)
        self._offset = path.stat().st_size if path.exists() else 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        marker = f"site={SITE},".encode()
        rest = b""
        while not self._stop.is_set():
            try:
                with open(self.path, "rb") as handle:
                    handle.seek(self._offset)
                    data = handle.read()
            except FileNotFoundError:
                data = b""
            now = time.time()
            if data:
                self._offset += len(data)
                lines = (rest + data).split(b"\n")
                rest = lines.pop()
                for line in lines:
                    if line.startswith(b"readings,") and marker in line \
                            and b"metric=temperature " in line:
                        self.seen.append((now, int(line.rsplit(b" ", 1)[1])))
            else:
                time.sleep(0.001)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


def measure_detector(broker, influx, workdir: Path, args) -> dict[str, Any]:
    service = Service(broker, influx, workdir, args)
    try:
        rss_before = service.rss_bytes()
        warmup = args.warmup * args.streams
        finish(publish(broker, warmup, args.streams))
        service.wait_acked(warmup)
        rss_after = service.rss_bytes()
        memory = (rss_after - rss_before) / args.streams * 1000

        acked = service.metric("iotwatch_detector_acks_total")
        tail = Tail(service.points) if args.sink == "file" else None
        cpu = service.cpu_seconds()
        started = time.time()
        finish(publish(broker, args.count, args.streams))
        if tail is not None:
            wait_until(lambda: len(tail.seen) >= args.count, 1200, interval=0.01,
                       what="every point stored")
            times = [t for t, _ in tail.seen]
            rate = (len(times) - 1) / (times[-1] - times[0])
        service.wait_acked(acked + args.count)
        if tail is None:
            rate = args.count / (time.time() - started)
        cpu_per_message = (service.cpu_seconds() - cpu) / args.count
        if not args.rate:
            args.rate = round(min(rate, args.ceiling_rate) / 2, -1)

        acked = service.metric("iotwatch_detector_acks_total")
        lag_before = service.buckets("iotwatch_detector_processing_lag_seconds")
        ack_before = service.buckets("iotwatch_detector_ack_lag_seconds")
        latency: dict[str, Any] = {}
        if tail is not None:
            tail.seen.clear()
            finish(publish(broker, args.latency_count, args.streams, args.rate))
            wait_until(lambda: len(tail.seen) >= args.latency_count, 600, interval=0.01,
                       what="the latency run stored")
            latency = percentiles([t - ts / 1000 for t, ts in tail.seen])
            tail.close()
        else:
            finish(publish(broker, args.latency_count, args.streams, args.rate))
        service.wait_acked(acked + args.latency_count)
        lag_after = service.buckets("iotwatch_detector_processing_lag_seconds")
        decision = bucket_percentiles([(bound, after - before) for (bound, after), (_, before)
                                       in zip(lag_after, lag_before, strict=True)])
        ack_after = service.buckets("iotwatch_detector_ack_lag_seconds")
        ack = bucket_percentiles([(bound, after - before) for (bound, after), (_, before)
                                  in zip(ack_after, ack_before, strict=True)])
        return {"msgs_per_s": round(rate), **latency,
                "decision_lag": decision, "ack_lag_oldest_per_batch": ack,
                "cpu_us_per_msg": round(cpu_per_message * 1e6, 1),
                "rss_mb": round(rss_after / 2**20, 1),
                "memory_mb_per_1000_streams": round(memory / 2**20, 2)}
    finally:
        service.stop()


# -- results ----------------------------------------------------------------------------------

def percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50_ms": round(cuts[49] * 1000, 2), "p90_ms": round(cuts[89] * 1000, 2),
            "p99_ms": round(cuts[98] * 1000, 2), "max_ms": round(ordered[-1] * 1000, 2)}


def bucket_percentiles(buckets: list[tuple[float, float]]) -> dict[str, float]:
    """p50/p90/p99 in ms from cumulative histogram buckets (linear within a bucket)."""
    total = buckets[-1][1] if buckets else 0
    result = {}
    for name, share in (("p50_ms", 0.5), ("p90_ms", 0.9), ("p99_ms", 0.99)):
        wanted, lower, below = share * total, 0.0, 0.0
        for bound, count in buckets:
            if count >= wanted and total:
                upper = bound if bound != float("inf") else lower * 2
                inside = (wanted - below) / max(count - below, 1e-9)
                result[name] = round((lower + (upper - lower) * inside) * 1000, 2)
                break
            lower, below = bound, count
    return result


def report(ceiling: dict[str, Any], detector: dict[str, Any], args) -> dict[str, Any]:
    ratios = {"throughput": round(detector["msgs_per_s"] / ceiling["msgs_per_s"], 3)}
    for key in ("p50_ms", "p90_ms", "p99_ms"):
        if key in detector and ceiling.get(key):
            ratios[key] = round(detector[key] / ceiling[key], 1)
    print()
    print(f"{'':26}{'ceiling':>12}{'detector':>12}{'ratio':>10}")
    print(f"{'messages/s (flat out)':26}{ceiling['msgs_per_s']:>12}{detector['msgs_per_s']:>12}"
          f"{ratios['throughput']:>10}")
    for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms"):
        if key in detector:
            ratio = ratios.get(key, "")
            print(f"{'latency ' + key + f' @{args.rate:g}/s':26}{ceiling[key]:>12}"
                  f"{detector[key]:>12}{ratio:>10}")
    if detector.get("decision_lag"):
        lag = detector["decision_lag"]
        print(f"detector arrival -> scored and alert published (from its histogram): p50 "
              f"{lag.get('p50_ms')} ms, p90 {lag.get('p90_ms')} ms, p99 {lag.get('p99_ms')} ms")
    if detector.get("ack_lag_oldest_per_batch"):
        lag = detector["ack_lag_oldest_per_batch"]
        print(f"detector arrival -> acknowledged, oldest message of each batch (histogram): "
              f"p50 {lag.get('p50_ms')} ms, p90 {lag.get('p90_ms')} ms, p99 {lag.get('p99_ms')} ms")
    print(f"detector CPU per message: {detector['cpu_us_per_msg']} us; resident "
          f"{detector['rss_mb']} MB; {detector['memory_mb_per_1000_streams']} MB per 1,000 "
          f"streams (sink: {args.sink})")
    return {"streams": args.streams, "count": args.count, "rate": args.rate,
            "sink": args.sink, "warmup_per_stream": args.warmup, "ceiling": ceiling,
            "detector": detector, "ratio": ratios}


if __name__ == "__main__":
    main()
