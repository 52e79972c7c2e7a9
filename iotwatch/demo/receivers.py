"""The demo's alert receivers: the alerting service's local SMTP catcher and webhook catcher.

Both run in the demo's process on loopback (``alerting.catchers``) and record every
notification; ``delivered()`` gives, per receiver, the (fingerprint, state) pairs that
arrived, and ``lines()`` a readable line per notification for the screen.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class DemoReceivers:
    smtp: Any                      # alerting.catchers.SmtpCatcher
    webhook: Any                   # alerting.catchers.WebhookCatcher
    webhook_secret: str
    mail_to: str = "operators@example.com"
    _closed: bool = field(default=False, repr=False)

    def describe(self) -> str:
        return (f"SMTP catcher smtp://{self.smtp.host}:{self.smtp.port}, "
                f"webhook catcher {self.webhook.url} (signed)")

    def delivered(self) -> dict[str, set[tuple[str, str]]]:
        return {"email": self.smtp.notifications(), "webhook": self.webhook.notifications()}

    def lines(self) -> list[str]:
        """One line per notification received, e-mails then webhook calls."""
        found = []
        for mail in self.smtp.unique():
            found.append(f"email   {mail.subject}")
        for request in self.webhook.unique():
            payload = request.payload if isinstance(request.payload, dict) else {}
            alerts = ", ".join(f"{fp} {state}" for fp, state in request.alerts)
            signed = "signature ok" if request.signature_ok else "BAD SIGNATURE"
            found.append(f"webhook {payload.get('status', '?')}: {alerts} ({signed})")
        return found

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.smtp.stop()
            self.webhook.stop()


def start_receivers(_workdir: Path) -> DemoReceivers:
    """Start both catchers on free loopback ports; the webhook checks HMAC signatures."""
    from alerting.catchers import SmtpCatcher, WebhookCatcher

    secret = secrets.token_urlsafe(16)
    smtp = SmtpCatcher("127.0.0.1").start()
    try:
        webhook = WebhookCatcher("127.0.0.1", secret=secret.encode()).start()
    except Exception:
        smtp.stop()
        raise
    return DemoReceivers(smtp, webhook, secret)
