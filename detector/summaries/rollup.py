"""Hourly and daily summaries of one stream, closed by reading time (pure: no I/O, no clock).

A period (UTC hour or UTC day) is open while readings of it arrive; the first reading of
a later period closes it and its summary is returned: mean, min, max, count, anomalies
(readings flagged anomalous), alerts (alerts that fired), ``sum`` for counters, and
``late``: readings that arrived for a period already closed. Those are counted in the
period open when they arrived, not added to their own (its point is already written);
a reading far ahead (a clock jump) closes the open periods like any later reading.

>>> rollup, closed = Rollup(counter=True), []
>>> for minute in range(0, 120, 30):
...     closed += rollup.add(minute * 60.0, float(minute), anomaly=minute == 30, alert=False)
>>> [(s.period, s.start, s.count, s.mean, s.anomalies, s.sum) for s in closed]
[('hour', 0.0, 2, 15.0, 1, 30.0)]
>>> rollup.add(1800.0, 99.0, anomaly=False, alert=False), rollup.hour.late
([], 1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

PERIODS = (("hour", 3600.0), ("day", 86400.0))


@dataclass(slots=True)
class Summary:
    """One closed period of one stream."""

    period: str
    start: float
    count: int
    mean: float
    min: float
    max: float
    anomalies: int
    alerts: int
    sum: float | None
    late: int


class _Open:
    __slots__ = ("alerts", "anomalies", "count", "high", "late", "length", "low", "name",
                 "start", "total")

    def __init__(self, name: str, length: float) -> None:
        self.name, self.length = name, length
        self.reset(-1.0)  # before any period (periods start at >= 0)

    def reset(self, start: float) -> None:
        self.start = start
        self.count = self.anomalies = self.alerts = self.late = 0
        self.total, self.low, self.high = 0.0, math.inf, -math.inf

    def state(self) -> list[Any]:
        empty = not self.count  # min/max are infinite then: JSON has no infinity
        return [self.start, self.count, self.anomalies, self.alerts, self.late, self.total,
                None if empty else self.low, None if empty else self.high]

    def load(self, state: list[Any]) -> None:
        (self.start, self.count, self.anomalies, self.alerts, self.late, self.total,
         low, high) = state
        self.low = math.inf if low is None else float(low)
        self.high = -math.inf if high is None else float(high)


class Rollup:
    """The open hour and day of one stream."""

    __slots__ = ("counter", "day", "hour")

    def __init__(self, counter: bool = False) -> None:
        self.counter = counter
        self.hour, self.day = _Open(*PERIODS[0]), _Open(*PERIODS[1])

    def add(self, ts: float, value: float, *, anomaly: bool, alert: bool) -> list[Summary]:
        """Add one reading; the summaries of the periods it closed (oldest first)."""
        closed = []
        for bucket in (self.hour, self.day):
            start = math.floor(ts / bucket.length) * bucket.length
            if start < bucket.start:
                bucket.late += 1
                continue
            if start > bucket.start:
                if bucket.count:
                    closed.append(self._summary(bucket))
                bucket.reset(start)
            if math.isfinite(value):
                bucket.count += 1
                bucket.total += value
                bucket.low = min(bucket.low, value)
                bucket.high = max(bucket.high, value)
            bucket.anomalies += anomaly
            bucket.alerts += alert
        return closed

    def _summary(self, bucket: _Open) -> Summary:
        return Summary(bucket.name, bucket.start, bucket.count, bucket.total / bucket.count,
                       bucket.low, bucket.high, bucket.anomalies, bucket.alerts,
                       bucket.total if self.counter else None, bucket.late)

    def flush(self) -> list[Summary]:
        """The open periods' summaries as they stand (offline: the end of a recording)."""
        return [self._summary(b) for b in (self.hour, self.day) if b.count]

    def state(self) -> dict[str, Any]:
        return {"counter": self.counter, "hour": self.hour.state(), "day": self.day.state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.hour.load(state["hour"])
        self.day.load(state["day"])
