"""The message contracts between services, as frozen objects with their wire form.

JSON Schemas for every payload live in ``config/contracts/``; tests check that what
these objects write validates against them. Parsing raw MQTT input is ``iotwatch.parse``.

>>> fp = alert_fingerprint("plant-1", "boiler-1", "temperature", "anomaly")
>>> fp == alert_fingerprint("plant-1", "boiler-1", "temperature", "anomaly"), len(fp)
(True, 16)
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import orjson

from iotwatch import IotwatchError
from iotwatch.timeparse import format_rfc3339

ALERT_VERSION = 1
DEAD_LETTER_PAYLOAD_BYTES = 1024


class Reason(StrEnum):
    """Why a message was rejected; the label under which rejections are counted."""

    BAD_TOPIC = "bad_topic"
    OVERSIZE = "oversize"
    BAD_JSON = "bad_json"
    NOT_OBJECT = "not_object"
    MISSING_VALUE = "missing_value"
    NON_NUMERIC = "non_numeric"
    NON_FINITE = "non_finite"
    BAD_TIMESTAMP = "bad_timestamp"
    ABSURD_TIMESTAMP = "absurd_timestamp"
    BAD_FIELD = "bad_field"
    BAD_ALERT = "bad_alert"
    WRITE_REJECTED = "write_rejected"
    STREAM_LIMIT = "stream_limit"  # a new stream beyond the service's stream limits
    INTERNAL_ERROR = "internal_error"  # handling it raised: a bug, dead-lettered not fatal
    # Distributed mode: in a partition other than the one its device hashes to (the
    # server's mapping and nats.partitions disagree).
    WRONG_PARTITION = "wrong_partition"


class Rejected(IotwatchError):
    """A message that does not satisfy its contract: ``reason`` to count, ``detail`` to read."""

    def __init__(self, reason: Reason, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}")


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one stream (site, device, metric) at epoch seconds ``ts``."""

    site: str
    device: str
    metric: str
    ts: float
    value: float
    unit: str | None = None
    seq: int | None = None

    @property
    def stream(self) -> str:
        return f"{self.site}/{self.device}/{self.metric}"

    def to_payload(self) -> bytes:
        """The single-metric wire form.

        >>> Reading("s", "d", "temperature", 1768905000.5, 21.5, "C", 7).to_payload()
        b'{"ts":"2026-01-20T10:30:00.500Z","value":21.5,"unit":"C","seq":7}'
        """
        body: dict[str, Any] = {"ts": format_rfc3339(self.ts), "value": self.value}
        if self.unit is not None:
            body["unit"] = self.unit
        if self.seq is not None:
            body["seq"] = self.seq
        return orjson.dumps(body)


def device_payload(ts: float, values: dict[str, float], *, seq: int | None = None,
                   units: dict[str, str] | None = None) -> bytes:
    """The per-device wire form: several metrics of one device in one message.

    >>> device_payload(1768905000.0, {"temperature": 21.5, "humidity": 40.0}, seq=3)
    b'{"ts":"2026-01-20T10:30:00.000Z","seq":3,"temperature":21.5,"humidity":40.0}'
    """
    body: dict[str, Any] = {"ts": format_rfc3339(ts)}
    if seq is not None:
        body["seq"] = seq
    if units:
        body["units"] = units
    body.update(values)
    return orjson.dumps(body)


def alert_fingerprint(site: str, device: str, metric: str, rule: str) -> str:
    """Stable id of an alert: the same stream and rule always give the same 16 hex digits."""
    key = "\x1f".join((site, device, metric, rule)).encode()
    return hashlib.sha256(key).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Alert:
    """A firing or resolved alert of one stream, as published on the alert topic."""

    fingerprint: str
    state: Literal["firing", "resolved"]
    severity: Literal["warning", "critical"]
    site: str
    device: str
    metric: str
    rule: str
    value: float
    score: float
    threshold: float
    starts_at: float
    ts: float
    ends_at: float | None = None
    scores: dict[str, float] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def all_labels(self) -> dict[str, str]:
        """Labels used for routing: the stream, rule and severity plus any extra labels."""
        return {**self.labels, "site": self.site, "device": self.device, "metric": self.metric,
                "rule": self.rule, "severity": self.severity}

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": ALERT_VERSION,
            "id": self.fingerprint,
            "fingerprint": self.fingerprint,
            "state": self.state,
            "severity": self.severity,
            "rule": self.rule,
            "site": self.site,
            "device": self.device,
            "metric": self.metric,
            "value": self.value,
            "score": self.score,
            "threshold": self.threshold,
            "scores": self.scores,
            "starts_at": format_rfc3339(self.starts_at),
            "ends_at": None if self.ends_at is None else format_rfc3339(self.ends_at),
            "ts": format_rfc3339(self.ts),
            "labels": self.all_labels,
            "annotations": self.annotations,
        }

    def to_payload(self) -> bytes:
        return orjson.dumps(self.to_dict())


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected message: where it came from, why, and its first bytes."""

    service: str
    topic: str
    reason: str
    detail: str
    payload: bytes
    ts: float

    def to_payload(self) -> bytes:
        head = self.payload[:DEAD_LETTER_PAYLOAD_BYTES]
        try:
            text, encoding = head.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(head).decode("ascii"), "base64"
        return orjson.dumps({
            "service": self.service,
            "topic": self.topic,
            "reason": self.reason,
            "detail": self.detail,
            "payload": text,
            "payload_encoding": encoding,
            "size": len(self.payload),
            "truncated": len(self.payload) > DEAD_LETTER_PAYLOAD_BYTES,
            "ts": format_rfc3339(self.ts),
        })


@dataclass(frozen=True, slots=True)
class Status:
    """A service's retained online/offline status (also its MQTT last will)."""

    service: str
    state: Literal["online", "offline"]
    ts: float | None = None
    reason: str | None = None

    def to_payload(self) -> bytes:
        body: dict[str, Any] = {"service": self.service, "state": self.state}
        if self.ts is not None:
            body["ts"] = format_rfc3339(self.ts)
        if self.reason:
            body["reason"] = self.reason
        return orjson.dumps(body)
