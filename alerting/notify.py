"""The notify stage: what happens to a group at each flush.

mute (silences, then inhibition) -> de-duplicate per target -> outbox (with the
notification log, in one transaction) -> wake the targets' delivery workers.

>>> from alerting.silences import Silences
>>> from alerting.inhibit import Inhibitor
>>> from iotwatch.contracts import Alert
>>> alert = Alert("fp1", "firing", "warning", "s", "d", "m", "anomaly", 9.0, 0.9, 0.5, 10.0, 12.0)
>>> critical = Alert("fp2", "firing", "critical", "s", "d", "n", "anomaly", 9.0, 0.9, 0.5, 10.0, 12.0)
>>> from alerting.config import InhibitRuleSettings
>>> inhibitor = Inhibitor.from_settings([InhibitRuleSettings(
...     source_matchers=["severity=critical"], target_matchers=["severity=warning"],
...     equal=["device"])])
>>> kept, muted = mute([alert, critical], Silences(), inhibitor,
...                    [(critical.fingerprint, critical.all_labels)], now=20.0)
>>> [a.fingerprint for a in kept], muted
(['fp2'], {'fp1': 'inhibited'})
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from alerting.dedup import Deduplicator
from alerting.grouping import Flush
from alerting.inhibit import Inhibitor
from alerting.metrics import Metrics
from alerting.notification import Target
from alerting.outbox import Outbox
from alerting.receivers import TargetSpec
from alerting.silences import Silences
from iotwatch.contracts import Alert

log = logging.getLogger(__name__)


def mute(alerts: Iterable[Alert], silences: Silences, inhibitor: Inhibitor,
         firing: list[tuple[str, dict[str, str]]], now: float
         ) -> tuple[list[Alert], dict[str, str]]:
    """Split ``alerts`` into those to notify and fingerprint -> why the others are muted."""
    kept, muted = [], {}
    for alert in alerts:
        labels = alert.all_labels
        if silences.silenced_by(labels, now):
            muted[alert.fingerprint] = "silenced"
        elif inhibitor.inhibited_by(labels, alert.fingerprint, firing) is not None:
            muted[alert.fingerprint] = "inhibited"
        else:
            kept.append(alert)
    return kept, muted


class NotifyStage:
    """Called with each flush by the dispatcher; returns once the outcome is durable."""

    def __init__(self, targets: Mapping[str, list[TargetSpec]], silences: Silences,
                 inhibitor: Inhibitor, firing: Callable[[], list[tuple[str, dict[str, str]]]],
                 dedup: Deduplicator, outbox: Outbox, metrics: Metrics,
                 wake: Callable[[Target], None], clock: Callable[[], float]) -> None:
        self.targets = targets
        self.silences = silences
        self.inhibitor = inhibitor
        self.firing = firing
        self.dedup = dedup
        self.outbox = outbox
        self.metrics = metrics
        self.wake = wake
        self.clock = clock

    def __call__(self, flush: Flush) -> None:
        kept, muted = mute(flush.alerts, self.silences, self.inhibitor, self.firing(),
                           self.clock())
        for reason in muted.values():
            self.metrics.muted.labels(reason).inc()
        if not kept:
            return  # everything muted: nothing to tell, and nothing to remember
        decisions = []
        for spec in self.targets.get(flush.route.receiver, []):
            decision = self.dedup.decide(
                spec.target, flush.group_key, flush.group_labels, kept,
                send_resolved=spec.send_resolved, repeat_interval_s=flush.route.repeat_interval_s,
                max_alerts=spec.max_alerts, changed=flush.changed, holders=flush.holders,
                moved_out=flush.moved_out)
            if decision is not None:
                decisions.append(decision)
        if not decisions:
            return
        self.outbox.enqueue(decisions)
        for decision in decisions:
            note = decision.notification
            if note is None:
                continue
            self.metrics.queued.labels(note.target.receiver, note.target.integration).inc()
            log.debug("queued %s notification #%d of %s for %s (%d alert(s))", note.status,
                      note.seq, note.group_key, note.target.name, len(note.alerts))
            self.wake(note.target)
