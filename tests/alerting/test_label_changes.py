"""An alert whose labels change while it fires (severity warning <-> critical), with a fake
clock: it leaves its old group, and every receiver that heard it fire hears it resolve,
exactly once, also across a restart.

``run`` drives the pure parts as the service does (grouper -> mute -> de-duplicate ->
notification log in SQLite -> done), for every receiver of the routing tree.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest
from harness import wait_until

from alerting.config import RouteSettings
from alerting.dedup import Deduplicator
from alerting.grouping import Grouper
from alerting.inhibit import Inhibitor
from alerting.notification import Target
from alerting.notify import mute
from alerting.outbox import Outbox
from alerting.routing import build_routes
from alerting.silences import Silences
from alerting.store import Database, NotificationLog
from iotwatch.contracts import Alert, alert_fingerprint

RESTART = "restart"


def pump(severity: str, ts: float, state: str = "firing") -> Alert:
    return Alert(alert_fingerprint("p1", "pump-1", "flow", "anomaly"), state, severity,  # type: ignore[arg-type]
                 "p1", "pump-1", "flow", "anomaly", 1.0, 0.9, 0.5, 0.0, ts,
                 ends_at=ts if state == "resolved" else None)


@dataclass
class FakeClock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


def run(tmp_path, events: list[tuple[float, Alert | str]], until: float, route: dict
        ) -> list[tuple[float, str, str, list[str]]]:
    """Sent notifications as (time, receiver, status, ["severity:state", ...])."""
    options = {"group_wait_s": 30, "group_interval_s": 300, "repeat_interval_s": 3600, **route}
    root = build_routes(RouteSettings.model_validate(options))
    targets = sorted({Target(r.receiver, "webhook") for r in root.walk()})
    db = Database(tmp_path / "alerting.sqlite3")
    nflog, outbox, clock = NotificationLog(db), Outbox(db), FakeClock()
    dedup = Deduplicator(nflog.get, clock, told=nflog.told_firing)
    grouper = Grouper(root)
    stored: dict[str, Alert] = {}  # the alert store: newest version until forgotten
    pending = sorted(events, key=lambda e: e[0])
    sent = []
    while True:
        times = [t for t in (grouper.next_flush_at(), pending[0][0] if pending else None)
                 if t is not None]
        if not times or min(times) > until:
            db.close()
            return sent
        clock.now = min(times)
        while pending and pending[0][0] <= clock.now:
            _, item = pending.pop(0)
            if item == RESTART:  # the process dies: only SQLite (alerts, nflog) remains
                grouper = Grouper(root)
                for alert in stored.values():
                    grouper.insert(alert, alert.all_labels, clock.now)
                continue
            stored[item.fingerprint] = item
            grouper.insert(item, item.all_labels, clock.now)
        for flush in grouper.due(clock.now):
            firing = [(a.fingerprint, a.all_labels) for a in stored.values()
                      if a.state == "firing"]
            kept, _ = mute(flush.alerts, Silences(), Inhibitor([]), firing, clock.now)
            decisions = [dedup.decide(target, flush.group_key, flush.group_labels, kept,
                                      send_resolved=True,
                                      repeat_interval_s=flush.route.repeat_interval_s,
                                      changed=flush.changed, holders=flush.holders,
                                      moved_out=flush.moved_out)
                         for target in targets if target.receiver == flush.route.receiver]
            decisions = [d for d in decisions if d is not None]
            outbox.enqueue(decisions)
            for decision in decisions:
                note = decision.notification
                if note is not None:
                    sent.append((clock.now, note.target.receiver, note.status,
                                 [f"{a.severity}:{a.state}" for a in note.alerts]))
            for fingerprint in grouper.done(flush):
                stored.pop(fingerprint, None)


BY_ALL = {"receiver": "ops", "group_by": ["..."]}
BY_DEVICE = {"receiver": "ops", "group_by": ["site", "device"]}
# Critical alerts page; with ``continue`` ops keeps getting them too.
PAGER_ONLY = {**BY_ALL, "routes": [{"matchers": ["severity=critical"], "receiver": "pager"}]}
PAGER_TOO = {**BY_ALL, "routes": [{"matchers": ["severity=critical"], "receiver": "pager",
                                   "continue": True}, {"receiver": "ops"}]}

ESCALATES = [(0, pump("warning", 0)), (100, pump("critical", 100)),
             (400, pump("critical", 400, "resolved"))]


@pytest.mark.parametrize(("name", "route", "events", "expected"), [
    ("group_by ...: the escalation is a new group, which later sends the one resolve",
     BY_ALL, ESCALATES,
     [(30, "ops", "firing", ["warning:firing"]), (130, "ops", "firing", ["critical:firing"]),
      (430, "ops", "resolved", ["critical:resolved"])]),
    ("group_by ...: resolved before the new group's group_wait ended (the demo's bug)",
     BY_ALL, [(0, pump("warning", 0)), (100, pump("critical", 100)),
              (110, pump("critical", 110, "resolved"))],
     [(30, "ops", "firing", ["warning:firing"]), (130, "ops", "resolved", ["critical:resolved"])]),
    ("group_by ...: warning -> critical -> warning, then resolved",
     BY_ALL, [(0, pump("warning", 0)), (100, pump("critical", 100)),
              (500, pump("warning", 500)), (700, pump("warning", 700, "resolved"))],
     [(30, "ops", "firing", ["warning:firing"]), (130, "ops", "firing", ["critical:firing"]),
      (530, "ops", "firing", ["warning:firing"]), (830, "ops", "resolved", ["warning:resolved"])]),
    ("group_by ...: back to warning before the critical group was flushed",
     BY_ALL, [(0, pump("warning", 0)), (100, pump("critical", 100)),
              (110, pump("warning", 110)), (400, pump("warning", 400, "resolved"))],
     [(30, "ops", "firing", ["warning:firing"]), (440, "ops", "resolved", ["warning:resolved"])]),
    ("group_by [site, device]: same group, the escalation is news at the next interval",
     BY_DEVICE, ESCALATES,
     [(30, "ops", "firing", ["warning:firing"]), (330, "ops", "firing", ["critical:firing"]),
      (630, "ops", "resolved", ["critical:resolved"])]),
    ("group_by [site, device]: escalated and resolved within one interval",
     BY_DEVICE, [(0, pump("warning", 0)), (100, pump("critical", 100)),
                 (200, pump("critical", 200, "resolved"))],
     [(30, "ops", "firing", ["warning:firing"]), (330, "ops", "resolved", ["critical:resolved"])]),
    ("a receiver the alert no longer reaches is told it resolved; the pager tells the rest",
     PAGER_ONLY, ESCALATES,
     [(30, "ops", "firing", ["warning:firing"]), (130, "pager", "firing", ["critical:firing"]),
      (330, "ops", "resolved", ["warning:resolved"]),
      (430, "pager", "resolved", ["critical:resolved"])]),
    ("a receiver that still gets the alert hears the change and one resolve",
     PAGER_TOO, ESCALATES,
     [(30, "ops", "firing", ["warning:firing"]), (130, "pager", "firing", ["critical:firing"]),
      (130, "ops", "firing", ["critical:firing"]),
      (430, "pager", "resolved", ["critical:resolved"]),
      (430, "ops", "resolved", ["critical:resolved"])]),
    ("after a restart the alert is in its new group only, and its resolve still goes out",
     BY_ALL, [(0, pump("warning", 0)), (100, pump("critical", 100)), (110, RESTART),
              (120, pump("critical", 120, "resolved"))],
     [(30, "ops", "firing", ["warning:firing"]), (140, "ops", "resolved", ["critical:resolved"])]),
    ("a restart after the new group notified: one resolve",
     BY_ALL, ESCALATES[:2] + [(200, RESTART), ESCALATES[2]],
     [(30, "ops", "firing", ["warning:firing"]), (130, "ops", "firing", ["critical:firing"]),
      (530, "ops", "resolved", ["critical:resolved"])]),
])
def test_label_change_timeline(tmp_path, name, route, events, expected):
    sent = run(tmp_path, events, 5000, route)
    assert sorted(sent, key=lambda s: (s[0], s[1] == "ops")) == expected, name
    told_firing = {receiver for _, receiver, status, _ in sent if status == "firing"}
    resolves = Counter(receiver for _, receiver, status, _ in sent if status == "resolved")
    assert resolves == dict.fromkeys(told_firing, 1), name


def test_the_old_group_keeps_no_firing_copy():
    grouper = Grouper(build_routes(RouteSettings.model_validate(PAGER_ONLY)))
    for _, alert in ESCALATES[:2]:
        grouper.insert(alert, alert.all_labels, alert.ts)
    held = {g.route.receiver: [a.state for a in g.alerts.values()] for g in grouper.groups()}
    assert held == {"ops": ["resolved"], "pager": ["firing"]}
    assert grouper.holds(ESCALATES[0][1].fingerprint)


def test_the_demo_scenario_against_the_real_broker_and_webhook(
        mosquitto, webhook, make_alert, publish_alert, service_config, start_service,
        unique_site):
    """pump-1/flow under group_by ["..."]: warning, then critical, then resolved."""
    route = {"receiver": "hook", "group_by": ["..."], "group_wait_s": 0.2,
             "group_interval_s": 0.5, "repeat_interval_s": 3600}
    service = start_service(service_config(mosquitto, {"hook": {"webhook": {"url": webhook.url}}},
                                           route=route))
    warning = make_alert(site=unique_site, device="pump-1", metric="flow", severity="warning")
    publish_alert(mosquitto, warning)
    webhook.wait_for(1)
    publish_alert(mosquitto, make_alert(site=unique_site, device="pump-1", metric="flow",
                                        ts=warning.ts + 10, starts_at=warning.starts_at))
    publish_alert(mosquitto, make_alert(site=unique_site, device="pump-1", metric="flow",
                                        state="resolved", ts=warning.ts + 20,
                                        starts_at=warning.starts_at))

    def states() -> list[tuple[str, str]]:
        return [(a["labels"]["severity"], a["status"])
                for r in webhook.requests for a in r.payload["alerts"]]

    wait_until(lambda: ("critical", "resolved") in states(), timeout=30, what="the resolve")
    wait_until(lambda: not service.get("/alerts"), timeout=30, what="the alert to be forgotten")
    assert states()[0] == ("warning", "firing")
    assert [s for s in states() if s[1] == "resolved"] == [("critical", "resolved")]
    assert webhook.duplicates() == 0
