"""The batched processing path gives exactly what one message at a time gives."""

from __future__ import annotations

import random
from pathlib import Path

import paho.mqtt.client as mqtt

from detector.checkpoint import CheckpointFile
from detector.emit import Emitter
from detector.engine import Engine, EngineSettings
from detector.handler import MessageHandler
from detector.metrics import Metrics
from detector.worker import Cadence, Worker
from iotwatch.parse import ReadingParser
from iotwatch.topics import Topics

BASE_TS = 1_768_905_000.0


class RecordingClient(mqtt.Client):
    """A real (unconnected: paho queues the QoS 1 messages) client noting what it publishes."""

    def __init__(self) -> None:
        super().__init__(mqtt.CallbackAPIVersion.VERSION2, client_id="batch-test")
        self.published: list[tuple[str, bytes, bool]] = []

    def publish(self, topic, payload=None, qos=0, retain=False, properties=None):
        self.published.append((topic, bytes(payload or b""), retain))
        return super().publish(topic, payload, qos, retain, properties)


def messages() -> list[tuple[int, mqtt.MQTTMessage, float]]:
    """Readings of 12 streams (spikes that fire and resolve), per-device messages and
    every kind of bad message, interleaved."""
    rnd = random.Random(7)
    items = []

    def add(topic: bytes, payload: bytes) -> None:
        message = mqtt.MQTTMessage(mid=len(items) + 1, topic=topic)
        message.payload, message.qos = payload, 1
        items.append((1, message, BASE_TS + len(items) * 0.01))

    for i in range(400):
        ts = BASE_TS + i
        for s in range(12):
            value = 20 + rnd.gauss(0, 0.5) + (60 if i in (250, 251, 330) and s % 4 == 0 else 0)
            add(f"iotwatch/readings/site/dev-{s}/temp".encode(),
                f'{{"ts": {ts}, "value": {value!r}, "seq": {i}}}'.encode())
        add(b"iotwatch/readings/site/multi",
            f'{{"ts": {ts}, "a": {rnd.gauss(5, 1)!r}, "b": {rnd.gauss(9, 1)!r}}}'.encode())
        if i % 37 == 0:
            add(b"iotwatch/readings/site/dev-0/temp", b'{"ts": 1, "value": "hot"')
            add(b"iotwatch/readings/site/\xff/temp", b'{"value": 1}')
            add(b"iotwatch/readings/site/dev-1/temp", b'{"value": NaN}')
            add(b"iotwatch/readings/site/dev-2", b'[1, 2]')
    return items


def run(batch_size: int, tmp: Path) -> tuple[list[str], list[tuple[str, bytes, bool]], list]:
    engine = Engine(EngineSettings(calibration={"warmup": 50},
                                   decision={"pending_readings": 1, "resolve_readings": 5}))
    handler = MessageHandler(engine, ReadingParser(Topics("iotwatch")))
    client = RecordingClient()
    worker = Worker(None, handler, Emitter(client, Topics("iotwatch")), None,
                    CheckpointFile(tmp / "checkpoint.bin"), Metrics(), Cadence())
    items = messages()
    for start in range(0, len(items), batch_size):
        worker.process(items[start:start + batch_size])
    batch = worker.open_batch
    assert batch.messages == len(items) and len(batch.tokens) == len(items)
    return batch.lines, client.published, engine.stream_summaries()


def test_batches_give_the_points_alerts_and_dead_letters_of_one_at_a_time(tmp_path):
    one_lines, one_published, one_state = run(1, tmp_path)
    lines, published, state = run(500, tmp_path)
    assert lines == one_lines
    assert published == one_published
    assert state == one_state
    topics = [topic for topic, _payload, _retain in published]
    assert topics.count("iotwatch/deadletter/detector") == 4 * 11
    assert any(topic.startswith("iotwatch/alerts/") for topic in topics)
    assert any(line.startswith("alerts,") and "state=resolved" in line for line in lines)


def test_batches_give_the_points_of_the_handler_one_message_at_a_time(tmp_path):
    lines, _published, _state = run(333, tmp_path)
    handler = MessageHandler(Engine(EngineSettings(
        calibration={"warmup": 50}, decision={"pending_readings": 1, "resolve_readings": 5})),
        ReadingParser(Topics("iotwatch")))
    expected = []
    for _generation, message, received_at in messages():
        try:
            topic = message.topic
        except UnicodeDecodeError:
            continue
        expected.extend(handler.handle(topic, message.payload, received_at).lines)
    assert lines == expected


def test_acks_written_together_are_acks_to_the_broker(mosquitto):
    """ack_many's one write of many PUBACKs: the acked messages are not sent again after a
    reconnect, the others are (a malformed packet would cost the connection, or all)."""
    import threading
    import time

    from iotwatch.mqtt import ack_many

    received: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def on_message(_client, _userdata, message):
        with lock:
            received.append((message.mid, bytes(message.payload)))

    topic = "iotwatch/readings/site-acks/dev/t"
    client_id = "batch-ack-test"
    consumer = mosquitto.connect("detector", client_id=client_id, clean=False,
                                 on_message=on_message, manual_ack=True)
    consumer.subscribe(topic, qos=1)
    time.sleep(0.3)
    publisher = mosquitto.connect("publisher")
    for i in range(40):
        publisher.publish(topic, str(i).encode(), qos=1).wait_for_publish(10)
    deadline = time.monotonic() + 20
    while len(received) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(received) == 40
    ack_many(consumer, [(mid, 1) for mid, payload in received if int(payload) % 4])
    time.sleep(0.5)
    consumer.disconnect()
    consumer.loop_stop()
    received.clear()
    again = mosquitto.connect("detector", client_id=client_id, clean=False,
                              on_message=on_message, manual_ack=True)
    deadline = time.monotonic() + 20
    while len(received) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    assert sorted(int(payload) for _mid, payload in received) == list(range(0, 40, 4))
    ack_many(again, [(mid, 1) for mid, _payload in received])
    again.disconnect()
    again.loop_stop()
    publisher.disconnect()
    publisher.loop_stop()
