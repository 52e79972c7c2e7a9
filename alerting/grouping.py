"""Aggregation groups: the alerts of one route and group key, flushed on a timetable.

Alertmanager's timetable: a new group waits ``group_wait_s`` after its first alert (so
alerts that fire together go out together), then is flushed every ``group_interval_s``
while it holds alerts. Whether a flush sends anything is the de-duplication stage's
decision (``alerting.dedup``). A resolved alert leaves its group once a flush carrying
it has been handled (``Grouper.done``). Pure: the caller passes the time.

An alert is its fingerprint, and it is in one group per route it matches. A new version
whose labels move it (say severity warning -> critical under ``group_by: ["..."]``)
leaves its old group at once. If the old group's receiver also gets the new group, the
alert goes silently: the new group tells the change and, later, the resolve (the
notification log knows the receiver heard of it elsewhere). If the receiver does not
follow it, the old group keeps a resolved copy, notified once like any resolve, as
Alertmanager would for a label set that went away.

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
from dataclasses import dataclass, field, replace

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
    # Firing alerts whose labels changed in this group since its last flush: news.
    changed: frozenset[str] = frozenset()
    # fingerprint -> every group holding that alert now (this one included, unless the
    # flush carries only the resolved copy of an alert that moved away).
    holders: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Alerts that moved from this group to another of the same receiver and are still
    # held there: their "firing" stays in this group's log until the new group took over.
    moved_out: frozenset[str] = frozenset()


@dataclass
class Group:
    route: Route
    key: str
    labels: dict[str, str]
    created_at: float
    next_flush_at: float
    alerts: dict[str, Alert] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)
    moved_out: set[str] = field(default_factory=set)


class Grouper:
    """Every aggregation group, keyed by group key (which includes the route id)."""

    def __init__(self, root: Route) -> None:
        self.root = root
        self._groups: dict[str, Group] = {}
        self._where: dict[str, set[str]] = {}  # fingerprint -> keys of the groups holding it

    def insert(self, alert: Alert, labels: Mapping[str, str], now: float) -> list[Route]:
        """Put ``alert`` (replacing its previous version) into the groups its routes give."""
        fingerprint = alert.fingerprint
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
            held = group.alerts.get(fingerprint)
            if held is not None and held.all_labels != alert.all_labels:
                group.changed.add(fingerprint)  # e.g. warning -> critical within the group
            group.alerts[fingerprint] = alert
            group.moved_out.discard(fingerprint)
        receivers = {route.receiver for route in routes}
        for old_key in self._where.get(fingerprint, set()) - keys:
            self._leave(old_key, fingerprint, follows=receivers, now=now)
        self._where[fingerprint] = keys
        return routes

    def next_flush_at(self) -> float | None:
        return min((g.next_flush_at for g in self._groups.values()), default=None)

    def due(self, now: float) -> list[Flush]:
        """Snapshots of every group whose flush time has come; their timers restart."""
        flushes = []
        for group in self._groups.values():
            if group.next_flush_at <= now:
                holders = {fp: frozenset(self._where.get(fp, ())) for fp in group.alerts}
                group.moved_out = {fp for fp in group.moved_out
                                   if fp not in group.alerts and self._where.get(fp)}
                flushes.append(Flush(group.route, group.key, dict(group.labels),
                                     tuple(group.alerts.values()), now,
                                     frozenset(group.changed), holders,
                                     frozenset(group.moved_out)))
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
            if group.alerts.get(alert.fingerprint) != alert:
                continue  # a newer version arrived since: still to be told
            group.changed.discard(alert.fingerprint)
            if alert.state == "resolved":
                held_here = self._remove(group.key, alert.fingerprint)
                if held_here and not self._where.get(alert.fingerprint):
                    self._where.pop(alert.fingerprint, None)
                    forgotten.add(alert.fingerprint)
        return forgotten

    def groups(self) -> Iterator[Group]:
        return iter(list(self._groups.values()))

    def holds(self, fingerprint: str) -> bool:
        return bool(self._where.get(fingerprint))

    def _leave(self, key: str, fingerprint: str, follows: set[str], now: float) -> None:
        """The alert moved out of group ``key``; ``follows``: the receivers it goes to now."""
        group = self._groups.get(key)
        held = group.alerts.get(fingerprint) if group is not None else None
        if group is None or held is None:
            return
        if group.route.receiver in follows:
            group.moved_out.add(fingerprint)
            self._remove(key, fingerprint)
            return
        # Its receiver no longer gets this alert: tell it the alert it heard of is over.
        if held.state == "firing":
            group.alerts[fingerprint] = replace(held, state="resolved", ends_at=now)
        group.changed.discard(fingerprint)
        self._where.get(fingerprint, set()).discard(key)

    def _remove(self, key: str, fingerprint: str) -> bool:
        """Take the alert out of group ``key``; True if the group held the alert itself
        (not the resolved copy left behind when it moved)."""
        group = self._groups.get(key)
        if group is not None:
            group.alerts.pop(fingerprint, None)
            group.changed.discard(fingerprint)
            if not group.alerts:
                del self._groups[key]
        holders = self._where.get(fingerprint)
        if holders is None or key not in holders:
            return False
        holders.discard(key)
        return True
