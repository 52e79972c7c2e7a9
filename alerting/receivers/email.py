"""E-mail integration: one message (text and HTML) to every recipient over SMTP.

STARTTLS (``tls: starttls``, port 587), implicit TLS (``tls: implicit``, port 465) or
plain (``tls: none``, for a local relay); certificates are verified unless
``verify_tls: false``. The Message-ID is derived from the idempotency key, and the
``X-Iotwatch-*`` headers name the group and each alert's fingerprint and state, so
mail systems and scripts can spot a second delivery of the same notification.

SMTP answers decide retries: 4xx and connection trouble are retried, 5xx (refused
sender, recipients or credentials) are not.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

from alerting.config import EmailSettings
from alerting.notification import Notification
from alerting.receivers.base import NotifyError
from alerting.templates import EmailTemplates, LinkTemplate, TemplateRenderError, check_template

IDEMPOTENCY_HEADER = "X-Iotwatch-Idempotency-Key"
ALERTS_HEADER = "X-Iotwatch-Alerts"
GROUP_HEADER = "X-Iotwatch-Group-Key"


def build_message(note: Notification, settings: EmailSettings, templates: EmailTemplates,
                  links: LinkTemplate) -> EmailMessage:
    """The e-mail for ``note``; the same notification always gives the same message.

    >>> from alerting.notification import Target
    >>> from iotwatch.contracts import Alert
    >>> alert = Alert("fp1", "firing", "critical", "plant-1", "boiler-1", "temperature",
    ...               "anomaly", 93.4, 0.999, 0.99, 1768905000.0, 1768905000.0)
    >>> note = Notification(Target("ops", "email"), "{}:{}", {}, (alert,), 1, 1768905030.0)
    >>> settings = EmailSettings.model_validate({"to": ["ops@example.com"]})
    >>> message = build_message(note, settings, EmailTemplates(), LinkTemplate(None))
    >>> message["Subject"], message[ALERTS_HEADER]
    ('[FIRING:1] plant-1 boiler-1 temperature anomaly', 'fp1=firing')
    """
    rendered = templates.render(note, links)
    message = EmailMessage()
    message["Subject"] = rendered.subject
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.to)
    message["Date"] = formatdate(note.created_at, usegmt=True)
    domain = settings.sender.rpartition("@")[2] or "iotwatch"
    message["Message-ID"] = f"<{note.idempotency_key}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message[IDEMPOTENCY_HEADER] = note.idempotency_key
    message[GROUP_HEADER] = note.group_key
    message[ALERTS_HEADER] = ", ".join(f"{a.fingerprint}={a.state}" for a in note.alerts)
    for name, value in settings.headers.items():
        message[name] = value
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message


def templates_for(settings: EmailSettings, external_url: str | None) -> EmailTemplates:
    """The templates of one e-mail integration, reading ``text_file``/``html_file``.

    Raises ValueError naming the key of a template that cannot be read or used.
    """
    sources = {"text": settings.text, "html": settings.html}
    for key, path in (("text", settings.text_file), ("html", settings.html_file)):
        if path is None:
            continue
        try:
            sources[key] = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ValueError(f"{key}_file: cannot read template {path}: {why}") from None
        try:
            check_template(sources[key], key)
        except ValueError as exc:
            raise ValueError(f"{key}_file {path}: {exc}") from None
    return EmailTemplates(settings.subject, sources["text"], sources["html"],
                          settings.alert_text, settings.alert_html, external_url, checked=True)


class EmailNotifier:
    integration = "email"

    def __init__(self, settings: EmailSettings, links: LinkTemplate,
                 external_url: str | None = None) -> None:
        self.settings = settings
        self.links = links
        self.templates = templates_for(settings, external_url)
        self._context = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file else None)
        if not settings.verify_tls:
            self._context.check_hostname = False
            self._context.verify_mode = ssl.CERT_NONE

    def describe(self) -> str:
        s = self.settings
        return f"email via {s.host}:{s.port} ({s.tls}) to {len(s.to)} recipient(s)"

    def send(self, notification: Notification) -> None:
        try:
            message = build_message(notification, self.settings, self.templates, self.links)
        except TemplateRenderError as exc:  # sending again renders the same way
            raise NotifyError("template", f"template {exc}", retryable=False) from None
        try:
            with self._connect() as smtp:
                refused = smtp.send_message(message, self.settings.sender, self.settings.to)
        except smtplib.SMTPRecipientsRefused as exc:
            raise _refused(exc.recipients) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise NotifyError(f"smtp_{exc.smtp_code}", "SMTP server refused the credentials "
                              f"of {self.settings.username!r}", retryable=False) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise NotifyError("smtp_unsupported", str(exc), retryable=False) from None
        except smtplib.SMTPResponseException as exc:
            raise _smtp_error(exc.smtp_code, exc.smtp_error) from None
        except ssl.SSLCertVerificationError as exc:
            raise NotifyError("tls_verify", f"TLS certificate not trusted: "
                              f"{exc.verify_message}", retryable=False) from None
        except TimeoutError:
            raise NotifyError("timeout", f"no answer within {self.settings.timeout_s:g}s",
                              retryable=True) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise NotifyError("network", str(exc) or type(exc).__name__,
                              retryable=True) from None
        if refused:
            # Some recipients have it: sending again would duplicate theirs.
            raise NotifyError("smtp_recipients_refused", "delivered, but refused for "
                              + ", ".join(f"{r} ({c})" for r, (c, _) in refused.items()),
                              retryable=False)

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.tls == "implicit":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, local_hostname=s.hello,
                                                  timeout=s.timeout_s, context=self._context)
        else:
            smtp = smtplib.SMTP(s.host, s.port, local_hostname=s.hello, timeout=s.timeout_s)
        try:
            smtp.ehlo()
            if s.tls == "starttls":
                smtp.starttls(context=self._context)
                smtp.ehlo()
            if s.username:
                password = s.password.get_secret_value() if s.password else ""
                smtp.login(s.username, password)
        except BaseException:
            smtp.close()
            raise
        return smtp


def _smtp_error(code: int, text: bytes | str) -> NotifyError:
    message = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return NotifyError(f"smtp_{code}", f"SMTP {code} {message}"[:300],
                       retryable=400 <= code < 500)


def _refused(recipients: dict) -> NotifyError:
    codes = [code for code, _ in recipients.values()]
    retryable = all(400 <= c < 500 for c in codes)
    detail = "all recipients refused: " + ", ".join(f"{r} ({c})" for r, (c, _)
                                                    in recipients.items())
    return NotifyError(f"smtp_{codes[0]}" if codes else "smtp_refused", detail,
                       retryable=retryable)
