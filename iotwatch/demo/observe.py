"""What the demo sees on the broker: readings per stream, alerts, injected faults, statuses.

``Traffic`` is fed every message under the topic prefix (the ``monitor`` role reads them
all) and keeps the counts the live view and the summary need. It does no I/O and takes
the receive time as an argument, so it is tested without a broker.

>>> traffic = Traffic(Topics("iotwatch"))
>>> traffic.on_message("iotwatch/readings/plant/boiler-1", b'{"ts": 1, "temperature": 21.5, "pressure": 2.0}', now=10.0)
>>> traffic.on_message("iotwatch/readings/plant/boiler-1/power", b'{"ts": 1, "value": 3.5}', now=10.5)
>>> traffic.readings_total, sorted(traffic.streams)
(3, [('plant', 'boiler-1', 'power'), ('plant', 'boiler-1', 'pressure'), ('plant', 'boiler-1', 'temperature')])
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson

from iotwatch.demo.score import AlertSeen, Fault, Stream
from iotwatch.timeparse import TimestampError, parse_timestamp
from iotwatch.topics import Topics

_RESERVED = frozenset({"ts", "seq", "units"})
ARRIVALS_KEPT = 2000  # per stream: (reading ts, wall time seen), to time detections


@dataclass
class StreamStats:
    count: int = 0
    last_value: float | None = None
    firing: bool = False
    alerts: int = 0


@dataclass
class Traffic:
    """Counts of everything seen on the broker; safe to feed from the MQTT thread."""

    topics: Topics
    rate_window_s: float = 5.0
    streams: dict[Stream, StreamStats] = field(default_factory=dict)
    alerts: list[AlertSeen] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)      # service -> count
    rejected_streams: set[Stream] = field(default_factory=set)
    arrivals: dict[Stream, deque] = field(default_factory=dict)  # (ts, wall) per stream
    readings_total: int = 0
    unreadable: int = 0
    _recent: deque = field(default_factory=deque)       # (receive time, readings)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def on_message(self, topic: str, payload: bytes, now: float) -> None:
        prefix = self.topics.prefix + "/"
        if not topic.startswith(prefix):
            return
        kind, _, rest = topic[len(prefix):].partition("/")
        try:
            body = orjson.loads(payload) if payload else None
        except orjson.JSONDecodeError:
            body = None
        with self._lock:
            if kind == "readings":
                self._reading(rest.split("/"), body, now)
            elif kind == "alerts":
                self._alert(rest.split("/"), body, now)
            elif kind == "truth":
                self._truth(rest.split("/"), body)
            elif kind == "status" and isinstance(body, dict):
                self.statuses[rest] = str(body.get("state", "?"))
            elif kind == "deadletter":
                self._dead_letter(rest, body)

    def rate(self, now: float) -> float:
        """Readings per second over the last ``rate_window_s`` seconds."""
        with self._lock:
            self._expire(now)
            return sum(n for _, n in self._recent) / self.rate_window_s

    def firing(self) -> list[Stream]:
        with self._lock:
            return sorted(s for s, stats in self.streams.items() if stats.firing)

    def snapshot_alerts(self) -> list[AlertSeen]:
        with self._lock:
            return list(self.alerts)

    def snapshot_faults(self) -> list[Fault]:
        with self._lock:
            return list(self.faults)

    # -- one handler per topic family --------------------------------------------------

    def _reading(self, levels: list[str], body: Any, now: float) -> None:
        if not isinstance(body, dict) or len(levels) not in (2, 3):
            self.unreadable += 1
            return
        if len(levels) == 3:
            values = {levels[2]: body.get("value")}
        else:
            values = {k: v for k, v in body.items() if k not in _RESERVED}
        ts = _timestamp_or_none(body.get("ts"))
        for metric, value in values.items():
            stream = (levels[0], levels[1], metric)
            stats = self.streams.setdefault(stream, StreamStats())
            stats.count += 1
            if ts is not None:
                arrivals = self.arrivals.get(stream)
                if arrivals is None:
                    arrivals = self.arrivals[stream] = deque(maxlen=ARRIVALS_KEPT)
                arrivals.append((ts, now))
            if isinstance(value, int | float) and not isinstance(value, bool):
                stats.last_value = float(value)
        self.readings_total += len(values)
        self._recent.append((now, len(values)))
        self._expire(now)

    def _alert(self, levels: list[str], body: Any, now: float) -> None:
        if not isinstance(body, dict) or len(levels) != 3:
            self.unreadable += 1
            return
        stream = (levels[0], levels[1], levels[2])
        state = str(body.get("state"))
        try:
            at = parse_timestamp(body.get("ts") or body.get("starts_at"))
        except TimestampError:
            self.unreadable += 1
            return
        self.alerts.append(AlertSeen(stream, str(body.get("fingerprint")), state, at, now))
        stats = self.streams.setdefault(stream, StreamStats())
        stats.firing = state == "firing"
        stats.alerts += 1

    def _truth(self, levels: list[str], body: Any) -> None:
        if not isinstance(body, dict) or len(levels) != 3:
            self.unreadable += 1
            return
        try:
            start = parse_timestamp(body["start"])
            end = parse_timestamp(body["end"]) if body.get("end") is not None else start
        except (KeyError, TimestampError):
            self.unreadable += 1
            return
        stream = (levels[0], levels[1], levels[2])
        # When the fault's first reading reached the broker (labels come after the fault).
        seen = next((wall for ts, wall in self.arrivals.get(stream, ()) if ts >= start), None)
        self.faults.append(Fault(stream, str(body.get("kind")), start, end, seen))

    def _dead_letter(self, service: str, body: Any) -> None:
        self.dead_letters[service] = self.dead_letters.get(service, 0) + 1
        topic = body.get("topic") if isinstance(body, dict) else None
        if isinstance(topic, str):
            levels = topic.split("/")
            if len(levels) == 5 and levels[1] == "readings":
                self.rejected_streams.add((levels[2], levels[3], levels[4]))

    def snapshot_rejected(self) -> set[Stream]:
        with self._lock:
            return set(self.rejected_streams)

    def _expire(self, now: float) -> None:
        while self._recent and self._recent[0][0] < now - self.rate_window_s:
            self._recent.popleft()


def _timestamp_or_none(raw: Any) -> float | None:
    if raw is None:
        return None
    try:
        return parse_timestamp(raw)
    except TimestampError:
        return None
