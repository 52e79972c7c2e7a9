"""The configuration files the demo writes for each service: plain mappings, no I/O.

Each is a normal service file (validated by the service at start-up, and by the tests
against the service's file model): the demo runs the real services, only with fast
cadences, loopback addresses and every file under the run's directory. Passwords are not
here: they reach the services through ``IOTWATCH__MQTT__PASSWORD`` in the environment.

>>> from pathlib import Path
>>> detector = detector_config(Path("/run/demo"), http_port=8081, sink="file")
>>> detector["detector"]["output"]["sink"], detector["detector"]["output"]["file"]
('file', '/run/demo/detector-state/points.lp')
>>> [(f["kind"], f["start_s"]) for f in demo_fleet(45.0)["faults"]["scheduled"]]
[('spike', 2000.0), ('level_shift', 2425.0), ('garbage', 2680.0), ('noise_burst', 2935.0), ('spike', 3445.0)]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TOPIC_PREFIX = "iotwatch"
# The plant runs SPEED times faster than real time: a reading every 10 s of plant time is
# 10 readings a second per stream.
SPEED = 100.0
READING_INTERVAL_S = 10.0
# Wall seconds before the first fault: the detectors learn each stream's normal first
# (calibration needs about 100 readings per stream).
WARMUP_S = 20.0
# Wall seconds at the end without new faults, so the last one can be detected and resolved.
COOL_DOWN_S = 8.0
MIN_DURATION_S = WARMUP_S + COOL_DOWN_S + 7.0
FLEET_DESCRIPTION = (f"a boiler house (2 boilers x 3 metrics, 1 pump x 2 metrics) at "
                     f"{SPEED:g}x real time, faults injected after {WARMUP_S:g} s")


def detector_config(workdir: Path, *, http_port: int, sink: str,
                    influx_url: str | None = None, database: str = "iotwatch",
                    precision: str = "us") -> dict[str, Any]:
    """The detector: InfluxDB v1 (``sink="influxdb"``) or a line-protocol file (``"file"``)."""
    # Not "detector": the services start in workdir, where a directory of a package's
    # name would stand in for the package when a service is started again.
    state = workdir / "detector-state"
    influxdb: dict[str, Any] = {"api": "v1", "database": database, "flush_interval_s": 0.5,
                                "batch_size": 2000, "timeout_s": 5.0, "precision": precision}
    if influx_url is not None:
        influxdb["url"] = influx_url
    return {
        "mqtt": {"client_id": "iotwatch-demo-detector", "topic_prefix": TOPIC_PREFIX,
                 "reconnect_max_s": 2.0},
        "influxdb": influxdb,
        "http": {"host": "127.0.0.1", "port": http_port},
        "log": {"level": "INFO"},
        "detector": {
            "output": {"sink": sink, "file": str(state / "points.lp"), "stats_interval_s": 2},
            "spool": {"dir": str(state / "spool")},
            "checkpoint": {"path": str(state / "checkpoint.bin"), "interval_s": 10},
        },
    }


def alerting_config(workdir: Path, *, http_port: int, smtp_port: int,
                    webhook_url: str) -> dict[str, Any]:
    """The alerting service: one receiver with both integrations, one alert per message.

    The webhook secret is not here: it comes from ``ALERTING_WEBHOOK_SECRET_ENV``.
    """
    return {
        "mqtt": {"client_id": "iotwatch-demo-alerting", "topic_prefix": TOPIC_PREFIX,
                 "reconnect_max_s": 2.0},
        "http": {"host": "127.0.0.1", "port": http_port},
        "log": {"level": "INFO"},
        "alerting": {
            "database": str(workdir / "alerting-state" / "alerting.sqlite3"),
            # Every alert its own group (its fingerprint is site, device, metric and rule), so
            # the demo can check each reached both receivers. Not "...": severity may change
            # while an alert fires, and would split it across groups.
            "route": {"receiver": "operators", "group_by": ["site", "device", "metric", "rule"],
                      "group_wait_s": 1,
                      "group_interval_s": 2, "repeat_interval_s": 3600},
            "receivers": {"operators": {
                "email": {"to": ["operators@example.com"], "from": "iotwatch-demo@localhost",
                          "host": "127.0.0.1", "port": smtp_port, "tls": "none",
                          "timeout_s": 5},
                "webhook": {"url": webhook_url, "timeout_s": 5},
            }},
            "delivery": {"retry": {"initial_s": 0.5, "max_s": 5}},
        },
    }


ALERTING_WEBHOOK_SECRET_ENV = "IOTWATCH__ALERTING__RECEIVERS__OPERATORS__WEBHOOK__SECRET"


def demo_fleet(duration_s: float) -> dict[str, Any]:
    """The simulated boiler house and the faults it gets, spread over the run.

    Faults start between WARMUP_S and ``duration_s - COOL_DOWN_S`` (wall seconds), each on
    its own stream, of the kinds an operator must hear about: a spike, a level shift (a
    valve stuck open), a noise burst (a loose sensor) and a malformed message (which is
    rejected and dead-lettered rather than alerted).
    """
    window = max(duration_s - WARMUP_S - COOL_DOWN_S, 1.0)

    def at(fraction: float) -> float:
        return round((WARMUP_S + fraction * window) * SPEED, 3)

    def lasting(fraction: float, longest_s: float) -> float:
        # Long enough to see, short enough to end before the cool-down.
        return round(min(max(fraction * window, 1.0), longest_s) * SPEED, 3)

    return {
        "templates": {
            "boiler": {"interval_s": READING_INTERVAL_S, "metrics": {
                "supply_temp": {"unit": "C", "baseline": 80.0, "noise": 0.3, "spread": 2.0,
                                "resolution": 0.1, "range": [0, 120]},
                "return_temp": {"unit": "C", "baseline": 62.0, "noise": 0.3, "spread": 2.0,
                                "resolution": 0.1, "range": [0, 120]},
                "pressure": {"unit": "bar", "baseline": 2.0, "noise": 0.02,
                             "resolution": 0.01, "range": [0, 6]}}},
            "pump": {"interval_s": READING_INTERVAL_S, "metrics": {
                "flow": {"unit": "m3/h", "baseline": 12.0, "noise": 0.2, "range": [0, 40]},
                "power": {"unit": "kW", "baseline": 5.5, "noise": 0.1, "range": [0, 20]}}},
        },
        "sites": {"boiler-house": {"devices": [
            {"name": "boiler-{n}", "template": "boiler", "count": 2},
            {"name": "pump-1", "template": "pump"}]}},
        "faults": {"scheduled": [
            {"stream": "boiler-house/boiler-1/supply_temp", "kind": "spike", "start_s": at(0.0),
             "params": {"magnitude": 25.0}},
            {"stream": "boiler-house/boiler-2/return_temp", "kind": "level_shift",
             "start_s": at(0.25), "duration_s": lasting(0.2, 4.0), "params": {"delta": 12.0}},
            {"stream": "boiler-house/pump-1/power", "kind": "garbage", "start_s": at(0.4),
             "params": {"mode": "malformed", "payload": "non_numeric"}},
            {"stream": "boiler-house/pump-1/flow", "kind": "noise_burst", "start_s": at(0.55),
             "duration_s": lasting(0.15, 3.0), "params": {"std": 4.0}},
            {"stream": "boiler-house/boiler-2/pressure", "kind": "spike", "start_s": at(0.85),
             "params": {"magnitude": 1.5}},
        ]},
    }


def publisher_config(fleet: dict[str, Any], *, duration_s: float, seed: int,
                     now: float) -> dict[str, Any]:
    """The publisher: the fleet inline, plant time ending about now, truth on MQTT."""
    from iotwatch.timeparse import format_rfc3339

    plant_s = duration_s * SPEED
    return {
        "mqtt": {"client_id": "iotwatch-demo-publisher", "topic_prefix": TOPIC_PREFIX,
                 "reconnect_max_s": 2.0},
        "log": {"level": "INFO"},
        "publisher": {
            "fleet": fleet, "seed": seed, "speed": SPEED, "duration_s": plant_s,
            # Plant time runs from duration x speed ago to now, so stored points and
            # Grafana show the run as recent history, not as the future.
            "start": format_rfc3339(now - plant_s), "payload": "single", "truth": True,
            "drain_timeout_s": 10.0, "progress_interval_s": 0,
        },
    }
