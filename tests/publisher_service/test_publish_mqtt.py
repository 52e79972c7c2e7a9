"""The publisher against the real broker (project config: authentication and ACL).

What arrives must be exactly what the same run writes to files with ``--out``: same
readings, same order, same faults; every payload valid against its JSON Schema.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import jsonschema
import orjson
import pytest
from harness import collect

from iotwatch.contracts import Rejected
from iotwatch.parse import ReadingParser
from iotwatch.timeparse import format_rfc3339, parse_timestamp
from iotwatch.topics import Topics

from .support import (
    START,
    faults,
    fleet,
    read_csv_rows,
    read_labels,
    run_publisher,
    validate,
    write_yaml,
)

COUNT = 40


def unique_site(tmp_path: Path) -> str:
    """A site name of this test only: tests share the session broker."""
    return "t-" + hashlib.sha1(str(tmp_path).encode()).hexdigest()[:10]


def fleet_with_faults(site: str) -> dict:
    data = fleet(faults=faults(
        {"stream": f"{site}/boiler-1/supply_temp", "kind": "spike", "start_s": 100,
         "params": {"magnitude": 30}},
        {"stream": f"{site}/boiler-2/pressure", "kind": "dropout", "start_s": 150,
         "duration_s": 40},
        {"stream": f"{site}/pump-1/power", "kind": "garbage", "start_s": 200,
         "params": {"mode": "malformed", "payload": "non_numeric"}},
        rate=2.0, seed=11))
    data["sites"] = {site: data["sites"]["plant-1"]}
    return data


def publisher_config(broker, tmp_path: Path, **publisher) -> Path:
    return write_yaml(tmp_path / "publisher.yaml", {
        "mqtt": broker.mqtt_section("publisher", reconnect_max_s=2),
        "log": {"level": "INFO"},
        "publisher": {"fleet_file": "fleet.yaml", "seed": 5, "start": START, "speed": 0,
                      "count": COUNT, "labels_file": str(tmp_path / "mqtt-labels.jsonl"),
                      "progress_interval_s": 0, **publisher},
    })


def test_fleet_run_publishes_what_the_files_say_on_the_expected_topics(
        mosquitto, tmp_path: Path) -> None:
    site = unique_site(tmp_path)
    write_yaml(tmp_path / "fleet.yaml", fleet_with_faults(site))
    config = publisher_config(mosquitto, tmp_path)
    readings = collect(mosquitto, f"iotwatch/readings/{site}/#")
    truth = collect(mosquitto, f"iotwatch/truth/{site}/#")
    try:
        files = run_publisher(["--config", str(config), "--out", str(tmp_path / "out")],
                              cwd=tmp_path)
        assert files.returncode == 0, files.stderr
        rows = read_csv_rows(tmp_path / "out" / "readings.csv")
        labels = read_labels(tmp_path / "out" / "labels.jsonl")
        malformed = [x for x in labels if x["params"].get("mode") == "malformed"]

        result = run_publisher(["--config", str(config)], cwd=tmp_path,
                               env=mosquitto.env("publisher"))
        assert result.returncode == 0, result.stderr
        assert re.search(r"\b0 dropped\b.*\b0 undelivered\b", result.stderr), result.stderr
        received = readings.wait_for(len(rows) + len(malformed), timeout=60)
        truth.wait_for(len(labels), timeout=60)
        readings.sync()
    finally:
        readings.close()
        truth.close()

    assert len(received) == len(rows) + len(malformed)  # nothing more, nothing less
    parser = ReadingParser(Topics("iotwatch"))
    arrived, broken = [], []
    for topic, payload, _retain in received:
        try:
            validate("reading.schema.json", payload)
            (reading,) = parser.parse(topic, payload, received_at=parse_timestamp(START))
        except (ValueError, jsonschema.ValidationError, Rejected):
            broken.append(topic)  # a garbage fault's payload, broken on purpose
            continue
        arrived.append([format_rfc3339(reading.ts), reading.site, reading.device,
                        reading.metric, repr(reading.value)])
    assert arrived == rows  # the same readings in the same order
    assert broken == [f"iotwatch/readings/{x['site']}/{x['device']}/{x['metric']}"
                      for x in malformed]
    streams = {f"{site}/boiler-{n}/{m}" for n in (1, 2) for m in ("supply_temp", "pressure")}
    assert {"/".join(r[1:4]) for r in rows} == streams | {f"{site}/pump-1/power"}

    # Ground truth: on the truth topic, in the labels file, and the same as --out's.
    published = [orjson.loads(p) for _t, p, _r in truth.messages]
    assert published == labels == read_labels(tmp_path / "mqtt-labels.jsonl")
    assert {x["kind"] for x in labels} >= {"spike", "dropout", "garbage"}
    assert [t for t, _p, _r in truth.messages] == [
        f"iotwatch/truth/{x['site']}/{x['device']}/{x['metric']}" for x in labels]


@pytest.mark.parametrize("qos", [0, 1])
def test_device_payloads_carry_every_metric_of_an_instant(mosquitto, tmp_path: Path,
                                                          qos: int) -> None:
    site = unique_site(tmp_path)
    data = fleet()
    data["sites"] = {site: data["sites"]["plant-1"]}
    write_yaml(tmp_path / "fleet.yaml", data)
    config = publisher_config(mosquitto, tmp_path, payload="device", count=10, truth=False)
    config_data = __import__("yaml").safe_load(config.read_text())
    config_data["mqtt"]["qos"] = qos
    write_yaml(config, config_data)
    readings = collect(mosquitto, f"iotwatch/readings/{site}/#")
    try:
        result = run_publisher(["--config", str(config)], cwd=tmp_path,
                               env=mosquitto.env("publisher"))
        assert result.returncode == 0, result.stderr
        # Two boilers x 10 instants (both metrics each) + one pump x 10.
        received = readings.wait_for(30, timeout=60)
        readings.sync()
    finally:
        readings.close()
    assert len(readings.messages) == 30
    per_device: dict[str, list[dict]] = {}
    for topic, payload, _retain in received:
        validate("device-reading.schema.json", payload)
        per_device.setdefault(topic, []).append(orjson.loads(payload))
    assert sorted(per_device) == [f"iotwatch/readings/{site}/{d}"
                                  for d in ("boiler-1", "boiler-2", "pump-1")]
    boiler = per_device[f"iotwatch/readings/{site}/boiler-1"]
    assert [m["seq"] for m in boiler] == list(range(10))
    assert all(set(m) == {"ts", "seq", "units", "supply_temp", "pressure"} for m in boiler)
    assert boiler[0]["units"] == {"supply_temp": "C", "pressure": "bar"}


def test_a_wrong_password_fails_fast_with_the_reason(mosquitto, tmp_path: Path) -> None:
    site = unique_site(tmp_path)
    data = fleet()
    data["sites"] = {site: data["sites"]["plant-1"]}
    write_yaml(tmp_path / "fleet.yaml", data)
    config = publisher_config(mosquitto, tmp_path)
    result = run_publisher(["--config", str(config)], cwd=tmp_path,
                           env={"IOTWATCH__MQTT__PASSWORD": "wrong"})
    assert result.returncode == 1
    assert "refused publisher" in result.stderr
