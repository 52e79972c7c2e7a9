"""No accepted reading is lost to timestamp precision: two readings of one stream 100 us
apart are two points in InfluxDB 1.x and VictoriaMetrics (at ms they were one: the later
overwrote the first), and batches spooled at another precision keep their times."""

from __future__ import annotations

import uuid

import pytest

from detector.engine import Engine, EngineSettings
from detector.handler import MessageHandler
from detector.lineprotocol import timestamp
from detector.sink import make_writer
from detector.spool import Spool
from iotwatch.config import InfluxSettings
from iotwatch.parse import ReadingParser
from iotwatch.topics import Topics

T0 = 1_768_905_000.0  # 2026-01-20T10:30:00Z


def lines_of_two_close_readings(device: str, precision: str = "us") -> list[str]:
    """The detector's points for two readings of one stream 100 us apart."""
    handler = MessageHandler(Engine(EngineSettings(enabled=["zscore"])),
                             ReadingParser(Topics("iotwatch")), precision=precision)
    lines = []
    for ts, value in ((T0, 20.5), (T0 + 0.0001, 20.7)):
        done = handler.handle(f"iotwatch/readings/s/{device}/temperature",
                              f'{{"ts": {ts!r}, "value": {value}}}'.encode(), received_at=ts)
        assert done.rejected is None
        lines += done.lines
    return lines


def test_timestamps_carry_microseconds_by_default():
    first, second = lines_of_two_close_readings("d")
    assert first.endswith(" 1768905000000000") and second.endswith(" 1768905000000100")
    ms = lines_of_two_close_readings("d", precision="ms")
    assert ms[0].rsplit(" ", 1)[1] == ms[1].rsplit(" ", 1)[1]  # why ms lost readings


@pytest.mark.parametrize("precision", ["us", "ns"])
def test_influxdb_1x_stores_both_readings(influxdb, tmp_path, precision):
    db = influxdb.create_database()
    writer = make_writer(InfluxSettings(url=influxdb.url, database=db, precision=precision),
                         "influxdb", tmp_path)
    writer.write("\n".join(lines_of_two_close_readings("d", precision)).encode())
    writer.close()
    rows = influxdb.query('SELECT value FROM "readings"', db=db, epoch="u")
    assert [(r["time"], r["value"]) for r in rows] == [(1768905000000000, 20.5),
                                                       (1768905000000100, 20.7)]


def test_at_ms_influxdb_keeps_one_of_the_two(influxdb, tmp_path):
    """What happened before: the second reading silently replaced the first."""
    db = influxdb.create_database()
    writer = make_writer(InfluxSettings(url=influxdb.url, database=db, precision="ms"),
                         "influxdb", tmp_path)
    writer.write("\n".join(lines_of_two_close_readings("d", "ms")).encode())
    writer.close()
    assert [r["value"] for r in influxdb.query('SELECT value FROM "readings"', db=db)] == [20.7]


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_victoria_metrics_stores_both_readings(victoria_metrics, tmp_path, api):
    device = f"p{uuid.uuid4().hex[:8]}"
    writer = make_writer(InfluxSettings(api=api, url=victoria_metrics.url, database="db",
                                        org="acme", bucket="b", token="any"), "influxdb", tmp_path)
    writer.write("\n".join(lines_of_two_close_readings(device)).encode())
    writer.close()
    [series] = victoria_metrics.export(f'readings_value{{device="{device}"}}')
    assert sorted(series["values"]) == [20.5, 20.7]  # VictoriaMetrics keeps ms: both at
    assert series["timestamps"] == [1768905000000, 1768905000000]  # one ms, neither dropped


def test_a_batch_spooled_at_ms_is_stored_at_its_own_time(influxdb, tmp_path):
    """A spool left by a version that wrote ms (records with the first magic) replays right."""
    db = influxdb.create_database()
    spool = Spool(tmp_path / "spool", 1 << 20, 1 << 14)
    spool.append(b"readings,site=s,device=old,metric=m value=1.5 1768905000123", 1, T0,
                 precision="ms")
    spool.close()
    assert (tmp_path / "spool" / "000000000001.spool").read_bytes()[:4] == b"IWSP"

    from detector.acks import Acker
    from detector.delivery import Delivery
    from detector.metrics import Metrics

    reopened = Spool(tmp_path / "spool", 1 << 20, 1 << 14)
    writer = make_writer(InfluxSettings(url=influxdb.url, database=db), "influxdb", tmp_path)
    assert writer.precision == "us"
    delivery = Delivery(writer, reopened, Acker(lambda mid, qos: None, lambda: 1), Metrics(),
                        lambda line, why: None)
    delivery._replay()
    assert not reopened
    rows = influxdb.query('SELECT value FROM "readings"', db=db)
    assert [(r["time"], r["value"]) for r in rows] == [(1768905000123, 1.5)]
    reopened.close()


def test_the_precision_is_a_checked_setting():
    from iotwatch.config import errors_of

    assert InfluxSettings().precision == "us"
    [error] = errors_of(InfluxSettings, {"precision": "s"})
    assert error.startswith("precision:")
    assert timestamp(T0 + 0.5, InfluxSettings(precision="ms").precision) == 1768905000500
