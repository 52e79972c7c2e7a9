"""The alerting service's Prometheus metrics, in a registry of its own.

Outbox depth, active alerts and silences are read when scraped (from the callables
given), so they are never stale.

>>> metrics = Metrics(outbox_depth=lambda: {"ops/webhook": 2})
>>> metrics.rejected.labels("bad_alert").inc()
>>> text = metrics.exposition()
>>> b'iotwatch_alerting_alerts_rejected_total{reason="bad_alert"} 1.0' in text
True
>>> b'iotwatch_alerting_outbox_depth{integration="webhook",receiver="ops"} 2.0' in text
True
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from alerting.notification import Target

LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
                   3600.0, 14_400.0, 86_400.0)
PREFIX = "iotwatch_alerting_"
TARGET_LABELS = ("receiver", "integration")


class _Live(Collector):
    def __init__(self, outbox_depth: Callable[[], dict[str, int]],
                 active: Callable[[], dict[str, int]], silences: Callable[[], int]) -> None:
        self.outbox_depth = outbox_depth
        self.active = active
        self.silences = silences

    def collect(self):
        depth = GaugeMetricFamily(f"{PREFIX}outbox_depth",
                                  "notifications waiting in the outbox, per target",
                                  labels=TARGET_LABELS)
        for name, count in sorted(self.outbox_depth().items()):
            target = Target.parse(name)
            depth.add_metric([target.receiver, target.integration], count)
        yield depth
        active = GaugeMetricFamily(f"{PREFIX}alerts_active", "alerts held now, by state",
                                   labels=("state",))
        for state, count in sorted(self.active().items()):
            active.add_metric([state], count)
        yield active
        yield GaugeMetricFamily(f"{PREFIX}silences_active", "silences in force now",
                                value=self.silences())


class Metrics:
    """Counters and histograms of one alerting process."""

    def __init__(self, outbox_depth: Callable[[], dict[str, int]] = dict,
                 active: Callable[[], dict[str, int]] = dict,
                 silences: Callable[[], int] = lambda: 0) -> None:
        self.registry = registry = CollectorRegistry()

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(f"{PREFIX}{name}", doc, labels, registry=registry)

        self.received = counter("alerts_received", "valid alert messages received, by state",
                                ("state",))
        self.rejected = counter("alerts_rejected",
                                "alert messages rejected and dead-lettered, by reason",
                                ("reason",))
        self.stale = counter("alerts_stale", "alert messages older than (or the same as) the "
                             "version already held: redeliveries, out-of-order arrivals")
        self.routed = counter("alerts_routed", "alerts routed to a receiver", ("receiver",))
        self.muted = counter("alerts_muted",
                             "alerts left out of a group's notification, by reason",
                             ("reason",))
        self.queued = counter("notifications_queued", "notifications put in the outbox",
                              TARGET_LABELS)
        self.delivered = counter("notifications_delivered", "notifications delivered",
                                 TARGET_LABELS)
        self.attempts_failed = counter(
            "delivery_attempts_failed", "failed delivery attempts (retried or not), by reason",
            (*TARGET_LABELS, "reason"))
        self.failed = counter("notifications_failed",
                              "notifications given up (not retryable, or retried too long), "
                              "by reason", (*TARGET_LABELS, "reason"))
        self.store_errors = counter("store_errors",
                                    "alerts that could not be stored (left unacknowledged)")
        self.latency = Histogram(f"{PREFIX}delivery_latency_seconds",
                                 "time from a notification's queueing to its delivery",
                                 TARGET_LABELS, buckets=LATENCY_BUCKETS, registry=registry)
        registry.register(_Live(outbox_depth, active, silences))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
