"""Rendering notifications for people: e-mail subject, text and HTML, and dashboard links.

Templates are ``string.Template`` texts (``$name`` or ``${name}``; ``$$`` for a dollar);
an unknown variable is a configuration error at start-up, never a blank in an e-mail.
Values are HTML-escaped in HTML templates and URL-encoded in link templates.

>>> from alerting.notification import Notification, Target
>>> from iotwatch.contracts import Alert
>>> alert = Alert("fp1", "firing", "critical", "plant-1", "boiler-1", "temperature",
...               "anomaly", 93.4, 0.999, 0.99, 1768905000.0, 1768905000.0,
...               scores={"zscore": 7.8}, annotations={"summary": "temperature is anomalous"})
>>> note = Notification(Target("ops", "email"), "{}:{}", {}, (alert,), 1, 1768905330.0)
>>> links = LinkTemplate("http://grafana/d/iotwatch-overview?var-site=${site}&var-device=${device}")
>>> email = EmailTemplates().render(note, links)
>>> email.subject
'[FIRING:1] plant-1 boiler-1 temperature anomaly'
>>> print(email.text.splitlines()[3])
[FIRING] plant-1/boiler-1/temperature: temperature is anomalous
>>> links.render(alert)
'http://grafana/d/iotwatch-overview?var-site=plant-1&var-device=boiler-1'
"""

from __future__ import annotations

import html
import string
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from alerting.notification import Notification
from iotwatch.contracts import Alert
from iotwatch.timeparse import format_rfc3339

NOTIFICATION_VARIABLES = frozenset({
    "status", "STATUS", "count", "count_firing", "count_resolved", "summary", "receiver",
    "group_key", "group_labels", "common_labels", "external_url", "footer", "site", "device",
    "metric", "rule", "severity", "alerts", "truncated"})
ALERT_VARIABLES = frozenset({
    "state", "STATE", "fingerprint", "site", "device", "metric", "rule", "severity", "value",
    "score", "threshold", "scores", "starts_at", "ends_at", "updated_at", "when", "summary",
    "labels", "annotations", "link", "link_line", "STATE_colour"})
LINK_VARIABLES = frozenset({"site", "device", "metric", "rule", "severity", "fingerprint",
                            "from_ms", "to_ms"})

DEFAULT_SUBJECT = "[${STATUS}:${count}] ${summary}"
DEFAULT_TEXT = """\
iotwatch: ${count_firing} firing, ${count_resolved} resolved
Group: ${group_labels}

${alerts}
${footer}
"""
DEFAULT_ALERT_TEXT = """\
[${STATE}] ${site}/${device}/${metric}: ${summary}
  severity ${severity}, rule ${rule}
  value ${value}, score ${score} (threshold ${threshold}); ${scores}
  ${when}
${link_line}"""
DEFAULT_HTML = """\
<!DOCTYPE html>
<html><body style="font-family: sans-serif">
<h2>iotwatch: ${count_firing} firing, ${count_resolved} resolved</h2>
<p>Group: ${group_labels}</p>
${alerts}
<p style="color: #666">${footer}</p>
</body></html>
"""
DEFAULT_ALERT_HTML = """\
<div style="margin: 1em 0; padding: 0.5em; border-left: 4px solid ${STATE_colour}">
<b>[${STATE}] ${site}/${device}/${metric}</b>: ${summary}<br>
severity ${severity}, rule ${rule}<br>
value <b>${value}</b>, score ${score} (threshold ${threshold}); ${scores}<br>
${when}<br>
${link_line}
</div>
"""
_COLOURS = {"FIRING": "#c0392b", "RESOLVED": "#27ae60"}
# Where the summary of a group comes from: the labels every alert shares, in this order.
_SUMMARY_LABELS = ("site", "device", "metric", "rule")


def check_template(text: str, allowed: frozenset[str]) -> str:
    """Raise ValueError naming any variable the template may not use.

    >>> check_template("[$STATUS] $sight", NOTIFICATION_VARIABLES)
    Traceback (most recent call last):
    ...
    ValueError: unknown template variable(s) sight; known: STATUS, alerts, common_labels, count, count_firing, count_resolved, device, external_url, footer, group_key, group_labels, metric, receiver, rule, severity, site, status, summary, truncated
    """
    template = string.Template(text)
    if not template.is_valid():
        raise ValueError("template has a bad $ placeholder (write $$ for a dollar sign)")
    unknown = sorted(set(template.get_identifiers()) - allowed)
    if unknown:
        raise ValueError(f"unknown template variable(s) {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(allowed))}")
    return text


class LinkTemplate:
    """A per-alert URL (a Grafana panel, a runbook) with URL-encoded values."""

    def __init__(self, template: str | None) -> None:
        self.template = None if template is None else string.Template(
            check_template(template, LINK_VARIABLES))

    def render(self, alert: Alert) -> str | None:
        if self.template is None:
            return None
        end = alert.ends_at if alert.ends_at is not None else alert.ts
        values = {"site": alert.site, "device": alert.device, "metric": alert.metric,
                  "rule": alert.rule, "severity": alert.severity,
                  "fingerprint": alert.fingerprint,
                  "from_ms": str(int((alert.starts_at - 3600) * 1000)),
                  "to_ms": str(int((end + 900) * 1000))}
        return self.template.substitute({k: quote(v, safe="") for k, v in values.items()})


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


class EmailTemplates:
    """The subject, text and HTML templates of one e-mail integration."""

    def __init__(self, subject: str | None = None, text: str | None = None,
                 html: str | None = None, alert_text: str | None = None,
                 alert_html: str | None = None, external_url: str | None = None) -> None:
        self.subject = string.Template(check_template(subject or DEFAULT_SUBJECT,
                                                      NOTIFICATION_VARIABLES))
        self.text = string.Template(check_template(text or DEFAULT_TEXT, NOTIFICATION_VARIABLES))
        self.html = string.Template(check_template(html or DEFAULT_HTML, NOTIFICATION_VARIABLES))
        self.alert_text = string.Template(check_template(alert_text or DEFAULT_ALERT_TEXT,
                                                         ALERT_VARIABLES))
        self.alert_html = string.Template(check_template(alert_html or DEFAULT_ALERT_HTML,
                                                         ALERT_VARIABLES))
        self.external_url = external_url

    def render(self, note: Notification, links: LinkTemplate) -> RenderedEmail:
        plain = self._context(note, links, escape=_plain)
        marked = self._context(note, links, escape=html.escape)
        subject = " ".join(self.subject.substitute(plain).split())  # one line
        return RenderedEmail(subject, self.text.substitute(plain),
                             self.html.substitute(marked))

    def _context(self, note: Notification, links: LinkTemplate, escape) -> dict[str, str]:
        common = note.common_labels()
        firing, resolved = len(note.firing), len(note.resolved)
        is_html = escape is not _plain
        blocks = [self._alert(alert, note, links.render(alert), escape, is_html)
                  for alert in note.alerts]
        footer = ""
        if note.truncated:
            footer += f"{note.truncated} more alert(s) not shown.\n"
        if self.external_url:
            footer += f"Alerts and silences: {self.external_url}"
        values = {
            "status": note.status, "STATUS": note.status.upper(),
            "count": str(firing if note.status == "firing" else resolved),
            "count_firing": str(firing), "count_resolved": str(resolved),
            "summary": " ".join(common[k] for k in _SUMMARY_LABELS if k in common) or "alerts",
            "receiver": note.target.receiver, "group_key": note.group_key,
            "group_labels": _labels(note.group_labels) or "(all alerts)",
            "common_labels": _labels(common), "external_url": self.external_url or "",
            "footer": footer, "truncated": str(note.truncated),
            **{k: common.get(k, "") for k in ("site", "device", "metric", "rule", "severity")},
        }
        escaped = {k: escape(v) for k, v in values.items()}
        escaped["alerts"] = "\n".join(blocks)  # already escaped
        return escaped

    def _alert(self, alert: Alert, note: Notification, link: str | None, escape,
               is_html: bool) -> str:
        started = format_rfc3339(alert.starts_at)
        if alert.state == "firing":
            when = f"since {started} ({_duration(note.created_at - alert.starts_at)})"
        else:
            end = alert.ends_at if alert.ends_at is not None else alert.ts
            when = (f"from {started} to {format_rfc3339(end)} "
                    f"(lasted {_duration(end - alert.starts_at)})")
        values = {
            "state": alert.state, "STATE": alert.state.upper(),
            "fingerprint": alert.fingerprint, "site": alert.site, "device": alert.device,
            "metric": alert.metric, "rule": alert.rule, "severity": alert.severity,
            "value": f"{alert.value:.6g}", "score": f"{alert.score:.4g}",
            "threshold": f"{alert.threshold:.4g}",
            "scores": ", ".join(f"{k}={v:.4g}" for k, v in sorted(alert.scores.items()))
            or "no detector scores",
            "starts_at": started,
            "ends_at": "" if alert.ends_at is None else format_rfc3339(alert.ends_at),
            "updated_at": format_rfc3339(alert.ts), "when": when,
            "summary": alert.annotations.get("summary")
            or f"{alert.metric} on {alert.site}/{alert.device} is {alert.state}",
            "labels": _labels(alert.all_labels), "annotations": _labels(alert.annotations),
            "link": link or "",
        }
        escaped = {k: escape(v) for k, v in values.items()}
        if is_html:
            escaped["link_line"] = (f'<a href="{html.escape(link)}">Open dashboard</a>'
                                    if link else "")
        else:
            escaped["link_line"] = f"  dashboard: {link}\n" if link else ""
        escaped["STATE_colour"] = _COLOURS.get(values["STATE"], "#999")
        template = self.alert_html if is_html else self.alert_text
        return template.substitute(escaped)


def _plain(value: str) -> str:
    return value


def _labels(labels: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _duration(seconds: float) -> str:
    """A short human duration.

    >>> _duration(59), _duration(3725), _duration(90000)
    ('59s', '1h 2m', '1d 1h')
    """
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"
