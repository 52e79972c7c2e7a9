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

>>> entry = LogEntry(frozenset({"a"}), frozenset(), sent_at=100.0, seq=1)
>>> needs_update(entry, {"a"}, set(), send_resolved=True, repeat_interval_s=3600, now=200.0)
False
>>> needs_update(entry, {"a"}, set(), send_resolved=True, repeat_interval_s=3600, now=3700.0)
True
>>> needs_update(entry, set(), {"a"}, send_resolved=True, repeat_interval_s=3600, now=200.0)
True
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection, Iterable
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
                 *, send_resolved: bool, repeat_interval_s: float, now: float) -> bool:
    """Whether a group with these firing/resolved fingerprints must be notified now."""
    if entry is None:
        return len(firing) > 0
    if not set(firing) <= entry.firing:
        return True
    if not firing:
        # All resolved: tell the receiver once, if it was told something was firing.
        return len(entry.firing) > 0
    if send_resolved and not set(resolved) <= entry.resolved:
        return True
    return entry.sent_at + repeat_interval_s <= now


@dataclass(frozen=True)
class Decision:
    """Send ``notification`` (None: nothing to send) and record ``entry`` in the log."""

    target: Target
    group_key: str
    notification: Notification | None
    entry: LogEntry


def _order(alert: Alert) -> tuple:
    return (alert.state != "firing", alert.site, alert.device, alert.metric, alert.rule,
            alert.fingerprint)


class Deduplicator:
    """Decides per target and group, reading the log through ``lookup``.

    ``lookup(target, group_key)`` returns the last ``LogEntry`` or None; ``clock`` gives
    the time; ``key`` gives an alert's identity (its fingerprint).
    """

    def __init__(self, lookup: Callable[[Target, str], LogEntry | None],
                 clock: Callable[[], float],
                 key: Callable[[Alert], str] = operator.attrgetter("fingerprint")) -> None:
        self.lookup = lookup
        self.clock = clock
        self.key = key

    def decide(self, target: Target, group_key: str, group_labels: dict[str, str],
               alerts: Iterable[Alert], *, send_resolved: bool, repeat_interval_s: float,
               max_alerts: int = 0) -> Decision | None:
        """None when nothing is to be done; else what to send and log."""
        alerts = sorted(alerts, key=_order)
        firing = frozenset(self.key(a) for a in alerts if a.state == "firing")
        resolved = frozenset(self.key(a) for a in alerts if a.state == "resolved")
        entry = self.lookup(target, group_key)
        now = self.clock()
        if not needs_update(entry, firing, resolved, send_resolved=send_resolved,
                            repeat_interval_s=repeat_interval_s, now=now):
            return None
        seq = entry.seq if entry is not None else 0
        to_send = [a for a in alerts if a.state == "firing" or send_resolved]
        if not to_send:
            return Decision(target, group_key, None, LogEntry(firing, resolved, now, seq))
        truncated = 0
        if max_alerts and len(to_send) > max_alerts:
            truncated = len(to_send) - max_alerts
            to_send = to_send[:max_alerts]
        notification = Notification(target, group_key, dict(group_labels), tuple(to_send),
                                    seq + 1, now, truncated)
        return Decision(target, group_key, notification,
                        LogEntry(firing, resolved, now, seq + 1))
