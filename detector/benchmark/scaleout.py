"""Benchmark of the distributed mode: 1 vs 2 detector instances on NATS JetStream.

    python -m detector.benchmark.scaleout --streams 10000 --per-stream 10

One run, one nats-server (the project's config/nats/nats-server.conf: MQTT listener,
16 partitions), one throwaway InfluxDB 1.x, the MQTT load generator of ``iotwatch
bench`` (``detector.benchmark.loadgen``) publishing flat out into NATS's MQTT listener:

1. **ceiling**: a bare JetStream pull consumer (nats-py, fetch 500, an explicit ack per
   message: what the detector's intake does, and nothing else) over every partition;
2. **1 instance** and then **2 instances** of ``python -m detector`` in the distributed
   mode (z-score engine: the bench measures the distributed intake, acks and state
   hand-over, not the trees; bench/RESULTS.md has the default engine's cost), each
   phase ``streams x per-stream`` new readings, sustained rate from the summed ack
   counters between 10 % and 90 % of the phase.

Prints one line per phase and a JSON summary as the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import nats
import yaml
from nats.js import api

from detector.benchmark.run import sustained_rate
from detector.distributed.intake_nats import NatsIntake
from detector.distributed.natsconf import PROJECT_CONF, render_config
from detector.distributed.partitions import assignment
from iotwatch.demo.processes import Child, ProcessGroup
from iotwatch.demo.stores import start_influxd
from iotwatch.ports import free_port, wait_until

SITE = "bench"
STREAM = "IOTWATCH_READINGS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--per-stream", type=int, default=10,
                        help="readings per stream in each phase (default: %(default)s)")
    args = parser.parse_args(argv)
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    workdir = Path(tempfile.mkdtemp(prefix="iotwatch-scaleout-"))
    count = args.streams * args.per_stream
    results: dict[str, Any] = {"streams": args.streams, "per_phase": count,
                               "load_average_start": os.getloadavg()}
    with ProcessGroup(workdir / "logs") as group:
        (workdir / "logs").mkdir(parents=True)
        ports = {"client": free_port(), "monitor": free_port(), "mqtt": free_port()}
        conf = workdir / "nats-server.conf"
        conf.write_text(render_config(PROJECT_CONF.read_text(), **ports,
                                      store=str(workdir / "js")))
        group.start("nats-server", [binary, "-c", str(conf)])
        url = f"nats://127.0.0.1:{ports['client']}"
        wait_until(lambda: _http_ok(f"http://127.0.0.1:{ports['monitor']}/healthz"), 30,
                   what="nats-server")
        store = start_influxd(group, workdir)
        asyncio.run(_ensure_stream(url))
        print(f"nats-server {url} (MQTT {ports['mqtt']}), InfluxDB {store.url}; "
              f"{args.streams:,} streams, {count:,} readings per phase", flush=True)

        published = 0
        ceiling = asyncio.run(_bare(url, count, lambda: _load(group, ports["mqtt"],
                                                             args.streams, count, published)))
        published += count
        results["ceiling"] = ceiling
        print(f"ceiling (bare pull consumer): {ceiling['msgs_per_s']:,} msg/s; load "
              f"generator offered {ceiling['offered_msgs_per_s']:,} msg/s", flush=True)
        asyncio.run(_purge(url))

        for phase, names in (("one", ["solo"]), ("two", ["x", "y"])):
            instances = [_Instance(group, workdir, name, url, ports["mqtt"], store)
                         for name in names]
            _wait_owned(instances)
            before = sum(i.acks() for i in instances)
            cpu_before = sum(i.cpu_seconds() for i in instances)
            started = time.monotonic()
            load = _start_load(group, ports["mqtt"], args.streams, count, published, phase)
            published += count
            samples = []
            while True:
                acked = sum(i.acks() for i in instances) - before
                samples.append((time.monotonic(), acked))
                if acked >= count:
                    break
                if time.monotonic() - started > 1800:
                    raise SystemExit(f"{phase}: only {acked} of {count} acknowledged")
                time.sleep(0.25)
            rate = sustained_rate(samples)
            cpu = sum(i.cpu_seconds() for i in instances) - cpu_before
            offered = _finish(load)
            results[phase] = {"instances": len(names), "msgs_per_s": rate,
                              "ratio": round(rate / ceiling["msgs_per_s"], 3),
                              "cpu_us_per_msg": round(cpu / count * 1e6, 1),
                              "offered_msgs_per_s": offered["msgs_per_s"],
                              "checkpoint_bytes": [i.metric(
                                  "iotwatch_detector_partition_checkpoint_bytes")
                                  for i in instances]}
            print(f"{len(names)} instance(s): {rate:,} msg/s sustained "
                  f"({rate / ceiling['msgs_per_s']:.2f} of the ceiling), "
                  f"{results[phase]['cpu_us_per_msg']} us CPU per message; offered "
                  f"{offered['msgs_per_s']:,} msg/s", flush=True)
            for instance in instances:
                instance.child.process.terminate()
            for instance in instances:
                instance.child.process.wait(120)
        stored = _influx_count(store.url, store.database)
        results["stored"] = stored
        results["published_to_detectors"] = 2 * count
    shutil.rmtree(workdir, ignore_errors=True)
    results["speedup"] = round(results["two"]["msgs_per_s"] / results["one"]["msgs_per_s"], 2)
    results["load_average_end"] = os.getloadavg()
    print(f"2 vs 1 instance: x{results['speedup']}; stored {results['stored']:,} of "
          f"{2 * count:,}", flush=True)
    print(json.dumps(results))
    return 0


class _Instance:
    def __init__(self, group: ProcessGroup, workdir: Path, name: str, url: str, mqtt: int,
                 store) -> None:
        port = free_port()
        self.name = name
        self.url = f"http://127.0.0.1:{port}"
        config = {
            "mqtt": {"host": "127.0.0.1", "port": mqtt, "client_id": f"bench-{name}"},
            "influxdb": {"url": store.url, "database": store.database},
            "http": {"host": "127.0.0.1", "port": port}, "log": {"level": "WARNING"},
            "nats": {"url": url, "instance": name, "lease_ttl_s": 10},
            "detector": {"input": {"source": "nats"}, "enabled": ["zscore"],
                         "detectors": {"multivariate": {"enabled": False}},
                         "spool": {"dir": str(workdir / name / "spool")},
                         "checkpoint": {"interval_s": 10}},
        }
        (workdir / name).mkdir()
        path = workdir / name / "detector.yaml"
        path.write_text(yaml.safe_dump(config))
        self.child: Child = group.start(name, [sys.executable, "-m", "detector", "--config",
                                               str(path)], cwd=workdir / name)

    def get(self, path: str) -> bytes:
        if not self.child.running():
            raise SystemExit(f"instance {self.name} exited:\n{self.child.log_tail()}")
        with urllib.request.urlopen(self.url + path, timeout=10) as answer:
            return answer.read()

    def health(self) -> dict[str, Any]:
        try:
            return json.loads(self.get("/health"))
        except OSError:
            return {}

    def metric(self, name: str) -> float:
        for line in self.get("/metrics").decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return 0.0

    def acks(self) -> float:
        return self.metric("iotwatch_detector_acks_total")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.child.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_owned(instances: list[_Instance]) -> None:
    names = sorted(i.name for i in instances)
    wanted = assignment(names, 16)

    def settled() -> bool:
        for instance in instances:
            health = instance.health()
            mine = [p for p, who in wanted.items() if who == instance.name]
            if health.get("members") != names or health.get("partitions") != mine:
                return False
        return True

    wait_until(settled, 120, interval=0.25, what="partitions settled")


def _start_load(group: ProcessGroup, port: int, streams: int, count: int, first: int,
                name: str):
    import subprocess

    argv = [sys.executable, "-m", "detector.benchmark.loadgen", "--port", str(port),
            "--streams", str(streams), "--probes", "0", "--count", str(count),
            "--first", str(first), "--site", SITE]
    return subprocess.Popen(argv, env={**os.environ, "MQTT_PASSWORD": "-"},
                            stdout=subprocess.PIPE, text=True)


def _load(group: ProcessGroup, port: int, streams: int, count: int, first: int):
    return _start_load(group, port, streams, count, first, "ceiling")


def _finish(process) -> dict[str, Any]:
    out, _ = process.communicate(timeout=3600)
    if process.returncode != 0:
        raise SystemExit(f"load generator failed: {out}")
    return json.loads(out.strip().splitlines()[-1])


async def _ensure_stream(url: str) -> None:
    nc = await nats.connect(url)
    await NatsIntake(nc.jetstream(), STREAM, "iotwatch", "iotwatch", 10).ensure_streams(
        16, 86_400)
    await nc.close()


async def _purge(url: str) -> None:
    nc = await nats.connect(url)
    for partition in range(16):
        await nc.jetstream().purge_stream(f"{STREAM}_{partition}")
    await nc.close()


async def _bare(url: str, count: int, start_load) -> dict[str, Any]:
    """Pull consumers (one per partition stream) that only fetch and acknowledge, while the
    load is published."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    subscriptions = [await js.pull_subscribe(
        f"iotwatch.part.{p}.>", durable="bare", stream=f"{STREAM}_{p}",
        config=api.ConsumerConfig(ack_policy=api.AckPolicy.EXPLICIT, max_ack_pending=20_000,
                                  deliver_policy=api.DeliverPolicy.NEW)) for p in range(16)]
    load = start_load()
    seen = {"received": 0, "first": None, "last": None}

    async def drain(subscription) -> None:
        while seen["received"] < count:
            try:
                messages = await subscription.fetch(500, timeout=1)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            for msg in messages:
                await msg.ack()
            now = time.monotonic()
            seen["first"] = seen["first"] or now
            seen["last"] = now
            seen["received"] += len(messages)

    await asyncio.gather(*(drain(s) for s in subscriptions))
    offered = _finish(load)
    for p in range(16):
        await js.delete_consumer(f"{STREAM}_{p}", "bare")
    await nc.close()
    elapsed = max(seen["last"] - seen["first"], 1e-6)
    return {"msgs_per_s": round(seen["received"] / elapsed),
            "offered_msgs_per_s": offered["msgs_per_s"]}


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def _influx_count(url: str, database: str) -> int:
    from detector.benchmark.run import count_stored

    return count_stored(url, database)


if __name__ == "__main__":
    sys.exit(main())
