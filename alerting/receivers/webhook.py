"""Webhook integration: HTTP POST of a versioned JSON payload, signed with HMAC-SHA256.

Every request carries ``Idempotency-Key`` (also in the payload as ``idempotencyKey``):
the same notification retried has the same key, so a receiver drops what it already
has. With a ``secret``, ``X-Iotwatch-Timestamp`` holds the Unix time of the attempt and
``X-Iotwatch-Signature`` is ``sha256=`` + hex HMAC-SHA256 of ``<timestamp>.<raw body>``:
the timestamp is signed too, so a captured request cannot be replayed later with a
fresh one (``verify_signature`` checks both; see docs/alerting.md).

>>> body = b'{"version":"1"}'
>>> headers = signature_headers(b"s3cret", body, now=1768905000.0)
>>> headers["X-Iotwatch-Signature"][:15]
'sha256=034970d0'
>>> verify_signature(b"s3cret", headers, body, now=1768905060.0)
True
>>> verify_signature(b"s3cret", headers, body + b" ", now=1768905060.0)
False
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from alerting.config import WebhookSettings
from alerting.notification import Notification
from alerting.receivers.base import NotifyError, redact_url
from alerting.templates import LinkTemplate, TemplateRenderError
from iotwatch import __version__
from iotwatch.contracts import Alert
from iotwatch.retry import parse_retry_after
from iotwatch.timeparse import format_rfc3339

PAYLOAD_VERSION = "1"
ALERTMANAGER_VERSION = "4"
GO_ZERO_TIME = "0001-01-01T00:00:00Z"  # how Go encodes an unset time.Time
SIGNATURE_HEADER = "X-Iotwatch-Signature"
TIMESTAMP_HEADER = "X-Iotwatch-Timestamp"
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_RESPONSE_CHARS = 200


def signature_headers(secret: bytes, body: bytes, now: float) -> dict[str, str]:
    timestamp = str(int(now))
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: f"sha256={digest}"}


def verify_signature(secret: bytes, headers: Mapping[str, str], body: bytes, now: float,
                     tolerance_s: float = 300.0) -> bool:
    """True if the signature matches and the timestamp is within ``tolerance_s`` of ``now``."""
    lower = {k.lower(): v for k, v in headers.items()}
    timestamp = lower.get(TIMESTAMP_HEADER.lower(), "")
    signature = lower.get(SIGNATURE_HEADER.lower(), "")
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance_s:
        return False
    expected = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature, f"sha256={expected}")


def webhook_payload(note: Notification, links: LinkTemplate,
                    external_url: str | None = None) -> dict[str, Any]:
    """The JSON body (version "1"); the same notification always gives the same body."""
    return {
        "version": PAYLOAD_VERSION,
        "idempotencyKey": note.idempotency_key,
        "receiver": note.target.receiver,
        "status": note.status,
        "groupKey": note.group_key,
        "sequence": note.seq,
        "groupLabels": note.group_labels,
        "commonLabels": note.common_labels(),
        "commonAnnotations": note.common_annotations(),
        "externalURL": external_url,
        "truncatedAlerts": note.truncated,
        "alerts": [{
            "status": a.state,
            "fingerprint": a.fingerprint,
            "labels": a.all_labels,
            "annotations": a.annotations,
            "startsAt": format_rfc3339(a.starts_at),
            "endsAt": None if a.ends_at is None else format_rfc3339(a.ends_at),
            "updatedAt": format_rfc3339(a.ts),
            "value": a.value,
            "score": a.score,
            "threshold": a.threshold,
            "scores": a.scores,
            "dashboardURL": links.render(a),
        } for a in note.alerts],
    }


def alertmanager_payload(note: Notification, links: LinkTemplate,
                         external_url: str | None = None) -> dict[str, Any]:
    """Prometheus Alertmanager's webhook body (version "4"), field for field.

    A firing alert's ``endsAt`` is Go's zero time, as Alertmanager sends it; its
    ``generatorURL`` is the dashboard link (empty without ``dashboard_url``). Every alert
    carries the ``alertname`` label consumers of Alertmanager expect: its rule, unless the
    alert has a label of that name.

    >>> from alerting.notification import Target
    >>> from iotwatch.contracts import Alert
    >>> alert = Alert("5cc898f9ef5e139c", "firing", "critical", "plant-1", "boiler-1",
    ...               "temperature", "anomaly", 93.4, 0.999, 0.99, 1768905000.0, 1768905010.0)
    >>> note = Notification(Target("ops", "webhook"), "{}:{}", {}, (alert,), 1, 1768905030.0)
    >>> body = alertmanager_payload(note, LinkTemplate(None))
    >>> body["version"], body["alerts"][0]["endsAt"], body["commonLabels"]["alertname"]
    ('4', '0001-01-01T00:00:00Z', 'anomaly')
    """
    alerts = [{
        "status": a.state,
        "labels": _alertmanager_labels(a),
        "annotations": dict(a.annotations),
        "startsAt": format_rfc3339(a.starts_at),
        "endsAt": (GO_ZERO_TIME if a.state == "firing"
                   else format_rfc3339(a.ends_at if a.ends_at is not None else a.ts)),
        "generatorURL": links.render(a) or "",
        "fingerprint": a.fingerprint,
    } for a in note.alerts]
    return {
        "version": ALERTMANAGER_VERSION,
        "groupKey": note.group_key,
        "truncatedAlerts": note.truncated,
        "status": note.status,
        "receiver": note.target.receiver,
        "groupLabels": dict(note.group_labels),
        "commonLabels": _common([a["labels"] for a in alerts]),
        "commonAnnotations": _common([a["annotations"] for a in alerts]),
        "externalURL": external_url or "",
        "alerts": alerts,
    }


PAYLOADS: dict[str, Callable[[Notification, LinkTemplate, str | None], dict[str, Any]]] = {
    "iotwatch": webhook_payload, "alertmanager": alertmanager_payload}


def _alertmanager_labels(alert: Alert) -> dict[str, str]:
    return {"alertname": alert.rule, **alert.all_labels}


def _common(mappings: list[dict[str, str]]) -> dict[str, str]:
    if not mappings:
        return {}
    first, *rest = mappings
    return {k: v for k, v in sorted(first.items()) if all(m.get(k) == v for m in rest)}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A webhook that redirects is misconfigured; following a POST redirect loses the body.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class WebhookNotifier:
    integration = "webhook"

    def __init__(self, settings: WebhookSettings, links: LinkTemplate,
                 external_url: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.links = links
        self.external_url = external_url
        self.clock = clock
        self._secret = settings.secret.get_secret_value().encode() if settings.secret else None
        context = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file else None)
        if not settings.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=context), _NoRedirect())

    def describe(self) -> str:
        return f"webhook {redact_url(self.settings.url)}"

    def send(self, notification: Notification) -> None:
        payload = PAYLOADS[self.settings.format]
        try:
            body = orjson.dumps(payload(notification, self.links, self.external_url))
        except TemplateRenderError as exc:  # the dashboard link; the same on every attempt
            raise NotifyError("template", f"template {exc}", retryable=False) from None
        headers = {"Content-Type": "application/json",
                   "User-Agent": f"iotwatch-alerting/{__version__}",
                   "Idempotency-Key": notification.idempotency_key,
                   **self.settings.headers}
        if self._secret is not None:
            headers.update(signature_headers(self._secret, body, self.clock()))
        if self.settings.token is not None:
            headers["Authorization"] = f"Bearer {self.settings.token.get_secret_value()}"
        request = urllib.request.Request(self.settings.url, data=body, headers=headers,
                                         method="POST")
        try:
            with self._opener.open(request, timeout=self.settings.timeout_s) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc) from None
        except urllib.error.URLError as exc:
            raise _network_error(exc.reason) from None
        except TimeoutError as exc:
            raise NotifyError("timeout", f"no answer within {self.settings.timeout_s:g}s",
                              retryable=True) from exc
        except (OSError, ssl.SSLError) as exc:
            raise _network_error(exc) from None

    def _http_error(self, exc: urllib.error.HTTPError) -> NotifyError:
        code = exc.code
        try:
            text = exc.read(MAX_RESPONSE_CHARS).decode("utf-8", "replace").strip()
        except OSError:
            text = ""
        detail = f"HTTP {code} {exc.reason}" + (f": {text}" if text else "")
        if 300 <= code < 400:
            return NotifyError(f"http_{code}", f"{detail} (redirects are not followed; "
                               "configure the final URL)", retryable=False)
        retry_after = parse_retry_after(exc.headers.get("Retry-After"), self.clock()) \
            if exc.headers else None
        return NotifyError(f"http_{code}", detail, retryable=code in RETRYABLE_STATUSES,
                           retry_after_s=retry_after)


def _network_error(reason: object) -> NotifyError:
    if isinstance(reason, ssl.SSLCertVerificationError):
        return NotifyError("tls_verify", f"TLS certificate not trusted: {reason.verify_message}",
                           retryable=False)
    if isinstance(reason, TimeoutError):
        return NotifyError("timeout", "no answer in time", retryable=True)
    text = getattr(reason, "strerror", None) or str(reason)
    return NotifyError("network", text, retryable=True)
