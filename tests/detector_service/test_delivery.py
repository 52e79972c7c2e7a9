"""The write stage in-process against a real InfluxDB: store, spool, replay, split, ack."""

from __future__ import annotations

import threading

import pytest
from harness import wait_until

from detector.acks import Acker, Batch
from detector.delivery import Delivery
from detector.metrics import Metrics
from detector.sink import RetryableWriteError, make_writer
from detector.spool import Spool
from iotwatch.config import InfluxSettings

T0 = 1_768_905_000_000_000  # us, the writers' default precision


class Published:
    """Stands in for paho's MQTTMessageInfo: confirmed when the test says so."""

    def __init__(self, done: bool = False) -> None:
        self.done = done

    def is_published(self) -> bool:
        return self.done


def lines(start: int, n: int, device: str = "d") -> list[str]:
    return [f"readings,site=s,device={device},metric=m value={i}.5 {T0 + i}"
            for i in range(start, start + n)]


def batch(start: int, n: int, first_mid: int, **kw) -> Batch:
    return Batch(lines=lines(start, n, **kw), tokens=[(1, first_mid + i, 1, 0.0) for i in range(n)],
                 messages=n, created=1.0)


class Stage:
    def __init__(self, writer, spool_dir, max_bytes=1 << 20):
        self.acked: list[int] = []
        self.refused: list[tuple[str, str]] = []
        self.metrics = Metrics()
        self.spool = Spool(spool_dir, max_bytes=max_bytes, segment_bytes=1 << 14)
        self.acker = Acker(lambda mid, qos: self.acked.append(mid), lambda: 1)
        self.delivery = Delivery(writer, self.spool, self.acker, self.metrics,
                                 lambda line, why: self.refused.append((line, why)))
        self.thread = threading.Thread(target=self.delivery.run, daemon=True)
        self.thread.start()

    def finish(self):
        self.delivery.stop(30)
        self.thread.join(60)
        assert not self.thread.is_alive()


def test_batches_are_stored_then_acked_in_order(influxdb, tmp_path):
    db = influxdb.create_database()
    stage = Stage(make_writer(InfluxSettings(url=influxdb.url, database=db), "influxdb", tmp_path),
                  tmp_path / "spool")
    for k in range(5):
        stage.delivery.submit(batch(k * 100, 100, k * 100))
    stage.finish()
    assert stage.acked == list(range(500))
    assert influxdb.count("readings", db=db) == 500
    assert stage.delivery.writable is True


def test_acks_wait_for_the_batchs_publishes(influxdb, tmp_path):
    db = influxdb.create_database()
    stage = Stage(make_writer(InfluxSettings(url=influxdb.url, database=db), "influxdb", tmp_path),
                  tmp_path / "spool")
    alert = Published(done=False)
    first = batch(0, 3, 0)
    first.publishes.append(alert)
    stage.delivery.submit(first)
    stage.delivery.submit(batch(3, 3, 3))
    wait_until(lambda: influxdb.count("readings", db=db) == 6, 30, what="both batches stored")
    assert stage.acked == []  # the second waits behind the first: acks stay in order
    alert.done = True
    wait_until(lambda: stage.acked == [0, 1, 2, 3, 4, 5], 30, what="acks after the publish")
    stage.finish()


def test_refused_lines_are_dead_lettered_and_the_rest_stored(influxdb, tmp_path):
    db = influxdb.create_database()
    influxdb.write('bad,site=s value="text" 1768905000000', db=db, precision="ms")
    stage = Stage(make_writer(InfluxSettings(url=influxdb.url, database=db), "influxdb", tmp_path),
                  tmp_path / "spool")
    mixed = batch(0, 100, 0)
    bad = f"bad,site=s value=1.5 {T0 + 1}"
    mixed.lines.insert(37, bad)
    stage.delivery.submit(mixed)
    stage.finish()
    assert influxdb.count("readings", db=db) == 100
    assert [line for line, _ in stage.refused] == [bad]
    assert "field type conflict" in stage.refused[0][1]
    assert stage.acked == list(range(100))


def test_outage_spools_acks_and_replays_everything(fresh_influxdb, tmp_path):
    influx = fresh_influxdb
    db = influx.create_database()
    stage = Stage(make_writer(InfluxSettings(url=influx.url, database=db, timeout_s=2),
                              "influxdb", tmp_path), tmp_path / "spool")
    stage.delivery.submit(batch(0, 50, 0))
    wait_until(lambda: len(stage.acked) == 50, 30, what="first batch acked")
    influx.stop()
    for k in range(1, 11):
        stage.delivery.submit(batch(k * 50, 50, k * 50))
    # Spooled is durable: everything is acked while the database is down.
    wait_until(lambda: len(stage.acked) == 550, 60, what="spooled batches acked")
    assert stage.delivery.writable is False
    assert stage.delivery.spool_state.points == 500
    influx.start()
    wait_until(lambda: stage.delivery.spool_state.points == 0, 120, what="spool replayed")
    stage.finish()
    assert influx.count("readings", db=db) == 550
    assert stage.acked == list(range(550))


def test_full_spool_stops_acknowledging_until_the_sink_is_back(fresh_influxdb, tmp_path):
    influx = fresh_influxdb
    db = influx.create_database()
    influx.stop()
    stage = Stage(make_writer(InfluxSettings(url=influx.url, database=db, timeout_s=2),
                              "influxdb", tmp_path), tmp_path / "spool", max_bytes=1 << 16)
    submitted = threading.Event()

    def produce():
        for k in range(20):  # ~20 x 100 lines x 60 bytes: twice what the spool holds
            stage.delivery.submit(batch(k * 100, 100, k * 100))
        submitted.set()

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    wait_until(lambda: stage.delivery.backlog >= 4, 60, what="the write stage to fill up")
    assert not submitted.is_set()  # back-pressure: the producer is blocked
    assert len(stage.acked) < 2000
    assert stage.spool.bytes <= 1 << 16
    influx.start()
    producer.join(120)
    wait_until(lambda: len(stage.acked) == 2000, 120, what="every message acked")
    stage.finish()
    assert influx.count("readings", db=db) == 2000
    assert stage.acked == list(range(2000))


def test_retry_after_sets_the_next_attempt(tmp_path):
    class Throttled:
        description = "throttled sink"
        precision = "us"
        calls = 0

        def write(self, body, precision=None):
            self.calls += 1
            raise RetryableWriteError("429 slow down", retry_after=7.0, status=429)

        def close(self):
            pass

    now = [100.0]
    acker = Acker(lambda mid, qos: None, lambda: 1)
    delivery = Delivery(Throttled(), Spool(tmp_path, 1 << 20, 1 << 14), acker, Metrics(),
                        lambda line, why: None, monotonic=lambda: now[0])
    delivery._deliver(batch(0, 2, 0))
    assert delivery._retry_at == pytest.approx(107.0)
    assert delivery.spool_state.points == 2
    delivery._replay()  # not due yet: no attempt
    assert delivery.writer.calls == 1
    now[0] = 107.5
    delivery._replay()
    assert delivery.writer.calls == 2
