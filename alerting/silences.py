"""Silences: matchers plus a time window during which matching alerts are not notified.

Silences mute at notification time, as in Alertmanager: an alert still firing when its
silence ends is notified at its group's next flush. Silences from the configuration
are fixed; silences added over HTTP can be removed and survive restarts (the service
stores them). Pure: the time is an argument.

>>> silences = Silences()
>>> silence = silence_from_request({"matchers": ["site=plant-2"], "duration_s": 3600,
...                                 "comment": "maintenance"}, now=1000.0, new_id="s1")
>>> silences.add(silence)
>>> silences.silenced_by({"site": "plant-2", "device": "pump-1"}, now=2000.0)
['s1']
>>> silences.silenced_by({"site": "plant-2"}, now=4600.0)
[]
>>> silence_from_request({"matchers": []}, now=0.0, new_id="x")
Traceback (most recent call last):
...
ValueError: "matchers" must be a non-empty list of matchers such as "site=plant-1"
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from alerting.config import SilenceSettings
from alerting.matchers import Matcher, matches_all, parse_matchers
from iotwatch.timeparse import TimestampError, format_rfc3339, parse_timestamp

MAX_SILENCE_S = 365 * 86_400.0


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float | None
    comment: str = ""
    created_by: str = ""
    source: str = "api"  # "api" (removable) or "config"

    def state(self, now: float) -> str:
        if now < self.starts_at:
            return "pending"
        if self.ends_at is not None and now >= self.ends_at:
            return "expired"
        return "active"

    def mutes(self, labels: Mapping[str, str], now: float) -> bool:
        return self.state(now) == "active" and matches_all(self.matchers, labels)

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id, "matchers": [str(m) for m in self.matchers],
            "starts_at": format_rfc3339(self.starts_at),
            "ends_at": None if self.ends_at is None else format_rfc3339(self.ends_at),
            "comment": self.comment, "created_by": self.created_by, "source": self.source}
        if now is not None:
            body["state"] = self.state(now)
        return body

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> Silence:
        """Read what ``to_dict`` wrote (the service's own storage)."""
        ends_at = body.get("ends_at")
        return cls(str(body["id"]), parse_matchers(body["matchers"]),
                   parse_timestamp(body["starts_at"]),
                   None if ends_at is None else parse_timestamp(ends_at),
                   str(body.get("comment", "")), str(body.get("created_by", "")),
                   str(body.get("source", "api")))


def silences_from_config(settings: list[SilenceSettings]) -> list[Silence]:
    return [Silence(f"config-{index}", parse_matchers(s.matchers),
                    parse_timestamp(s.starts_at) if s.starts_at else 0.0,
                    parse_timestamp(s.ends_at) if s.ends_at else None,
                    s.comment, s.created_by, "config")
            for index, s in enumerate(settings)]


def silence_from_request(body: Any, now: float, new_id: str) -> Silence:
    """A silence from an HTTP request body; ValueError says what is wrong.

    Body: ``matchers`` (list of strings), ``ends_at`` (RFC 3339 or epoch) or
    ``duration_s``, optional ``starts_at``, ``comment``, ``created_by``.
    """
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object with \"matchers\" and \"ends_at\" or "
                         "\"duration_s\"")
    unknown = sorted(set(body) - {"matchers", "starts_at", "ends_at", "duration_s", "comment",
                                  "created_by"})
    if unknown:
        raise ValueError(f"unknown keys {', '.join(unknown)} (expected matchers, starts_at, "
                         "ends_at or duration_s, comment, created_by)")
    texts = body.get("matchers")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError('"matchers" must be a non-empty list of matchers such as "site=plant-1"')
    matchers = parse_matchers(texts)
    starts_at = _time(body, "starts_at") if body.get("starts_at") is not None else now
    if body.get("ends_at") is not None:
        ends_at = _time(body, "ends_at")
    elif body.get("duration_s") is not None:
        duration = body["duration_s"]
        if isinstance(duration, bool) or not isinstance(duration, int | float) or duration <= 0:
            raise ValueError(f'"duration_s" must be a positive number, got {duration!r}')
        ends_at = starts_at + float(duration)
    else:
        raise ValueError('a silence needs "ends_at" or "duration_s" (silences expire)')
    if ends_at <= starts_at:
        raise ValueError('"ends_at" must be after "starts_at"')
    if ends_at - starts_at > MAX_SILENCE_S:
        raise ValueError(f"a silence may last at most {MAX_SILENCE_S / 86400:.0f} days")
    for key in ("comment", "created_by"):
        if not isinstance(body.get(key, ""), str):
            raise ValueError(f'"{key}" must be a string')
    return Silence(new_id, matchers, starts_at, ends_at, body.get("comment", ""),
                   body.get("created_by", ""), "api")


def _time(body: Mapping[str, Any], key: str) -> float:
    try:
        return parse_timestamp(body[key])
    except TimestampError as exc:
        raise ValueError(f'"{key}": {exc}') from None


class Silences:
    """The current silences; safe to use from several threads."""

    def __init__(self, silences: list[Silence] | None = None) -> None:
        self._lock = threading.Lock()
        self._silences: dict[str, Silence] = {s.id: s for s in silences or []}

    def add(self, silence: Silence) -> None:
        with self._lock:
            self._silences[silence.id] = silence

    def get(self, silence_id: str) -> Silence | None:
        with self._lock:
            return self._silences.get(silence_id)

    def remove(self, silence_id: str) -> Silence | None:
        with self._lock:
            return self._silences.pop(silence_id, None)

    def all(self) -> list[Silence]:
        with self._lock:
            return sorted(self._silences.values(), key=lambda s: (s.starts_at, s.id))

    def silenced_by(self, labels: Mapping[str, str], now: float) -> list[str]:
        """Ids of the active silences that mute an alert with ``labels``."""
        with self._lock:
            return [s.id for s in self._silences.values() if s.mutes(labels, now)]

    def expired_before(self, when: float) -> list[str]:
        """Ids of API silences that ended before ``when`` (for clean-up)."""
        with self._lock:
            return [s.id for s in self._silences.values() if s.source == "api"
                    and s.ends_at is not None and s.ends_at < when]
