"""Payloads against the contract; broken ones rejected by the detector's own parser."""

from __future__ import annotations

import pytest

from iotwatch.contracts import Reason, Rejected
from iotwatch.parse import ReadingParser
from iotwatch.topics import Topics
from publisher.payloads import MessageBuilder, batches, single_payload
from publisher.samples import Sample

from .support import START_TS, validate

TOPICS = Topics("iotwatch")


def sample(metric: str = "temperature", ts: float = START_TS, value: float = 21.5,
           device: str = "d1", malformed: str | None = None, seq: int = 3) -> Sample:
    return Sample("s1", device, metric, ts, 0.0, value, seq, "C", malformed)


def test_single_payloads_are_valid_readings_and_parse_back() -> None:
    builder = MessageBuilder(TOPICS, "single")
    ((topic, payload),) = builder.messages([sample(value=-0.125)])
    validate("reading.schema.json", payload)
    (reading,) = ReadingParser(TOPICS).parse(topic, payload, received_at=START_TS)
    assert (reading.site, reading.device, reading.metric, reading.ts, reading.value,
            reading.unit, reading.seq) == ("s1", "d1", "temperature", START_TS, -0.125, "C", 3)


def test_device_batches_group_one_device_and_instant() -> None:
    samples = [sample("a"), sample("b"), sample("a", device="d2"), sample("b", device="d2"),
               sample("a", ts=START_TS + 1), sample("b", ts=START_TS + 1),
               sample("a", ts=START_TS + 2, malformed="non_numeric"),
               sample("b", ts=START_TS + 2)]
    grouped = [[(s.device, s.metric) for s in batch] for batch in batches(samples, "device")]
    assert grouped == [[("d1", "a"), ("d1", "b")], [("d2", "a"), ("d2", "b")],
                       [("d1", "a"), ("d1", "b")], [("d1", "a")], [("d1", "b")]]
    assert [len(b) for b in batches(samples, "single")] == [1] * 8


def test_device_payloads_are_valid_and_fan_out() -> None:
    builder = MessageBuilder(TOPICS, "device")
    ((topic, payload),) = builder.messages([sample("temperature", value=20.0),
                                            sample("humidity", value=45.5)])
    validate("device-reading.schema.json", payload)
    readings = ReadingParser(TOPICS).parse(topic, payload, received_at=START_TS)
    assert [(r.metric, r.value, r.unit, r.seq) for r in readings] == [
        ("temperature", 20.0, "C", 3), ("humidity", 45.5, "C", 3)]


def test_a_malformed_sample_travels_alone_on_its_metric_topic() -> None:
    builder = MessageBuilder(TOPICS, "device")
    ((topic, _payload),) = builder.messages([sample(malformed="missing_value")])
    assert topic == "iotwatch/readings/s1/d1/temperature"


@pytest.mark.parametrize(("malformed", "reason"), [
    ("truncated_json", Reason.BAD_JSON),
    ("non_numeric", Reason.NON_NUMERIC),
    ("missing_value", Reason.MISSING_VALUE),
])
def test_malformed_payloads_are_rejected_for_their_reason(malformed: str,
                                                          reason: Reason) -> None:
    payload = single_payload(sample(malformed=malformed))
    with pytest.raises(Rejected) as caught:
        ReadingParser(TOPICS).parse("iotwatch/readings/s1/d1/temperature", payload,
                                    received_at=START_TS)
    assert caught.value.reason == reason
