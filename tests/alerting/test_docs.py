"""docs/alerting.md: its signature snippet verifies what the service sends, and its example
payload has the shape the service produces."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from alerting.notification import Notification, Target
from alerting.receivers.webhook import signature_headers, webhook_payload
from alerting.templates import LinkTemplate

DOC_DIR = Path(__file__).resolve().parents[2] / "docs"
DOC = (DOC_DIR / "alerting.md").read_text()


def _block(language: str, after: str) -> str:
    start = DOC.index(after)
    return re.search(rf"```{language}\n(.*?)```", DOC[start:], re.DOTALL).group(1)


def test_the_documented_verification_accepts_real_signatures_and_nothing_else():
    namespace: dict = {}
    exec(_block("python", "#### Verifying the signature"), namespace)
    verify = namespace["verify"]
    body = b'{"version":"1","alerts":[]}'
    headers = signature_headers(b"s3cret", body, time.time())
    assert verify(b"s3cret", headers, body)
    assert not verify(b"other", headers, body)
    assert not verify(b"s3cret", headers, body.replace(b"[]", b"[1]"))
    stale = signature_headers(b"s3cret", body, time.time() - 3600)
    assert not verify(b"s3cret", stale, body)


def test_the_documented_payload_has_the_keys_the_service_sends(make_alert):
    documented = json.loads(_block("json", "#### Payload"))
    note = Notification(Target("ops", "webhook"), "g", {}, (make_alert(),), 1, 0.0)
    sent = webhook_payload(note, LinkTemplate("http://g/{{ site }}"))
    assert set(documented) == set(sent)
    assert set(documented["alerts"][0]) == set(sent["alerts"][0])


def test_the_documented_alertmanager_payload_is_what_the_service_sends(make_alert):
    import jsonschema

    from alerting.receivers.webhook import alertmanager_payload

    documented = json.loads(_block("json", "#### Alertmanager payload"))
    schema = json.loads((DOC_DIR.parent / "config" / "contracts"
                         / "alertmanager-webhook.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(documented)
    note = Notification(Target("ops", "webhook"), "g", {}, (make_alert(),), 1, 0.0)
    sent = alertmanager_payload(note, LinkTemplate("http://g/{{ site }}"))
    assert set(documented) == set(sent)
    assert set(documented["alerts"][0]) == set(sent["alerts"][0])


def test_the_documented_template_example_checks_and_iterates(make_alert):
    import yaml

    from alerting.config import EmailSettings
    from alerting.receivers.email import templates_for

    example = yaml.safe_load(_block("yaml", "`alerts` prints as every alert"))
    settings = EmailSettings.model_validate(example["ops_email"]["email"])
    note = Notification(Target("ops", "email"), "g", {}, (
        make_alert(metric="temperature"), make_alert(metric="pressure", severity="warning"),
        make_alert(metric="flow", state="resolved")), 1, 0.0)
    email = templates_for(settings, None).render(note, LinkTemplate(None))
    assert email.subject == "[FIRING] 2 firing on plant-1"
    assert email.text == ("plant-1/boiler-1 temperature = 93.4 (CRITICAL)\n"
                          "plant-1/boiler-1 pressure = 93.4\n"
                          "Resolved: flow\n")
