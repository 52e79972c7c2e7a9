"""Alerting service throughput on this machine: intake and delivery, in-process.

    python bench/alerting_bench.py [--alerts 2000] [--notifications 500]

- intake: alert messages through parse -> SQLite (WAL, synchronous=FULL, one commit per
  alert, as the service acknowledges each one only once stored) -> group insert;
  reported as alerts/s and as a ratio to bare parsing (the ceiling without storage).
- delivery: queued notifications delivered by one worker to a local webhook catcher;
  notifications/s and latency percentiles from queueing to delivery.

Numbers are for orders of magnitude on a shared machine; nothing here asserts timing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from alerting.active import ActiveAlerts
from alerting.catchers import WebhookCatcher
from alerting.config import RetrySettings, RouteSettings, WebhookSettings
from alerting.dedup import Decision, LogEntry
from alerting.delivery import DeliveryWorker, RetryPolicy
from alerting.grouping import Grouper
from alerting.intake import Intake
from alerting.metrics import Metrics
from alerting.notification import Notification, Target
from alerting.outbox import Outbox
from alerting.receivers import TargetSpec
from alerting.receivers.webhook import WebhookNotifier
from alerting.routing import build_routes
from alerting.store import AlertStore, Database
from alerting.templates import LinkTemplate
from iotwatch.contracts import Alert, alert_fingerprint
from iotwatch.parse import parse_alert
from iotwatch.topics import Topics


def messages(count: int) -> list[tuple[str, bytes]]:
    topics = Topics("iotwatch")
    out = []
    for i in range(count):
        device, state = f"dev-{i % 500}", "firing" if (i // 500) % 2 == 0 else "resolved"
        alert = Alert(alert_fingerprint("p1", device, "temperature", "anomaly"), state,
                      "critical", "p1", device, "temperature", "anomaly", 90.0, 0.99, 0.9,
                      1_768_905_000.0, 1_768_905_000.0 + i,
                      ends_at=1_768_905_000.0 + i if state == "resolved" else None)
        out.append((topics.alert("p1", device, "temperature"), alert.to_payload()))
    return out


def bench_intake(count: int, workdir: Path) -> None:
    batch = messages(count)
    started = time.perf_counter()
    for _topic, payload in batch:
        parse_alert(payload)
    parse_rate = count / (time.perf_counter() - started)

    db = Database(workdir / "intake.sqlite3")
    grouper = Grouper(build_routes(RouteSettings(receiver="ops", group_by=["device"])))
    intake = Intake(Topics("iotwatch"), AlertStore(db), ActiveAlerts(),
                    lambda alert: grouper.insert(alert, alert.all_labels, time.time()), Metrics())
    started = time.perf_counter()
    for topic, payload in batch:
        assert intake.handle(topic, payload) is None
    rate = count / (time.perf_counter() - started)
    db.close()
    print(f"intake: {rate:,.0f} alerts/s stored and grouped (bare parsing {parse_rate:,.0f}/s, "
          f"ratio {rate / parse_rate:.3f}); {1e6 / rate:.0f} us per alert")


def bench_delivery(count: int, workdir: Path) -> None:
    db = Database(workdir / "delivery.sqlite3")
    outbox = Outbox(db)
    metrics = Metrics(outbox.depth)
    with WebhookCatcher() as hook:
        target = Target("ops", "webhook")
        notifier = WebhookNotifier(WebhookSettings(url=hook.url, secret="bench"),
                                   LinkTemplate(None))
        alert = parse_alert(messages(1)[0][1])
        started = time.perf_counter()
        for seq in range(1, count + 1):
            note = Notification(target, f"g{seq}", {}, (alert,), seq, time.time())
            outbox.enqueue([Decision(target, note.group_key, note,
                                     LogEntry(frozenset(), frozenset(), note.created_at, seq))])
        worker = DeliveryWorker(TargetSpec(target, notifier, True), outbox,
                                RetryPolicy(RetrySettings()), metrics)
        worker.start()
        hook.wait_for(count, timeout=600)
        elapsed = time.perf_counter() - started
        worker.stop(10)
    latency = metrics.registry.get_sample_value(
        "iotwatch_alerting_delivery_latency_seconds_sum",
        {"receiver": "ops", "integration": "webhook"}) / count
    db.close()
    print(f"delivery: {count / elapsed:,.0f} notifications/s to one signed webhook "
          f"(one worker, sequential); mean queue-to-delivery {latency * 1000:.0f} ms with "
          f"all {count} queued at once")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--notifications", type=int, default=500)
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(3):
            workdir = Path(tmp) / str(run)
            workdir.mkdir()
            started = time.perf_counter()
            bench_intake(args.alerts, workdir)
            bench_delivery(args.notifications, workdir)
            runs.append(time.perf_counter() - started)
    print(f"3 runs, median {statistics.median(runs):.1f} s each")


if __name__ == "__main__":
    main()
