"""De-duplication: does this flush tell the receiver anything new?

The notification log remembers, per target and group, which alert fingerprints were
firing and resolved in the last notification and when it went out. A flush is sent when
(Alertmanager's rules, ``needs_update``):

- the group was never notified and something fires;
- an alert fires that was not firing in the last notification;
- everything is resolved now and the last notification had firing alerts (the resolve,
  sent once; with ``send_resolved: false`` the log is updated but nothing is sent);
- with ``send_resolved``, an alert resolved that the last notification did not list as
  resolved;
- nothing changed but ``repeat_interval_s`` has passed since the last notification.

An alert is its fingerprint, and its labels may change while it fires. A firing alert
whose labels changed (``changed``), or which the target last heard of from another
group (``heard_elsewhere``: it moved here), is news. A resolve is owed to a target that
heard of the alert firing here or in the group it moved from; when the new group has
told the target, the old group's log entry forgets the alert (``Decision.released``), so
each target gets one resolve per episode.

>>> entry = LogEntry(frozenset({"a"}), frozenset(), sent_at=100.0, seq=1)
>>> needs_update(entry, {"a"}, set(), send_resolved=True, repeat_interval_s=3600, now=200.0)
False
>>> needs_update(entry, {"a"}, set(), send_resolved=True, repeat_interval_s=3600, now=3700.0)
True
>>> needs_update(entry, set(), {"a"}, send_resolved=True, repeat_interval_s=3600, now=200.0)
True
>>> needs_update(None, set(), {"a"}, send_resolved=True, repeat_interval_s=3600, now=200.0,
...              heard_elsewhere={"a"})
True
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass

from alerting.notification import Notification, Target
from iotwatch.contracts import Alert


@dataclass(frozen=True)
class LogEntry:
    """The last notification of one group to one target."""

    firing: frozenset[str]
    resolved: frozenset[str]
    sent_at: float
    seq: int


def needs_update(entry: LogEntry | None, firing: Collection[str], resolved: Collection[str],
                 *, send_resolved: bool, repeat_interval_s: float, now: float,
                 changed: Collection[str] = (), heard_elsewhere: Collection[str] = ()) -> bool:
    """Whether a group with these firing/resolved fingerprints must be notified now.

    ``changed``: alerts whose labels changed since the last flush; ``heard_elsewhere``:
    alerts the target was last told were firing by another group (they moved here).
    """
    firing, resolved = set(firing), set(resolved)
    owed_resolve = bool(resolved & set(heard_elsewhere))
    if entry is None:
        return len(firing) > 0 or owed_resolve
    if not firing <= entry.firing or firing & (set(changed) | set(heard_elsewhere)):
        return True
    if not firing:
        # All resolved: tell the receiver once, if it was told something was firing.
        return len(entry.firing) > 0 or owed_resolve
    if send_resolved and not resolved <= entry.resolved:
        return True
    return entry.sent_at + repeat_interval_s <= now


@dataclass(frozen=True)
class Decision:
    """Send ``notification`` (None: nothing to send) and record ``entry`` in the log.

    ``released``: log entries of other groups of the target, rewritten without the alerts
    that moved from them to this group (this group now answers for them).
    """

    target: Target
    group_key: str
    notification: Notification | None
    entry: LogEntry
    released: tuple[tuple[str, LogEntry], ...] = ()


def _order(alert: Alert) -> tuple:
    return (alert.state != "firing", alert.site, alert.device, alert.metric, alert.rule,
            alert.fingerprint)


class Deduplicator:
    """Decides per target and group, reading the log through ``lookup`` and ``told``.

    ``lookup(target, group_key)`` returns the last ``LogEntry`` or None;
    ``told(target, fingerprints)`` returns, per fingerprint, the keys of the groups whose
    last notification to ``target`` listed it firing; ``clock`` gives the time; ``key``
    gives an alert's identity (its fingerprint).
    """

    def __init__(self, lookup: Callable[[Target, str], LogEntry | None],
                 clock: Callable[[], float],
                 key: Callable[[Alert], str] = operator.attrgetter("fingerprint"),
                 told: Callable[[Target, Collection[str]], Mapping[str, Collection[str]]]
                 | None = None) -> None:
        self.lookup = lookup
        self.clock = clock
        self.key = key
        self.told = told or (lambda target, fingerprints: {})

    def decide(self, target: Target, group_key: str, group_labels: dict[str, str],
               alerts: Iterable[Alert], *, send_resolved: bool, repeat_interval_s: float,
               max_alerts: int = 0, changed: Collection[str] = (),
               holders: Mapping[str, Collection[str]] | None = None,
               moved_out: Collection[str] = ()) -> Decision | None:
        """None when nothing is to be done; else what to send and log.

        ``changed``, ``holders`` and ``moved_out`` come from the flush
        (``alerting.grouping.Flush``).
        """
        alerts = sorted(alerts, key=_order)
        firing = frozenset(self.key(a) for a in alerts if a.state == "firing")
        resolved = frozenset(self.key(a) for a in alerts if a.state == "resolved")
        entry = self.lookup(target, group_key)
        # Moved-out alerts are another group's business now, but their "firing" stays
        # in this log entry until that group took over (it looks for it here).
        handing_over = entry.firing & frozenset(moved_out) - firing if entry else frozenset()
        if entry is not None:
            entry = LogEntry(entry.firing - handing_over, entry.resolved, entry.sent_at,
                             entry.seq)
        now = self.clock()
        moved_from = self._moved_from(target, group_key, firing | resolved, holders or {})
        news = needs_update(entry, firing, resolved, send_resolved=send_resolved,
                            repeat_interval_s=repeat_interval_s, now=now,
                            changed=changed, heard_elsewhere=moved_from)
        released = self._released(target, moved_from)
        if not news:
            if not released or entry is None:
                return None
            return Decision(target, group_key, None,  # only the hand-over
                            LogEntry(entry.firing | handing_over, entry.resolved,
                                     entry.sent_at, entry.seq), released)
        seq = entry.seq if entry is not None else 0
        to_send = [a for a in alerts if a.state == "firing" or send_resolved]
        if not to_send:
            return Decision(target, group_key, None,
                            LogEntry(firing | handing_over, resolved, now, seq), released)
        truncated = 0
        if max_alerts and len(to_send) > max_alerts:
            truncated = len(to_send) - max_alerts
            to_send = to_send[:max_alerts]
        notification = Notification(target, group_key, dict(group_labels), tuple(to_send),
                                    seq + 1, now, truncated)
        return Decision(target, group_key, notification,
                        LogEntry(firing | handing_over, resolved, now, seq + 1), released)

    def _moved_from(self, target: Target, group_key: str, fingerprints: frozenset[str],
                    holders: Mapping[str, Collection[str]]) -> dict[str, set[str]]:
        """fingerprint -> the groups it left whose last word to ``target`` was "firing"."""
        if not fingerprints:
            return {}
        moved = {}
        for fingerprint, keys in self.told(target, fingerprints).items():
            left = set(keys) - {group_key} - set(holders.get(fingerprint, ()))
            if left:
                moved[fingerprint] = left
        return moved

    def _released(self, target: Target, moved_from: Mapping[str, set[str]]
                  ) -> tuple[tuple[str, LogEntry], ...]:
        gone: dict[str, set[str]] = {}
        for fingerprint, keys in moved_from.items():
            for key in keys:
                gone.setdefault(key, set()).add(fingerprint)
        released = []
        for key, fingerprints in sorted(gone.items()):
            old = self.lookup(target, key)
            if old is not None:
                released.append((key, LogEntry(old.firing - fingerprints, old.resolved,
                                               old.sent_at, old.seq)))
        return tuple(released)
