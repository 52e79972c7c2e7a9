"""``format: alertmanager`` webhooks against Alertmanager's payload contract.

The schema (config/contracts/alertmanager-webhook.schema.json) is written from
Alertmanager's own types (notify/webhook ``Message`` around template ``Data``) and its
configuration docs: exactly those fields. Real deliveries of the running service, as the
webhook catcher received them, must validate.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import jsonschema
import pytest
from harness import wait_until

from alerting.notification import Notification, Target
from alerting.receivers.webhook import webhook_payload
from alerting.templates import LinkTemplate

from .conftest import T0

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "config" / "contracts"
                     / "alertmanager-webhook.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def test_the_schema_is_valid_and_refuses_the_iotwatch_format(make_alert):
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    note = Notification(Target("ops", "webhook"), "{}:{}", {}, (make_alert(),), 1, T0)
    errors = {e.message for e in VALIDATOR.iter_errors(webhook_payload(note, LinkTemplate(None)))}
    assert "'4' was expected" in errors  # version "1"
    assert any("None is not of type 'string'" in e for e in errors)  # endsAt, externalURL


def test_alertmanager_deliveries_validate_and_read_as_alertmanager_ones(
        mosquitto, webhook, make_alert, publish_alert, service_config, start_service,
        unique_site):
    raw = service_config(
        mosquitto, {"hook": {"webhook": {"url": webhook.url, "format": "alertmanager"}}},
        dashboard_url="http://grafana/d/x?var-site={{ site }}&var-device={{ device }}",
        external_url="http://alerting.example:9102")
    start_service(raw)
    firing = make_alert(site=unique_site)
    publish_alert(mosquitto, firing)
    [request] = webhook.wait_for(1)
    publish_alert(mosquitto, make_alert(site=unique_site, state="resolved", ts=firing.ts + 60,
                                        starts_at=firing.starts_at))
    first, second = webhook.wait_for(2)

    for delivered in (first, second):
        assert delivered.signature_ok is True and delivered.idempotency_key
        VALIDATOR.validate(delivered.payload)  # raises with the offending path
    body, resolved = first.payload, second.payload
    assert (body["version"], body["status"], body["receiver"], body["truncatedAlerts"]) == \
        ("4", "firing", "hook", 0)
    assert body["externalURL"] == "http://alerting.example:9102"
    assert body["groupLabels"] == {"device": "boiler-1", "site": unique_site}
    assert body["commonLabels"]["alertname"] == "anomaly"
    assert body["commonAnnotations"] == {"summary": f"temperature on {unique_site}/boiler-1 "
                                                    "is firing"}
    [alert] = body["alerts"]
    assert alert["fingerprint"] == firing.fingerprint and alert["status"] == "firing"
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert _epoch(alert["startsAt"]) == firing.starts_at
    assert alert["generatorURL"] == f"http://grafana/d/x?var-site={unique_site}&var-device=boiler-1"
    assert alert["labels"] == {"alertname": "anomaly", "site": unique_site,
                               "device": "boiler-1", "metric": "temperature",
                               "rule": "anomaly", "severity": "critical"}
    [gone] = resolved["alerts"]
    assert resolved["status"] == "resolved" and gone["status"] == "resolved"
    assert _epoch(gone["endsAt"]) == firing.ts + 60
    assert resolved["groupKey"] == body["groupKey"]


def test_max_alerts_counts_the_rest_as_truncated(
        mosquitto, webhook, make_alert, publish_alert, service_config, start_service,
        unique_site):
    raw = service_config(mosquitto, {"hook": {"webhook": {
        "url": webhook.url, "format": "alertmanager", "max_alerts": 1}}})
    start_service(raw)
    for metric in ("temperature", "pressure", "flow"):
        publish_alert(mosquitto, make_alert(site=unique_site, metric=metric))
    def all_three():
        return [r.payload for r in webhook.unique()
                if len(r.payload["alerts"]) + r.payload["truncatedAlerts"] == 3]

    [body] = wait_until(all_three, timeout=30, what="a notification of all three alerts")
    for request in webhook.unique():
        VALIDATOR.validate(request.payload)
    assert (len(body["alerts"]), body["truncatedAlerts"]) == (1, 2)
    assert body["externalURL"] == ""  # no external_url: a string all the same


@pytest.mark.parametrize("fmt", ["alertmanager", "iotwatch"])
def test_the_format_is_a_checked_option(fmt):
    from alerting.config import WebhookSettings
    from iotwatch.config import errors_of

    assert WebhookSettings.model_validate({"url": "http://h/", "format": fmt}).format == fmt
    [error] = errors_of(WebhookSettings, {"url": "http://h/", "format": "prometheus"})
    assert error.startswith("format:") and "alertmanager" in error


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
