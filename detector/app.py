"""The detector service, wired in one place.

    MQTT (QoS 1, persistent session, manual acks)
      -> bounded intake (paho thread)          consumer.Intake
      -> parse, score, learn, decide (worker)  worker.Worker + handler.MessageHandler
           (new streams within limits, idle ones evicted to disk)  streamlimit.StreamGate
           -> alerts, alert state, dead letters on MQTT    emit.Emitter (own connection)
           -> batches of line protocol
      -> write or spool (delivery thread)      delivery.Delivery, sink, spool.Spool
      -> acknowledge to the broker             acks.Acker
    plus checkpoints (checkpoint.CheckpointFile, a few streams at a time), HTTP (api), metrics.

Nothing imports this module; ``detector.cli`` calls ``run``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from detector.acks import Acker
from detector.api import routes
from detector.checkpoint import CheckpointFile
from detector.config import DetectorFile
from detector.consumer import Intake
from detector.delivery import Delivery
from detector.emit import Emitter
from detector.engine import Engine, EngineSettings, snapshot
from detector.forecast.streams import StreamForecasts
from detector.handler import MessageHandler
from detector.metrics import Metrics
from detector.models.service import prepare as prepare_models
from detector.reconcile import read_retained_alerts, stale_alerts
from detector.runtime import (
    STOP_TIMEOUT_S,
    cadence_of,
    guarded,
    observe_acks,
    sequence_tracker,
    stop_on_signals,
)
from detector.sidestate import WithSideStates, restore_part
from detector.sink import make_writer
from detector.spool import Spool
from detector.streamlimit import StreamGate, store_beside
from detector.summaries.streams import StreamSummaries
from detector.worker import Worker
from iotwatch.httpserver import serve
from iotwatch.liveness import Vital, check_liveness
from iotwatch.mqtt import ack_many, connect, make_client, publish_status
from iotwatch.parse import ReadingParser
from iotwatch.topics import Topics

log = logging.getLogger(__name__)

SERVICE = "detector"


def run(config: DetectorFile, stop: threading.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``stop`` is set); return the exit status."""
    stop = stop or stop_on_signals()
    section, mqtt, influx = config.detector, config.mqtt, config.influxdb
    topics = Topics(mqtt.topic_prefix)
    metrics = Metrics()

    # Trained models named in models: (loaded and checked; iotwatch detect did it already).
    prepare_models(section)

    # State: the engine as the last checkpoint left it.
    checkpoints = CheckpointFile(section.checkpoint.path)
    engine = _restore(checkpoints, section)
    sequences = sequence_tracker(section.sequence, metrics)
    # Bounds on the streams held; idle ones are evicted to disk beside the checkpoint.
    gate = StreamGate(section.limits.stream_limits(), store_beside(checkpoints.path), metrics)
    gate.adopt(engine, time.time())
    # Forecasts and summaries (when configured), their state beside the checkpoint.
    forecasts = StreamForecasts(section.forecast, influx.precision)
    summaries = StreamSummaries(section.summaries, influx.precision)
    parts = {name: restore_part(part, checkpoints.path, name) for name, part in
             (("forecast", forecasts), ("summaries", summaries)) if part.active}
    if parts:
        checkpoints = WithSideStates(checkpoints, parts)
    handler = MessageHandler(engine, ReadingParser(topics, section.limits.parse_limits()),
                             measurement=influx.measurement,
                             alert_measurement=influx.alert_measurement,
                             device_points=section.output.device_points,
                             precision=influx.precision, sequences=sequences, gate=gate,
                             forecasts=parts.get("forecast"), summaries=parts.get("summaries"))

    # Alerts that fired after that checkpoint: the retained alert states tell.
    retained = read_retained_alerts(mqtt, topics.alert_state_filter)
    stale = stale_alerts(retained, handler.summaries(), now=time.time())

    # MQTT in (manual acks) and out.
    intake = Intake(section.input.queue_size)
    subscriptions = [(f, section.input.qos) for f in section.input.subscriptions
                     or [topics.readings_filter]]
    client = make_client(mqtt, SERVICE, persistent=True, manual_ack=True,
                         subscriptions=subscriptions, on_connected=intake.on_connected)
    intake.attach(client)
    # Alerts and dead letters go out on a connection of their own: their PUBACKs (which
    # the readings' acks wait for) must not queue at the broker behind a backlog of
    # readings on the input connection (seen: acks stalled ~40 s at the first alerts).
    publisher = make_client(mqtt, SERVICE, persistent=True,
                            client_id=f"{mqtt.client_id or 'iotwatch-' + SERVICE}-out")
    publisher.will_clear()  # the input connection carries the service's last will
    emitter = Emitter(publisher, topics, section.output.alert_state_on_resolve,
                      stateless_rules=forecasts.warning_rules)

    # Points out: sink, spool, acks.
    spool = Spool(section.spool.dir, section.spool.max_bytes, section.spool.segment_bytes)
    acker = Acker(client.ack, lambda: intake.generation,
                  on_acked=lambda tokens: observe_acks(metrics, tokens),
                  send_acks=lambda acks: ack_many(client, acks))
    delivery = Delivery(make_writer(influx, section.output.sink, section.output.file), spool,
                        acker, metrics,
                        lambda line, why: emitter.refused_point(line, why, time.time()))
    metrics.watch_spool(lambda: delivery.spool_state.points)
    worker = Worker(intake, handler, emitter, delivery, checkpoints, metrics, cadence_of(config))

    def health() -> tuple[bool, dict[str, Any]]:
        problems = []
        if not intake.connected:
            problems.append(f"not connected to the MQTT broker at {mqtt.host}:{mqtt.port}")
        if delivery.writable is not True:
            problems.append(delivery.last_error or f"nothing written to "
                            f"{delivery.writer.description} yet")
        # Running but losing readings (seq gaps): "degraded", with the reason.
        degraded = [sequences.reason()] if sequences is not None and sequences.degraded else []
        spooled = delivery.spool_state
        warnings = [w for w in (gate.warning(time.time()),) if w is not None]
        return not (problems or degraded), {
            "status": "unavailable" if problems else "degraded", "problems": problems + degraded,
            "warnings": warnings, "mqtt_connected": intake.connected,
            "sink": delivery.writer.description,
            "sink_writable": bool(delivery.writable), "spool_points": spooled.points,
            "spool_batches": spooled.batches, "queue_depth": len(intake),
            "unacked": acker.pending, "streams": handler.stream_count(),
            "sequence": None if sequences is None else dict(sequences.totals)}

    def exposition() -> bytes:
        _refresh_gauges(metrics, intake, delivery, acker, handler, worker)
        return metrics.exposition()

    failed: list[str] = []
    threads = [threading.Thread(target=guarded(delivery.run, stop, failed), name="delivery",
                                daemon=True),
               threading.Thread(target=guarded(worker.run, stop, failed), name="worker",
                                daemon=True)]
    for thread in threads:
        thread.start()

    def live() -> tuple[bool, dict[str, Any]]:
        return check_liveness([Vital("delivery", threads[0], delivery.heartbeat),
                               Vital("worker", threads[1], worker.heartbeat)],
                              stopping=bool(failed))
    connect(publisher, mqtt)
    connect(client, mqtt)
    for alert in stale:
        log.warning("closing %s alert %s: %s", alert.metric, alert.fingerprint,
                    alert.annotations["summary"])
        emitter.alert(alert)
    server = None
    if config.http.enabled:
        server = serve(config.http.host, config.http.port,
                       routes(handler, handler.parser, topics, health, exposition, live=live))
        log.info("http on %s:%s (/health /health/live /health/ready /metrics /streams "
                 "/predict)", server.host, server.port)
    log.info("detector running: %d streams restored, writing to %s", handler.stream_count(),
             delivery.writer.description)

    stop.wait()

    # Graceful stop: no new input, everything processed stored and acknowledged, state saved.
    log.info("stopping")
    intake.stop()
    worker.stop()
    threads[1].join(STOP_TIMEOUT_S)
    delivery.stop(STOP_TIMEOUT_S)
    threads[0].join(STOP_TIMEOUT_S + 5)
    delivery.drain_acks(5.0)
    offline = publish_status(client, mqtt, SERVICE, "offline", reason="stopped")
    offline.wait_for_publish(5.0)
    client.disconnect()
    client.loop_stop()
    publisher.disconnect()
    publisher.loop_stop()
    if server is not None:
        server.close()
    delivery.writer.close()
    spool.close()
    log.info("stopped")
    return 1 if failed else 0


def _restore(checkpoints: CheckpointFile, settings: EngineSettings) -> Engine:
    try:
        streams = checkpoints.load_streams()
        if streams is None:
            log.info("no checkpoint at %s: every stream starts learning", checkpoints.path)
            return Engine(settings)
        engine = Engine.from_streams(settings, streams)
        if checkpoints.holds_whole_snapshot():
            # Written by an older version as one snapshot: from now on, records per stream.
            checkpoints.rewrite((key, snapshot.encode(engine.stream_state(key)))
                                for key in engine.stream_keys())
    except Exception as exc:  # e.g. SnapshotError, or a format an older engine wrote
        moved = checkpoints.set_aside()
        log.error("checkpoint %s unreadable (%s); moved to %s, every stream starts learning",
                  checkpoints.path, exc, moved)
        return Engine(settings)
    if engine.reset_streams:
        log.warning("%d streams restart learning: their detector settings changed",
                    len(engine.reset_streams))
    log.info("restored %d streams from %s", len(engine), checkpoints.path)
    return engine


def _refresh_gauges(metrics: Metrics, intake: Intake, delivery: Delivery, acker: Acker,
                    handler: MessageHandler, worker: Worker) -> None:
    spooled = delivery.spool_state
    now = time.time()
    metrics.spool_points.set(spooled.points)
    metrics.spool_batches.set(spooled.batches)
    metrics.spool_bytes.set(spooled.bytes)
    metrics.spool_age.set(0 if spooled.oldest_created is None else now - spooled.oldest_created)
    metrics.queue_depth.set(len(intake))
    metrics.unacked.set(acker.pending)
    metrics.mqtt_connected.set(1 if intake.connected else 0)
    metrics.sink_writable.set(1 if delivery.writable else 0)
    metrics.streams.set(handler.stream_count())
    if worker.last_checkpoint is not None:
        metrics.checkpoint_age.set(now - worker.last_checkpoint)


