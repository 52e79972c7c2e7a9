"""The detector's distributed mode, wired in one place (``detector.input.source: nats``).

    sensors: plain MQTT -> NATS's MQTT listener; the server maps each reading subject to
             <prefix>.part.<partition(site, device)>.<site>.<device>[.<metric>]
      -> one JetStream stream per partition (<nats.stream>_<p>)
      -> one durable pull consumer per partition this instance owns  intake_nats.NatsIntake
           owned = leases in a KV bucket, rendezvous hashing         coordinator, leases
           state = one engine per partition, restored on take-over   state, checkpoints_kv
      -> parse, score, learn, decide (worker)      worker.Worker + state.PartitionedHandler
           -> alerts, dead letters on MQTT (to NATS's MQTT listener)  emit.Emitter
      -> write or spool                           delivery.Delivery, sink, spool.Spool
      -> explicit ack to the partition's consumer  acks.Acker -> NatsIntake.ack
    plus HTTP (api) with the owned partitions and their lag, metrics, and on every
    take-over the retained alert states of the partitions taken (detector.reconcile).

The worker, handler, delivery, sink, spool and emitter are the single-node service's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import threading
import time
from typing import Any

import nats
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from detector.acks import Acker
from detector.api import routes
from detector.checkpoint import decode_streams
from detector.config import DetectorFile
from detector.consumer import QueueIntake
from detector.delivery import Delivery
from detector.distributed.checkpoints_kv import PartitionCheckpoints
from detector.distributed.coordinator import Coordinator
from detector.distributed.intake_nats import GENERATION, NatsIntake
from detector.distributed.leases import Leases
from detector.distributed.loop import LoopThread
from detector.distributed.partitioncheck import PartitionMismatch, probe
from detector.distributed.partitions import partition_of, subject_prefix
from detector.distributed.state import PartitionedHandler
from detector.emit import Emitter
from detector.engine import Engine, EngineSettings
from detector.metrics import Metrics
from detector.reconcile import read_retained_alerts, stale_alerts
from detector.runtime import (
    STOP_TIMEOUT_S,
    cadence_of,
    guarded,
    observe_acks,
    sequence_tracker,
    stop_on_signals,
)
from detector.sink import make_writer
from detector.spool import Spool
from detector.worker import Worker
from iotwatch.httpserver import serve
from iotwatch.mqtt import MqttError, connect, make_client
from iotwatch.parse import ReadingParser
from iotwatch.topics import Topics

log = logging.getLogger(__name__)

SERVICE = "detector"


def run(config: DetectorFile, stop: threading.Event | None = None) -> int:
    """Run one instance until SIGTERM/SIGINT (or ``stop``); return the exit status.

    SIGTERM drains the instance: it stops fetching, stores and acknowledges what it
    fetched, writes every owned partition's checkpoint, then deletes its leases, so the
    other instances take its partitions at their next tick instead of after the TTL.
    """
    stop = stop or stop_on_signals()
    section, mqtt, influx, settings = config.detector, config.mqtt, config.influxdb, config.nats
    instance = settings.instance or default_instance()
    topics = Topics(mqtt.topic_prefix)
    metrics = Metrics()

    # State: one engine per owned partition, none until the coordinator takes some.
    sequences = sequence_tracker(section.sequence, metrics)
    state = PartitionedHandler(ReadingParser(topics, section.limits.parse_limits()),
                               settings.partitions, lambda: Engine(section),
                               measurement=influx.measurement,
                               alert_measurement=influx.alert_measurement,
                               device_points=section.output.device_points,
                               precision=influx.precision, sequences=sequences,
                               limits=section.limits.stream_limits(), metrics=metrics)

    # NATS: the stream, the leases, the checkpoints, the per-partition consumers.
    loop = LoopThread()
    try:
        nc = loop.call(nats.connect(settings.url, name=f"iotwatch-detector-{instance}",
                                    max_reconnect_attempts=-1, connect_timeout=5,
                                    allow_reconnect=True), timeout=30)
    except Exception as exc:
        loop.close()
        raise MqttError(f"cannot connect to NATS at {settings.url}: {exc}") from exc
    js = nc.jetstream()
    intake = NatsIntake(js, settings.stream, subject_prefix(mqtt.topic_prefix),
                        mqtt.topic_prefix, section.input.queue_size,
                        fetch_batch=settings.fetch_batch, ack_wait_s=settings.ack_wait_s,
                        max_ack_pending=settings.max_ack_pending,
                        note_subject=state.note_subject)
    loop.call(intake.ensure_streams(settings.partitions, settings.stream_max_age_s))
    try:  # the server's mapping must use nats.partitions partitions (partitioncheck)
        loop.call(probe(nc, subject_prefix(mqtt.topic_prefix), settings.stream,
                        settings.partitions))
    except PartitionMismatch:
        loop.call(nc.close())
        loop.close()
        raise
    leases = loop.call(Leases.open(js, settings.lease_bucket, settings.lease_ttl_s, instance))
    checkpoints = loop.call(PartitionCheckpoints.open(js, settings.checkpoint_bucket, loop,
                                                      lambda p: p in leases.held,
                                                      state.partition_of_key))
    # MQTT out: alerts and dead letters (to NATS's MQTT listener, or any broker).
    mqtt = mqtt.model_copy(update={"client_id": f"iotwatch-detector-{instance}"})
    client = make_client(mqtt, SERVICE, persistent=False)
    emitter = Emitter(client, topics, section.output.alert_state_on_resolve)

    def reconcile(partitions: list[int]) -> None:
        """Close the alerts of newly taken partitions that fired after their checkpoint."""
        wanted = set(partitions)
        retained = [a for a in read_retained_alerts(mqtt, topics.alert_state_filter)
                    if partition_of(a.site, a.device, settings.partitions) in wanted]
        log.info("%d retained alert states in the %d partitions taken", len(retained),
                 len(wanted))
        for alert in stale_alerts(retained, state.summaries(), now=time.time()):
            log.warning("closing %s alert %s: %s", alert.metric, alert.fingerprint,
                        alert.annotations["summary"])
            emitter.alert(alert)

    coordinator = Coordinator(leases, intake, state, checkpoints,
                              lambda p, data: _restore(section, p, data), settings.partitions,
                              settings.lease_ttl_s, settings.release_timeout_s, reconcile)

    # Points out: sink, spool, acks to the partitions' consumers.
    spool = Spool(section.spool.dir, section.spool.max_bytes, section.spool.segment_bytes)
    acker = Acker(intake.ack, lambda: GENERATION,
                  on_acked=lambda tokens: observe_acks(metrics, tokens))
    delivery = Delivery(make_writer(influx, section.output.sink, section.output.file), spool,
                        acker, metrics,
                        lambda line, why: emitter.refused_point(line, why, time.time()))
    metrics.watch_spool(lambda: delivery.spool_state.points)
    metrics.registry.register(_PartitionCollector(coordinator, intake, checkpoints))
    worker = Worker(QueueIntake(intake.queue), state, emitter, delivery, checkpoints, metrics, cadence_of(config))

    def health() -> tuple[bool, dict[str, Any]]:
        problems = []
        if not nc.is_connected:
            problems.append(f"not connected to NATS at {settings.url}")
        if delivery.writable is not True:
            problems.append(delivery.last_error or f"nothing written to "
                            f"{delivery.writer.description} yet")
        # Running, but some readings are in a partition their device does not hash to.
        degraded = [f"{state.misrouted_messages} message(s) of {len(state.misrouted)} "
                    f"topic(s) came through the wrong partition and were dead-lettered as "
                    f"wrong_partition: the server's subject mapping and nats.partitions "
                    f"({settings.partitions}) disagree"] if state.misrouted else []
        spooled = delivery.spool_state
        return not (problems or degraded), {
            "status": "unavailable" if problems else "degraded",
            "problems": problems + degraded,
            "warnings": [w for w in (state.gate.warning(time.time()),) if w is not None],
            "instance": instance,
            "members": coordinator.members, "partitions": sorted(coordinator.owned),
            "lag": {str(p): {"pending": lag[0], "ack_pending": lag[1]}
                    for p, lag in sorted(coordinator.lag.items())},
            "taken": coordinator.taken, "released": coordinator.released,
            "lost": coordinator.lost, "stray_readings": state.stray_readings,
            "nats_connected": nc.is_connected, "mqtt_connected": client.is_connected(),
            "sink": delivery.writer.description, "sink_writable": bool(delivery.writable),
            "spool_points": spooled.points, "spool_batches": spooled.batches,
            "queue_depth": intake.queue.qsize(), "unacked": acker.pending,
            "streams": state.stream_count(),
            "sequence": None if sequences is None else dict(sequences.totals)}

    def exposition() -> bytes:
        metrics.queue_depth.set(intake.queue.qsize())
        metrics.unacked.set(acker.pending)
        metrics.streams.set(state.stream_count())
        metrics.sink_writable.set(1 if delivery.writable else 0)
        metrics.mqtt_connected.set(1 if client.is_connected() else 0)
        return metrics.exposition()

    failed: list[str] = []
    threads = [threading.Thread(target=guarded(delivery.run, stop, failed), name="delivery",
                                daemon=True),
               threading.Thread(target=guarded(worker.run, stop, failed), name="worker",
                                daemon=True)]
    for thread in threads:
        thread.start()
    connect(client, mqtt)
    owning = loop.submit(coordinator.run())
    server = None
    if config.http.enabled:
        server = serve(config.http.host, config.http.port,
                       routes(state, state.parser, topics, health, exposition))
        log.info("http on %s:%s (/health /metrics /streams /predict)", server.host, server.port)
    log.info("detector instance %s running: %d partitions on %s, writing to %s", instance,
             settings.partitions, settings.url, delivery.writer.description)

    stop.wait()

    # Drain: no new input, everything fetched stored and acknowledged, checkpoints stored,
    # then the leases freed for the other instances.
    log.info("stopping: draining partitions %s", sorted(coordinator.owned))
    loop.loop.call_soon_threadsafe(coordinator.stop)
    owning.result(STOP_TIMEOUT_S + 30)
    intake.stop()
    worker.stop()
    threads[1].join(STOP_TIMEOUT_S)
    delivery.stop(STOP_TIMEOUT_S)
    threads[0].join(STOP_TIMEOUT_S + 5)
    delivery.drain_acks(5.0)
    loop.call(_flush(intake, nc))
    loop.call(coordinator.shutdown())
    loop.call(nc.close())
    loop.close()
    client.disconnect()
    client.loop_stop()
    if server is not None:
        server.close()
    delivery.writer.close()
    spool.close()
    log.info("stopped")
    return 1 if failed else 0


def default_instance() -> str:
    """``<hostname>-<pid>``, in the characters NATS keys allow."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{socket.gethostname()}-{os.getpid()}")[:64]


def _restore(settings: EngineSettings, partition: int, data: bytes | None) -> Engine:
    if data is None:
        log.info("partition %d: no checkpoint, its streams start learning", partition)
        return Engine(settings)
    try:  # records per stream (or one whole snapshot, as an older version wrote)
        engine = Engine.from_streams(settings, decode_streams(data))
    except Exception as exc:  # e.g. SnapshotError: the partition starts afresh, and says so
        log.error("partition %d: checkpoint unreadable (%s); its streams start learning",
                  partition, exc)
        return Engine(settings)
    if engine.reset_streams:
        log.warning("partition %d: %d streams restart learning: their detector settings "
                    "changed", partition, len(engine.reset_streams))
    return engine


async def _flush(intake: NatsIntake, nc: Any) -> None:
    """Wait until the acks handed over are sent, then until the server has them."""
    for _ in range(500):
        if not intake.ack_backlog:
            break
        await asyncio.sleep(0.01)
    await nc.flush(timeout=5)


class _PartitionCollector:
    """Per-instance partition gauges for /metrics, read from the coordinator."""

    def __init__(self, coordinator: Coordinator, intake: NatsIntake,
                 checkpoints: PartitionCheckpoints) -> None:
        self.coordinator = coordinator
        self.intake = intake
        self.checkpoints = checkpoints

    def collect(self):
        owned = GaugeMetricFamily("iotwatch_detector_partitions_owned",
                                  "partitions this instance owns")
        owned.add_metric([], len(self.coordinator.owned))
        yield owned
        pending = GaugeMetricFamily("iotwatch_detector_partition_pending",
                                    "messages of an owned partition not delivered yet "
                                    "(consumer num_pending)", labels=["partition"])
        ack_pending = GaugeMetricFamily("iotwatch_detector_partition_ack_pending",
                                        "messages of an owned partition delivered, not "
                                        "acknowledged", labels=["partition"])
        for partition, (waiting, unacked) in sorted(self.coordinator.lag.items()):
            pending.add_metric([str(partition)], waiting)
            ack_pending.add_metric([str(partition)], unacked)
        yield pending
        yield ack_pending
        moves = CounterMetricFamily("iotwatch_detector_partition_moves",
                                    "partitions taken, given up, lost", labels=["kind"])
        moves.add_metric(["taken"], self.coordinator.taken)
        moves.add_metric(["released"], self.coordinator.released)
        moves.add_metric(["lost"], self.coordinator.lost)
        yield moves
        stored = CounterMetricFamily("iotwatch_detector_partition_checkpoints_stored",
                                     "partition checkpoints written to the object store")
        stored.add_metric([], self.checkpoints.written)
        yield stored
        size = GaugeMetricFamily("iotwatch_detector_partition_checkpoint_bytes",
                                 "size of the last partition checkpoint stored")
        size.add_metric([], self.checkpoints.last_bytes)
        yield size
