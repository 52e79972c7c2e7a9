"""The alerting service's one wiring point: builds every part and shows the pipeline.

Nothing imports this module but the command line (``alerting.cli``).
"""

from __future__ import annotations

import logging
import signal
import threading
import time

from alerting.active import ActiveAlerts
from alerting.api import Api
from alerting.config import AlertingFile
from alerting.dedup import Deduplicator
from alerting.delivery import DeliveryWorker, RetryPolicy
from alerting.dispatch import Dispatcher
from alerting.grouping import Grouper
from alerting.inhibit import Inhibitor
from alerting.intake import Intake, MqttIntake
from alerting.metrics import Metrics
from alerting.notify import NotifyStage
from alerting.outbox import Outbox
from alerting.receivers import build_targets
from alerting.routing import build_routes
from alerting.silences import Silences, silences_from_config
from alerting.store import AlertStore, Database, NotificationLog, SilenceStore
from alerting.templates import LinkTemplate
from iotwatch.contracts import Alert
from iotwatch.httpserver import serve
from iotwatch.liveness import Vital, check_liveness
from iotwatch.topics import Topics

log = logging.getLogger(__name__)

HOUSEKEEPING_S = 60.0
STOP_TIMEOUT_S = 15.0


def run(config: AlertingFile, stop: threading.Event | None = None) -> int:
    """Run the service until SIGTERM/SIGINT (or until ``stop`` is set); returns the exit code.

    The pipeline, stage by stage (Alertmanager's, with a durable outbox):

    1. receive: MQTT alert topics (QoS 1, persistent session) -> parse -> SQLite -> ack;
       invalid messages are dead-lettered.
    2. route: the routing tree picks the receivers of the alert.
    3. group: per route and group labels; flushed after group_wait, then every
       group_interval.
    4. mute, at each flush: silences, then inhibition (so a silence that ends lets a
       still-firing alert through at the next flush).
    5. de-duplicate per target against the notification log (repeat_interval, one resolve).
    6. outbox: the notification and its log entry in one SQLite transaction.
    7. deliver: one worker per target, retries with backoff until delivered or failed.
    """
    settings = config.alerting
    clock = time.time
    stop = stop or threading.Event()

    # Durable state: received alerts, notification log, silences and outbox in one file.
    db = Database(settings.database)
    alert_store, nflog = AlertStore(db), NotificationLog(db)
    silence_store, outbox = SilenceStore(db), Outbox(db)

    links = LinkTemplate(settings.dashboard_url)
    targets = build_targets(settings.receivers, links, settings.external_url)
    active = ActiveAlerts()
    silences = Silences(silences_from_config(settings.silences) + silence_store.load())
    inhibitor = Inhibitor.from_settings(settings.inhibit_rules)
    metrics = Metrics(outbox_depth=outbox.depth, active=active.counts,
                      silences=lambda: sum(s.state(clock()) == "active" for s in silences.all()))

    # 7. deliver
    policy = RetryPolicy(settings.delivery.retry)
    workers = {spec.target: DeliveryWorker(spec, outbox, policy, metrics, clock)
               for specs in targets.values() for spec in specs}
    # 4-6. mute -> de-duplicate -> outbox, at each flush
    notify = NotifyStage(targets, silences, inhibitor, active.firing,
                         Deduplicator(nflog.get, clock, told=nflog.told_firing), outbox, metrics,
                         wake=lambda target: workers[target].wake(), clock=clock)

    # 2-3. route -> group
    def forget(resolved: list[Alert]) -> None:
        alert_store.forget(resolved)
        for alert in resolved:
            active.forget(alert)

    dispatcher = Dispatcher(Grouper(build_routes(settings.route)), notify, forget, clock)

    def route(alert: Alert) -> None:
        for matched in dispatcher.insert(alert, alert.all_labels):
            metrics.routed.labels(matched.receiver).inc()

    # 1. receive
    intake = Intake(Topics(config.mqtt.topic_prefix), alert_store, active, route, metrics,
                    settings.max_payload_bytes, clock)
    mqtt = MqttIntake(config.mqtt, intake)

    # A restart resumes: stored alerts re-enter their groups (the notification log keeps
    # them from being sent twice) and the workers pick up the pending outbox.
    restored = alert_store.load()
    for alert in restored:
        if active.upsert(alert):
            route(alert)
    _fail_orphans(outbox, {t.name for t in workers}, clock())
    log.info("alerting: %d receiver target(s) (%s), %d alert(s) restored, %d notification(s) "
             "pending", len(workers), ", ".join(sorted(t.name for t in workers)) or "none",
             len(restored), sum(outbox.depth().values()))

    def health() -> dict:
        depth = outbox.depth()
        ok = mqtt.connected.is_set() and not stop.is_set()
        return {"status": "ok" if ok else "unavailable",
                "mqtt": "connected" if mqtt.connected.is_set() else "disconnected",
                "alerts": active.counts(), "outbox": depth,
                "targets": sorted(t.name for t in workers)}

    def live() -> tuple[bool, dict]:
        return check_liveness([Vital("dispatch", dispatcher.thread)]
                              + [Vital(f"deliver-{t.name}", w.thread) for t, w in workers.items()])

    api = Api(metrics=metrics, healthy=health, active=active, silences=silences,
              silence_store=silence_store, dispatcher=dispatcher, inhibitor=inhibitor,
              outbox=outbox, clock=clock, live=live)
    server = serve(config.http.host, config.http.port, api.routes()) \
        if config.http.enabled else None
    if server is not None:
        log.info("alerting: HTTP API on http://%s:%s (/health, /health/live, /health/ready, "
                 "/metrics, /alerts, /silences, /deliveries)", server.host, server.port)

    _on_signals(stop)
    for worker in workers.values():
        worker.start()
    dispatcher.start()
    try:
        mqtt.start()
        while not stop.wait(HOUSEKEEPING_S):
            _housekeeping(outbox, nflog, silences, silence_store, settings, clock())
    finally:
        # Stop consuming first; everything acknowledged is in SQLite, so what is not yet
        # delivered simply waits in the outbox (or the alert store) for the next start.
        log.info("alerting: stopping")
        mqtt.stop()
        dispatcher.stop(STOP_TIMEOUT_S)
        for worker in workers.values():
            worker.stop(STOP_TIMEOUT_S)
        if server is not None:
            server.close()
        db.close()
        log.info("alerting: stopped")
    return 0


def _on_signals(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # run in a thread (tests): the caller stops us with ``stop``
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_args: stop.set())


def _fail_orphans(outbox: Outbox, configured: set[str], now: float) -> None:
    for name in sorted(outbox.pending_targets() - configured):
        count = outbox.fail_pending(name, now, "unknown_receiver",
                                    "receiver no longer in the configuration")
        log.error("%d pending notification(s) for %s given up: that receiver is no longer "
                  "configured", count, name)


def _housekeeping(outbox: Outbox, nflog: NotificationLog, silences: Silences,
                  silence_store: SilenceStore, settings, now: float) -> None:
    try:
        outbox.prune(now - settings.delivery.keep_finished_s)
        nflog.prune(now - 7 * 86_400)
        for silence_id in silences.expired_before(now - settings.delivery.keep_finished_s):
            silence_store.delete(silence_id)
            silences.remove(silence_id)
    except Exception:
        log.exception("housekeeping failed; trying again later")
