"""Pieces both detector wirings share (``detector.app`` and ``detector.distributed.app``).

A service's app module is its one wiring point and nothing imports it; what the two
detector modes have in common lives here instead.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

from detector.config import DetectorFile, SequenceSettings
from detector.metrics import Metrics
from detector.sequence import LIKELY_CAUSE, SequenceTracker
from detector.worker import Cadence

log = logging.getLogger("detector.app")

STOP_TIMEOUT_S = 20.0


def guarded(target, stop: threading.Event, failed: list[str]):
    """A thread body that stops the service (exit 1, nothing acked is lost) on a bug."""

    def body() -> None:
        try:
            target()
        except Exception:
            log.exception("%s failed; stopping (unacknowledged messages will be redelivered)",
                          threading.current_thread().name)
            failed.append(threading.current_thread().name)
            stop.set()

    return body


def sequence_tracker(settings: SequenceSettings, metrics: Metrics) -> SequenceTracker | None:
    if not settings.enabled:
        return None

    def changed(degraded: bool, reason: str) -> None:
        if degraded:  # once per episode: the tracker calls back only when the state flips
            log.warning("%s. %s", reason, LIKELY_CAUSE)
        else:
            log.info("%s", reason)

    tracker = SequenceTracker(settings.max_gap_rate, settings.window, on_change=changed)
    metrics.watch_sequences(tracker)
    return tracker


def observe_acks(metrics: Metrics, tokens: list[tuple[int, int, int, float]]) -> None:
    # Once per batch, for its oldest message: the worst wait, at a fraction of the cost.
    metrics.acks.inc(len(tokens))
    metrics.ack_lag.observe(max(0.0, time.time() - tokens[0][3]))


def stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handle(signum: int, _frame: Any) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


def cadence_of(config: DetectorFile) -> Cadence:
    """How often the worker flushes, reports and checkpoints, from the configuration."""
    section, influx = config.detector, config.influxdb
    return Cadence(
        batch_points=influx.batch_size, batch_messages=section.input.ack_batch,
        flush_interval_s=influx.flush_interval_s, idle_flush_s=section.input.idle_flush_s,
        stats_interval_s=section.output.stats_interval_s,
        checkpoint_interval_s=section.checkpoint.interval_s,
        checkpoint_after_alert_s=section.checkpoint.after_alert_s)
