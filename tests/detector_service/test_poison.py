"""Poison messages: no message may stop the detector or put it in a crash loop.

``{"ts": 1e17, "value": 21.5}`` used to make ``iotwatch detect`` exit 1 (datetime's
"year is out of range" while wording the rejection); the broker redelivered it on every
restart. Now it is rejected as ``absurd_timestamp`` before anything can raise, and any
exception while handling one message dead-letters it as ``internal_error`` and acks it.
"""

from __future__ import annotations

import threading
from pathlib import Path

import orjson
import paho.mqtt.client as paho
from harness import wait_until

from detector.acks import Acker
from detector.checkpoint import CheckpointFile
from detector.consumer import Intake
from detector.delivery import Delivery
from detector.emit import Emitter
from detector.engine import Engine, EngineSettings
from detector.handler import MessageHandler
from detector.metrics import Metrics
from detector.sink import FileWriter
from detector.spool import Spool
from detector.worker import Cadence, Worker
from iotwatch.parse import ReadingParser
from iotwatch.topics import Topics

from .service import BASE_TS, Detector, Feeder, detector_config

POISON = b'{"ts": 1e17, "value": 21.5}'
# More numbers and strings no datetime can hold; each once crashed the detector.
ABSURD = (POISON, b'{"ts": -1e17, "value": 1}', b'{"ts": 1e300, "value": 1}',
          b'{"ts": -1e11, "value": 1}', b'{"ts": "9999-12-31T23:59:59-23:00", "value": 1}',
          b'{"ts": "-1e300", "value": 1}', b'{"ts": ' + b"9" * 400 + b', "value": 1}')


def file_sink(tmp: Path) -> dict:
    return {"output": {"sink": "file", "file": str(tmp / "points.lp")}}


def stored(tmp: Path, site: str) -> int:
    try:
        text = (tmp / "points.lp").read_text()
    except FileNotFoundError:
        return 0
    return sum(line.startswith(f"readings,site={site},") for line in text.splitlines())


def letters(collector) -> list[dict]:
    return [orjson.loads(p) for p in collector.payloads()]


def test_a_poison_reading_is_dead_lettered_and_readings_keep_flowing(tmp_path, mosquitto,
                                                                    mqtt_collector):
    site = "site-poison"
    detector = Detector(tmp_path, detector_config(tmp_path, mosquitto, sites=(site,),
                                                  detector=file_sink(tmp_path)), mosquitto)
    dead = mqtt_collector(mosquitto, "iotwatch/deadletter/detector")
    try:
        detector.start()
        feeder = Feeder(mosquitto)
        topic = f"iotwatch/readings/{site}/dev-1/temperature"
        for i in range(40):
            feeder.reading(site, "dev-1", "temperature", BASE_TS + i, 20.0 + i % 3)
        for payload in ABSURD:
            feeder.raw(topic, payload)
        for i in range(40, 80):
            feeder.reading(site, "dev-1", "temperature", BASE_TS + i, 20.0 + i % 3)
        feeder.close()

        wait_until(lambda: stored(tmp_path, site) == 80, 60,
                   what=f"all 80 valid readings stored\n{detector.log_tail()}")
        dead.wait_for(len(ABSURD), timeout=30)
        mine = [letter for letter in letters(dead) if letter["topic"] == topic]
        assert [letter["reason"] for letter in mine] == ["absurd_timestamp"] * len(ABSURD)
        assert "outside the years 1-9999" in mine[0]["detail"]
        assert detector.metric("iotwatch_detector_rejected_total",
                               'reason="absurd_timestamp"') == len(ABSURD)
        assert detector.get("/health")[0] == 200
        assert detector.terminate() == 0
    finally:
        detector.close()


def test_a_restarted_detector_never_dies_on_a_queued_poison_message(tmp_path, mosquitto,
                                                                    mqtt_collector):
    site = "site-poison-restart"
    detector = Detector(tmp_path, detector_config(tmp_path, mosquitto, sites=(site,),
                                                  detector=file_sink(tmp_path)), mosquitto)
    dead = mqtt_collector(mosquitto, "iotwatch/deadletter/detector")
    topic = f"iotwatch/readings/{site}/dev-1/temperature"
    try:
        detector.start()  # makes the persistent session and its subscription
        assert detector.terminate() == 0
        # While it is down the broker queues the poison (as it would redeliver an unacked one).
        feeder = Feeder(mosquitto)
        feeder.raw(topic, POISON)
        for i in range(20):
            feeder.reading(site, "dev-1", "temperature", BASE_TS + i, 20.0)
        feeder.close()

        detector.start()  # the poison is the first message it gets
        wait_until(lambda: stored(tmp_path, site) == 20, 60,
                   what=f"the readings behind the poison stored\n{detector.log_tail()}")
        dead.wait_for(1, timeout=30)
        assert detector.get("/health")[0] == 200
        assert detector.terminate() == 0

        # Acknowledged once dead-lettered: the next start gets nothing again.
        detector.start()
        wait_until(lambda: detector.metric("iotwatch_detector_acks_total") == 0
                   and detector.get("/health")[0] == 200, 30, what="healthy again")
        assert detector.metric("iotwatch_detector_rejected_total",
                               'reason="absurd_timestamp"') == 0
        assert detector.terminate() == 0
        assert [letter["reason"] for letter in letters(dead) if letter["topic"] == topic] \
            == ["absurd_timestamp"]
    finally:
        detector.close()


class BuggyParser(ReadingParser):
    """A parser with a bug on one payload: what the catch-all is there for."""

    def parse(self, topic, payload, received_at):
        if b"boom" in payload:
            raise RuntimeError("boom: a bug in a parser")
        return super().parse(topic, payload, received_at)


def message(mid: int, topic: str, payload: bytes) -> paho.MQTTMessage:
    received = paho.MQTTMessage(mid, topic.encode())
    received.payload = payload
    received.qos = 1
    return received


def test_an_exception_while_handling_a_message_dead_letters_and_acks_it(tmp_path, mosquitto,
                                                                        mqtt_collector):
    topics = Topics("iotwatch")
    dead = mqtt_collector(mosquitto, topics.deadletter("detector"))
    client = mosquitto.connect("detector")
    acked: list[int] = []
    metrics = Metrics()
    spool = Spool(tmp_path / "spool", 1 << 20, 1 << 14)
    delivery = Delivery(FileWriter(tmp_path / "points.lp"), spool,
                        Acker(lambda mid, _qos: acked.append(mid), lambda: 1), metrics,
                        lambda line, why: None)
    handler = MessageHandler(Engine(EngineSettings(enabled=["zscore"])),
                             BuggyParser(topics))
    intake = Intake(100)
    intake.on_connected(None)  # generation 1, the acker's
    worker = Worker(intake, handler, Emitter(client, topics), delivery,
                    CheckpointFile(tmp_path / "checkpoint.bin"), metrics, Cadence())
    failures: list[BaseException] = []

    def run(target) -> None:
        try:
            target()
        except BaseException as exc:  # the old worker died here: shown by the assertion
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(t,), daemon=True)
               for t in (delivery.run, worker.run)]
    for thread in threads:
        thread.start()
    try:
        topic = topics.reading("site-bug", "dev-1", "temperature")
        intake.on_message(None, None, message(1, topic, b'{"ts": 1768905000, "value": 1.0}'))
        intake.on_message(None, None, message(2, topic, b'{"ts": 1768905001, "value": "boom"}'))
        intake.on_message(None, None, message(3, topic, b'{"ts": 1768905002, "value": 2.0}'))
        wait_until(lambda: failures or acked == [1, 2, 3], 30, what="all three acknowledged")
        assert not failures, failures
        dead.wait_for(1, timeout=30)
        [letter] = letters(dead)
        assert letter["reason"] == "internal_error"
        assert letter["detail"] == "RuntimeError: boom: a bug in a parser"
        assert b'iotwatch_detector_rejected_total{reason="internal_error"} 1.0' \
            in metrics.exposition()
        assert metrics.totals()["readings_in"] == 2
    finally:
        worker.stop()
        threads[1].join(30)
        delivery.stop(10)
        threads[0].join(30)
        spool.close()
        client.disconnect()
        client.loop_stop()
