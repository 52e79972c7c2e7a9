"""Alert templates in Jinja2's sandbox: the default templates render exactly what the
string.Template ones did (tests/alerting/golden/), groups can be iterated, and every
template mistake is found when the configuration is checked, named by its key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from alerting.config import AlertingFile
from alerting.notification import Notification, Target
from alerting.receivers import build_targets
from alerting.receivers.base import NotifyError
from alerting.receivers.email import EmailNotifier
from alerting.templates import EmailTemplates, LinkTemplate, check_template
from iotwatch.config import build_config, errors_of

from .template_cases import CASES, GOLDEN, T0, render_all

PROJECT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("file_name", sorted(render_all()))
def test_the_default_templates_render_what_they_did(file_name):
    rendered = render_all()[file_name]
    before = (GOLDEN / file_name).read_text(encoding="utf-8")
    if file_name.endswith(".html"):
        # markupsafe writes the two quote characters as &#34; and &#39; where html.escape
        # wrote &quot; and &#x27;: the same characters to every HTML reader.
        before = before.replace("&quot;", "&#34;").replace("&#x27;", "&#39;")
    assert rendered == before


def test_users_can_iterate_over_the_alerts_of_a_group():
    note, _ = CASES["escaped-truncated"]
    text = ("{% for alert in alerts %}"
            "{{ loop.index }}. {{ alert.STATE }} {{ alert.device }}"
            "{% if alert.value > 90 %} high{% endif %} owner={{ alert.labels.owner|default('-') }}\n"
            "{% endfor %}"
            "firing: {{ alerts.firing|map(attribute='device')|join(', ') }}; "
            "{{ count_firing }} of {{ alerts|length }}{% if truncated %} (+{{ truncated }}){% endif %}\n")
    html = ("<ul>{% for alert in alerts.resolved %}<li>{{ alert.device }}: {{ alert.summary }}"
            "</li>{% endfor %}</ul>")
    email = EmailTemplates(text=text, html=html).render(note, LinkTemplate(None))
    assert email.text == ("1. FIRING d<2> high owner=ana & <bo>\n"
                          "2. RESOLVED d<3> high owner=-\n"
                          "firing: d<2>; 1 of 2 (+3)\n")
    assert email.html == ("<ul><li>d&lt;3&gt;: m on s&amp;&lt;1&gt;/d&lt;3&gt; is resolved"
                          "</li></ul>")  # autoescaped


@pytest.mark.parametrize(("key", "template", "error"), [
    ("subject", "{{ STATUS", "template syntax error on line 1: unexpected end of template"),
    ("text", "{{ alerts|frobnicate }}",
     "template syntax error on line 1: No filter named 'frobnicate'."),
    ("alert_text", "{{ sight }}", "unknown template variable(s) sight; known: STATE, "),
    ("text", "{% for a in alerts %}{{ a.sight }}{% endfor %}",
     "fails on a sample notification: 'dict object' has no attribute 'sight'"),
    ("html", "{{ alerts.__class__.__mro__ }}",
     "fails on a sample notification: access to attribute '__class__' of 'AlertList' "
     "object is unsafe."),
    ("subject", "[${STATUS}] $count", "$STATUS, $count: templates are Jinja2 now: write "
                                      "{{ STATUS }}, {{ count }}"),
    ("dashboard_url", "http://g/?d={{ devicee }}", "unknown template variable(s) devicee"),
])
def test_template_mistakes_are_configuration_errors_naming_the_key(key, template, error):
    section = {"route": {"receiver": "ops"}, "receivers": {"ops": {"email": {"to": ["a@b"]}}}}
    if key == "dashboard_url":
        section["dashboard_url"] = template
        path = "alerting.dashboard_url"
    else:
        section["receivers"]["ops"]["email"][key] = template
        path = f"alerting.receivers.ops.email.{key}"
    [found] = errors_of(AlertingFile, {"alerting": section})
    assert found.startswith(f"{path}: {error}")


def test_a_bad_template_file_is_found_by_alert_check_with_its_key(tmp_path):
    (tmp_path / "alert.txt").write_text("{% for a in alerts %}{{ a.sight }}{% endfor %}\n")
    config = tmp_path / "alerting.yaml"
    config.write_text(yaml.safe_dump({"alerting": {
        "database": str(tmp_path / "a.sqlite3"), "route": {"receiver": "ops"},
        "receivers": {"ops": {"email": {"to": ["a@b"],
                                        "text_file": str(tmp_path / "alert.txt")}}}}}))
    result = subprocess.run([sys.executable, "-m", "alerting", "-c", str(config), "--check"],
                            cwd=PROJECT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert (f"alerting.receivers.ops.email: text_file {tmp_path / 'alert.txt'}: fails on a "
            "sample notification: 'dict object' has no attribute 'sight'") in result.stderr


def test_a_template_failing_on_real_data_fails_the_delivery_not_the_service():
    # The sample group has a firing alert with a detector label; this group has none.
    raw = {"route": {"receiver": "ops"}, "receivers": {"ops": {"email": {
        "to": ["a@b"], "text": "{{ alerts.firing[0].labels.detector }}"}}}}
    config = build_config({"alerting": raw}, AlertingFile, environ={})
    [spec] = build_targets(config.alerting.receivers, LinkTemplate(None))["ops"]
    assert isinstance(spec.notifier, EmailNotifier)
    note, _ = CASES["resolved-one"]
    with pytest.raises(NotifyError) as failed:
        spec.notifier.send(note)
    assert failed.value.reason == "template" and not failed.value.retryable
    assert "text: " in failed.value.detail


def test_link_values_are_url_encoded_and_numbers_kept():
    note, _ = CASES["escaped-truncated"]
    link = LinkTemplate("http://g/?s={{ site }}&from={{ from_ms }}&x={{ 'a b' }}")
    assert link.render(note.alerts[0]) == "http://g/?s=s%26%3C1%3E&from=1768901380000&x=a%20b"
    assert check_template("http://g/{{ fingerprint }}", "dashboard_url")


def test_the_sample_configuration_templates_check(tmp_path):
    result = subprocess.run([sys.executable, "-m", "iotwatch.cli", "config", "check",
                             "config/alerting.yaml"], cwd=PROJECT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    note = Notification(Target("ops", "email"), "{}:{}", {}, CASES["firing-two"][0].alerts,
                        1, T0)
    config = build_config(yaml.safe_load((PROJECT / "config/alerting.yaml").read_text()),
                          AlertingFile, environ={})
    url = LinkTemplate(config.alerting.dashboard_url).render(note.alerts[0])
    assert url.startswith("http://127.0.0.1:3000/d/iotwatch-overview/iotwatch?var-site=plant-1"
                          "&var-device=boiler-1&var-metric=temperature&from=")
