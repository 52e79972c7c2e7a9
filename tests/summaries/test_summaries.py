"""Hourly and daily summaries: rollups, ``iotwatch summarize`` and the real detector."""

from __future__ import annotations

import csv
import random

import pytest
from detector_service.service import Detector, Feeder, detector_config
from harness import wait_until

from detector.sidestate import side_path
from detector.summaries.rollup import Rollup
from detector.summaries.settings import SummarySettings
from detector.summaries.streams import StreamSummaries
from iotwatch.cli import main
from iotwatch.timeparse import format_rfc3339

DAY0 = 1_768_867_200.0  # 2026-01-20T00:00:00Z


def test_hours_and_days_close_by_reading_time_with_counters_summed():
    rollup, closed = Rollup(counter=True), []
    for minute in range(0, 2 * 24 * 60 + 1, 10):   # two days of 10-minute readings
        closed += rollup.add(DAY0 + 60 * minute, 1.0, anomaly=minute % 120 == 0,
                             alert=minute == 600)
    hours = [s for s in closed if s.period == "hour"]
    days = [s for s in closed if s.period == "day"]
    assert len(hours) == 48 and all(s.count == 6 and s.sum == 6.0 for s in hours)
    assert [s.start for s in days] == [DAY0, DAY0 + 86400]
    assert [s.count for s in days] == [144, 144] and [s.anomalies for s in days] == [12, 12]
    assert [s.alerts for s in days] == [1, 0]
    assert hours[0].anomalies == 1 and sum(s.alerts for s in hours) == 1


def test_late_readings_are_counted_not_added():
    rollup = Rollup()
    rollup.add(DAY0 + 100, 10.0, anomaly=False, alert=False)
    rollup.add(DAY0 + 3700, 20.0, anomaly=False, alert=False)     # closes hour 0
    assert rollup.add(DAY0 + 200, 999.0, anomaly=False, alert=False) == []   # late for hour 0
    closed = rollup.add(DAY0 + 7300, 30.0, anomaly=False, alert=False)
    assert [(s.start, s.count, s.max, s.late) for s in closed] == [(DAY0 + 3600, 1, 20.0, 1)]


def test_state_survives_a_checkpoint():
    settings = SummarySettings(enabled=True, streams=[{"match": "+/+/energy", "counter": True}])
    first, noise = StreamSummaries(settings), random.Random(1)
    rows = [("s", "m", metric, DAY0 + 60 * i, noise.random()) for i in range(300)
            for metric in ("energy", "temp")]
    for row in rows[:250]:
        first.observe(*row, anomaly=False, alert=False)
    restored = StreamSummaries(settings)
    assert restored.restore(first.snapshot()) == 2
    after = [line for row in rows[250:]
             for line in restored.observe(*row, anomaly=False, alert=False)]
    assert after == [line for row in rows[250:]
                     for line in first.observe(*row, anomaly=False, alert=False)]
    # Hour 2 began before the checkpoint (minute 125 of 120-179): all 60 readings counted.
    hour2 = [line for line in after if "period=hour" in line and "metric=temp" in line][0]
    assert ",count=60i," in hour2
    energy = [line for line in after if "period=hour" in line and "metric=energy" in line][0]
    assert ",sum=" in energy


def write_recording(path, hours: int = 50) -> list[tuple[float, str, float]]:
    rows = []
    for i in range(hours * 12):                      # every 5 minutes
        ts = DAY0 + 300 * i
        rows.append((ts, "temp", 20.0 + (i % 12)))
        rows.append((ts, "energy", 0.5))
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ts", "site", "device", "metric", "value"])
        for ts, metric, value in rows:
            writer.writerow([format_rfc3339(ts), "plant-1", "meter-1", metric, value])
    return rows


def test_summarize_writes_hourly_and_daily_csv(tmp_path, capsys):
    write_recording(tmp_path / "readings.csv")
    config = tmp_path / "detector.yaml"
    config.write_text("detector:\n  summaries:\n    streams:\n"
                      "      - match: '+/+/energy'\n        counter: true\n")
    out = tmp_path / "out"
    assert main(["summarize", str(tmp_path / "readings.csv"), "--out", str(out),
                 "--config", str(config)]) == 0
    with (out / "hourly.csv").open() as handle:
        hourly = list(csv.DictReader(handle))
    with (out / "daily.csv").open() as handle:
        daily = list(csv.DictReader(handle))
    assert len(hourly) == 2 * 50 and len(daily) == 2 * 3       # the last day is partial
    temp = [r for r in hourly if r["metric"] == "temp"]
    assert {(r["count"], r["mean"], r["min"], r["max"], r["sum"]) for r in temp} == {
        ("12", "25.5", "20.0", "31.0", "")}
    energy_days = [r for r in daily if r["metric"] == "energy"]
    assert [float(r["sum"]) for r in energy_days] == [144.0, 144.0, 12.0]
    assert energy_days[0]["period_start"] == "2026-01-20T00:00:00.000Z"
    assert "1,200 readings -> 100 hourly and 6 daily rows" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["missing.csv", "--out", "o"], "missing.csv: file not found"),
    (["readings.csv", "--out", "readings.csv"], "exists and is not a directory"),
])
def test_summarize_bad_paths_give_one_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    write_recording(tmp_path / "readings.csv", hours=1)
    assert main(["summarize", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("iotwatch summarize: error: ") and message in err


def test_summaries_are_stored_by_the_detector_and_survive_a_restart(tmp_path, mosquitto,
                                                                   influxdb):
    database = influxdb.create_database()
    config = detector_config(tmp_path, mosquitto, influx={"database": database, "url": influxdb.url},
                             detector={"summaries": {"enabled": True}})
    detector = Detector(tmp_path, config, mosquitto)
    feeder = Feeder(mosquitto)
    minutes = range(0, 150)                           # 2.5 hours of one-minute readings
    try:
        detector.start()  # inside try: a failed start is cleaned up too
        for m in minutes[:90]:                        # hour 0 and half of hour 1
            feeder.reading("site-1", "meter", "temp", DAY0 + 60 * m, float(m))
        feeder.flush()
        wait_until(lambda: influxdb.count("readings", db=database) >= 90, 60, what="90 readings")
        assert detector.terminate() == 0
        assert side_path(tmp_path / "checkpoint.bin", "summaries").is_file()
        detector.start()                              # the open hour 1 comes back with it
        for m in minutes[90:]:
            feeder.reading("site-1", "meter", "temp", DAY0 + 60 * m, float(m))
        feeder.flush()
        wait_until(lambda: influxdb.count("summaries", db=database) >= 2, 60,
                   what="two hourly summaries")
        rows = influxdb.query('SELECT "count", "mean", "min", "max", "period" FROM "summaries" '
                              'WHERE "site" = \'site-1\'', db=database)
        assert [(r["time"], r["count"], r["mean"], r["min"], r["max"], r["period"])
                for r in rows] == [
            (round(DAY0 * 1000), 60, 29.5, 0.0, 59.0, "hour"),
            (round((DAY0 + 3600) * 1000), 60, 89.5, 60.0, 119.0, "hour")]
    finally:
        feeder.close()
        detector.close()
