"""The alerting service's configuration file: shared sections plus ``alerting:``.

``alerting:`` holds the routing tree, the receivers (each with an ``email`` and/or a
``webhook`` integration), inhibition rules, silences, delivery retries and where the
SQLite database lives. Durations are seconds (``group_wait_s``), as everywhere in
iotwatch. Secrets (SMTP ``password``, webhook ``secret`` and ``token``) come from the
environment or ``*_file`` keys, never from the YAML: with a receiver called
``ops_webhook``, ``IOTWATCH__ALERTING__RECEIVERS__OPS_WEBHOOK__WEBHOOK__SECRET``.

>>> config = AlertingFile.model_validate({"alerting": {
...     "route": {"receiver": "ops", "group_by": ["site"]},
...     "receivers": {"ops": {"webhook": {"url": "http://127.0.0.1:9000/hook"}}}}})
>>> config.alerting.route.group_by, config.alerting.receivers["ops"].webhook.timeout_s
(['site'], 10.0)
>>> from iotwatch.config import errors_of
>>> errors_of(AlertingFile, {"alerting": {"route": {"receiver": "nobody"},
...                                       "receivers": {"ops": {"webhook": {"url": "http://h/"}}}}})
["alerting: route.receiver: unknown receiver 'nobody' (receivers: ops)"]
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from alerting.matchers import parse_matcher
from alerting.templates import check_template
from iotwatch.config import HttpSettings, LogSettings, MqttSettings, StrictModel
from iotwatch.timeparse import TimestampError, parse_timestamp

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _check_matcher(text: str) -> str:
    parse_matcher(text)
    return text


def _check_timestamp(text: str | None) -> str | None:
    if text is not None:
        try:
            parse_timestamp(text)
        except TimestampError as exc:
            raise ValueError(str(exc)) from None
    return text


MatcherText = Annotated[str, AfterValidator(_check_matcher)]
Timestamp = Annotated[str | None, AfterValidator(_check_timestamp)]
Seconds = Annotated[float, Field(ge=0, le=31 * 86_400)]


class RouteSettings(StrictModel):
    """A node of the routing tree; unset grouping options are inherited from the parent."""

    receiver: str | None = None
    # Alertmanager matchers: 'severity="critical"', 'site=~"plant-.*"', 'device!=pump-3'.
    matchers: list[MatcherText] = []
    # Labels whose values make a group ("..." groups by every label: one alert per group).
    group_by: list[str] | None = None
    # Wait this long after a group's first alert, to batch alerts that fire together.
    group_wait_s: Seconds | None = None
    # Then at most one notification per group this often when the group changes.
    group_interval_s: Annotated[float, Field(gt=0, le=31 * 86_400)] | None = None
    # Re-send a notification whose alerts have not changed after this long.
    repeat_interval_s: Annotated[float, Field(gt=0, le=365 * 86_400)] | None = None
    # Keep matching the following sibling routes after this one matched.
    continue_: bool = Field(default=False, alias="continue")
    routes: list[RouteSettings] = []


class InhibitRuleSettings(StrictModel):
    """Mute alerts matching ``target_matchers`` while one matching ``source_matchers`` fires
    with the same values of the ``equal`` labels."""

    source_matchers: list[MatcherText] = Field(min_length=1)
    target_matchers: list[MatcherText] = Field(min_length=1)
    equal: list[str] = []


class SilenceSettings(StrictModel):
    """A silence written in the configuration (more can be added over HTTP)."""

    matchers: list[MatcherText] = Field(min_length=1)
    starts_at: Timestamp = None
    ends_at: Timestamp = None  # None: until the configuration changes
    comment: str = ""
    created_by: str = "config"


class EmailSettings(StrictModel):
    """SMTP delivery: STARTTLS (port 587), implicit TLS (port 465) or none (local relays)."""

    to: list[str] = Field(min_length=1)
    sender: str = Field(default="iotwatch@localhost", alias="from")
    host: str = "127.0.0.1"
    port: int = Field(default=587, ge=1, le=65535)
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    verify_tls: bool = True
    ca_file: Path | None = None
    username: str | None = None
    password: SecretStr | None = None
    hello: str | None = None
    timeout_s: float = Field(default=10.0, gt=0, le=600)
    send_resolved: bool = True
    headers: dict[str, str] = {}
    # Jinja2 texts ({{ name }}, {% for alert in alerts %}, {% if %}), sandboxed, HTML
    # autoescaped; see docs/alerting.md for the variables. subject/text/html render the
    # whole e-mail, alert_text/alert_html each alert in it ({{ alerts }}).
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    alert_text: str | None = None
    alert_html: str | None = None
    # Read at start-up instead of text/html (relative paths from the working directory).
    text_file: Path | None = None
    html_file: Path | None = None

    @field_validator("subject", "text", "html", "alert_text", "alert_html")
    @classmethod
    def _template(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else check_template(value, info.field_name)

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            if "@" not in address:
                raise ValueError(f"must be e-mail addresses, got {address!r}")
        return value


class WebhookSettings(StrictModel):
    """HTTP POST of the versioned JSON payload (docs/alerting.md)."""

    url: str
    # HMAC-SHA256 key for X-Iotwatch-Signature; without one, requests are not signed.
    secret: SecretStr | None = None
    # Sent as "Authorization: Bearer <token>".
    token: SecretStr | None = None
    headers: dict[str, str] = {}
    timeout_s: float = Field(default=10.0, gt=0, le=600)
    verify_tls: bool = True
    ca_file: Path | None = None
    send_resolved: bool = True
    # At most this many alerts per request (0: all); the rest are counted as truncated.
    max_alerts: int = Field(default=0, ge=0)
    # Body of each request: "iotwatch" (version "1", with scores, sequence and
    # idempotencyKey) or "alertmanager" (Prometheus Alertmanager's webhook payload,
    # version "4", for receivers written for Alertmanager). docs/alerting.md has both.
    format: Literal["iotwatch", "alertmanager"] = "iotwatch"

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value

    @field_validator("headers")
    @classmethod
    def _no_reserved_headers(cls, value: dict[str, str]) -> dict[str, str]:
        reserved = {"content-type", "content-length", "idempotency-key", "authorization",
                    "x-iotwatch-signature", "x-iotwatch-timestamp"}
        clash = sorted(k for k in value if k.lower() in reserved)
        if clash:
            raise ValueError(f"header {', '.join(clash)} is set by iotwatch itself (for "
                             "Authorization: Bearer, use token)")
        return value


class ReceiverSettings(StrictModel):
    """A named destination: one or both integrations, each delivered on its own."""

    email: EmailSettings | None = None
    webhook: WebhookSettings | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> ReceiverSettings:
        if self.email is None and self.webhook is None:
            raise ValueError("a receiver needs an email: or a webhook: section")
        return self


class RetrySettings(StrictModel):
    """Capped exponential backoff with jitter between attempts of one delivery."""

    initial_s: float = Field(default=1.0, gt=0, le=3600)
    max_s: float = Field(default=300.0, gt=0, le=86_400)
    multiplier: float = Field(default=2.0, ge=1, le=10)
    jitter: float = Field(default=0.2, ge=0, le=1)
    # A delivery still failing this long after it was queued is given up (failed, "expired").
    give_up_after_s: float = Field(default=86_400.0, gt=0)


class DeliverySettings(StrictModel):
    retry: RetrySettings = RetrySettings()
    # Delivered and failed deliveries stay listed (GET /deliveries) this long.
    keep_finished_s: float = Field(default=86_400.0, ge=0)


class AlertingSection(StrictModel):
    """Everything specific to the alerting service."""

    # SQLite file (WAL) with received alerts, the notification log, silences and the outbox.
    database: Path = Path("data/alerting/alerting.sqlite3")
    route: RouteSettings = RouteSettings()
    receivers: dict[str, ReceiverSettings] = {}
    inhibit_rules: list[InhibitRuleSettings] = []
    silences: list[SilenceSettings] = []
    delivery: DeliverySettings = DeliverySettings()
    # Link template per alert (Jinja2, values URL-encoded): {{ site }} {{ device }}
    # {{ metric }} {{ rule }} {{ severity }} {{ fingerprint }} {{ from_ms }} {{ to_ms }}.
    # Shown in e-mails and webhook payloads.
    dashboard_url: str | None = None
    # Where people reach this service's API (shown in notifications for silencing).
    external_url: str | None = None
    max_payload_bytes: int = Field(default=65_536, ge=256, le=16_777_216)

    @field_validator("dashboard_url")
    @classmethod
    def _link_template(cls, value: str | None) -> str | None:
        return None if value is None else check_template(value, "dashboard_url")

    @field_validator("receivers")
    @classmethod
    def _names(cls, value: dict[str, ReceiverSettings]) -> dict[str, ReceiverSettings]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"receiver name {name!r} must match [A-Za-z0-9_.-]{{1,64}}")
        return value

    @model_validator(mode="after")
    def _routes_name_receivers(self) -> AlertingSection:
        known = ", ".join(self.receivers) or "none configured"
        if self.route.receiver is None:
            raise ValueError(f"route.receiver: the root route needs a receiver (receivers: "
                             f"{known})")
        if self.route.matchers:
            raise ValueError("route.matchers: the root route matches every alert; put "
                             "matchers on its child routes")
        for path, route in _walk(self.route, "route"):
            if route.receiver is not None and route.receiver not in self.receivers:
                raise ValueError(f"{path}.receiver: unknown receiver {route.receiver!r} "
                                 f"(receivers: {known})")
        return self


def _walk(route: RouteSettings, path: str):
    yield path, route
    for index, child in enumerate(route.routes):
        yield from _walk(child, f"{path}.routes.{index}")


class AlertingFile(StrictModel):
    """A whole ``config/alerting.yaml``."""

    mqtt: MqttSettings = MqttSettings(username="alerting")
    http: HttpSettings = HttpSettings()
    log: LogSettings = LogSettings()
    alerting: AlertingSection
