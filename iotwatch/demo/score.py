"""Score a demo run: injected faults against fired alerts, and alerts against deliveries.

Pure logic on plain values (times are epoch seconds of the readings, not the wall clock),
so it is tested with tables of cases.

>>> fault = Fault(("plant", "boiler-1", "temperature"), "spike", start=100.0, end=110.0)
>>> alerts = [AlertSeen(("plant", "boiler-1", "temperature"), "f1", "firing", at=104.0),
...           AlertSeen(("plant", "pump-1", "power"), "f2", "firing", at=300.0)]
>>> result = score_faults([fault], alerts, grace_s=30.0)
>>> [(m.fault.kind, m.delay_s) for m in result.matches], [a.fingerprint for a in result.false_alarms]
([('spike', 4.0)], ['f2'])

With the wall-clock times the monitor saw things (the first faulty reading on the broker,
the alert), the delay a user waits is measured too:

>>> seen = Fault(fault.stream, "spike", 100.0, 110.0, seen=5000.0)
>>> alert = AlertSeen(fault.stream, "f1", "firing", at=100.0, received=5000.25)
>>> score_faults([seen], [alert], grace_s=30.0).matches[0].wall_delay_s
0.25
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

Stream = tuple[str, str, str]      # site, device, metric


@dataclass(frozen=True)
class Fault:
    """One injected fault (ground truth from the publisher)."""

    stream: Stream
    kind: str
    start: float
    end: float
    seen: float | None = None  # wall time the first reading of the fault reached the monitor


@dataclass(frozen=True)
class AlertSeen:
    """One alert message on the alert topic: ``at`` is when it fired (reading time)."""

    stream: Stream
    fingerprint: str
    state: str
    at: float
    received: float | None = None  # wall time it reached the monitor


@dataclass(frozen=True)
class Match:
    fault: Fault
    alert: AlertSeen | None
    rejected: bool = False     # a malformed reading the detector dead-lettered

    @property
    def detected(self) -> bool:
        """An alert fired for it (a dead-lettered reading is ``rejected``, not detected)."""
        return self.alert is not None

    @property
    def caught(self) -> bool:
        return self.alert is not None or self.rejected

    @property
    def delay_s(self) -> float | None:
        """Plant time from the fault's start to the alert (0: on the fault's first reading)."""
        return None if self.alert is None else max(0.0, self.alert.at - self.fault.start)

    @property
    def wall_delay_s(self) -> float | None:
        """Measured: from the fault's first reading on the broker to its alert there."""
        if self.alert is None or self.alert.received is None or self.fault.seen is None:
            return None
        return max(0.0, self.alert.received - self.fault.seen)


@dataclass(frozen=True)
class FaultScore:
    matches: list[Match]
    false_alarms: list[AlertSeen]

    @property
    def detected(self) -> int:
        """Faults an alert fired for."""
        return sum(m.detected for m in self.matches)

    @property
    def rejected(self) -> int:
        """Faults whose malformed reading the detector dead-lettered (and did not alert)."""
        return sum(m.rejected and not m.detected for m in self.matches)

    @property
    def missed(self) -> list[Fault]:
        return [m.fault for m in self.matches if not m.caught]

    @property
    def delays(self) -> list[float]:
        return [m.delay_s for m in self.matches if m.delay_s is not None]


def score_faults(faults: Iterable[Fault], alerts: Iterable[AlertSeen], grace_s: float,
                 rejected: Iterable[Stream] = ()) -> FaultScore:
    """Match each fault to the first firing alert of its stream inside its window.

    A fault's window runs from its start to ``grace_s`` after its end (detectors need a few
    readings). A firing alert inside no fault window of its stream is a false alarm. A
    ``garbage`` fault also counts as caught when its stream is among the ``rejected``
    (the detector dead-lettered its malformed reading).

    >>> s = ("a", "b", "c")
    >>> late = score_faults([Fault(s, "drift", 0.0, 10.0)], [AlertSeen(s, "f", "firing", 45.0)], 30.0)
    >>> late.detected, len(late.false_alarms)
    (0, 1)
    >>> garbage = score_faults([Fault(s, "garbage", 5.0, 5.0)], [], 30.0, rejected=[s])
    >>> garbage.detected, garbage.rejected, garbage.missed
    (0, 1, [])
    """
    faults = sorted(faults, key=lambda f: f.start)
    firing = sorted((a for a in alerts if a.state == "firing"), key=lambda a: a.at)
    dead_lettered = set(rejected)
    matches = []
    for fault in faults:
        first = next((a for a in firing if a.stream == fault.stream
                      and fault.start <= a.at <= fault.end + grace_s), None)
        matches.append(Match(fault, first, fault.kind == "garbage"
                             and fault.stream in dead_lettered))
    false_alarms = [a for a in firing
                    if not any(a.stream == f.stream and f.start <= a.at <= f.end + grace_s
                               for f in faults)]
    return FaultScore(matches, false_alarms)


@dataclass(frozen=True)
class DeliveryScore:
    """Which alert notifications (fingerprint, state) each receiver got."""

    expected: set[tuple[str, str]]
    delivered: dict[str, set[tuple[str, str]]] = field(default_factory=dict)

    def missing(self, receiver: str) -> set[tuple[str, str]]:
        return self.expected - self.delivered.get(receiver, set())

    @property
    def complete(self) -> bool:
        return bool(self.delivered) and all(not self.missing(r) for r in self.delivered)


def score_deliveries(alerts: Iterable[AlertSeen],
                     delivered: dict[str, Iterable[tuple[str, str]]]) -> DeliveryScore:
    """Every alert that fired, and the state each alert ended in, must reach every receiver.

    ``alerts`` are in the order they were published. A resolve followed by a new firing
    of the same alert within the alerting service's group interval is legitimately folded
    into one notification (as Alertmanager does), so only the firing and the last state of
    each alert are required.

    >>> seen = [AlertSeen(("a", "b", "c"), "f1", "firing", 1.0)]
    >>> result = score_deliveries(seen, {"webhook": [("f1", "firing")], "email": []})
    >>> result.complete, sorted(result.missing("email"))
    (False, [('f1', 'firing')])
    >>> flapping = seen + [AlertSeen(("a", "b", "c"), "f1", "resolved", 2.0),
    ...                    AlertSeen(("a", "b", "c"), "f1", "firing", 3.0)]
    >>> sorted(score_deliveries(flapping, {}).expected)
    [('f1', 'firing')]
    """
    last: dict[str, str] = {}
    expected: set[tuple[str, str]] = set()
    for alert in alerts:
        last[alert.fingerprint] = alert.state
        if alert.state == "firing":
            expected.add((alert.fingerprint, "firing"))
    expected |= set(last.items())
    return DeliveryScore(expected, {name: set(items) for name, items in delivered.items()})
