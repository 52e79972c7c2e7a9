"""Detector instances in the distributed mode as subprocesses, and an MQTT publisher for
NATS's MQTT listener."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import yaml
from harness import NatsServer, free_port, wait_until
from paho.mqtt.enums import CallbackAPIVersion

from detector.distributed.partitions import assignment

BASE_TS = 1_768_905_000.0  # 2026-01-20T10:30:00Z
PARTITIONS = 16  # config/nats/nats-server.conf


def instance_config(tmp: Path, nats: NatsServer, name: str, *, influx: dict[str, Any],
                    lease_ttl_s: float = 5.0) -> dict[str, Any]:
    """A detector.yaml for one instance: z-score only (cheap), fast cadences."""
    return {
        "mqtt": nats.mqtt_section(client_id=f"det-{name}", reconnect_max_s=2),
        "influxdb": {"batch_size": 5000, "flush_interval_s": 0.2, "timeout_s": 5, **influx},
        "http": {"host": "127.0.0.1", "port": free_port()},
        "log": {"level": "INFO"},
        "nats": {"url": nats.url, "partitions": PARTITIONS, "instance": name,
                 "lease_ttl_s": lease_ttl_s, "release_timeout_s": 10},
        "detector": {
            "input": {"source": "nats"},
            "enabled": ["zscore"],
            "detectors": {"multivariate": {"enabled": False}},
            "calibration": {"warmup": 20},
            "output": {"stats_interval_s": 1},
            "spool": {"dir": str(tmp / "spool")},
            "checkpoint": {"interval_s": 1, "after_alert_s": 0.5},
        },
    }


class Instance:
    """One detector process in the distributed mode."""

    def __init__(self, tmp: Path, config: dict[str, Any]) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.name = config["nats"]["instance"]
        self.tmp = tmp
        self.config_path = tmp / "detector.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = tmp / "detector.log"
        self.url = f"http://127.0.0.1:{config['http']['port']}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Instance:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "detector", "--config", str(self.config_path)],
                cwd=self.tmp, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=log,
                stderr=subprocess.STDOUT)
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def get(self, path: str) -> tuple[int, Any]:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.process.returncode}\n"
                                 f"{self.log_tail()}")
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as response:
                return response.status, orjson.loads(response.read()) \
                    if path != "/metrics" else response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, orjson.loads(exc.read())
        except OSError:
            return 0, None

    def health(self) -> dict[str, Any]:
        _, body = self.get("/health")
        return body or {}

    def partitions(self) -> list[int]:
        return self.health().get("partitions", [])

    def streams(self) -> dict[str, dict[str, Any]]:
        status, body = self.get("/streams")
        assert status == 200, body
        return body["streams"]

    def metric(self, name: str) -> float:
        _, text = self.get("/metrics")
        for line in (text or "").splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return 0.0

    def terminate(self, timeout: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(30)

    def close(self) -> None:
        if self.running():
            self.process.kill()  # type: ignore[union-attr]
            self.process.wait(30)  # type: ignore[union-attr]

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return f"--- {self.name} log ---\n" + self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return f"(no log of {self.name})"


def wait_for_ownership(instances: list[Instance], timeout: float = 60) -> dict[str, list[int]]:
    """Until ``instances`` own the partitions rendezvous hashing gives them, and nothing
    else is moving (each sees all of them as members)."""
    owned: dict[str, list[int]] = {}
    names = sorted(instance.name for instance in instances)
    wanted = assignment(names, PARTITIONS)

    def settled() -> bool:
        owned.clear()
        for instance in instances:
            health = instance.health()
            if health.get("members") != names:
                return False
            owned[instance.name] = health.get("partitions", [])
        return all(owned[who] == [p for p, o in wanted.items() if o == who] for who in names)

    wait_until(settled, timeout, interval=0.2,
               what=f"every partition owned once: {owned}\n"
                    + "\n".join(i.log_tail(1500) for i in instances))
    return dict(owned)


def wait_for_checkpoints(instances: list[Instance], timeout: float = 60) -> None:
    """Until every instance finished two checkpoint rounds from now and stored every
    partition object they queued (objects are written only for partitions that changed,
    so the count of objects stored stops moving once everything is in)."""
    rounds = {i.name: i.metric("iotwatch_detector_checkpoints_total") for i in instances}
    last: dict[str, float] = {}

    def done() -> bool:
        stored = {i.name: i.metric("iotwatch_detector_partition_checkpoints_stored_total")
                  for i in instances}
        settled = stored == last and all(
            i.metric("iotwatch_detector_checkpoints_total") >= rounds[i.name] + 2
            for i in instances)
        last.clear()
        last.update(stored)
        return settled

    wait_until(done, timeout, interval=1.5, what="checkpoints stored")


class DeadLetters:
    """Collects the dead letters the instances publish (decoded), through NATS's MQTT
    listener; ``close`` when done."""

    def __init__(self, nats: NatsServer) -> None:
        self.letters: list[dict] = []
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dead-letters")
        self._client.on_message = lambda _c, _u, message: self.letters.append(
            orjson.loads(message.payload))
        self._client.connect("127.0.0.1", nats.mqtt_port)
        self._client.subscribe("iotwatch/deadletter/#", qos=1)
        self._client.loop_start()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class Publisher:
    """Plain MQTT QoS 1 to NATS's MQTT listener, as a sensor gateway would."""

    def __init__(self, nats: NatsServer, client_id: str = "sensors") -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", nats.mqtt_port)
        self.client.loop_start()
        wait_until(self.client.is_connected, 60, what="publisher connected to NATS MQTT")
        self._pending: list[mqtt.MQTTMessageInfo] = []

    def reading(self, site: str, device: str, metric: str, index: int, value: float) -> None:
        payload = orjson.dumps({"ts": round((BASE_TS + index) * 1000), "value": value,
                                "seq": index})
        self._pending.append(self.client.publish(
            f"iotwatch/readings/{site}/{device}/{metric}", payload, qos=1))
        if len(self._pending) >= 2000:
            self.flush()

    def flush(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        for info in self._pending:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            assert info.is_published(), "NATS did not acknowledge a reading"
        self._pending.clear()

    def close(self) -> None:
        self.flush()
        self.client.disconnect()
        self.client.loop_stop()


def streams(devices: int, metrics: int) -> list[tuple[str, str, str]]:
    """(site, device, metric) of ``devices`` x ``metrics`` streams on two sites."""
    return [(f"site-{d % 2}", f"dev-{d}", f"m{m}") for d in range(devices)
            for m in range(metrics)]


def value(stream_index: int, index: int) -> float:
    """A calm, slightly noisy level per stream."""
    return 20.0 + stream_index % 50 + ((index * 7919 + stream_index * 104729) % 13) * 0.05
