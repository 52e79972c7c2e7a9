"""Aggregation groups: the alerts of one route and group key, flushed on a timetable.

Alertmanager's timetable: a new group waits ``group_wait_s`` after its first alert (so
alerts that fire together go out together), then is flushed every ``group_interval_s``
while it holds alerts. Whether a flush sends anything is the de-duplication stage's
decision (``alerting.dedup``). A resolved alert leaves its group once a flush carrying
it has been handled (``Grouper.done``). Pure: the caller passes the time.

>>> from alerting.config import RouteSettings
>>> from alerting.routing import build_routes
>>> from iotwatch.contracts import Alert
>>> root = build_routes(RouteSettings(receiver="ops", group_by=["site"], group_wait_s=10,
...                                   group_interval_s=60))
>>> grouper = Grouper(root)
>>> alert = Alert("fp1", "firing", "critical", "plant-1", "boiler-1", "temperature",
...               "anomaly", 93.4, 0.99, 0.9, 100.0, 100.0)
>>> [r.receiver for r in grouper.insert(alert, alert.all_labels, now=1000.0)]
['ops']
>>> grouper.due(now=1009.0), grouper.next_flush_at()
([], 1010.0)
>>> [(f.group_key, len(f.alerts)) for f in grouper.due(now=1010.0)]
[('{}:{site="plant-1"}', 1)]
>>> grouper.next_flush_at()
1070.0
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from alerting.routing import Route
from iotwatch.contracts import Alert


@dataclass(frozen=True)
class Flush:
    """What one group holds at a flush: to be muted, de-duplicated and notified."""

    route: Route
    group_key: str
    group_labels: dict[str, str]
    alerts: tuple[Alert, ...]
    at: float


@dataclass
class Group:
    route: Route
    key: str
    labels: dict[str, str]
    created_at: float
    next_flush_at: float
    alerts: dict[str, Alert] = field(default_factory=dict)


class Grouper:
    """Every aggregation group, keyed by group key (which includes the route id)."""

    def __init__(self, root: Route) -> None:
        self.root = root
        self._groups: dict[str, Group] = {}
        self._where: dict[str, set[str]] = {}  # fingerprint -> keys of the groups holding it

    def insert(self, alert: Alert, labels: Mapping[str, str], now: float) -> list[Route]:
        """Put ``alert`` (replacing its previous version) into the groups its routes give."""
        routes = self.root.match(labels)
        keys = set()
        for route in routes:
            key = route.group_key(labels)
            keys.add(key)
            group = self._groups.get(key)
            if group is None:
                group = Group(route, key, route.group_labels(labels), now,
                              now + route.group_wait_s)
                self._groups[key] = group
            group.alerts[alert.fingerprint] = alert
        # An alert whose labels changed (say warning -> critical) leaves its old groups.
        for old_key in self._where.get(alert.fingerprint, set()) - keys:
            self._remove(old_key, alert.fingerprint)
        self._where[alert.fingerprint] = keys
        return routes

    def next_flush_at(self) -> float | None:
        return min((g.next_flush_at for g in self._groups.values()), default=None)

    def due(self, now: float) -> list[Flush]:
        """Snapshots of every group whose flush time has come; their timers restart."""
        flushes = []
        for group in self._groups.values():
            if group.next_flush_at <= now:
                flushes.append(Flush(group.route, group.key, dict(group.labels),
                                     tuple(group.alerts.values()), now))
                group.next_flush_at = now + group.route.group_interval_s
        return flushes

    def done(self, flush: Flush) -> set[str]:
        """The flush was handled: drop its resolved alerts unless they changed since.

        Returns the fingerprints no group holds any more (the caller may forget them).
        """
        group = self._groups.get(flush.group_key)
        if group is None:
            return set()
        forgotten = set()
        for alert in flush.alerts:
            if alert.state == "resolved" and group.alerts.get(alert.fingerprint) == alert:
                self._remove(group.key, alert.fingerprint)
                if not self._where.get(alert.fingerprint):
                    self._where.pop(alert.fingerprint, None)
                    forgotten.add(alert.fingerprint)
        return forgotten

    def groups(self) -> Iterator[Group]:
        return iter(list(self._groups.values()))

    def holds(self, fingerprint: str) -> bool:
        return bool(self._where.get(fingerprint))

    def _remove(self, key: str, fingerprint: str) -> None:
        group = self._groups.get(key)
        if group is not None:
            group.alerts.pop(fingerprint, None)
            if not group.alerts:
                del self._groups[key]
        holders = self._where.get(fingerprint)
        if holders is not None:
            holders.discard(key)
