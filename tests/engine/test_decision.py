"""The alert state machine, case by case: scores in, firing/resolved transitions out."""

import pytest

from detector.engine.decision import AlertMachine
from detector.engine.settings import DecisionSettings

# Each case: decision settings (threshold 0.5 unless given), the calibrated score of readings at ts = 0, 1, 2, ...
# and the expected transitions as (state, ts, started_at, severity).
CASES = {
    "quiet stream": (
        {}, [0.1, 0.2, 0.4, 0.1], []),
    "one anomalous reading fires, ten normal ones resolve": (
        {"resolve_readings": 10}, [0.1, 0.7] + [0.1] * 10,
        [("firing", 1, 1, "warning"), ("resolved", 11, 1, "warning")]),
    "resolve needs M normal readings in a row": (
        {"resolve_readings": 3}, [0.7, 0.1, 0.1, 0.8, 0.1, 0.1, 0.1],
        [("firing", 0, 0, "warning"), ("resolved", 6, 0, "warning")]),
    "pending N readings: a blip does not fire": (
        {"pending_readings": 3, "resolve_readings": 1}, [0.7, 0.7, 0.1, 0.7, 0.7, 0.7, 0.1],
        [("firing", 5, 3, "warning"), ("resolved", 6, 3, "warning")]),
    "pending duration in seconds": (
        {"pending_seconds": 2.0, "resolve_readings": 1}, [0.8, 0.8, 0.8, 0.1],
        [("firing", 2, 0, "warning"), ("resolved", 3, 0, "warning")]),
    "severity from the episode's peak score": (
        {"pending_readings": 2, "critical_score": 0.9, "resolve_readings": 1},
        [0.95, 0.6, 0.1],
        [("firing", 1, 0, "critical"), ("resolved", 2, 0, "critical")]),
    "hysteresis: staying above resolve_threshold keeps it firing": (
        {"resolve_threshold": 0.3, "resolve_readings": 2}, [0.6, 0.4, 0.4, 0.2, 0.2],
        [("firing", 0, 0, "warning"), ("resolved", 4, 0, "warning")]),
    "per-stream threshold": (
        {"threshold": 0.8, "resolve_readings": 1}, [0.7, 0.79, 0.85, 0.1],
        [("firing", 2, 2, "warning"), ("resolved", 3, 2, "warning")]),
    "flapping: the third episode within the window is held silently": (
        {"flap_max_episodes": 2, "flap_window_seconds": 100, "resolve_readings": 1},
        [0.9, 0.1, 0.9, 0.1, 0.9, 0.1, 0.9, 0.1],
        [("firing", 0, 0, "critical"), ("resolved", 1, 0, "critical"),
         ("firing", 2, 2, "critical"), ("resolved", 3, 2, "critical")]),
    "flap window disabled": (
        {"flap_max_episodes": 1, "flap_window_seconds": 0, "resolve_readings": 1},
        [0.9, 0.1, 0.9, 0.1],
        [("firing", 0, 0, "critical"), ("resolved", 1, 0, "critical"),
         ("firing", 2, 2, "critical"), ("resolved", 3, 2, "critical")]),
}


@pytest.mark.parametrize("case", CASES)
def test_transitions(case):
    overrides, scores, expected = CASES[case]
    machine = AlertMachine(DecisionSettings(**{"threshold": 0.5, **overrides}), "fp-1")
    events = [machine.step(float(ts), 10.0, score, {"zscore": score})
              for ts, score in enumerate(scores)]
    got = [(e.state, e.ts, e.started_at, e.severity) for e in events if e is not None]
    assert got == expected


def test_flapping_stream_fires_again_once_the_window_has_passed():
    machine = AlertMachine(DecisionSettings(flap_max_episodes=1, flap_window_seconds=10,
                                            resolve_readings=1), "fp")
    timeline = [(0, 0.9), (1, 0.1), (5, 0.9), (6, 0.1), (20, 0.9)]
    states = [getattr(machine.step(ts, 1.0, s, {}), "state", None) for ts, s in timeline]
    assert states == ["firing", "resolved", None, None, "firing"]


def test_event_carries_what_the_alert_needs():
    machine = AlertMachine(DecisionSettings(threshold=0.5, resolve_readings=1), "abc")
    firing = machine.step(100.0, 42.0, 0.8, {"zscore": 9.1})
    resolved = machine.step(101.0, 20.0, 0.1, {"zscore": 0.3})
    assert (firing.fingerprint, firing.rule, firing.value, firing.score, firing.threshold,
            firing.scores) == ("abc", "anomaly", 42.0, 0.8, 0.5, {"zscore": 9.1})
    assert (resolved.started_at, resolved.ts, resolved.peak_score) == (100.0, 101.0, 0.8)


def test_copy_is_independent():
    machine = AlertMachine(DecisionSettings(), "fp")
    twin = machine.copy()
    assert twin.step(0.0, 1.0, 0.9, {}) is not None
    assert machine.state == "normal"
