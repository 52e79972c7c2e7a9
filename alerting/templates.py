"""Rendering notifications for people: e-mail subject, text and HTML, and dashboard links.

Templates are Jinja2 texts (``{{ name }}``, ``{% for alert in alerts %}``, ``{% if %}``)
run in Jinja2's sandbox (no access to Python internals). A name the template may not use
is a configuration error: every template is checked when the configuration is loaded
(names, syntax, and one rendering of a sample group), never a blank or a traceback in an
e-mail. HTML templates autoescape every value; the link template URL-encodes every value.
Whitespace is Jinja2's default: write ``{%- ... -%}`` to drop the newlines around a tag.

In ``subject``, ``text`` and ``html``, ``{{ alerts }}`` is every alert rendered by
``alert_text`` / ``alert_html`` (the default templates do that), and ``alerts`` can be
iterated: each item has the alert variables (``alert.site``, ``alert.STATE``, ...);
``alerts.firing`` and ``alerts.resolved`` are the two kinds. Label sets print as
``k=v, ...`` and can be looked into (``common_labels.site``, ``alert.labels.items()``);
``value``, ``score`` and ``threshold`` print short and compare as numbers.

>>> from alerting.notification import Notification, Target
>>> from iotwatch.contracts import Alert
>>> alert = Alert("fp1", "firing", "critical", "plant-1", "boiler-1", "temperature",
...               "anomaly", 93.4, 0.999, 0.99, 1768905000.0, 1768905000.0,
...               scores={"zscore": 7.8}, annotations={"summary": "temperature is anomalous"})
>>> note = Notification(Target("ops", "email"), "{}:{}", {}, (alert,), 1, 1768905330.0)
>>> links = LinkTemplate("http://grafana/d/iotwatch-overview?var-site={{ site }}&var-device={{ device }}")
>>> email = EmailTemplates().render(note, links)
>>> email.subject
'[FIRING:1] plant-1 boiler-1 temperature anomaly'
>>> print(email.text.splitlines()[3])
[FIRING] plant-1/boiler-1/temperature: temperature is anomalous
>>> links.render(alert)
'http://grafana/d/iotwatch-overview?var-site=plant-1&var-device=boiler-1'
>>> listing = EmailTemplates(text="{% for a in alerts.firing %}{{ a.metric }}={{ a.value }} {% endfor %}")
>>> listing.render(note, links).text
'temperature=93.4 '
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from alerting.notification import Notification, Target
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

DEFAULT_SUBJECT = "[{{ STATUS }}:{{ count }}] {{ summary }}"
DEFAULT_TEXT = """\
iotwatch: {{ count_firing }} firing, {{ count_resolved }} resolved
Group: {{ group_labels }}

{{ alerts }}
{{ footer }}
"""
DEFAULT_ALERT_TEXT = """\
[{{ STATE }}] {{ site }}/{{ device }}/{{ metric }}: {{ summary }}
  severity {{ severity }}, rule {{ rule }}
  value {{ value }}, score {{ score }} (threshold {{ threshold }}); {{ scores }}
  {{ when }}
{{ link_line }}"""
DEFAULT_HTML = """\
<!DOCTYPE html>
<html><body style="font-family: sans-serif">
<h2>iotwatch: {{ count_firing }} firing, {{ count_resolved }} resolved</h2>
<p>Group: {{ group_labels }}</p>
{{ alerts }}
<p style="color: #666">{{ footer }}</p>
</body></html>
"""
DEFAULT_ALERT_HTML = """\
<div style="margin: 1em 0; padding: 0.5em; border-left: 4px solid {{ STATE_colour }}">
<b>[{{ STATE }}] {{ site }}/{{ device }}/{{ metric }}</b>: {{ summary }}<br>
severity {{ severity }}, rule {{ rule }}<br>
value <b>{{ value }}</b>, score {{ score }} (threshold {{ threshold }}); {{ scores }}<br>
{{ when }}<br>
{{ link_line }}
</div>
"""
_COLOURS = {"FIRING": "#c0392b", "RESOLVED": "#27ae60"}
# Where the summary of a group comes from: the labels every alert shares, in this order.
_SUMMARY_LABELS = ("site", "device", "metric", "rule")
# "$name" / "${name}": the string.Template syntax templates had before Jinja2.
_OLD_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def _environment(*, html: bool = False,
                 finalize: Callable[[Any], Any] | None = None) -> SandboxedEnvironment:
    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=html,
                                keep_trailing_newline=True, finalize=finalize)


def _url_encoded(value: Any) -> str:
    return quote(str(value), safe="")


_TEXT = _environment()
_HTML = _environment(html=True)
_LINK = _environment(finalize=_url_encoded)


class TemplateRenderError(ValueError):
    """A template failed on real data (a branch the check's sample did not take)."""

    def __init__(self, key: str, detail: str) -> None:
        super().__init__(f"{key}: {detail}")
        self.key = key
        self.detail = detail


# -- what templates see ---------------------------------------------------------------------


class Labels(dict):
    """A label set: prints as ``k=v, ...`` (sorted), and can be looked into like a dict."""

    def __init__(self, labels: Mapping[str, str], empty: str = "") -> None:
        super().__init__(sorted(labels.items()))
        self._empty = empty

    def __str__(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.items()) or self._empty


class Shown(float):
    """A number that prints in its short form (``93.4``, ``0.9991``) and compares as a number."""

    def __new__(cls, value: float, digits: int) -> Shown:
        number = super().__new__(cls, value)
        number._text = f"{value:.{digits}g}"
        return number

    def __str__(self) -> str:
        return self._text


class AlertList(list):
    """The alerts of a notification: iterable, and printed as their rendered blocks."""

    def __init__(self, alerts: list[dict[str, Any]], rendered: str) -> None:
        super().__init__(alerts)
        self._rendered = rendered
        self.firing = [a for a in alerts if a["state"] == "firing"]
        self.resolved = [a for a in alerts if a["state"] == "resolved"]

    def __str__(self) -> str:
        return self._rendered

    def __html__(self) -> str:  # already escaped by the alert template
        return self._rendered


# -- checking -------------------------------------------------------------------------------


def check_template(text: str, kind: str) -> str:
    """Raise ValueError saying what is wrong with a template of ``kind``, else return it.

    ``kind`` is the configuration key: subject, text, html, alert_text, alert_html or
    dashboard_url (link).

    >>> check_template("[{{ STATUS }}] {{ sight }}", "subject")
    Traceback (most recent call last):
    ...
    ValueError: unknown template variable(s) sight; known: STATUS, alerts, common_labels, count, count_firing, count_resolved, device, external_url, footer, group_key, group_labels, metric, receiver, rule, severity, site, status, summary, truncated
    >>> check_template("[${STATUS}] $summary", "subject")
    Traceback (most recent call last):
    ...
    ValueError: $STATUS, $summary: templates are Jinja2 now: write {{ STATUS }}, {{ summary }}
    >>> check_template("{% for a in alerts %}{{ a.sight }}{% endfor %}", "text")
    Traceback (most recent call last):
    ...
    ValueError: fails on a sample notification: 'dict object' has no attribute 'sight'
    """
    allowed, environment = _KINDS[kind]
    old = [m.group(1) or m.group(2) for m in _OLD_PLACEHOLDER.finditer(text)]
    old = list(dict.fromkeys(name for name in old if name in allowed))
    if old:
        raise ValueError(f"{', '.join('$' + n for n in old)}: templates are Jinja2 now: write "
                         f"{', '.join('{{ ' + n + ' }}' for n in old)}")
    try:
        tree = environment.parse(text)
        environment.from_string(text)  # filters and tests are resolved at compile time
    except TemplateSyntaxError as exc:
        raise ValueError(f"template syntax error on line {exc.lineno}: {exc.message}") from None
    except TemplateError as exc:
        raise ValueError(f"template error: {exc.message}") from None
    unknown = sorted(meta.find_undeclared_variables(tree) - allowed - set(environment.globals))
    if unknown:
        raise ValueError(f"unknown template variable(s) {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(allowed))}")
    try:
        _sample_render(text, kind)
    except TemplateRenderError as exc:
        raise ValueError(f"fails on a sample notification: {exc.detail}") from None
    return text


def _sample_render(text: str, kind: str) -> None:
    note, links = _sample()
    if kind == "dashboard_url":
        LinkTemplate(text, checked=True).render(note.alerts[0])
        return
    templates = EmailTemplates(**{kind: text}, external_url="http://alerting:9102",
                               checked=True)
    templates.render(note, links)


def _sample() -> tuple[Notification, LinkTemplate]:
    t = 1_768_905_000.0
    firing = Alert("0123456789abcdef", "firing", "critical", "plant-1", "boiler-1",
                   "temperature", "anomaly", 93.4, 0.999, 0.99, t - 60, t,
                   scores={"zscore": 7.8}, labels={"detector": "robust"},
                   annotations={"summary": "temperature is anomalous"})
    resolved = Alert("fedcba9876543210", "resolved", "warning", "plant-1", "boiler-1",
                     "pressure", "anomaly", 2.1, 0.2, 0.99, t - 600, t, ends_at=t)
    note = Notification(Target("ops", "email"), "{}:{}", {"site": "plant-1"},
                        (firing, resolved), 1, t + 30, truncated=1)
    return note, LinkTemplate("http://grafana/d/x?var-site={{ site }}&from={{ from_ms }}",
                              checked=True)


# -- rendering ------------------------------------------------------------------------------


class LinkTemplate:
    """A per-alert URL (a Grafana panel, a runbook) with URL-encoded values.

    ``checked`` skips the check (a template the configuration already checked).
    """

    def __init__(self, template: str | None, *, checked: bool = False) -> None:
        self.template = None
        if template is not None:
            if not checked:
                check_template(template, "dashboard_url")
            self.template = _LINK.from_string(template)

    def render(self, alert: Alert) -> str | None:
        if self.template is None:
            return None
        end = alert.ends_at if alert.ends_at is not None else alert.ts
        values = {"site": alert.site, "device": alert.device, "metric": alert.metric,
                  "rule": alert.rule, "severity": alert.severity,
                  "fingerprint": alert.fingerprint,
                  "from_ms": int((alert.starts_at - 3600) * 1000),
                  "to_ms": int((end + 900) * 1000)}
        return _render(self.template, values, "dashboard_url")


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


class EmailTemplates:
    """The subject, text and HTML templates of one e-mail integration.

    A template that is not valid raises ValueError naming its key. ``checked`` skips the
    checks (for templates the configuration already checked).
    """

    def __init__(self, subject: str | None = None, text: str | None = None,
                 html: str | None = None, alert_text: str | None = None,
                 alert_html: str | None = None, external_url: str | None = None,
                 *, checked: bool = False) -> None:
        sources = {"subject": subject or DEFAULT_SUBJECT, "text": text or DEFAULT_TEXT,
                   "html": html or DEFAULT_HTML, "alert_text": alert_text or DEFAULT_ALERT_TEXT,
                   "alert_html": alert_html or DEFAULT_ALERT_HTML}
        if not checked:
            for key, source in sources.items():
                try:
                    check_template(source, key)
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc}") from None
        self._templates = {key: _KINDS[key][1].from_string(source)
                           for key, source in sources.items()}
        self.external_url = external_url

    def render(self, note: Notification, links: LinkTemplate) -> RenderedEmail:
        """The e-mail; TemplateRenderError naming the template that failed."""
        plain = self._context(note, links, html=False)
        marked = self._context(note, links, html=True)
        subject = " ".join(self._render("subject", plain).split())  # one line
        return RenderedEmail(subject, self._render("text", plain), self._render("html", marked))

    def _render(self, key: str, values: dict[str, Any]) -> str:
        return _render(self._templates[key], values, key)

    def _context(self, note: Notification, links: LinkTemplate, html: bool) -> dict[str, Any]:
        common = note.common_labels()
        firing, resolved = len(note.firing), len(note.resolved)
        alerts = [self._alert(alert, note, links.render(alert), html) for alert in note.alerts]
        key = "alert_html" if html else "alert_text"
        blocks = "\n".join(self._render(key, alert) for alert in alerts)
        footer = ""
        if note.truncated:
            footer += f"{note.truncated} more alert(s) not shown.\n"
        if self.external_url:
            footer += f"Alerts and silences: {self.external_url}"
        return {
            "status": note.status, "STATUS": note.status.upper(),
            "count": firing if note.status == "firing" else resolved,
            "count_firing": firing, "count_resolved": resolved,
            "summary": " ".join(common[k] for k in _SUMMARY_LABELS if k in common) or "alerts",
            "receiver": note.target.receiver, "group_key": note.group_key,
            "group_labels": Labels(note.group_labels, empty="(all alerts)"),
            "common_labels": Labels(common), "external_url": self.external_url or "",
            "footer": footer, "truncated": note.truncated,
            **{k: common.get(k, "") for k in ("site", "device", "metric", "rule", "severity")},
            "alerts": AlertList(alerts, blocks),
        }

    @staticmethod
    def _alert(alert: Alert, note: Notification, link: str | None, html: bool) -> dict[str, Any]:
        started = format_rfc3339(alert.starts_at)
        if alert.state == "firing":
            when = f"since {started} ({_duration(note.created_at - alert.starts_at)})"
        else:
            end = alert.ends_at if alert.ends_at is not None else alert.ts
            when = (f"from {started} to {format_rfc3339(end)} "
                    f"(lasted {_duration(end - alert.starts_at)})")
        if html:
            link_line: str = (Markup('<a href="{}">Open dashboard</a>').format(link)
                              if link else "")
        else:
            link_line = f"  dashboard: {link}\n" if link else ""
        return {
            "state": alert.state, "STATE": alert.state.upper(),
            "fingerprint": alert.fingerprint, "site": alert.site, "device": alert.device,
            "metric": alert.metric, "rule": alert.rule, "severity": alert.severity,
            "value": Shown(alert.value, 6), "score": Shown(alert.score, 4),
            "threshold": Shown(alert.threshold, 4),
            "scores": ", ".join(f"{k}={v:.4g}" for k, v in sorted(alert.scores.items()))
            or "no detector scores",
            "starts_at": started,
            "ends_at": "" if alert.ends_at is None else format_rfc3339(alert.ends_at),
            "updated_at": format_rfc3339(alert.ts), "when": when,
            "summary": alert.annotations.get("summary")
            or f"{alert.metric} on {alert.site}/{alert.device} is {alert.state}",
            "labels": Labels(alert.all_labels), "annotations": Labels(alert.annotations),
            "link": link or "", "link_line": link_line,
            "STATE_colour": _COLOURS.get(alert.state.upper(), "#999"),
        }


_KINDS: dict[str, tuple[frozenset[str], SandboxedEnvironment]] = {
    "subject": (NOTIFICATION_VARIABLES, _TEXT), "text": (NOTIFICATION_VARIABLES, _TEXT),
    "html": (NOTIFICATION_VARIABLES, _HTML), "alert_text": (ALERT_VARIABLES, _TEXT),
    "alert_html": (ALERT_VARIABLES, _HTML), "dashboard_url": (LINK_VARIABLES, _LINK)}


def _render(template, values: Mapping[str, Any], key: str) -> str:
    try:
        return template.render(values)
    except TemplateError as exc:
        raise TemplateRenderError(key, exc.message or type(exc).__name__) from None
    except (ArithmeticError, LookupError, TypeError, ValueError) as exc:
        raise TemplateRenderError(key, f"{type(exc).__name__}: {exc}") from None


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
