"""Raw MQTT messages in, frozen validated objects out; anything else is ``Rejected``.

>>> parser = ReadingParser(Topics("iotwatch"))
>>> parser.parse("iotwatch/readings/s1/d1/temperature",
...              b'{"ts": 1768905000, "value": 21.5, "unit": "C"}', received_at=1768905001.0)
[Reading(site='s1', device='d1', metric='temperature', ts=1768905000.0, value=21.5, unit='C', seq=None)]
>>> parser.parse("iotwatch/readings/s1/d1/temperature", b'{"value": "hot"}', received_at=0.0)
Traceback (most recent call last):
...
iotwatch.contracts.Rejected: non_numeric: "value" must be a number, got str 'hot'
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import orjson

from iotwatch.contracts import Alert, Reading, Reason, Rejected
from iotwatch.timeparse import (
    TimestampError,
    TimestampOutOfRange,
    check_plausible,
    parse_timestamp,
)
from iotwatch.topics import SEGMENT, Topics

RESERVED_DEVICE_KEYS = frozenset({"ts", "seq", "units"})
SEQ_RANGE = (-(2**63), 2**63 - 1)  # what InfluxDB's integer fields hold
TOPIC_CACHE_ENTRIES = 65_536


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Bounds on what a reading may look like."""

    max_payload_bytes: int = 65_536
    max_metrics: int = 64
    max_future_s: float = 86_400.0
    min_epoch_s: float = 946_684_800.0  # 2000-01-01: earlier is a sensor clock never set


class ReadingParser:
    """Parses reading messages of both contract forms into ``Reading`` objects."""

    def __init__(self, topics: Topics, limits: ParseLimits | None = None) -> None:
        self.topics = topics
        self.limits = limits or ParseLimits()
        # Valid topics seen, parsed: a stream's topic repeats with every reading.
        self._levels: dict[str, tuple[str, str, str | None]] = {}

    def parse(self, topic: str, payload: bytes, received_at: float) -> list[Reading]:
        """Return the readings in one message (several for the per-device form).

        A missing ``ts`` means ``received_at``. Raises ``Rejected`` with a reason.
        """
        levels = self._levels.get(topic)
        if levels is None:
            levels = self.topics.parse_reading(topic)
            if len(self._levels) >= TOPIC_CACHE_ENTRIES:
                self._levels.clear()
            self._levels[topic] = levels
        site, device, metric = levels
        body = _load_object(payload, self.limits.max_payload_bytes)
        ts = self._timestamp(body, received_at)
        seq = _optional_seq(body)
        if metric is not None:
            if "value" not in body:
                raise Rejected(Reason.MISSING_VALUE, 'single-metric reading needs a "value" key')
            unit = body.get("unit")
            if unit is not None and not isinstance(unit, str):
                raise Rejected(Reason.BAD_FIELD, f'"unit" must be a string, got {_show(unit)}')
            return [Reading(site, device, metric, ts, _number("value", body["value"]), unit, seq)]
        return self._device_readings(site, device, body, ts, seq)

    def _device_readings(self, site: str, device: str, body: dict[str, Any], ts: float,
                         seq: int | None) -> list[Reading]:
        units = body.get("units") or {}
        if not isinstance(units, dict):
            raise Rejected(Reason.BAD_FIELD, f'"units" must be an object, got {_show(units)}')
        metrics = [key for key in body if key not in RESERVED_DEVICE_KEYS]
        if not metrics:
            raise Rejected(Reason.MISSING_VALUE,
                           "per-device reading needs at least one metric key besides ts/seq/units")
        if len(metrics) > self.limits.max_metrics:
            raise Rejected(Reason.BAD_FIELD, f"per-device reading has {len(metrics)} metrics, "
                           f"at most {self.limits.max_metrics} accepted")
        readings = []
        for name in metrics:
            if not SEGMENT.match(name):
                raise Rejected(Reason.BAD_FIELD,
                               f"metric name {name[:80]!r} must match [A-Za-z0-9_.-]{{1,64}}")
            unit = units.get(name)
            readings.append(Reading(site, device, name, ts, _number(name, body[name]),
                                    unit if isinstance(unit, str) else None, seq))
        return readings

    def _timestamp(self, body: dict[str, Any], received_at: float) -> float:
        raw = body.get("ts")
        if raw is None:
            return received_at
        try:
            ts = parse_timestamp(raw)
        except TimestampOutOfRange as exc:
            raise Rejected(Reason.ABSURD_TIMESTAMP, f'"ts": {exc}') from None
        except TimestampError as exc:
            raise Rejected(Reason.BAD_TIMESTAMP, f'"ts": {exc}') from None
        try:
            check_plausible(ts, received_at, max_future_s=self.limits.max_future_s,
                            min_epoch_s=self.limits.min_epoch_s)
        except TimestampError as exc:
            raise Rejected(Reason.ABSURD_TIMESTAMP, f'"ts": {exc}') from None
        return ts


def parse_alert(payload: bytes, max_payload_bytes: int = 65_536) -> Alert:
    """Parse an alert message (see ``config/contracts/alert.schema.json``)."""
    body = _load_object(payload, max_payload_bytes)
    try:
        state = body["state"]
        severity = body["severity"]
        if state not in ("firing", "resolved"):
            raise ValueError(f'"state" must be "firing" or "resolved", got {_show(state)}')
        if severity not in ("warning", "critical"):
            raise ValueError(f'"severity" must be "warning" or "critical", got {_show(severity)}')
        ends_at = body.get("ends_at")
        return Alert(
            fingerprint=_text(body, "fingerprint"),
            state=state,
            severity=severity,
            site=_text(body, "site"),
            device=_text(body, "device"),
            metric=_text(body, "metric"),
            rule=_text(body, "rule"),
            value=_number("value", body["value"]),
            score=_number("score", body["score"]),
            threshold=_number("threshold", body["threshold"]),
            starts_at=_alert_time("starts_at", body["starts_at"]),
            ts=_alert_time("ts", body["ts"]),
            ends_at=None if ends_at is None else _alert_time("ends_at", ends_at),
            scores={str(k): _number(f"scores.{k}", v) for k, v in _mapping(body, "scores").items()},
            labels={str(k): str(v) for k, v in _mapping(body, "labels").items()},
            annotations={str(k): str(v) for k, v in _mapping(body, "annotations").items()},
        )
    except KeyError as exc:
        raise Rejected(Reason.BAD_ALERT, f"alert is missing required key {exc}") from None
    except Rejected as exc:
        raise Rejected(Reason.BAD_ALERT, exc.detail) from None
    except (ValueError, TypeError) as exc:
        raise Rejected(Reason.BAD_ALERT, str(exc)) from None


def _alert_time(key: str, value: Any) -> float:
    try:
        return parse_timestamp(value)
    except TimestampError as exc:
        raise ValueError(f'"{key}": {exc}') from None


def _load_object(payload: bytes, max_bytes: int) -> dict[str, Any]:
    if len(payload) > max_bytes:
        raise Rejected(Reason.OVERSIZE,
                       f"payload is {len(payload)} bytes, at most {max_bytes} accepted")
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        # Python's json writes NaN/Infinity; parse those to reject them as non-finite.
        body = _load_lenient(payload)
        if body is None:
            raise Rejected(Reason.BAD_JSON, f"payload is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Rejected(Reason.NOT_OBJECT, f"payload must be a JSON object, got {_show(body)}")
    return body


def _load_lenient(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except (ValueError, RecursionError):
        return None


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Rejected(Reason.NON_NUMERIC, f'"{name}" must be a number, got {_show(value)}')
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        raise Rejected(Reason.NON_FINITE, f'"{name}" is beyond any float: {_show(value)}') \
            from None
    if not math.isfinite(number):
        raise Rejected(Reason.NON_FINITE, f'"{name}" must be finite, got {value!r}')
    return number


def _optional_seq(body: dict[str, Any]) -> int | None:
    seq = body.get("seq")
    if seq is None:
        return None
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise Rejected(Reason.BAD_FIELD, f'"seq" must be an integer, got {_show(seq)}')
    if not SEQ_RANGE[0] <= seq <= SEQ_RANGE[1]:
        raise Rejected(Reason.BAD_FIELD, f'"seq" must fit in 64 bits, got {_show(seq)}')
    return seq


def _text(body: dict[str, Any], key: str) -> str:
    value = body[key]
    if not isinstance(value, str) or not value:
        raise ValueError(f'"{key}" must be a non-empty string, got {_show(value)}')
    return value


def _mapping(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key) or {}
    if not isinstance(value, dict):
        raise ValueError(f'"{key}" must be an object, got {_show(value)}')
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"
