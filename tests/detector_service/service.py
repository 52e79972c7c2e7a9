"""Running the detector as a subprocess against the harness's servers, and feeding it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import yaml
from harness import Broker, free_port, wait_until

PROJECT = Path(__file__).resolve().parents[2]
BASE_TS = 1_768_905_000.0  # 2026-01-20T10:30:00Z


def detector_config(tmp: Path, broker: Broker, *, influx: dict[str, Any] | None = None,
                    detector: dict[str, Any] | None = None, client_id: str | None = None,
                    sites: tuple[str, ...] = ("site-1",)) -> dict[str, Any]:
    """A detector.yaml mapping: fast cadences, state under ``tmp``, z-score only (cheap).

    The detector subscribes to the readings of ``sites`` only, so tests sharing the
    session's broker never see each other's readings.
    """
    section: dict[str, Any] = {
        "input": {"subscriptions": [f"iotwatch/readings/{site}/#" for site in sites]},
        "enabled": ["zscore"],
        "detectors": {"multivariate": {"enabled": False}},
        "calibration": {"warmup": 20},
        "decision": {"threshold": 0.5, "pending_readings": 1, "resolve_readings": 5},
        "output": {"stats_interval_s": 1},
        "spool": {"dir": str(tmp / "spool")},
        "checkpoint": {"path": str(tmp / "checkpoint.bin"), "interval_s": 2,
                       "after_alert_s": 0.5},
    }
    _merge(section, detector or {})
    return {
        "mqtt": broker.mqtt_section("detector", client_id=client_id or f"det-{tmp.name}"[:60],
                                    reconnect_max_s=2),
        "influxdb": {"batch_size": 5000, "flush_interval_s": 0.2, "timeout_s": 5,
                     **(influx or {})},
        "http": {"host": "127.0.0.1", "port": free_port()},
        "log": {"level": "INFO"},
        "detector": section,
    }


class Detector:
    """One detector process; ``start``, ``terminate`` (SIGTERM) or ``kill`` (SIGKILL)."""

    def __init__(self, tmp: Path, config: dict[str, Any], broker: Broker) -> None:
        self.tmp = tmp
        self.config = config
        self.config_path = tmp / "detector.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.env = {**os.environ, **broker.env("detector"), "PYTHONUNBUFFERED": "1"}
        self.log_path = tmp / "detector.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.broker = broker
        port = config["http"]["port"]
        self.url = f"http://127.0.0.1:{port}"

    def start(self, wait_healthy: bool = True) -> Detector:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "detector", "--config", str(self.config_path)],
                cwd=self.tmp, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        if wait_healthy:
            wait_until(self._healthy, 60, what=f"detector /health 200\n{self.log_tail()}")
        return self

    def _healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"detector exited with {self.process.returncode}\n"
                                 f"{self.log_tail()}")
        status, _ = self.get("/health")
        return status == 200

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as response:
                return response.status, _decode(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _decode(exc.read())
        except OSError:
            return 0, None

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        request = urllib.request.Request(self.url + path, data=orjson.dumps(body),
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, _decode(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _decode(exc.read())

    def metric(self, name: str, labels: str = "") -> float:
        """A sample's value from /metrics (0 when absent)."""
        _, text = self.get("/metrics")
        wanted = f"{name}{{{labels}}}" if labels else name
        for line in (text or "").splitlines():
            if line.startswith(wanted + " "):
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
        """Kill the process if still running and end its persistent broker session, so the
        broker does not keep queueing readings for it for the rest of the test session."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        with contextlib.suppress(Exception):
            client = self.broker.connect("detector", client_id=self.config["mqtt"]["client_id"],
                                         clean=True)
            client.disconnect()
            client.loop_stop()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return "--- detector log ---\n" + self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no detector log)"


def _decode(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode(errors="replace")


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


class Feeder:
    """Publishes readings as the ``publisher`` role at QoS 1 and waits for every PUBACK."""

    def __init__(self, broker: Broker, prefix: str = "iotwatch") -> None:
        self.client = broker.connect("publisher")
        self.prefix = prefix
        self._pending: list[mqtt.MQTTMessageInfo] = []

    def reading(self, site: str, device: str, metric: str, ts: float, value: float,
                **extra: Any) -> None:
        payload = orjson.dumps({"ts": round(ts * 1000), "value": value, **extra})
        self.raw(f"{self.prefix}/readings/{site}/{device}/{metric}", payload)

    def raw(self, topic: str, payload: bytes, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos=qos)
        self._pending.append(info)
        if len(self._pending) >= 5000:
            self.flush()

    def flush(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        for info in self._pending:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            assert info.is_published(), "broker did not acknowledge a reading"
        self._pending.clear()

    def close(self) -> None:
        self.flush()
        self.client.disconnect()
        self.client.loop_stop()


def series(n_streams: int, n_points: int, *, spike_at: int | None = None,
           spike_streams: Iterable[int] = (), step_s: float = 1.0, site: str = "site-1",
           start: int = 0):
    """(site, device, metric, ts, value) of a calm sine per stream, spikes where asked."""
    import math

    spiked = set(spike_streams)
    for i in range(start, start + n_points):
        for s in range(n_streams):
            value = 20.0 + s + math.sin(i / 7.0 + s) * 0.5 + ((i * 7919 + s * 104729) % 13) * 0.02
            if spike_at is not None and s in spiked and spike_at <= i < spike_at + 3:
                value += 50.0
            yield site, f"dev-{s}", "temperature", BASE_TS + i * step_s, value
