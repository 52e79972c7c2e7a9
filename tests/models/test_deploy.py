"""Train on a publisher recording, run the detector with the model against the real servers.

Also: a model that does not fit where it is configured, or a broken file, stops the
detector at start-up with one line naming the file and the problem (no traceback).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
import yaml
from harness import wait_until

from tests.detector_service.service import Detector, Feeder, detector_config

STREAM = ("lab", "mote-01", "temperature")
FLEET = "config/fleets/environmental-network.yaml"


def _iotwatch(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "iotwatch.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    from pathlib import Path

    project = Path(__file__).resolve().parents[2]
    out = tmp_path_factory.mktemp("recording")
    done = _iotwatch("publish", "--fleet", str(project / FLEET), "--count", "400",
                     "--seed", "3", "--out", str(out / "rec"), cwd=out)
    assert done.returncode == 0, done.stderr
    models = out / "models"
    done = _iotwatch("train", str(out / "rec"), "--model", "kmeans", "--stream",
                     "/".join(STREAM), "--windows", "4,8", "--out",
                     str(models / "temp.joblib"), cwd=out)
    assert done.returncode == 0, done.stderr
    assert "fitting kmeans" in done.stderr and "wrote" in done.stdout
    meta = json.loads((models / "temp.json").read_text())
    assert meta["target"] == "/".join(STREAM) and meta["features"]["windows"] == [4, 8]
    with (out / "rec" / "readings.csv").open() as handle:
        rows = [(float(r["value"])) for r in csv.DictReader(handle)
                if (r["site"], r["device"], r["metric"]) == STREAM]
    return out, models, rows


def _model_section(models, rule_match: str = "/".join(STREAM), file: str = "temp.joblib"):
    return {"models": {"directory": str(models), "files": {"temp": file}},
            "streams": [{"match": rule_match, "enabled": ["model:temp"]}]}


def test_a_model_scores_live_readings_and_a_fault_is_alerted(recording, tmp_path, mosquitto,
                                                             influxdb, mqtt_collector):
    _, models, values = recording
    database = influxdb.create_database()
    config = detector_config(tmp_path, mosquitto, sites=("lab",),
                             influx={"url": influxdb.url, "database": database},
                             detector=_model_section(models))
    alerts = mqtt_collector(mosquitto, "iotwatch/alerts/lab/#")
    detector = Detector(tmp_path, config, mosquitto).start()
    try:
        feeder = Feeder(mosquitto)
        normal = values[-200:]
        ts0 = 1_768_905_000.0
        for i, value in enumerate(normal):
            faulty = value + 25.0 if 150 <= i < 160 else value  # a stuck-hot sensor
            feeder.reading(*STREAM, ts0 + i * 30, faulty)
        feeder.close()
        wait_until(lambda: influxdb.count("readings", db=database) >= len(normal), 60,
                   what="every reading in InfluxDB")
        rows = influxdb.query('SELECT * FROM "readings" ORDER BY time', db=database)
        scores = [r["score_model:temp"] for r in rows]
        assert all(s is not None for s in scores[20:])
        assert min(scores[150:160]) > max(scores[20:150])  # the model sees the fault
        fired = wait_until(lambda: [a for a in alerts.json() if a["state"] == "firing"] or None,
                           60, what="a firing alert")
        assert (fired[0]["site"], fired[0]["device"], fired[0]["metric"]) == STREAM
        assert fired[0]["ts"] >= "2026-01-20T11:45:00"  # at or after the fault (row 150)
    finally:
        assert detector.terminate() == 0
        detector.close()


@pytest.mark.parametrize("case", ["other-stream", "device-rule", "corrupt", "missing",
                                  "outside"])
def test_a_model_that_does_not_fit_is_refused_at_start_up(recording, tmp_path, case):
    _, models, _ = recording
    section = _model_section(models)
    expected = {"other-stream": "was trained for streams 'lab/mote-01/temperature', which "
                                "does not cover 'lab/mote-02/temperature'",
                "device-rule": "a _device rule needs a device model",
                "corrupt": "corrupt model file", "missing": "model file not found",
                "outside": "must be a .joblib file name inside the model directory"}[case]
    if case == "other-stream":
        section["streams"][0]["match"] = "lab/mote-02/temperature"
    elif case == "device-rule":
        section["streams"][0]["match"] = "lab/mote-01/_device"
    elif case == "corrupt":
        broken = tmp_path / "models"
        broken.mkdir()
        (broken / "temp.joblib").write_bytes((models / "temp.joblib").read_bytes()[:100])
        (broken / "temp.json").write_text((models / "temp.json").read_text())
        section["models"]["directory"] = str(broken)
    elif case == "missing":
        section["models"]["files"]["temp"] = "nope.joblib"
    else:
        section["models"]["files"]["temp"] = "../temp.joblib"
    path = tmp_path / "detector.yaml"
    path.write_text(yaml.safe_dump({"detector": section}))
    done = subprocess.run([sys.executable, "-m", "detector", "--config", str(path), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert "temp" in done.stderr
