"""Replay of recorded CSV files: NAB and SKAB formats, every row, in order."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from harness import collect

from iotwatch.cli import main
from iotwatch.timeparse import parse_timestamp
from publisher.replay import Replay, ReplayError

from .support import read_csv_rows, run_publisher, validate, write_yaml

SKAB_COLUMNS = ["Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature",
                "Thermocouple", "Voltage", "Volume Flow RateRMS"]
SKAB_METRICS = [c.replace(" ", "_") for c in SKAB_COLUMNS]


def write_nab(path: Path, rows: int = 60) -> list[tuple[str, float]]:
    """NAB layout: ``timestamp,value``, 5-minute steps; one repeated and one backward stamp
    (real NAB files have both)."""
    start = datetime(2014, 2, 14, 14, 30)
    data = []
    for i in range(rows):
        ts = start + timedelta(minutes=5 * i)
        if i == 20:
            ts = start + timedelta(minutes=5 * 19)          # repeated
        if i == 40:
            ts = start + timedelta(minutes=5 * 38)          # backwards
        data.append((ts.strftime("%Y-%m-%d %H:%M:%S"), round(70 + (i % 7) * 0.5, 3)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in data))
    return data


def write_skab(path: Path, rows: int = 30,
               anomalous: range = range(0)) -> list[tuple[str, list[float]]]:
    """SKAB layout: semicolon-separated, 8 sensors, then anomaly and changepoint labels
    (the rows in ``anomalous`` flagged 1.0)."""
    start = datetime(2020, 3, 9, 10, 14, 33)
    data = []
    for i in range(rows):
        ts = (start + timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S")
        data.append((ts, [round(0.02 * k + i * 0.001, 6) for k in range(1, 9)]))
    lines = [";".join(["datetime", *SKAB_COLUMNS, "anomaly", "changepoint"])]
    lines += [";".join([t, *map(str, values), "1.0" if i in anomalous else "0.0", "0.0"])
              for i, (t, values) in enumerate(data)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return data


def test_nab_rows_in_file_order_with_original_timestamps(tmp_path: Path) -> None:
    data = write_nab(tmp_path / "machine_temperature_system_failure.csv")
    samples = list(Replay(tmp_path / "machine_temperature_system_failure.csv", site="nab"))
    assert [(s.ts, s.value) for s in samples] == [(parse_timestamp(t), v) for t, v in data]
    assert {(s.site, s.device, s.metric) for s in samples} == {
        ("nab", "machine_temperature_system_failure", "value")}
    assert [s.seq for s in samples] == list(range(60))
    offsets = [s.offset_s for s in samples]
    assert offsets == sorted(offsets) and offsets[0] == 0.0  # pacing never goes back
    assert offsets[40] == offsets[39]


def test_skab_columns_become_metrics_and_labels_are_not_sent(tmp_path: Path) -> None:
    data = write_skab(tmp_path / "valve1" / "0.csv", rows=5)
    samples = list(Replay(tmp_path / "valve1" / "0.csv", site="skab"))
    assert [s.metric for s in samples[:8]] == SKAB_METRICS
    assert len(samples) == 5 * 8
    assert [s.value for s in samples[:8]] == data[0][1]
    assert {s.device for s in samples} == {"0"}


def test_a_directory_replays_its_files_side_by_side(tmp_path: Path) -> None:
    write_nab(tmp_path / "nab" / "ambient_temperature.csv", rows=10)
    write_skab(tmp_path / "skab" / "valve1" / "0.csv", rows=4)
    write_skab(tmp_path / "skab" / "valve2" / "0.csv", rows=4)
    replay = Replay(tmp_path, site="mixed")
    # Two files would both be device "0": paths tell them apart.
    assert [r.device for r in replay.recordings] == ["nab-ambient_temperature",
                                                     "skab-valve1-0", "skab-valve2-0"]
    samples = list(replay)
    assert len(samples) == 10 + 2 * 4 * 8
    assert [s.offset_s for s in samples] == sorted(s.offset_s for s in samples)


def test_metric_option_renames_a_single_value_column(tmp_path: Path) -> None:
    write_nab(tmp_path / "cpu.csv", rows=3)
    assert {s.metric for s in Replay(tmp_path / "cpu.csv", "s", metric="cpu util")} == {
        "cpu_util"}
    write_skab(tmp_path / "skab.csv", rows=1)
    with pytest.raises(ReplayError, match="--metric names the one value column"):
        Replay(tmp_path / "skab.csv", "s", metric="x")


def test_bad_rows_are_skipped_and_counted(tmp_path: Path, caplog) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,value\n2014-01-01 00:00:00,1\nyesterday,2\n"
                    "2014-01-01 00:10:00,warm\n2014-01-01 00:15:00,nan\n2014-01-01 00:20:00\n"
                    "2014-01-01 00:25:00,5\n")
    replay = Replay(path, "s")
    assert [s.value for s in replay] == [1.0, 5.0]
    assert (replay.rows, replay.skipped) == (2, 4)
    assert f"{path}:3: row skipped" in caplog.text


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such file or directory"),
    ("", "empty file"),
    ("timestamp\n2014-01-01,1\n", "no value column"),
])
def test_unusable_recordings(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "x.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ReplayError, match=message):
        Replay(path, "s")


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="no .csv files"):
        Replay(tmp_path, "s")


def test_replay_to_files(tmp_path: Path) -> None:
    data = write_nab(tmp_path / "rec" / "nyc_taxi.csv", rows=12)
    result = run_publisher(["--replay", "rec", "--site", "nab", "--out", "out"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = read_csv_rows(tmp_path / "out" / "readings.csv")
    assert [parse_timestamp(r[0]) for r in rows] == [parse_timestamp(t) for t, _ in data]
    assert {tuple(r[1:4]) for r in rows} == {("nab", "nyc_taxi", "value")}
    assert (tmp_path / "out" / "labels.jsonl").read_text() == ""


def test_replay_over_mqtt_sends_every_row_in_order(mosquitto, tmp_path: Path) -> None:
    site = "r-" + hashlib.sha1(str(tmp_path).encode()).hexdigest()[:10]
    nab = write_nab(tmp_path / "rec" / "machine_temperature.csv", rows=80)
    skab = write_skab(tmp_path / "rec" / "valve1.csv", rows=25)
    config = write_yaml(tmp_path / "publisher.yaml", {
        "mqtt": mosquitto.mqtt_section("publisher"),
        "publisher": {"progress_interval_s": 0}})
    collector = collect(mosquitto, f"iotwatch/readings/{site}/#")
    try:
        # Paced: 5-minute steps at 15000x, the NAB file takes about 1.6 s of wall time.
        result = run_publisher(["--config", str(config), "--replay", "rec", "--site", site,
                                "--speed", "15000"], cwd=tmp_path,
                               env=mosquitto.env("publisher"))
        assert result.returncode == 0, result.stderr
        collector.wait_for(80 + 25 * 8, timeout=60)
        collector.sync()
    finally:
        collector.close()
    messages = collector.messages
    assert len(messages) == 80 + 25 * 8
    for _topic, payload, _retain in messages:
        validate("reading.schema.json", payload)
    nab_topic = f"iotwatch/readings/{site}/machine_temperature/value"
    got = [orjson.loads(p) for t, p, _r in messages if t == nab_topic]
    assert [(parse_timestamp(m["ts"]), m["value"]) for m in got] == [
        (parse_timestamp(t), v) for t, v in nab]
    assert [m["seq"] for m in got] == list(range(80))
    for index, metric in enumerate(SKAB_METRICS):
        got = [orjson.loads(p) for t, p, _r in messages
               if t == f"iotwatch/readings/{site}/valve1/{metric}"]
        assert [m["value"] for m in got] == [values[index] for _t, values in skab], metric


def test_skab_replay_in_device_form_sends_one_message_per_row(mosquitto,
                                                             tmp_path: Path) -> None:
    site = "r-" + hashlib.sha1(str(tmp_path).encode()).hexdigest()[:10]
    skab = write_skab(tmp_path / "valve1" / "3.csv", rows=20)
    config = write_yaml(tmp_path / "publisher.yaml", {
        "mqtt": mosquitto.mqtt_section("publisher"),
        "publisher": {"progress_interval_s": 0, "payload": "device"}})
    collector = collect(mosquitto, f"iotwatch/readings/{site}/#")
    try:
        result = run_publisher(["--config", str(config), "--replay", "valve1/3.csv",
                                "--site", site, "--speed", "max"], cwd=tmp_path,
                               env=mosquitto.env("publisher"))
        assert result.returncode == 0, result.stderr
        collector.wait_for(20, timeout=60)
        collector.sync()
    finally:
        collector.close()
    bodies = [orjson.loads(p) for _t, p, _r in collector.messages]
    assert len(bodies) == 20
    for (_topic, payload, _retain), body, (ts, values) in zip(collector.messages, bodies, skab,
                                                              strict=True):
        validate("device-reading.schema.json", payload)
        assert parse_timestamp(body["ts"]) == parse_timestamp(ts)
        assert [body[m] for m in SKAB_METRICS] == values
    assert {t for t, _p, _r in collector.messages} == {f"iotwatch/readings/{site}/3"}
    assert datetime.fromtimestamp(parse_timestamp(bodies[0]["ts"]), UTC).year == 2020


def test_skab_anomaly_runs_become_labels_of_every_metric(tmp_path: Path) -> None:
    data = write_skab(tmp_path / "rec" / "valve1" / "0.csv", rows=40,
                      anomalous=range(10, 15))
    write_skab(tmp_path / "rec" / "valve1" / "1.csv", rows=40, anomalous=range(30, 40))
    result = run_publisher(["--replay", "rec", "--site", "skab", "--out", "out"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    labels = [json.loads(line) for line in
              (tmp_path / "out" / "labels.jsonl").read_text().splitlines()]
    by_device: dict[str, set] = {}
    for label in labels:
        by_device.setdefault(label["device"], set()).add((label["start"], label["end"]))
        assert label["kind"] == "recorded" and label["site"] == "skab"
    assert len(labels) == 2 * 8  # one run per file, a label per metric
    first = {(parse_timestamp(a), parse_timestamp(b)) for a, b in by_device["0"]}
    assert first == {(parse_timestamp(data[10][0]), parse_timestamp(data[14][0]))}
    assert {m for m in (label["metric"] for label in labels)} == {
        c.replace(" ", "_") for c in SKAB_COLUMNS}

    # ... so the replay can be scored: the evaluator finds a window in each stream.
    summary = tmp_path / "summary.json"
    assert main(["evaluate", str(tmp_path / "out"), "--format", "iotwatch", "--detector",
                 "zscore", "--json", str(summary), "--quiet"]) == 0
    files = json.loads(summary.read_text())["files"]
    assert len(files) == 16 and all(f["event"]["windows"] == 1 for f in files.values())


def test_nab_windows_come_along_when_given(tmp_path: Path) -> None:
    data = write_nab(tmp_path / "rec" / "realKnownCause" / "nyc_taxi.csv", rows=60)
    windows = {"realKnownCause/nyc_taxi.csv": [[data[5][0], data[9][0]],
                                               [data[50][0], "2014-03-01 00:00:00"]],
               "other/file.csv": [[data[1][0], data[2][0]]]}
    (tmp_path / "windows.json").write_text(json.dumps(windows))
    result = run_publisher(["--replay", "rec", "--windows", "windows.json", "--out", "out"],
                           cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    labels = [json.loads(line) for line in
              (tmp_path / "out" / "labels.jsonl").read_text().splitlines()]
    spans = [(parse_timestamp(x["start"]), parse_timestamp(x["end"])) for x in labels]
    assert spans == [(parse_timestamp(data[5][0]), parse_timestamp(data[9][0])),
                     # the second is cut at the last row sent
                     (parse_timestamp(data[50][0]), parse_timestamp(data[59][0]))]
    assert {x["device"] for x in labels} == {"nyc_taxi"}
