"""Each notifier against a real server: what is sent, and which failures are retryable."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from harness import free_port

from alerting.catchers import SmtpCatcher, WebhookCatcher
from alerting.config import EmailSettings, WebhookSettings
from alerting.notification import Notification, Target
from alerting.receivers.base import NotifyError
from alerting.receivers.email import EmailNotifier
from alerting.receivers.webhook import WebhookNotifier
from alerting.templates import LinkTemplate

from .conftest import SMTP_PASSWORD, SMTP_USER, T0

LINKS = LinkTemplate("http://grafana/d/iotwatch-overview?var-site={{ site }}&from={{ from_ms }}")


@pytest.fixture
def note(make_alert) -> Notification:
    return Notification(Target("ops", "webhook"), '{}:{site="plant-1"}', {"site": "plant-1"},
                        (make_alert(), make_alert(metric="pressure", severity="warning")),
                        seq=3, created_at=T0 + 30)


def webhook_notifier(url: str, **settings) -> WebhookNotifier:
    return WebhookNotifier(WebhookSettings.model_validate({"url": url, **settings}), LINKS,
                           external_url="http://alerting:9102")


def failure(notifier, note) -> NotifyError:
    with pytest.raises(NotifyError) as raised:
        notifier.send(note)
    return raised.value


# --- webhook ---------------------------------------------------------------------------


def test_webhook_payload_headers_and_signature(note):
    with WebhookCatcher(secret=b"k3y") as hook:
        notifier = webhook_notifier(hook.url, secret="k3y", token="t0ken",
                                    headers={"X-Team": "ops"})
        notifier.send(note)
        notifier.send(note)  # a retry after a lost answer: same key, same body
        first, second = hook.wait_for_requests(2)
    assert first.signature_ok and second.signature_ok
    assert first.body == second.body and first.idempotency_key == note.idempotency_key
    assert hook.duplicates() == 1 and len(hook.unique()) == 1
    assert first.headers["authorization"] == "Bearer t0ken"
    assert first.headers["x-team"] == "ops"
    assert first.headers["content-type"] == "application/json"
    body = first.payload
    assert {k: body[k] for k in ("version", "status", "groupKey", "sequence", "receiver",
                                 "truncatedAlerts", "externalURL")} == {
        "version": "1", "status": "firing", "groupKey": '{}:{site="plant-1"}', "sequence": 3,
        "receiver": "ops", "truncatedAlerts": 0, "externalURL": "http://alerting:9102"}
    assert body["commonLabels"] == {"device": "boiler-1", "rule": "anomaly", "site": "plant-1"}
    alert = body["alerts"][0]
    assert alert["startsAt"] == "2026-01-20T10:29:40.000Z" and alert["endsAt"] is None
    assert alert["scores"] == {"zscore": 7.8, "hst": 0.94}
    assert alert["dashboardURL"] == ("http://grafana/d/iotwatch-overview?var-site=plant-1"
                                     "&from=1768901380000")


@pytest.mark.parametrize(("status", "headers", "reason", "retryable", "retry_after"), [
    (500, {}, "http_500", True, None),
    (502, {}, "http_502", True, None),
    (503, {"Retry-After": "12"}, "http_503", True, 12.0),
    (429, {"Retry-After": "7"}, "http_429", True, 7.0),
    (408, {}, "http_408", True, None),
    (400, {}, "http_400", False, None),
    (401, {}, "http_401", False, None),
    (404, {}, "http_404", False, None),
    (413, {}, "http_413", False, None),
    (302, {"Location": "http://elsewhere/"}, "http_302", False, None),
])
def test_webhook_http_answers_decide_retries(note, status, headers, reason, retryable,
                                             retry_after):
    with WebhookCatcher() as hook:
        hook.respond(status, headers=headers)
        error = failure(webhook_notifier(hook.url), note)
    assert (error.reason, error.retryable, error.retry_after_s) == (reason, retryable,
                                                                     retry_after)


def test_webhook_connection_refused_is_retryable(note):
    error = failure(webhook_notifier(f"http://127.0.0.1:{free_port()}/hook"), note)
    assert (error.reason, error.retryable) == ("network", True)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections (the kernel does) but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def test_webhook_timeout_is_retryable(note, silent_server):
    error = failure(webhook_notifier(f"http://127.0.0.1:{silent_server}/", timeout_s=0.3), note)
    assert (error.reason, error.retryable) == ("timeout", True)


def test_webhook_tls_is_verified_by_default(note, smtp_cert):
    with WebhookCatcher(cert=smtp_cert) as hook:
        error = failure(webhook_notifier(hook.url), note)
        assert (error.reason, error.retryable) == ("tls_verify", False)
        webhook_notifier(hook.url, ca_file=str(smtp_cert[0])).send(note)
        webhook_notifier(hook.url, verify_tls=False).send(note)
        assert len(hook.wait_for_requests(2)) == 2


def test_webhook_errors_and_descriptions_carry_no_secrets(note):
    with WebhookCatcher() as hook:
        hook.respond(500)
        url = hook.url.replace("http://", "http://user:pa55word@") + "/T0/XSECRETX?token=abc123"
        notifier = webhook_notifier(url, secret="hm4c-secret", token="bearer-secret")
        error = failure(notifier, note)
    text = f"{error} {error.detail} {notifier.describe()}"
    for secret in ("pa55word", "XSECRETX", "abc123", "hm4c-secret", "bearer-secret"):
        assert secret not in text
    assert notifier.describe() == f"webhook http://127.0.0.1:{hook.port}/..."


# --- email -----------------------------------------------------------------------------


def email_notifier(server: SmtpCatcher, smtp_cert, password: str | None = SMTP_PASSWORD,
                   **settings) -> EmailNotifier:
    section = {"to": ["ops@example.com", "oncall@example.com"], "from": "iotwatch@example.com",
               "host": server.host, "port": server.port, "tls": "starttls",
               "ca_file": str(smtp_cert[0]), "username": SMTP_USER, "password": password,
               "timeout_s": 5, **settings}
    return EmailNotifier(EmailSettings.model_validate(section), LINKS, "http://alerting:9102")


def test_email_over_starttls_with_auth_renders_text_and_html(note, smtp_server, smtp_cert):
    email_notifier(smtp_server, smtp_cert).send(note)
    [mail] = smtp_server.wait_for(1)
    assert mail.tls and mail.login == SMTP_USER
    assert mail.subject == "[FIRING:2] plant-1 boiler-1 anomaly"
    assert mail.message["Message-ID"] == f"<{note.idempotency_key}@example.com>"
    assert mail.message["X-Iotwatch-Group-Key"] == note.group_key
    text, html = mail.body("plain"), mail.body("html")
    for expected in ("[FIRING] plant-1/boiler-1/temperature", "value 93.4", "score 0.999",
                     "zscore=7.8", "since 2026-01-20T10:29:40.000Z (50s)",
                     "dashboard: http://grafana/d/iotwatch-overview?var-site=plant-1",
                     "Alerts and silences: http://alerting:9102"):
        assert expected in text
    assert '<a href="http://grafana/d/iotwatch-overview?var-site=plant-1&amp;from=' in html


def test_email_html_escapes_values(smtp_server, smtp_cert, make_alert):
    alert = make_alert()
    hostile = type(alert)(**{**{f: getattr(alert, f) for f in alert.__slots__},
                             "annotations": {"summary": "<script>alert(1)</script>"}})
    note = Notification(Target("ops", "email"), "{}:{}", {}, (hostile,), 1, T0)
    email_notifier(smtp_server, smtp_cert).send(note)
    [mail] = smtp_server.wait_for(1)
    assert "<script>" not in mail.body("html") and "&lt;script&gt;" in mail.body("html")
    assert "<script>alert(1)</script>" in mail.body("plain")


def test_email_custom_templates(note, smtp_server, smtp_cert):
    email_notifier(smtp_server, smtp_cert, subject="{{ STATUS }} at {{ site }}: {{ count_firing }}",
                   alert_text="* {{ metric }} = {{ value }}\n").send(note)
    [mail] = smtp_server.wait_for(1)
    assert mail.subject == "FIRING at plant-1: 2"
    assert "* temperature = 93.4" in mail.body("plain")


def test_email_implicit_tls(note, smtp_cert):
    with SmtpCatcher(cert=smtp_cert, implicit_tls=True) as server:
        email_notifier(server, smtp_cert, tls="implicit", username=None, password=None).send(note)
        assert server.wait_for(1)[0].tls


@pytest.mark.parametrize(("reply", "reason", "retryable"), [
    ("451 4.3.0 try again later", "smtp_451", True),
    ("452 4.2.2 mailbox full", "smtp_452", True),
    ("550 5.1.1 no such user", "smtp_550", False),
])
def test_email_smtp_replies_decide_retries(note, smtp_server, smtp_cert, reply, reason,
                                           retryable):
    smtp_server.reply(reply, times=2)  # both recipients refused
    error = failure(email_notifier(smtp_server, smtp_cert), note)
    assert (error.reason, error.retryable) == (reason, retryable)


def test_email_wrong_password_is_not_retried_and_not_logged(note, smtp_server, smtp_cert):
    error = failure(email_notifier(smtp_server, smtp_cert, password="wrong-pa55"), note)
    assert (error.reason, error.retryable) == ("smtp_535", False)
    assert "wrong-pa55" not in str(error)


def test_email_untrusted_certificate_is_refused(note, smtp_server, smtp_cert):
    error = failure(email_notifier(smtp_server, smtp_cert, ca_file=None), note)
    assert (error.reason, error.retryable) == ("tls_verify", False)


def test_email_server_down_is_retryable(note, smtp_cert):
    server = SmtpCatcher()  # never started: nothing listens on its port
    error = failure(email_notifier(server, smtp_cert), note)
    assert (error.reason, error.retryable) == ("network", True)
