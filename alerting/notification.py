"""A notification: what one receiver integration is told about one group, once.

It is built by the de-duplication stage, stored in the outbox, and handed to a notifier
(possibly several times, when attempts fail). Everything a notifier renders comes from
here, so every attempt sends the same content with the same idempotency key.

>>> from iotwatch.contracts import Alert
>>> alert = Alert("fp1", "firing", "critical", "plant-1", "boiler-1", "temperature",
...               "anomaly", 93.4, 0.99, 0.9, 1768905000.0, 1768905000.0)
>>> note = Notification(Target("ops", "webhook"), '{}:{site="plant-1"}', {"site": "plant-1"},
...                     (alert,), seq=1, created_at=1768905010.0)
>>> note.status, len(note.idempotency_key)
('firing', 64)
>>> Notification.from_record(note.to_record()).idempotency_key == note.idempotency_key
True
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from iotwatch.contracts import Alert
from iotwatch.parse import parse_alert

NOTIFICATION_RECORD_VERSION = 1


@dataclass(frozen=True, order=True)
class Target:
    """One integration of one receiver: the unit of delivery, retry and de-duplication."""

    receiver: str
    integration: str  # "email" | "webhook"

    @property
    def name(self) -> str:
        return f"{self.receiver}/{self.integration}"

    @classmethod
    def parse(cls, name: str) -> Target:
        receiver, _, integration = name.rpartition("/")
        return cls(receiver, integration)


@dataclass(frozen=True)
class Notification:
    target: Target
    group_key: str
    group_labels: dict[str, str]
    alerts: tuple[Alert, ...]
    seq: int  # per target and group: the n-th notification of this group
    created_at: float
    truncated: int = 0  # alerts left out (webhook max_alerts)

    @property
    def status(self) -> str:
        """``firing`` while any alert fires, else ``resolved`` (as in Alertmanager)."""
        return "firing" if any(a.state == "firing" for a in self.alerts) else "resolved"

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if a.state == "firing"]

    @property
    def resolved(self) -> list[Alert]:
        return [a for a in self.alerts if a.state == "resolved"]

    @property
    def idempotency_key(self) -> str:
        """Same notification, same key: receivers drop a second delivery of it."""
        states = ",".join(sorted(f"{a.fingerprint}:{a.state}" for a in self.alerts))
        text = "\x1f".join((self.target.name, self.group_key, states, str(self.seq)))
        return hashlib.sha256(text.encode()).hexdigest()

    def common_labels(self) -> dict[str, str]:
        """Labels with the same value on every alert."""
        if not self.alerts:
            return {}
        first, *rest = (a.all_labels for a in self.alerts)
        return {k: v for k, v in sorted(first.items()) if all(r.get(k) == v for r in rest)}

    def common_annotations(self) -> dict[str, str]:
        if not self.alerts:
            return {}
        first, *rest = (a.annotations for a in self.alerts)
        return {k: v for k, v in sorted(first.items()) if all(r.get(k) == v for r in rest)}

    def to_record(self) -> bytes:
        return orjson.dumps({
            "v": NOTIFICATION_RECORD_VERSION, "target": self.target.name,
            "group_key": self.group_key, "group_labels": self.group_labels,
            "alerts": [a.to_dict() for a in self.alerts], "seq": self.seq,
            "created_at": self.created_at, "truncated": self.truncated})

    @classmethod
    def from_record(cls, record: bytes) -> Notification:
        body: dict[str, Any] = orjson.loads(record)
        return cls(Target.parse(body["target"]), body["group_key"], body["group_labels"],
                   tuple(parse_alert(orjson.dumps(a)) for a in body["alerts"]), body["seq"],
                   body["created_at"], body.get("truncated", 0))
