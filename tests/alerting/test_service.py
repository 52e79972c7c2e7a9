"""The whole service in-process against the real broker, SMTP server and webhook server."""

from __future__ import annotations

import orjson
from harness import wait_until

from alerting.receivers.webhook import verify_signature
from iotwatch.topics import Topics


def _receivers(smtp_server, smtp_settings, webhook) -> dict:
    return {"email": {"email": smtp_settings(smtp_server)},
            "hook": {"webhook": {"url": webhook.url, "headers": {"X-Team": "ops"}}}}


def test_an_alert_on_the_broker_reaches_email_and_webhook_then_resolves_once(
        mosquitto, smtp_server, smtp_settings, webhook, make_alert, publish_alert,
        service_config, start_service, unique_site):
    raw = service_config(mosquitto, _receivers(smtp_server, smtp_settings, webhook),
                         dashboard_url="http://grafana/d/x?var-site={{ site }}&var-device={{ device }}")
    service = start_service(raw)
    firing = make_alert(site=unique_site)
    publish_alert(mosquitto, firing)

    [request] = webhook.wait_for(1)
    [mail] = smtp_server.wait_for(1)
    assert request.signature_ok is True
    assert request.headers["x-team"] == "ops"
    body = request.payload
    assert body["version"] == "1" and body["status"] == "firing"
    assert body["idempotencyKey"] == request.idempotency_key
    assert body["groupLabels"] == {"device": "boiler-1", "site": unique_site}
    [sent] = body["alerts"]
    assert sent["fingerprint"] == firing.fingerprint and sent["status"] == "firing"
    assert sent["labels"]["severity"] == "critical" and sent["value"] == 93.4
    assert sent["dashboardURL"] == f"http://grafana/d/x?var-site={unique_site}&var-device=boiler-1"

    assert mail.subject == f"[FIRING:1] {unique_site} boiler-1 temperature anomaly"
    assert mail.login == "alerting-test" and mail.tls
    assert set(mail.rcpt_tos) == {"ops@example.com", "oncall@example.com"}
    assert mail.alerts == [(firing.fingerprint, "firing")]
    assert "value 93.4" in mail.body("plain") and "var-site=" in mail.body("html")

    resolved = make_alert(site=unique_site, state="resolved", ts=firing.ts + 60,
                          starts_at=firing.starts_at)
    publish_alert(mosquitto, resolved)
    webhook.wait_for(2)
    smtp_server.wait_for(2)
    assert webhook.notifications() == {(firing.fingerprint, "firing"),
                                       (firing.fingerprint, "resolved")}
    assert smtp_server.notifications() == webhook.notifications()
    # Several group intervals later, still exactly one firing and one resolved each.
    wait_until(lambda: not service.get("/alerts"), timeout=30, what="the resolved alert to go")
    assert len(webhook.requests) == 2 and len(smtp_server.messages) == 2

    # The servers have the messages; the workers count them once the answer is back.
    wait_until(lambda: all(_counter(service.metrics(), "notifications_delivered_total",
                                    f'integration="{kind}",receiver="{name}"') == 2
                           for kind, name in (("email", "email"), ("webhook", "hook"))),
               timeout=30, what="all four notifications counted as delivered")
    metrics = service.metrics()
    assert 'iotwatch_alerting_alerts_received_total{state="firing"} 1.0' in metrics
    assert ('iotwatch_alerting_notifications_delivered_total{integration="webhook",'
            'receiver="hook"} 2.0') in metrics
    assert 'iotwatch_alerting_delivery_latency_seconds_count{integration="email",' \
           'receiver="email"} 2.0' in metrics
    health = service.get("/health")
    assert health["status"] == "ok" and health["mqtt"] == "connected"


def test_alerts_of_one_device_are_grouped_into_one_notification(
        mosquitto, webhook, make_alert, publish_alert, service_config, start_service,
        unique_site):
    raw = service_config(mosquitto, {"hook": {"webhook": {"url": webhook.url}}})
    raw["alerting"]["route"]["group_wait_s"] = 1.0
    start_service(raw)
    alerts = [make_alert(site=unique_site, metric=metric) for metric in ("temperature",
                                                                         "pressure", "flow")]
    for alert in alerts:
        publish_alert(mosquitto, alert)
    [request] = webhook.wait_for(1)
    assert sorted(fp for fp, _ in request.alerts) == sorted(a.fingerprint for a in alerts)
    assert request.payload["commonLabels"]["device"] == "boiler-1"


def test_invalid_alerts_are_dead_lettered_and_the_service_keeps_going(
        mosquitto, mqtt_collector, webhook, make_alert, publish_alert, service_config,
        start_service, unique_site):
    service = start_service(service_config(mosquitto, {"hook": {"webhook": {"url": webhook.url}}}))
    letters = mqtt_collector(mosquitto, Topics("iotwatch").deadletter("alerting"))
    topic = Topics("iotwatch").alert(unique_site, "boiler-1", "temperature")
    publish_alert(mosquitto, None, payload=b"{not json", topic=topic)
    publish_alert(mosquitto, None, payload=b'{"state": "firing"}', topic=topic)
    wrong_stream = make_alert(site=unique_site, device="pump-9")
    publish_alert(mosquitto, wrong_stream, topic=topic)
    letters.wait_for(3)
    reasons = [letter["reason"] for letter in letters.json()]
    assert reasons == ["bad_json", "bad_alert", "bad_alert"]
    assert "pump-9" in letters.json()[2]["detail"]

    good = make_alert(site=unique_site)
    publish_alert(mosquitto, good)
    assert webhook.wait_for(1)[0].alerts == [(good.fingerprint, "firing")]
    assert 'iotwatch_alerting_alerts_rejected_total{reason="bad_alert"} 2.0' in service.metrics()


def test_silences_over_http_mute_and_their_removal_unmutes(
        mosquitto, webhook, make_alert, publish_alert, service_config, start_service,
        unique_site):
    service = start_service(service_config(mosquitto, {"hook": {"webhook": {"url": webhook.url}}}))
    status, bad = service.request("POST", "/silences", {"matchers": ["site"]})
    assert status == 400 and "label=value" in bad["error"]
    status, created = service.request("POST", "/silences", {
        "matchers": [f"site={unique_site}", "device=~boiler-.*"], "duration_s": 3600,
        "comment": "maintenance", "created_by": "test"})
    assert status == 201
    [listed] = service.get("/silences")
    assert listed["id"] == created["id"] and listed["state"] == "active"

    silenced = make_alert(site=unique_site)
    other = make_alert(site=unique_site, device="pump-1")
    publish_alert(mosquitto, silenced)
    publish_alert(mosquitto, other)
    assert webhook.wait_for(1)[0].alerts == [(other.fingerprint, "firing")]
    wait_until(lambda: any(a["silenced_by"] for a in service.get("/alerts")), timeout=10)
    by_fp = {a["fingerprint"]: a for a in service.get("/alerts")}
    assert by_fp[silenced.fingerprint]["silenced_by"] == [created["id"]]

    assert service.request("DELETE", f"/silences/{created['id']}")[0] == 200
    assert service.request("DELETE", f"/silences/{created['id']}")[0] == 404
    # At its group's next flush the still-firing alert goes out.
    webhook.wait_for(2)
    assert webhook.notifications() == {(other.fingerprint, "firing"),
                                       (silenced.fingerprint, "firing")}


def test_a_critical_alert_inhibits_warnings_of_the_same_device(
        mosquitto, webhook, make_alert, publish_alert, service_config, start_service,
        unique_site):
    raw = service_config(mosquitto, {"hook": {"webhook": {"url": webhook.url}}},
                         inhibit_rules=[{"source_matchers": ["severity=critical"],
                                         "target_matchers": ["severity=warning"],
                                         "equal": ["site", "device"]}])
    raw["alerting"]["route"]["group_by"] = ["..."]  # one group per alert
    service = start_service(raw)
    critical = make_alert(site=unique_site, metric="temperature")
    warning = make_alert(site=unique_site, metric="pressure", severity="warning")
    elsewhere = make_alert(site=unique_site, device="pump-1", metric="pressure",
                           severity="warning")
    for alert in (critical, warning, elsewhere):
        publish_alert(mosquitto, alert)
    webhook.wait_for(2)
    # The warning's group was flushed (and muted) several times: it had every chance.
    wait_until(lambda: _counter(service.metrics(), "alerts_muted_total", 'reason="inhibited"')
               >= 3, timeout=30, what="three muted flushes of the warning")
    assert webhook.notifications() == {(critical.fingerprint, "firing"),
                                       (elsewhere.fingerprint, "firing")}


def test_webhook_signature_covers_timestamp_and_body(webhook, make_alert):
    # The catcher accepts only correctly signed requests; a tampered one is refused.
    import urllib.error
    import urllib.request

    from alerting.receivers.webhook import signature_headers

    body = orjson.dumps({"version": "1", "alerts": []})
    headers = signature_headers(b"webhook-test-secret-91c2", body, now=__import__("time").time())
    tampered = urllib.request.Request(webhook.url, data=body + b" ", headers=headers)
    try:
        urllib.request.urlopen(tampered)
    except urllib.error.HTTPError as exc:
        assert exc.code == 401
    good = urllib.request.Request(webhook.url, data=body, headers=headers)
    assert urllib.request.urlopen(good).status == 200
    assert verify_signature(b"webhook-test-secret-91c2", headers, body,
                            now=int(headers["X-Iotwatch-Timestamp"]) + 10)
    assert not verify_signature(b"webhook-test-secret-91c2", headers, body,
                                now=int(headers["X-Iotwatch-Timestamp"]) + 3600)


def _counter(metrics: str, name: str, labels: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(f"iotwatch_alerting_{name}{{{labels}}}"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_rejected_notification_is_reported_by_the_api_and_metrics(
        mosquitto, webhook, make_alert, publish_alert, service_config, start_service,
        unique_site):
    service = start_service(service_config(mosquitto, {"hook": {"webhook": {"url": webhook.url}}}))
    webhook.respond(400, times=1)
    alert = make_alert(site=unique_site)
    publish_alert(mosquitto, alert)
    [failed] = wait_until(lambda: service.get("/deliveries?status=failed"), timeout=30,
                          what="the failed delivery to be listed")
    assert failed["target"] == "hook/webhook" and failed["reason"] == "http_400"
    assert failed["attempts"] == 1 and failed["alerts"] == [
        {"fingerprint": alert.fingerprint, "state": "firing"}]
    assert len(webhook.requests) == 1
    wait_until(lambda: _counter(service.metrics(), "notifications_failed_total",
                                'integration="webhook",reason="http_400",receiver="hook"') == 1,
               timeout=30, what="the failure to be counted")
    status, error = service.request("GET", "/deliveries?status=lost")
    assert status == 400 and "pending, delivered, failed" in error["error"]
