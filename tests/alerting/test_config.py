"""The alerting configuration: the sample file is valid, and every mistake is named by key."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting.config import AlertingFile
from alerting.receivers import build_targets
from alerting.templates import LinkTemplate
from iotwatch.config import ConfigError, build_config, errors_of, load_config

SAMPLE = Path(__file__).resolve().parents[2] / "config" / "alerting.yaml"


def with_alerting(**section) -> dict:
    base = {"route": {"receiver": "ops"},
            "receivers": {"ops": {"webhook": {"url": "http://127.0.0.1:9000/hook"}}}}
    return {"alerting": {**base, **section}}


def test_the_sample_file_is_valid_and_builds_its_receivers():
    config = load_config(SAMPLE, AlertingFile, environ={
        "IOTWATCH__ALERTING__RECEIVERS__OPS_WEBHOOK__WEBHOOK__SECRET": "s"})
    assert config.mqtt.username == "alerting"
    assert config.alerting.receivers["ops_webhook"].webhook.secret.get_secret_value() == "s"
    targets = build_targets(config.alerting.receivers, LinkTemplate(config.alerting.dashboard_url))
    assert sorted(s.target.name for specs in targets.values() for s in specs) == [
        "ops_email/email", "ops_webhook/webhook"]


def test_secrets_come_from_the_environment_or_files(tmp_path):
    secret_file = tmp_path / "smtp-password"
    secret_file.write_text("from-a-file\n")
    raw = with_alerting(receivers={"mail": {"email": {
        "to": ["a@example.com"], "username": "u", "password_file": str(secret_file)}},
        "ops": {"webhook": {"url": "http://h/"}}})
    config = build_config(raw, AlertingFile, environ={
        "IOTWATCH__ALERTING__RECEIVERS__OPS__WEBHOOK__TOKEN": "from-env"})
    receivers = config.alerting.receivers
    assert receivers["mail"].email.password.get_secret_value() == "from-a-file"
    assert receivers["ops"].webhook.token.get_secret_value() == "from-env"
    assert "from-a-file" not in repr(config) and "from-env" not in repr(config)


@pytest.mark.parametrize(("raw", "error"), [
    ({"alerting": {}},
     "alerting: route.receiver: the root route needs a receiver (receivers: none configured)"),
    (with_alerting(route={"receiver": "ops", "routes": [{"receiver": "nope"}]}),
     "alerting: route.routes.0.receiver: unknown receiver 'nope' (receivers: ops)"),
    (with_alerting(route={"receiver": "ops", "routes": [{"matchers": ["severity"]}]}),
     "alerting.route.routes.0.matchers.0: matcher 'severity' must look like label=value, "
     "label!=value, label=~regex or label!~regex"),
    (with_alerting(route={"receiver": "ops", "matchers": ["a=b"]}),
     "alerting: route.matchers: the root route matches every alert; put matchers on its "
     "child routes"),
    (with_alerting(route={"receiver": "ops", "group_interval_s": 0}),
     "alerting.route.group_interval_s: must be > 0, got 0"),
    (with_alerting(receivers={"ops": {}}),
     "alerting.receivers.ops: a receiver needs an email: or a webhook: section"),
    (with_alerting(receivers={"ops": {"webhook": {"url": "ftp://h/"}}}),
     "alerting.receivers.ops.webhook.url: must be an http:// or https:// URL with a host"),
    (with_alerting(receivers={"ops": {"webhook": {"url": "http://h/", "secret": "x"}}}),
     "alerting.receivers.ops.webhook.secret: secrets must not be written in the YAML; set "
     "IOTWATCH__ALERTING__RECEIVERS__OPS__WEBHOOK__SECRET or "
     "alerting.receivers.ops.webhook.secret_file"),
    (with_alerting(receivers={"ops": {"webhook": {"url": "http://h/",
                                                  "headers": {"Idempotency-Key": "x"}}}}),
     "alerting.receivers.ops.webhook.headers: header Idempotency-Key is set by iotwatch "
     "itself (for Authorization: Bearer, use token)"),
    (with_alerting(receivers={"ops": {"email": {"to": ["nobody"]}}}),
     "alerting.receivers.ops.email.to: must be e-mail addresses, got 'nobody'"),
    (with_alerting(receivers={"ops": {"email": {"to": ["a@b"], "tls": "ssl"}}}),
     "alerting.receivers.ops.email.tls: must be one of 'starttls', 'implicit' or 'none', "
     "got 'ssl'"),
    (with_alerting(receivers={"ops": {"email": {"to": ["a@b"],
                                                "subject": "[{{ STATUS }}] {{ sight }}"}}}),
     "alerting.receivers.ops.email.subject: unknown template variable(s) sight; known: "
     "STATUS, alerts, common_labels, count, count_firing, count_resolved, device, "
     "external_url, footer, group_key, group_labels, metric, receiver, rule, severity, site, "
     "status, summary, truncated"),
    (with_alerting(dashboard_url="http://grafana/d/x?site={{ sitee }}"),
     "alerting.dashboard_url: unknown template variable(s) sitee; known: device, "
     "fingerprint, from_ms, metric, rule, severity, site, to_ms"),
    (with_alerting(silences=[{"matchers": ["site=a"], "ends_at": "tomorrow"}]),
     "alerting.silences.0.ends_at: expected RFC 3339 (2026-01-20T10:30:00Z) or epoch "
     "seconds/ms, got 'tomorrow'"),
    (with_alerting(receivers={"bad name": {"webhook": {"url": "http://h/"}}}),
     "alerting.receivers: receiver name 'bad name' must match [A-Za-z0-9_.-]{1,64}"),
    (with_alerting(delivery={"retry": {"multiplier": 0.5}}),
     "alerting.delivery.retry.multiplier: must be >= 1, got 0.5"),
])
def test_mistakes_are_named_by_key_path(raw, error):
    assert errors_of(AlertingFile, raw) == [error]


def test_a_missing_template_file_stops_the_start_with_its_name(tmp_path):
    raw = with_alerting(receivers={"ops": {"email": {"to": ["a@b"],
                                                     "html_file": str(tmp_path / "no.html")}}})
    config = build_config(raw, AlertingFile, environ={})
    with pytest.raises(ValueError, match=r"alerting.receivers.ops.email: html_file: cannot "
                                         r"read template .*no.html: No such file"):
        build_targets(config.alerting.receivers, LinkTemplate(None))


def test_load_config_picks_the_alerting_model_by_its_section(tmp_path):
    path = tmp_path / "alerting.yaml"
    path.write_text("alerting:\n  route: {receiver: ops}\n  receivers:\n"
                    "    ops: {webhook: {url: 'http://h/'}}\n")
    assert isinstance(load_config(path, environ={}), AlertingFile)
    path.write_text("alerting:\n  route: {receiver: ops}\n")
    with pytest.raises(ConfigError, match="unknown receiver|needs a receiver"):
        load_config(path, environ={})
