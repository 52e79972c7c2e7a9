"""``python -m alerting`` as a process: killed with SIGKILL while deliveries are pending, it
delivers them after a restart; alerts published while it was down arrive too; SIGTERM
stops it cleanly with an offline status."""

from __future__ import annotations

import signal

import orjson
from harness import wait_until

from iotwatch.topics import Topics

from .conftest import secrets_env


def test_pending_deliveries_survive_sigkill_and_go_out_after_restart(
        mosquitto, webhook, make_alert, publish_alert, service_config, service_process,
        unique_site):
    raw = service_config(mosquitto, {"hook": {"webhook": {"url": webhook.url}}})
    service = service_process(raw, secrets_env(mosquitto, raw))
    webhook.respond(503)  # the receiver is down: notifications stay in the outbox
    service.start()

    first = make_alert(site=unique_site, device="boiler-1")
    second = make_alert(site=unique_site, device="pump-1", severity="warning")
    publish_alert(mosquitto, first)
    publish_alert(mosquitto, second)
    wait_until(lambda: sum(service.get("/health")["outbox"].values()) == 2, timeout=30,
               what="two notifications pending in the outbox")
    webhook.wait_for_requests(1)  # at least one attempt failed
    assert service.kill(signal.SIGKILL) == -signal.SIGKILL

    # While the service is down: a third alert waits in the broker's persistent session.
    third = make_alert(site=unique_site, device="fan-1")
    publish_alert(mosquitto, third)
    webhook.respond(200)
    service.start()

    webhook.wait_for(3)
    assert webhook.notifications() == {(first.fingerprint, "firing"),
                                       (second.fingerprint, "firing"),
                                       (third.fingerprint, "firing")}
    assert webhook.duplicates() == 0
    wait_until(lambda: not service.get("/health")["outbox"], timeout=30,
               what="an empty outbox")
    assert all(r.signature_ok for r in webhook.requests)


def test_sigterm_stops_cleanly_with_an_offline_status(
        mosquitto, mqtt_collector, webhook, service_config, service_process):
    raw = service_config(mosquitto, {"hook": {"webhook": {"url": webhook.url}}})
    service = service_process(raw, secrets_env(mosquitto, raw))
    status_topic = Topics("iotwatch").status("alerting")
    statuses = mqtt_collector(mosquitto, status_topic)
    service.start()
    wait_until(lambda: any(s["state"] == "online" for s in statuses.json()), timeout=30,
               what="the online status")
    assert service.kill(signal.SIGTERM) == 0
    wait_until(lambda: statuses.json() and statuses.json()[-1]["state"] == "offline",
               timeout=30, what="the offline status")
    last = orjson.loads(statuses.payloads()[-1])
    assert last["reason"] == "shutdown"
    assert "alerting: stopped" in service.log()
