"""A flood of new stream names: bounded by limits.max_streams / max_new_streams_per_minute,
dead-lettered as stream_limit; idle streams evicted to disk and restored exactly.

50,000 new stream names used to be accepted and grew the detector by 524 MB.
"""

from __future__ import annotations

import math

import orjson
from harness import wait_until

from detector.engine import Engine, EngineSettings
from detector.handler import MessageHandler
from detector.metrics import Metrics
from detector.streamlimit import StreamGate, StreamLimits
from detector.streamstore import StreamStore
from iotwatch.parse import ReadingParser
from iotwatch.topics import Topics

from .service import BASE_TS, Detector, Feeder, detector_config

TOPICS = Topics("iotwatch")


def handler(gate: StreamGate | None = None) -> MessageHandler:
    return MessageHandler(Engine(EngineSettings()), ReadingParser(TOPICS), gate=gate)


def send(target: MessageHandler, device: str, second: int, value: float,
         received_at: float | None = None):
    """A reading ``second`` s after BASE_TS, received then (or at ``received_at``)."""
    payload = orjson.dumps({"ts": BASE_TS + second, "value": value})
    return target.handle(TOPICS.reading("s", device, "temperature"), payload,
                         BASE_TS + second if received_at is None else received_at)


def calm(i: int) -> float:
    return 20.0 + math.sin(i / 5.0) + (i * 7919 % 11) * 0.03


def test_an_evicted_stream_that_returns_scores_exactly_as_if_never_evicted(tmp_path):
    store = StreamStore(tmp_path / "evicted")
    metrics = Metrics()
    gate = StreamGate(StreamLimits(max_streams=100, evict_idle_s=600), store, metrics)
    limited, unlimited = handler(gate), handler()
    key, firing_key = "s/idle/temperature", "s/alarm/temperature"

    def both(device: str, i: int, value: float, received_at: float | None = None) -> None:
        ours = send(limited, device, i, value, received_at)
        theirs = send(unlimited, device, i, value, received_at)
        assert ours.rejected is None
        assert (ours.lines, ours.alerts) == (theirs.lines, theirs.alerts), (device, i)

    for i in range(300):
        both("idle", i, calm(i))
        both("alarm", i, calm(i) + (60.0 if i >= 295 else 0.0))
    assert limited.engine.alert_state(firing_key) == "firing"

    # An hour later another stream speaks: the sweep evicts the idle one, not the firing one.
    both("other", 4000, 20.0, received_at=BASE_TS + 4000)
    assert key not in limited.engine and key in store
    assert firing_key in limited.engine
    assert metrics.streams_evicted._value.get() == 1  # noqa: SLF001

    # It returns: loaded back, and every score, decision and alert is the never-evicted one's.
    for i in range(4001, 4300):
        both("idle", i, calm(i) + (45.0 if i == 4200 else 0.0), received_at=BASE_TS + i)
    assert metrics.streams_restored._value.get() == 1  # noqa: SLF001
    assert metrics.streams_on_disk._value.get() == 1  # noqa: SLF001
    assert limited.engine.stream_summaries()[key] == unlimited.engine.stream_summaries()[key]

    # Once a checkpoint holds it again, its evicted copy goes.
    assert key in store
    limited.checkpointed()
    assert key not in store
    assert metrics.streams_on_disk._value.get() == 0  # noqa: SLF001


def test_new_streams_beyond_the_limits_are_refused_with_the_reason(tmp_path):
    gate = StreamGate(StreamLimits(max_streams=1000, max_new_per_minute=10, evict_idle_s=3600),
                      StreamStore(tmp_path / "evicted"))
    target = handler(gate)
    refused = [send(target, f"dev-{n}", n, 1.0, received_at=BASE_TS).rejected
               for n in range(25)]
    assert sum(r is None for r in refused) == 10
    assert {r.reason.value for r in refused if r is not None} == {"stream_limit"}
    assert "limits.max_new_streams_per_minute" in refused[-1].detail
    # Known streams always go on; a minute later ten more new ones may start.
    assert send(target, "dev-0", 30, 1.0, received_at=BASE_TS + 1).rejected is None
    later = [send(target, f"late-{n}", n, 1.0, received_at=BASE_TS + 61).rejected
             for n in range(12)]
    assert sum(r is None for r in later) == 10
    assert len(target.engine) == 20
    assert "stream limit" in gate.warning(BASE_TS + 62)
    assert gate.warning(BASE_TS + 1000) is None


def test_a_stream_flood_is_bounded_dead_lettered_counted_and_shown(tmp_path, mosquitto,
                                                                  mqtt_collector):
    site = "site-flood"
    config = detector_config(tmp_path, mosquitto, sites=(site,), detector={
        "output": {"sink": "file", "file": str(tmp_path / "points.lp")},
        "limits": {"max_streams": 30, "max_new_streams_per_minute": 1000}})
    detector = Detector(tmp_path, config, mosquitto)
    dead = mqtt_collector(mosquitto, "iotwatch/deadletter/detector")
    try:
        detector.start()
        feeder = Feeder(mosquitto)
        for n in range(50):
            feeder.reading(site, f"gateway-{n}", "counter", BASE_TS + n, float(n))
        for n in range(30):  # the streams it holds keep flowing
            feeder.reading(site, f"gateway-{n}", "counter", BASE_TS + 100 + n, float(n))
        feeder.close()

        wait_until(lambda: detector.metric("iotwatch_detector_messages_received_total") >= 80,
                   60, what=f"all 80 messages processed\n{detector.log_tail()}")
        letters = [orjson.loads(p) for p in dead.wait_for(20, timeout=30) and dead.payloads()]
        assert [letter["reason"] for letter in letters] == ["stream_limit"] * 20
        assert "limits.max_streams" in letters[0]["detail"]
        assert detector.metric("iotwatch_detector_rejected_total",
                               'reason="stream_limit"') == 20
        assert detector.metric("iotwatch_detector_readings_total") == 60
        assert detector.metric("iotwatch_detector_streams") == 30
        assert detector.metric("iotwatch_detector_stream_limit") == 30
        status, health = detector.get("/health")
        assert status == 200, health
        assert "stream limit: 20 message(s)" in health["warnings"][0]
        assert detector.terminate() == 0
    finally:
        detector.close()
