"""The outbox and the delivery workers against a real webhook server: retries, exactly-once
by idempotency key, permanent failures reported, one receiver down not blocking another."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from harness import free_port, wait_until

from alerting.catchers import WebhookCatcher
from alerting.config import RetrySettings, WebhookSettings
from alerting.dedup import Decision, LogEntry
from alerting.delivery import DeliveryWorker, RetryPolicy
from alerting.metrics import Metrics
from alerting.notification import Notification, Target
from alerting.outbox import Outbox
from alerting.receivers import TargetSpec
from alerting.receivers.webhook import WebhookNotifier
from alerting.store import Database
from alerting.templates import LinkTemplate

FAST = RetrySettings(initial_s=0.05, max_s=0.2, jitter=0.0, give_up_after_s=300)


@pytest.fixture
def outbox(tmp_path: Path):
    db = Database(tmp_path / "alerting.sqlite3")
    yield Outbox(db)
    db.close()


def spec(name: str, url: str, **settings) -> TargetSpec:
    notifier = WebhookNotifier(WebhookSettings.model_validate({"url": url, **settings}),
                               LinkTemplate(None))
    return TargetSpec(Target(name, "webhook"), notifier, send_resolved=True)


def enqueue(outbox: Outbox, target: Target, alerts, count: int) -> list[str]:
    keys = []
    for seq in range(1, count + 1):
        note = Notification(target, f"group-{seq}", {}, tuple(alerts), seq, time.time())
        outbox.enqueue([Decision(target, note.group_key, note,
                                 LogEntry(frozenset(), frozenset(), note.created_at, seq))])
        keys.append(note.idempotency_key)
    return keys


def counter(metrics: Metrics, name: str, **labels) -> float:
    return metrics.registry.get_sample_value(f"iotwatch_alerting_{name}_total", labels) or 0.0


def run_worker(target_spec: TargetSpec, outbox: Outbox, metrics: Metrics) -> DeliveryWorker:
    worker = DeliveryWorker(target_spec, outbox, RetryPolicy(FAST), metrics)
    worker.start()
    return worker


def test_a_webhook_failing_for_a_while_gets_every_notification_exactly_once(
        outbox, make_alert):
    metrics = Metrics(outbox.depth)
    with WebhookCatcher() as hook:
        hook.respond(500, times=4)
        target_spec = spec("ops", hook.url)
        keys = enqueue(outbox, target_spec.target, [make_alert()], 3)
        worker = run_worker(target_spec, outbox, metrics)
        try:
            delivered = hook.wait_for(3)
            wait_until(lambda: not outbox.depth() and counter(
                metrics, "notifications_delivered", receiver="ops", integration="webhook") == 3,
                timeout=30, what="an empty outbox, three deliveries counted")
        finally:
            worker.stop(10)
    assert [r.idempotency_key for r in delivered] == keys  # in order, each once
    assert hook.duplicates() == 0
    assert len(hook.requests) == 3 + 4
    # The failed attempts were the oldest notification, retried with the same key.
    assert {r.idempotency_key for r in hook.requests[:4]} == {keys[0]}
    target = {"receiver": "ops", "integration": "webhook"}
    assert counter(metrics, "delivery_attempts_failed", **target, reason="http_500") == 4
    assert counter(metrics, "notifications_delivered", **target) == 3
    assert [row["status"] for row in outbox.listing()] == ["delivered"] * 3


def test_a_400_is_not_retried_and_is_reported(outbox, make_alert, caplog):
    metrics = Metrics(outbox.depth)
    with WebhookCatcher() as hook:
        hook.respond(400, times=1)
        target_spec = spec("ops", hook.url + "?token=s3cr3t-t0ken")
        enqueue(outbox, target_spec.target, [make_alert()], 2)
        with caplog.at_level(logging.INFO, logger="alerting.delivery"):
            worker = run_worker(target_spec, outbox, metrics)
            try:
                hook.wait_for(1)  # the second notification gets through
                wait_until(lambda: not outbox.depth() and counter(
                    metrics, "notifications_delivered", receiver="ops",
                    integration="webhook") == 1, timeout=30, what="an empty outbox")
            finally:
                worker.stop(10)
    assert len(hook.requests) == 2  # one 400, one 200: no retry
    target = {"receiver": "ops", "integration": "webhook"}
    assert counter(metrics, "notifications_failed", **target, reason="http_400") == 1
    assert counter(metrics, "delivery_attempts_failed", **target, reason="http_400") == 1
    [failed] = outbox.listing("failed")
    assert failed["reason"] == "http_400" and failed["attempts"] == 1
    assert failed["last_error"].startswith("HTTP 400")
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "failed for good" in record.getMessage() and "http_400" in record.getMessage()
    assert "s3cr3t" not in caplog.text


def test_one_receiver_down_does_not_hold_up_another(outbox, make_alert):
    metrics = Metrics(outbox.depth)
    down = spec("down", f"http://127.0.0.1:{free_port()}/hook")
    with WebhookCatcher() as hook:
        up = spec("up", hook.url)
        enqueue(outbox, down.target, [make_alert()], 2)
        enqueue(outbox, up.target, [make_alert()], 2)
        workers = [run_worker(s, outbox, metrics) for s in (down, up)]
        try:
            hook.wait_for(2)
            wait_until(lambda: counter(metrics, "delivery_attempts_failed", receiver="down",
                                       integration="webhook", reason="network") >= 2,
                       timeout=30, what="the down receiver to be retried")
        finally:
            for worker in workers:
                worker.stop(10)
    assert outbox.depth() == {"down/webhook": 2}


def test_a_notification_retried_past_its_deadline_fails_as_expired(outbox, make_alert):
    metrics = Metrics(outbox.depth)
    down = spec("down", f"http://127.0.0.1:{free_port()}/hook")
    note = Notification(down.target, "g", {}, (make_alert(),), 1, created_at=0.0)  # long ago
    outbox.enqueue([Decision(down.target, "g", note, LogEntry(frozenset(), frozenset(), 0, 1))])
    worker = run_worker(down, outbox, metrics)
    try:
        wait_until(lambda: counter(metrics, "notifications_failed", receiver="down",
                                   integration="webhook", reason="expired"), timeout=30,
                   what="the failure")
    finally:
        worker.stop(10)
    assert outbox.listing("failed")[0]["reason"] == "expired"
    assert counter(metrics, "notifications_failed", receiver="down", integration="webhook",
                   reason="expired") == 1


def test_the_same_notification_queued_twice_is_one_delivery(outbox, make_alert):
    target = Target("ops", "webhook")
    note = Notification(target, "g", {}, (make_alert(),), 1, 1000.0)
    decision = Decision(target, "g", note, LogEntry(frozenset(), frozenset(), 1000.0, 1))
    assert outbox.enqueue([decision]) == 1
    assert outbox.enqueue([decision]) == 0
    assert outbox.depth() == {"ops/webhook": 1}


def test_a_second_service_on_the_same_database_is_refused(tmp_path):
    from alerting.store import StoreError

    db = Database(tmp_path / "shared.sqlite3")
    try:
        with pytest.raises(StoreError, match="in use by another alerting service"):
            Database(tmp_path / "shared.sqlite3")
    finally:
        db.close()
