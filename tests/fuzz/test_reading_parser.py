"""Every reading message either parses into valid Readings or raises Rejected.

Hypothesis builds messages around the contract's keys (``ts``, ``value``, ``unit``,
``seq``, ``units``, metric names) with values at the edges of what numbers, times and
strings hold, plus raw bytes and topics of any text.
"""

from __future__ import annotations

import math

from hypothesis import example, given
from hypothesis import strategies as st

from iotwatch.contracts import Reading, Rejected
from iotwatch.parse import SEQ_RANGE, ReadingParser
from iotwatch.timeparse import EARLIEST_S, LATEST_S, format_rfc3339
from iotwatch.topics import SEGMENT, Topics

from .strategies import JSON_VALUES, NUMBERS, SEGMENT_TEXT, TIME_TEXT, dumps

PARSER = ReadingParser(Topics("iotwatch"))
NOW = 1_768_905_000.0

TOPICS = st.one_of(
    st.tuples(SEGMENT_TEXT, SEGMENT_TEXT, st.none() | SEGMENT_TEXT).map(
        lambda levels: "iotwatch/readings/" + "/".join(x for x in levels if x is not None)),
    st.text(max_size=100))
FIELDS = st.fixed_dictionaries({}, optional={
    "ts": st.one_of(NUMBERS, TIME_TEXT, JSON_VALUES),
    "value": st.one_of(NUMBERS, JSON_VALUES),
    "unit": st.one_of(st.text(max_size=10), JSON_VALUES),
    "seq": st.one_of(st.integers(), NUMBERS, JSON_VALUES),
    "units": st.one_of(st.dictionaries(SEGMENT_TEXT, st.text(max_size=5), max_size=3),
                       JSON_VALUES)})
METRICS = st.dictionaries(SEGMENT_TEXT, st.one_of(NUMBERS, JSON_VALUES), max_size=5)
PAYLOADS = st.one_of(
    st.tuples(FIELDS, METRICS).map(lambda parts: dumps({**parts[1], **parts[0]})),
    JSON_VALUES.map(dumps),
    st.binary(max_size=200))


def check_valid(reading: Reading) -> None:
    for level in (reading.site, reading.device, reading.metric):
        assert SEGMENT.fullmatch(level), level
    assert isinstance(reading.ts, float) and EARLIEST_S <= reading.ts <= LATEST_S
    assert isinstance(reading.value, float) and math.isfinite(reading.value)
    assert reading.unit is None or isinstance(reading.unit, str)
    assert reading.seq is None or SEQ_RANGE[0] <= reading.seq <= SEQ_RANGE[1]
    format_rfc3339(reading.ts)
    reading.to_payload()


@given(TOPICS, PAYLOADS, st.floats(1e9, 4e9))
@example("iotwatch/readings/s/d/t", b'{"ts": 1e17, "value": 21.5}', NOW)  # the poison
@example("iotwatch/readings/0\n/0", b'{"0": 0}', NOW)
@example("iotwatch/readings/s/d/t", b'{"value": ' + b"9" * 400 + b"}", NOW)
def test_a_reading_message_parses_into_valid_readings_or_is_rejected(topic, payload, now):
    try:
        readings = PARSER.parse(topic, payload, received_at=now)
    except Rejected:
        return
    assert readings
    for reading in readings:
        check_valid(reading)


@given(st.tuples(SEGMENT_TEXT, SEGMENT_TEXT, SEGMENT_TEXT),
       st.one_of(NUMBERS, TIME_TEXT, JSON_VALUES), st.one_of(NUMBERS, JSON_VALUES))
def test_any_ts_and_value_of_a_single_metric_reading(levels, ts, value):
    try:
        readings = PARSER.parse("iotwatch/readings/" + "/".join(levels),
                                dumps({"ts": ts, "value": value}), received_at=NOW)
    except Rejected:
        return
    [reading] = readings
    check_valid(reading)
