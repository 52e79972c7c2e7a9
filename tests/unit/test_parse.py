"""Every rejection reason of the reading parser, and the accepted forms, as tables."""

from __future__ import annotations

import pytest

from iotwatch.contracts import Reason, Rejected
from iotwatch.parse import ParseLimits, ReadingParser, parse_alert
from iotwatch.topics import Topics

NOW = 1_768_905_000.0  # 2026-01-20T10:30:00Z
SINGLE = "iotwatch/readings/plant-1/boiler-1/supply_temp"
DEVICE = "iotwatch/readings/plant-1/line-3"

parser = ReadingParser(Topics("iotwatch"), ParseLimits(max_payload_bytes=256))

ACCEPTED = [
    # topic, payload, expected (metric, ts, value, unit, seq) per reading
    (SINGLE, b'{"ts": "2026-01-20T10:30:00.123Z", "value": 25.5, "unit": "C", "seq": 812}',
     [("supply_temp", NOW + 0.123, 25.5, "C", 812)]),
    (SINGLE, b'{"ts": 1768905000, "value": 3}', [("supply_temp", NOW, 3.0, None, None)]),
    (SINGLE, b'{"ts": 1768905000500, "value": -1.5}', [("supply_temp", NOW + 0.5, -1.5, None, None)]),
    (SINGLE, b'{"ts": "2026-01-20T11:30:00+01:00", "value": 0}', [("supply_temp", NOW, 0.0, None, None)]),
    (SINGLE, b'{"ts": "2026-01-20 10:30:00", "value": 1}', [("supply_temp", NOW, 1.0, None, None)]),
    (SINGLE, b'{"value": 7.25}', [("supply_temp", NOW, 7.25, None, None)]),
    (SINGLE, b'{"value": 1, "extra": "kept out"}', [("supply_temp", NOW, 1.0, None, None)]),
    (DEVICE, b'{"ts": 1768905000, "temperature": 25.5, "humidity": 48.2, "units": {"humidity": "%"}}',
     [("temperature", NOW, 25.5, None, None), ("humidity", NOW, 48.2, "%", None)]),
]

REJECTED = [
    # topic, payload, reason, words the detail must contain
    ("iotwatch/readings/plant-1", b'{"value": 1}', Reason.BAD_TOPIC, "does not match"),
    ("iotwatch/readings/a/b/c/d", b'{"value": 1}', Reason.BAD_TOPIC, "does not match"),
    ("iotwatch/readings/a b/dev/m", b'{"value": 1}', Reason.BAD_TOPIC, "[A-Za-z0-9_.-]"),
    ("other/readings/a/b/c", b'{"value": 1}', Reason.BAD_TOPIC, "not under"),
    (SINGLE, b"x" * 300, Reason.OVERSIZE, "300 bytes, at most 256"),
    (SINGLE, b'{"value": 1', Reason.BAD_JSON, "not valid JSON"),
    (SINGLE, b"\xff\xfe", Reason.BAD_JSON, "not valid JSON"),
    (SINGLE, b"", Reason.BAD_JSON, "not valid JSON"),
    (SINGLE, b"[1, 2]", Reason.NOT_OBJECT, "must be a JSON object, got list"),
    (SINGLE, b"42", Reason.NOT_OBJECT, "got int"),
    (SINGLE, b'{"ts": 1768905000}', Reason.MISSING_VALUE, '"value"'),
    (SINGLE, b'{"value": "25.5"}', Reason.NON_NUMERIC, "got str"),
    (SINGLE, b'{"value": true}', Reason.NON_NUMERIC, "got bool"),
    (SINGLE, b'{"value": null}', Reason.NON_NUMERIC, "got NoneType"),
    (SINGLE, b'{"value": NaN}', Reason.NON_FINITE, "finite"),
    (SINGLE, b'{"value": Infinity}', Reason.NON_FINITE, "finite"),
    (SINGLE, b'{"value": 1e400}', Reason.NON_FINITE, "finite"),
    (SINGLE, b'{"ts": "yesterday", "value": 1}', Reason.BAD_TIMESTAMP, "RFC 3339"),
    (SINGLE, b'{"ts": [1], "value": 1}', Reason.BAD_TIMESTAMP, "got list"),
    (SINGLE, b'{"ts": 1, "value": 1}', Reason.ABSURD_TIMESTAMP, "before 2000"),
    (SINGLE, b'{"ts": "2036-01-01T00:00:00Z", "value": 1}', Reason.ABSURD_TIMESTAMP, "in the future"),
    (SINGLE, b'{"value": 1, "seq": "7"}', Reason.BAD_FIELD, '"seq" must be an integer'),
    (SINGLE, b'{"value": 1, "unit": 5}', Reason.BAD_FIELD, '"unit" must be a string'),
    (DEVICE, b'{"ts": 1768905000}', Reason.MISSING_VALUE, "at least one metric"),
    (DEVICE, b'{"temperature": "warm"}', Reason.NON_NUMERIC, '"temperature"'),
    (DEVICE, b'{"bad name": 1}', Reason.BAD_FIELD, "metric name"),
    (DEVICE, b'{"t": 1, "units": [1]}', Reason.BAD_FIELD, '"units" must be an object'),
]


@pytest.mark.parametrize(("topic", "payload", "expected"), ACCEPTED)
def test_accepted(topic: str, payload: bytes, expected: list[tuple]) -> None:
    readings = parser.parse(topic, payload, received_at=NOW)
    got = [(r.metric, r.ts, r.value, r.unit, r.seq) for r in readings]
    assert [(m, pytest.approx(ts), v, u, s) for m, ts, v, u, s in expected] == got
    assert all((r.site, r.device) == ("plant-1", topic.split("/")[3]) for r in readings)


@pytest.mark.parametrize(("topic", "payload", "reason", "words"), REJECTED)
def test_rejected(topic: str, payload: bytes, reason: Reason, words: str) -> None:
    with pytest.raises(Rejected) as caught:
        parser.parse(topic, payload, received_at=NOW)
    assert caught.value.reason is reason
    assert words in caught.value.detail


def test_too_many_metrics_in_one_device_message() -> None:
    wide = ReadingParser(Topics("iotwatch"), ParseLimits(max_metrics=3))
    with pytest.raises(Rejected) as caught:
        wide.parse(DEVICE, b'{"a": 1, "b": 2, "c": 3, "d": 4}', received_at=NOW)
    assert caught.value.reason is Reason.BAD_FIELD
    assert "4 metrics, at most 3" in caught.value.detail


def test_custom_prefix_with_levels() -> None:
    nested = ReadingParser(Topics("acme/prod"))
    [reading] = nested.parse("acme/prod/readings/s/d/m", b'{"value": 1}', received_at=NOW)
    assert reading.stream == "s/d/m"


ALERT_OK = (b'{"version": 1, "id": "x", "fingerprint": "0123456789abcdef", "state": "firing",'
            b' "severity": "warning", "rule": "anomaly", "site": "s", "device": "d", "metric": "m",'
            b' "value": 1.5, "score": 0.99, "threshold": 0.95, "scores": {"zscore": 4.2},'
            b' "starts_at": "2026-01-20T10:29:00Z", "ends_at": null, "ts": "2026-01-20T10:30:00Z",'
            b' "labels": {"team": "boilers"}, "annotations": {}}')


def test_alert_round_trip() -> None:
    alert = parse_alert(ALERT_OK)
    assert alert.state == "firing" and alert.ts == NOW and alert.scores == {"zscore": 4.2}
    assert parse_alert(alert.to_payload()) == parse_alert(alert.to_payload())
    assert alert.all_labels["team"] == "boilers" and alert.all_labels["severity"] == "warning"


@pytest.mark.parametrize(("payload", "words"), [
    (b'{"state": "firing"}', "missing required key"),
    (ALERT_OK.replace(b'"firing"', b'"burning"'), '"state" must be'),
    (ALERT_OK.replace(b'"warning"', b'"meh"'), '"severity" must be'),
    (ALERT_OK.replace(b'"value": 1.5', b'"value": "1.5"'), '"value" must be a number'),
    (ALERT_OK.replace(b'"ts": "2026-01-20T10:30:00Z"', b'"ts": "soon"'), "RFC 3339"),
    (ALERT_OK.replace(b'"site": "s"', b'"site": ""'), '"site" must be a non-empty string'),
    (b"not json", "not valid JSON"),
])
def test_bad_alerts(payload: bytes, words: str) -> None:
    with pytest.raises(Rejected) as caught:
        parse_alert(payload)
    assert caught.value.reason in (Reason.BAD_ALERT, Reason.BAD_JSON)
    assert words in caught.value.detail
