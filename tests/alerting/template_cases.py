"""Notifications whose rendering by the default templates is kept in tests/alerting/golden/.

The golden files were rendered by the string.Template implementation the Jinja2 port
replaced (commit 03668a4, with the link template in its ``${site}`` spelling), so the port
is held to its output. Do not regenerate them with the new code.
"""

from __future__ import annotations

from pathlib import Path

from alerting.notification import Notification, Target
from iotwatch.contracts import Alert, alert_fingerprint

GOLDEN = Path(__file__).resolve().parent / "golden"
T0 = 1_768_905_000.0
LINK_JINJA = ("http://grafana/d/iotwatch-overview?var-site={{ site }}&var-device={{ device }}"
              "&from={{ from_ms }}&to={{ to_ms }}")


def _alert(site: str, device: str, metric: str, state: str, severity: str = "critical",
           summary: str | None = None, scores: dict | None = None, **labels: str) -> Alert:
    ends = T0 + 200 if state == "resolved" else None
    return Alert(alert_fingerprint(site, device, metric, "anomaly"), state, severity,  # type: ignore[arg-type]
                 site, device, metric, "anomaly", 93.4123456, 0.99912, 0.99, T0 - 20,
                 T0 + 200 if state == "resolved" else T0, ends_at=ends,
                 scores={"zscore": 7.8, "hst": 0.94} if scores is None else scores,
                 labels=labels,
                 annotations={} if summary is None else {"summary": summary})


CASES: dict[str, tuple[Notification, bool]] = {  # name -> (notification, with the link)
    "firing-two": (Notification(
        Target("ops", "email"), '{}:{device="boiler-1",site="plant-1"}',
        {"device": "boiler-1", "site": "plant-1"},
        (_alert("plant-1", "boiler-1", "temperature", "firing",
                summary="temperature on plant-1/boiler-1 is anomalous: 93.4 (score 0.999)"),
         _alert("plant-1", "boiler-1", "pressure", "firing", severity="warning")),
        1, T0 + 330), True),
    "resolved-one": (Notification(
        Target("ops", "email"), "{}:{}", {},
        (_alert("plant-2", "pump-3", "flow", "resolved", scores={}),), 4, T0 + 400), False),
    "escaped-truncated": (Notification(
        Target("team <a&b>", "email"), "{}:{}", {"site": "s&<1>"},
        (_alert("s&<1>", "d<2>", "m", "firing", summary="5 < 7 & 9 > 8 'quoted' \"double\"",
                owner="ana & <bo>"),
         _alert("s&<1>", "d<3>", "m", "resolved")),
        2, T0 + 90000, truncated=3), True),
}


def render_all(external_url: str | None = "http://alerting:9102",
               link: str = LINK_JINJA) -> dict[str, str]:
    """File name -> text, for every case: subject, text and HTML part."""
    from alerting.templates import EmailTemplates, LinkTemplate

    templates = EmailTemplates(external_url=external_url)
    out = {}
    for name, (note, with_link) in CASES.items():
        email = templates.render(note, LinkTemplate(link if with_link else None))
        out[f"{name}.subject.txt"] = email.subject + "\n"
        out[f"{name}.txt"] = email.text
        out[f"{name}.html"] = email.html
    return out

