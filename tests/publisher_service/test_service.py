"""The publisher as a long-running service: TLS, status and last will, /health and
/metrics, and a clean stop on SIGTERM that labels the fault in progress."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import orjson
from harness import collect, free_port, wait_until

from iotwatch.timeparse import parse_timestamp

from .support import faults, fleet, read_labels, write_yaml


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def test_runs_over_tls_reports_health_and_stops_cleanly_on_sigterm(mosquitto,
                                                                  tmp_path: Path) -> None:
    site = f"svc-{os.getpid()}"
    data = fleet(faults=faults({"stream": f"{site}/pump-1/power", "kind": "level_shift",
                                "start_s": 0, "duration_s": 86400, "params": {"delta": 5}}))
    data["templates"]["pump"]["interval_s"] = 1
    data["sites"] = {site: {"devices": [{"name": "pump-1", "template": "pump"}]}}
    write_yaml(tmp_path / "fleet.yaml", data)
    port = free_port()
    config = write_yaml(tmp_path / "publisher.yaml", {
        "mqtt": mosquitto.mqtt_section("publisher", tls=True),
        "http": {"enabled": True, "port": port},
        "publisher": {"fleet_file": "fleet.yaml", "speed": 5, "labels_file": "labels.jsonl",
                      "progress_interval_s": 1}})
    readings = collect(mosquitto, f"iotwatch/readings/{site}/#")
    status = collect(mosquitto, "iotwatch/status/publisher")
    log_path = tmp_path / "publisher.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "publisher", "--config", str(config)],
                                   cwd=tmp_path, env={**os.environ, **mosquitto.env("publisher")},
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: get(f"http://127.0.0.1:{port}/health")[0] == 200, 60,
                   what="/health 200")
        readings.wait_for(5, timeout=60)
        wait_until(lambda: any(orjson.loads(p)["state"] == "online" for p in status.payloads()),
                   30, what="online status")
        code, body = get(f"http://127.0.0.1:{port}/health")
        health = json.loads(body)
        assert health["status"] == "ok" and health["mqtt_connected"] and health["sent"] >= 1
        code, metrics = get(f"http://127.0.0.1:{port}/metrics")
        assert code == 200 and b"iotwatch_publisher_messages_sent_total" in metrics
        # The periodic progress line (stderr is not a terminal).
        wait_until(lambda: "in flight" in log_path.read_text(), 30, what="a progress line")
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, log_path.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
        readings.close()
    try:
        wait_until(lambda: any(orjson.loads(p).get("reason") == "finished"
                               for p in status.payloads()), 30, what="offline status")
    finally:
        status.close()
    output = log_path.read_text()
    assert "summary:" in output and "1 faults injected" in output, output[-2000:]
    # The fault in progress is labelled up to the last reading sent.
    (label,) = read_labels(tmp_path / "labels.jsonl")
    last = max(parse_timestamp(orjson.loads(p)["ts"]) for p in readings.payloads())
    assert label["kind"] == "level_shift" and parse_timestamp(label["end"]) == last
