"""Every alert message either parses into a valid Alert or raises Rejected; a valid one
round-trips through its wire form."""

from __future__ import annotations

import math

from hypothesis import example, given
from hypothesis import strategies as st

from iotwatch.contracts import Rejected
from iotwatch.parse import parse_alert
from iotwatch.timeparse import EARLIEST_S, LATEST_S

from .strategies import JSON_VALUES, NUMBERS, TIME_TEXT, dumps

VALID = {"version": 1, "fingerprint": "3f2a9c1d0b7e4a65", "state": "firing",
         "severity": "critical", "rule": "anomaly", "site": "plant-1", "device": "boiler-1",
         "metric": "temperature", "value": 93.4, "score": 0.999, "threshold": 0.65,
         "scores": {"zscore": 7.8}, "starts_at": "2026-01-20T10:30:00.000Z", "ends_at": None,
         "ts": "2026-01-20T10:30:20.000Z", "labels": {"site": "plant-1"},
         "annotations": {"summary": "hot"}}
CHANGES = st.dictionaries(
    st.sampled_from(sorted(VALID) + ["extra"]),
    st.one_of(NUMBERS, TIME_TEXT, JSON_VALUES, st.sampled_from(["firing", "resolved",
                                                                "warning", "critical"])),
    max_size=4)
DROPPED = st.sets(st.sampled_from(sorted(VALID)), max_size=2)
PAYLOADS = st.one_of(
    st.tuples(CHANGES, DROPPED).map(lambda cd: dumps(
        {k: v for k, v in {**VALID, **cd[0]}.items() if k not in cd[1]})),
    JSON_VALUES.map(dumps),
    st.binary(max_size=200))


@given(PAYLOADS)
@example(dumps({**VALID, "starts_at": "0001-10-01T00:00:00Z"}))  # formatted as "1-10-01..."
@example(dumps({**VALID, "ts": 1e17}))
def test_an_alert_message_parses_into_a_valid_alert_or_is_rejected(payload):
    try:
        alert = parse_alert(payload)
    except Rejected:
        return
    for when in (alert.ts, alert.starts_at) + (() if alert.ends_at is None else (alert.ends_at,)):
        assert EARLIEST_S <= when <= LATEST_S
    assert all(math.isfinite(x) for x in (alert.value, alert.score, alert.threshold,
                                          *alert.scores.values()))
    wire = alert.to_payload()
    assert parse_alert(wire).to_payload() == wire


@given(st.sampled_from(["ts", "starts_at", "ends_at"]), st.one_of(NUMBERS, TIME_TEXT))
def test_any_alert_time(key, value):
    try:
        alert = parse_alert(dumps({**VALID, key: value}))
    except Rejected:
        return
    alert.to_payload()
