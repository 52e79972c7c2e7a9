"""Grouping, repeat and resolve behaviour against the configuration, with a fake clock.

``simulate`` drives the pure parts exactly as the service does (grouper -> mute ->
de-duplicate -> log -> done) and returns what would have been sent, when: no threads,
no sleeps, no servers.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from alerting.config import RouteSettings
from alerting.dedup import Deduplicator, LogEntry, needs_update
from alerting.grouping import Grouper
from alerting.inhibit import Inhibitor
from alerting.matchers import parse_matchers
from alerting.notification import Target
from alerting.notify import mute
from alerting.routing import build_routes
from alerting.silences import Silence, Silences
from iotwatch.contracts import Alert, alert_fingerprint

TARGET = Target("ops", "webhook")


def alert(device: str = "boiler-1", state: str = "firing", ts: float = 0.0,
          metric: str = "temperature", severity: str = "critical") -> Alert:
    return Alert(alert_fingerprint("p1", device, metric, "anomaly"), state, severity,  # type: ignore[arg-type]
                 "p1", device, metric, "anomaly", 1.0, 0.9, 0.5, 0.0, ts,
                 ends_at=ts if state == "resolved" else None)


@dataclass
class FakeClock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


def simulate(events: list[tuple[float, Alert]], until: float, *, send_resolved: bool = True,
             silences: Silences | None = None, **route) -> list[tuple[float, str, list[str]]]:
    """Sent notifications as (time, status, sorted "device:state" of the alerts)."""
    options = {"receiver": "ops", "group_by": ["site", "device"], "group_wait_s": 30,
               "group_interval_s": 300, "repeat_interval_s": 3600, **route}
    grouper = Grouper(build_routes(RouteSettings.model_validate(options)))
    log: dict[tuple[Target, str], LogEntry] = {}
    clock = FakeClock()
    dedup = Deduplicator(lambda target, key: log.get((target, key)), clock)
    latest: dict[str, Alert] = {}
    pending = sorted(events, key=lambda e: e[0])
    sent = []
    while True:
        next_flush = grouper.next_flush_at()
        next_event = pending[0][0] if pending else None
        times = [t for t in (next_flush, next_event) if t is not None]
        if not times or min(times) > until:
            return sent
        clock.now = min(times)
        while pending and pending[0][0] <= clock.now:
            _, item = pending.pop(0)
            latest[item.fingerprint] = item
            grouper.insert(item, item.all_labels, clock.now)
        for flush in grouper.due(clock.now):
            firing = [(a.fingerprint, a.all_labels) for a in latest.values()
                      if a.state == "firing"]
            kept, _muted = mute(flush.alerts, silences or Silences(), Inhibitor([]), firing,
                                clock.now)
            decision = dedup.decide(TARGET, flush.group_key, flush.group_labels, kept,
                                    send_resolved=send_resolved,
                                    repeat_interval_s=flush.route.repeat_interval_s) \
                if kept else None
            if decision is not None:
                log[(TARGET, flush.group_key)] = decision.entry
                note = decision.notification
                if note is not None:
                    sent.append((clock.now, note.status,
                                 sorted(f"{a.device}:{a.state}" for a in note.alerts)))
            grouper.done(flush)


FIRE = alert()
RESOLVE = alert(state="resolved", ts=100.0)


@pytest.mark.parametrize(("name", "events", "until", "options", "expected"), [
    ("waits group_wait, then silence until the repeat interval",
     [(0, FIRE)], 3700, {},
     [(30, "firing", ["boiler-1:firing"]), (3630, "firing", ["boiler-1:firing"])]),
    ("a resolve is sent once, at the next group interval",
     [(0, FIRE), (100, RESOLVE)], 5000, {},
     [(30, "firing", ["boiler-1:firing"]), (330, "resolved", ["boiler-1:resolved"])]),
    ("firing and resolved within group_wait: nothing to tell",
     [(0, FIRE), (10, alert(state="resolved", ts=10.0))], 5000, {}, []),
    ("a second alert of the group waits for the group interval",
     [(0, FIRE), (100, alert(metric="pressure"))], 400, {},
     [(30, "firing", ["boiler-1:firing"]),
      (330, "firing", ["boiler-1:firing", "boiler-1:firing"])]),
    ("alerts arriving within group_wait go out together",
     [(0, FIRE), (20, alert(metric="pressure"))], 400, {},
     [(30, "firing", ["boiler-1:firing", "boiler-1:firing"])]),
    ("different devices are different groups",
     [(0, FIRE), (5, alert(device="pump-1"))], 100, {},
     [(30, "firing", ["boiler-1:firing"]), (35, "firing", ["pump-1:firing"])]),
    ("one group for the site when grouping by site",
     [(0, FIRE), (5, alert(device="pump-1"))], 100, {"group_by": ["site"]},
     [(30, "firing", ["boiler-1:firing", "pump-1:firing"])]),
    ("a redelivered identical alert changes nothing",
     [(0, FIRE), (50, FIRE), (400, FIRE)], 1000, {},
     [(30, "firing", ["boiler-1:firing"])]),
    ("re-firing after the resolve starts a new group",
     [(0, FIRE), (100, RESOLVE), (1000, alert(ts=1000.0))], 1100, {},
     [(30, "firing", ["boiler-1:firing"]), (330, "resolved", ["boiler-1:resolved"]),
      (1030, "firing", ["boiler-1:firing"])]),
    ("one of two resolves: the group notifies the change, keeps repeating the rest",
     [(0, FIRE), (0, alert(metric="pressure")), (100, RESOLVE)], 4000, {},
     [(30, "firing", ["boiler-1:firing", "boiler-1:firing"]),
      (330, "firing", ["boiler-1:firing", "boiler-1:resolved"]),
      (3930, "firing", ["boiler-1:firing"])]),
    ("short repeat interval",
     [(0, FIRE)], 700, {"repeat_interval_s": 600, "group_interval_s": 60},
     [(30, "firing", ["boiler-1:firing"]), (630, "firing", ["boiler-1:firing"])]),
])
def test_timeline(name, events, until, options, expected):
    assert simulate(events, until, **options) == expected, name


def test_send_resolved_off_sends_no_resolve_but_forgets_the_alert():
    sent = simulate([(0, FIRE), (100, RESOLVE), (1000, alert(ts=1000.0))], 4000,
                    send_resolved=False)
    assert sent == [(30, "firing", ["boiler-1:firing"]), (1030, "firing", ["boiler-1:firing"])]


def test_a_silence_that_ends_lets_a_firing_alert_through_at_the_next_flush():
    silences = Silences([Silence("s1", parse_matchers(["device=boiler-1"]), 0.0, 500.0)])
    sent = simulate([(0, FIRE)], 1000, silences=silences)
    assert sent == [(630, "firing", ["boiler-1:firing"])]


def test_a_resolve_during_a_silence_is_not_sent():
    silences = Silences([Silence("s1", parse_matchers(["device=boiler-1"]), 0.0, 500.0)])
    assert simulate([(0, FIRE), (100, RESOLVE)], 2000, silences=silences) == []


@pytest.mark.parametrize(("entry", "firing", "resolved", "send_resolved", "now", "expected"), [
    (None, {"a"}, set(), True, 0, True),
    (None, set(), {"a"}, True, 0, False),          # nothing ever fired: nothing to resolve
    (LogEntry(frozenset({"a"}), frozenset(), 0, 1), {"a"}, set(), True, 10, False),
    (LogEntry(frozenset({"a"}), frozenset(), 0, 1), {"a", "b"}, set(), True, 10, True),
    (LogEntry(frozenset({"a", "b"}), frozenset(), 0, 1), {"a"}, set(), True, 10, False),
    (LogEntry(frozenset({"a", "b"}), frozenset(), 0, 1), {"a"}, {"b"}, True, 10, True),
    (LogEntry(frozenset({"a", "b"}), frozenset(), 0, 1), {"a"}, {"b"}, False, 10, False),
    (LogEntry(frozenset({"a"}), frozenset(), 0, 1), set(), {"a"}, False, 10, True),
    (LogEntry(frozenset(), frozenset({"a"}), 0, 2), set(), {"a"}, True, 10, False),
    (LogEntry(frozenset({"a"}), frozenset(), 0, 1), {"a"}, set(), True, 3600, True),
])
def test_needs_update(entry, firing, resolved, send_resolved, now, expected):
    assert needs_update(entry, firing, resolved, send_resolved=send_resolved,
                        repeat_interval_s=3600, now=now) is expected


def test_sequence_numbers_make_repeats_distinct_notifications():
    log: dict = {}
    clock = FakeClock(0.0)
    dedup = Deduplicator(lambda t, k: log.get((t, k)), clock)
    first = dedup.decide(TARGET, "g", {}, [FIRE], send_resolved=True, repeat_interval_s=60)
    log[(TARGET, "g")] = first.entry
    clock.now = 61.0
    repeat = dedup.decide(TARGET, "g", {}, [FIRE], send_resolved=True, repeat_interval_s=60)
    assert repeat.notification.seq == first.notification.seq + 1
    assert repeat.notification.idempotency_key != first.notification.idempotency_key


def test_max_alerts_truncates_and_says_so():
    dedup = Deduplicator(lambda t, k: None, FakeClock())
    alerts = [alert(metric=f"m{i}") for i in range(5)]
    decision = dedup.decide(TARGET, "g", {}, alerts, send_resolved=True, repeat_interval_s=60,
                            max_alerts=2)
    assert len(decision.notification.alerts) == 2 and decision.notification.truncated == 3
    assert decision.entry.firing == {a.fingerprint for a in alerts}


def test_an_alert_that_changes_labels_moves_to_its_new_group():
    grouper = Grouper(build_routes(RouteSettings(receiver="r", group_by=["severity"])))
    warning = alert(severity="warning")
    grouper.insert(warning, warning.all_labels, 0.0)
    critical = alert(severity="critical", ts=5.0)
    grouper.insert(critical, critical.all_labels, 5.0)
    groups = {g.key: list(g.alerts) for g in grouper.groups()}
    assert groups == {'{}:{severity="critical"}': [critical.fingerprint]}
