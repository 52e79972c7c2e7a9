"""The detector's Prometheus metrics, in a registry of its own.

Each counter is advanced by one thread only (intake, processing or writing), so the
plain totals kept beside them for the ``iotwatch_service`` measurement need no lock.

>>> metrics = Metrics()
>>> metrics.count_rejected("bad_json")
>>> metrics.totals()["rejected"]
1
>>> b'iotwatch_detector_rejected_total{reason="bad_json"} 1.0' in metrics.exposition()
True
>>> tracker = SequenceTracker()
>>> for seq in (0, 1, 4):
...     tracker.observe("s/d/t", seq)
>>> metrics.watch_sequences(tracker)
>>> b'iotwatch_detector_sequence_skipped_total 2.0' in metrics.exposition()
True
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from detector.sequence import SequenceTracker

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
               5.0, 10.0, 30.0)


class Metrics:
    """Counters, gauges and histograms of one detector process."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(f"iotwatch_detector_{name}", doc, labels, registry=registry)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(f"iotwatch_detector_{name}", doc, registry=registry)

        self.messages = counter("messages_received", "MQTT messages taken from the broker")
        self.readings = counter("readings", "readings accepted and scored")
        self.rejected = counter("rejected", "messages rejected and dead-lettered, by reason",
                                ("reason",))
        self.points_written = counter("points_written", "points stored by the sink")
        self.points_spooled = counter("points_spooled", "points appended to the on-disk spool")
        self.points_replayed = counter("points_replayed",
                                       "points written from the spool after an outage")
        self.write_errors = counter("write_errors", "failed writes, by kind", ("kind",))
        self.alerts = counter("alerts", "alert transitions published, by state", ("state",))
        self.acks = counter("acks", "MQTT messages acknowledged to the broker")
        self.checkpoints = counter("checkpoints", "engine checkpoints written")
        self.engine_errors = counter("engine_errors",
                                     "readings the engine failed on (stored without scores)")
        self.streams_evicted = counter("streams_evicted",
                                       "idle streams saved to disk and dropped from memory")
        self.streams_restored = counter("streams_restored",
                                        "evicted streams loaded from disk when they came back")
        self.write_latency = Histogram("iotwatch_detector_write_seconds",
                                       "time of one write request to the sink",
                                       buckets=LATENCY_BUCKETS, registry=registry)
        self.processing_lag = Histogram(
            "iotwatch_detector_processing_lag_seconds",
            "time from arrival to the end of processing of each batch's oldest message",
            buckets=LAG_BUCKETS, registry=registry)
        self.ack_lag = Histogram(
            "iotwatch_detector_ack_lag_seconds",
            "time from arrival to acknowledgement (stored or spooled) of each batch's oldest "
            "message",
            buckets=LAG_BUCKETS, registry=registry)
        self.reading_age = gauge("reading_age_seconds",
                                 "arrival time minus the reading's own timestamp, last reading")
        self.streams = gauge("streams", "streams the engine keeps state for")
        self.stream_limit = gauge("stream_limit", "streams held in memory at most "
                                  "(limits.max_streams)")
        self.streams_on_disk = gauge("streams_on_disk",
                                     "evicted streams whose state waits on disk")
        self.queue_depth = gauge("queue_depth", "messages received but not processed yet")
        self.unacked = gauge("unacked_messages", "messages processed but not acknowledged yet")
        self.spool_points = gauge("spool_points", "points waiting in the spool")
        self.spool_batches = gauge("spool_batches", "batches waiting in the spool")
        self.spool_bytes = gauge("spool_bytes", "bytes of spool segments on disk")
        self.spool_age = gauge("spool_oldest_age_seconds",
                               "age of the oldest batch in the spool (0 when empty)")
        self.mqtt_connected = gauge("mqtt_connected", "1 while connected to the broker")
        self.sink_writable = gauge("sink_writable", "1 while the last write succeeded")
        self.checkpoint_age = gauge("checkpoint_age_seconds", "seconds since the last checkpoint")
        self.longest_pause = Gauge(
            "iotwatch_detector_longest_pause_seconds",
            "longest stretch since start the processing thread spent away from processing, "
            "by kind: checkpoint (one slice), write_stage (handing a batch over)",
            ("kind",), registry=registry)
        self._totals = {"readings_in": 0, "rejected": 0, "points_written": 0,
                        "alerts_fired": 0, "alerts_resolved": 0}
        self._spool_depth: Callable[[], int] = lambda: 0

    # -- counted events ----------------------------------------------------------------------

    def count_readings(self, n: int) -> None:
        self.readings.inc(n)
        self._totals["readings_in"] += n

    def count_rejected(self, reason: str, n: int = 1) -> None:
        self.rejected.labels(reason).inc(n)
        self._totals["rejected"] += n

    def count_written(self, points: int) -> None:
        self.points_written.inc(points)
        self._totals["points_written"] += points

    def count_alert(self, state: str) -> None:
        self.alerts.labels(state).inc()
        self._totals["alerts_fired" if state == "firing" else "alerts_resolved"] += 1

    def watch_spool(self, depth: Callable[[], int]) -> None:
        self._spool_depth = depth

    def watch_sequences(self, tracker: SequenceTracker) -> None:
        """Expose the tracker's counts (read at each scrape) as ``..._sequence_*``."""
        self.registry.register(_SequenceCollector(tracker))

    # -- read-outs ---------------------------------------------------------------------------

    def totals(self) -> dict[str, int]:
        """The cumulative counters written to the ``iotwatch_service`` measurement."""
        return {**self._totals, "spool_depth": self._spool_depth()}

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _SequenceCollector:
    """The sequence tracker's totals at scrape time (its counts live in the tracker)."""

    PREFIX = "iotwatch_detector_sequence_"
    COUNTERS = (
        ("skipped", "seq numbers a stream jumped over (each a reading missing, or late)"),
        ("out_of_order", "readings that came after a higher seq of their stream (late)"),
        ("duplicated", "readings whose seq their stream had already delivered"),
        ("restarts", "streams whose seq started again (a publisher restart)"),
    )

    def __init__(self, tracker: SequenceTracker) -> None:
        self.tracker = tracker

    def collect(self):
        totals = self.tracker.totals
        for name, doc in self.COUNTERS:
            yield CounterMetricFamily(self.PREFIX + name, doc, value=totals[name])
        yield GaugeMetricFamily(self.PREFIX + "missing",
                                "readings never received by seq (skipped minus late)",
                                value=totals["missing"])
        yield GaugeMetricFamily(self.PREFIX + "gap_ratio",
                                "missing per expected reading over the recent window",
                                value=self.tracker.gap_rate())
        yield GaugeMetricFamily(self.PREFIX + "degraded",
                                "1 while the gap ratio is above sequence.max_gap_rate",
                                value=1 if self.tracker.degraded else 0)
