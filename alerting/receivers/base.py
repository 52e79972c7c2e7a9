"""The one interface every receiver integration implements, and its error.

A notifier delivers one notification or raises ``NotifyError`` saying whether another
attempt could help (network trouble, timeouts, 5xx, 429: yes; other 4xx, refused
credentials: no). Retrying is not its business: the delivery stage does that, in one
place. Errors and descriptions never carry secrets: URLs are shown redacted.

>>> redact_url("https://user:pw@hooks.example.com:8443/services/T0/B0/XyZ?token=abc")
'https://hooks.example.com:8443/...'
>>> redact_url("http://127.0.0.1:9000/")
'http://127.0.0.1:9000/'
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import urlsplit

from alerting.notification import Notification
from iotwatch import IotwatchError


class NotifyError(IotwatchError):
    """A failed delivery attempt.

    ``reason`` is a short label for metrics (``network``, ``timeout``, ``http_500``,
    ``smtp_550`` ...); ``detail`` is for people and holds no secret; ``retry_after_s``
    is the receiver's own request (HTTP Retry-After), honoured by the retry stage.
    """

    def __init__(self, reason: str, detail: str, *, retryable: bool,
                 retry_after_s: float | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        kind = "retryable" if retryable else "not retryable"
        super().__init__(f"{reason} ({kind}): {detail}")


class Notifier(Protocol):
    """Delivers notifications to one integration of one receiver."""

    integration: str

    def send(self, notification: Notification) -> None:
        """Deliver, or raise NotifyError."""
        ...

    def describe(self) -> str:
        """Where deliveries go, safe to log (no secrets)."""
        ...


def redact_url(url: str) -> str:
    """Scheme, host and port only: paths and query strings often carry tokens."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    path = "/..." if parts.path not in ("", "/") or parts.query else "/"
    return f"{parts.scheme}://{host}{port}{path}"
