"""The dashboard's point sources: InfluxDB 1.x (a real influxd) and the file sink's file
answer the same frames for the same points, written by the detector's own line builders."""

from __future__ import annotations

import pandas as pd
import pytest

from detector.lineprotocol import SeriesKeys, alert_line, counters_line, reading_line
from iotwatch.config import InfluxSettings
from iotwatch.dashboard.influxql import InfluxQLSource
from iotwatch.dashboard.linefile import LineFileSource
from iotwatch.dashboard.sources import Selection

BASE = 1_768_905_000.0
STREAMS = [("plant-1", "boiler-1", "supply_temp"), ("plant-1", "boiler-2", "supply_temp"),
           ("plant-2", "pump-1", "flow")]


def _lines() -> list[str]:
    keys = SeriesKeys("readings")
    lines = []
    for i in range(100):
        for n, (site, device, metric) in enumerate(STREAMS):
            spike = n == 1 and i == 80
            lines.append(reading_line(keys.prefix(site, device, metric), BASE + i * 10.0,
                                      90.0 if spike else 20.0 + n, {"zscore": 0.1},
                                      0.95 if spike else 0.1, 0.65, spike))
    lines.append(alert_line("alerts", site="plant-1", device="boiler-2", metric="supply_temp",
                            severity="critical", state="firing", fingerprint="fp2", value=90.0,
                            score=0.95, text='supply_temp on plant-1/boiler-2 is "anomalous"',
                            ts=BASE + 800))
    lines.append(alert_line("alerts", site="plant-1", device="boiler-2", metric="supply_temp",
                            severity="critical", state="resolved", fingerprint="fp2",
                            value=20.0, score=0.1, text="back to normal", ts=BASE + 900))
    for k in range(5):
        lines.append(counters_line("iotwatch_service", {"service": "detector"},
                                   {"readings_in": 30 * k, "points_written": 30 * k,
                                    "rejected": k}, BASE + k))
    return lines


@pytest.fixture
def sources(tmp_path, influxdb):
    database = influxdb.create_database()
    lines = _lines()
    influxdb.write(lines, db=database, precision="u")
    path = tmp_path / "points.lp"
    # A torn last line (a write in progress) is left for the next read.
    path.write_text("\n".join(lines) + "\nreadings,site=plant-1,device=boi", encoding="utf-8")
    # api v2 sends the same InfluxQL to /query with the bucket as database and a token
    # header (which a 1.x server without auth ignores): the request path of 2.x and 3.x.
    v2 = InfluxSettings(api="v2", url=influxdb.url, bucket=database, token="a-token")
    return (InfluxQLSource(InfluxSettings(url=influxdb.url, database=database)),
            InfluxQLSource(v2), LineFileSource(path))


def test_every_store_answers_the_same_streams_readings_alerts_and_counters(sources):
    for source in sources:
        streams = source.streams().sort_values(["site", "device"], ignore_index=True)
        assert list(zip(streams["site"], streams["device"], streams["metric"], strict=True)) \
            == sorted(STREAMS)
        assert (streams["last"] == pd.Timestamp((BASE + 990) * 1e9, tz="UTC")).all()

        everything = source.readings(Selection(window_s=3600))
        assert len(everything) == 300, source.describe()
        spiked = everything[everything["anomaly"] == 1]
        assert spiked[["device", "value", "score"]].values.tolist() == [["boiler-2", 90.0, 0.95]]

        # A short window ends at the newest reading, not at the wall clock.
        recent = source.readings(Selection(window_s=95))
        assert len(recent) == 3 * 10
        # Buckets larger than the reading interval keep the peak score, average the value.
        coarse = source.readings(Selection(devices=("boiler-2",), window_s=60_000))
        assert set(coarse["device"]) == {"boiler-2"}
        assert coarse["score"].max() == 0.95 and coarse["value"].max() < 90.0

        narrowed = source.readings(Selection(sites=("plant-2",)))
        assert set(narrowed["device"]) == {"pump-1"}

        alerts = source.alerts(Selection())
        assert alerts["state"].tolist() == ["resolved", "firing"]
        assert alerts["text"].tolist()[1] == 'supply_temp on plant-1/boiler-2 is "anomalous"'
        assert source.alerts(Selection(devices=("boiler-1",))).empty

        stats = source.service_stats()
        assert stats["readings_in"].tolist() == [0, 30, 60, 90, 120]
        assert set(stats["service"]) == {"detector"}


def test_the_file_source_reads_only_new_lines(tmp_path):
    path = tmp_path / "points.lp"
    source = LineFileSource(path)
    assert source.streams().empty      # no file yet: nothing stored, no error
    keys = SeriesKeys("readings")
    path.write_text(reading_line(keys.prefix("s", "d", "m"), BASE, 1.0, {}, 0.1, 0.65, False)
                    + "\n", encoding="utf-8")
    assert len(source.readings(Selection())) == 1
    with open(path, "a", encoding="utf-8") as store:
        store.write(reading_line(keys.prefix("s", "d", "m"), BASE + 1, 2.0, {}, 0.2, 0.65,
                                 False) + "\nnot line protocol\n")
    assert source.readings(Selection(window_s=60))["value"].tolist() == [1.0, 2.0]


def test_a_long_file_is_read_a_bounded_chunk_per_refresh(tmp_path, monkeypatch):
    from iotwatch.dashboard import linefile

    keys = SeriesKeys("readings")
    lines = [reading_line(keys.prefix("s", "d", "m"), BASE + i, float(i), {}, 0.1, 0.65, False)
             for i in range(50)]
    path = tmp_path / "points.lp"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setattr(linefile, "MAX_READ_BYTES", len(lines[0]) * 10 + 5)
    source = LineFileSource(path)
    seen = [len(source.readings(Selection(window_s=60))) for _ in range(6)]
    assert 0 < seen[0] < 50 and seen[-1] == 50
    assert seen == sorted(seen)
