"""Drills on what comes in: a poison reading, and more readings than a stock broker queues.

Run them alone with ``pytest -m drill`` (see docs/drills.md).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from drills.pipeline import Drill, dead_letters, record
from harness import wait_until

pytestmark = pytest.mark.drill

POISON = b'{"ts": 1e17, "value": 21.5}'


def test_a_poison_reading_mid_stream_does_not_stop_the_pipeline(start_pipeline):
    pipeline = start_pipeline()
    detector = pipeline.detector.process
    drill = Drill(pipeline, "poison")
    drill.publish(30)
    topic = f"iotwatch/readings/{pipeline.site}/dev-0/temperature"
    drill.feeder().raw(topic, POISON)  # on a stream in the middle of its readings
    drill.fire()
    drill.resolve()
    drill.publish(drill.next_seq + 20)
    drill.settle()
    letters = [letter for letter in dead_letters(pipeline) if letter["topic"] == topic]
    reasons = sorted({letter["reason"] for letter in letters})
    counts = drill.check(f"dead-lettered {len(letters)} ({', '.join(reasons)}), "
                         f"detector exit status {detector.poll()}")
    assert detector.poll() is None, "the detector stopped"
    assert pipeline.detector.process is detector  # the same process throughout
    assert len(letters) == 1 and letters[0]["payload"] == POISON.decode()
    assert reasons == ["absurd_timestamp"]
    assert counts.stored == counts.published


def drained(detector) -> Callable[[], bool]:
    """True once nothing new came in since the last call and everything received is acked."""
    previous = [-1.0]

    def check() -> bool:
        received = detector.metric("iotwatch_detector_messages_received_total")
        quiet = received == previous[0]
        previous[0] = received
        return quiet and detector.metric("iotwatch_detector_acks_total") >= received

    return check


def test_a_stock_limits_broker_overrun_is_visible(start_pipeline):
    # Mosquitto's stock max_queued_messages 1000 drops what it queues beyond that for a
    # subscriber that is away: the loss cannot be prevented here, it must not be silent.
    pipeline = start_pipeline(stock_broker=True, alerting=False)
    detector = pipeline.detector
    drill = Drill(pipeline, "stock-broker-overrun", spiked=())
    drill.publish(10)
    wait_until(lambda: len(pipeline.stored()) == len(drill.published), 60,
               what="the first readings stored")
    assert detector.terminate() == 0  # its persistent session stays, queued for by the broker
    drill.publish(drill.next_seq + 750)  # 3,000 readings, every one acknowledged by the broker
    detector.start(wait_healthy=False)
    wait_until(lambda: (detector.get("/health")[1] or {}).get("mqtt_connected"), 60,
               what=f"the detector back on the broker\n{detector.log_tail()}")
    # What the broker kept comes in; readings published while that backlog is still queued
    # would be dropped too, so the next ones wait until the detector has drained it.
    wait_until(drained(detector), 120, interval=1.0, what="the broker's backlog drained")
    drill.publish(drill.next_seq + 20)  # the seq numbers after the gap reveal it
    drill.disconnect()
    last = drill.next_seq - 1

    def sequences() -> dict[str, dict]:
        _, body = detector.get(f"/streams?match={pipeline.site}/%2B/%2B")
        streams = (body or {}).get("streams") or {}
        return {key.split("/")[1]: (value.get("sequence") or {}) for key, value in streams.items()}

    wait_until(lambda: len(sequences()) == drill.n_streams
               and all(s.get("last_seq") == last for s in sequences().values()), 60,
               what=f"seq {last} of every stream at the detector: {sequences()}")
    wait_until(lambda: detector.metric("iotwatch_detector_acks_total")
               >= sum(s["received"] for s in sequences().values()), 60,
               what="everything received acknowledged")
    status, health = detector.get("/health")
    counts = drill.counts()
    missing = {device: s["missing"] for device, s in sequences().items()}
    lost = {device: sum(1 for d, _ in counts.lost if d == device) for device in missing}
    record(counts.summary(drill.name, f"seq gaps counted by the detector "
                                      f"{sum(missing.values())}, /health {status} "
                                      f"{health['status']}"))
    assert counts.lost, "the stock broker dropped nothing: the drill overran nothing"
    assert not counts.unexpected
    assert lost == missing, "every reading lost is counted missing on its own stream"
    assert health["sequence"]["missing"] == len(counts.lost)
    assert detector.metric("iotwatch_detector_sequence_missing") == len(counts.lost)
    assert status == 503 and health["status"] == "degraded", health
    assert any("missing" in problem for problem in health["problems"]), health
    assert detector.terminate() == 0
    warnings = [line for line in detector.log_path.read_text().splitlines()
                if "max_queued_messages" in line]
    assert warnings and "WARNING" in warnings[0]
