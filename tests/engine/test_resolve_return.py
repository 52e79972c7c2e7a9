"""Resolve on return: an alert on a changed level lasts until the value is back where it was."""

import math
import random

from detector.engine import Engine, EngineSettings
from detector.engine.decision import AlertMachine
from detector.engine.settings import DecisionSettings


def _machine(**overrides):
    settings = {"threshold": 0.5, "resolve_readings": 3, "resolve_return": 4.0,
                "return_halflife": 50.0, **overrides}
    return AlertMachine(DecisionSettings(**settings), "fp")


def _run(machine, readings, start=0):
    """Step (value, score) pairs; the rows at which it fired and resolved."""
    events = []
    for i, (value, score) in enumerate(readings, start=start):
        event = machine.step(float(i), value, score, {})
        if event is not None:
            events.append((event.state, i))
    return events


def _normal(n, rng):
    return [(20.0 + rng.gauss(0, 1), 0.1) for _ in range(n)]


def test_an_alert_waits_for_the_value_to_return():
    rng = random.Random(1)
    machine = _machine()
    assert _run(machine, _normal(100, rng)) == []
    # The level shifts by 10 std: one reading alerts, then the live score is normal again
    # (the detectors absorbed the new level) but the value has not returned.
    shifted = [(30.0, 0.9)] + [(30.0 + rng.gauss(0, 1), 0.1) for _ in range(30)]
    assert _run(machine, shifted, start=100) == [("firing", 100)]
    assert machine.state == "firing"
    back = [(20.0 + rng.gauss(0, 0.5), 0.1) for _ in range(5)]
    assert _run(machine, back, start=131) == [("resolved", 133)]


def test_without_it_the_alert_resolves_on_the_score_alone():
    rng = random.Random(1)
    machine = _machine(resolve_return=None)
    _run(machine, _normal(100, rng))
    shifted = [(30.0, 0.9)] + [(30.0, 0.1)] * 30
    assert _run(machine, shifted, start=100) == [("firing", 100), ("resolved", 103)]


def test_a_change_that_lasts_longer_than_the_level_remembers_resolves():
    rng = random.Random(2)
    machine = _machine()
    _run(machine, _normal(100, rng))
    # return_halflife 50: after 50 readings firing the old level is not waited for.
    events = _run(machine, [(30.0, 0.9)] + [(30.0, 0.1)] * 80, start=100)
    assert events == [("firing", 100), ("resolved", 152)]


def test_a_young_level_is_not_waited_for():
    rng = random.Random(3)
    machine = _machine()
    _run(machine, _normal(20, rng))  # fewer normal readings than return_halflife
    events = _run(machine, [(30.0, 0.9)] + [(30.0, 0.1)] * 10, start=20)
    assert events == [("firing", 20), ("resolved", 23)]


def test_the_level_is_frozen_while_alerting_and_kept_by_copies_and_state():
    rng = random.Random(4)
    machine = _machine()
    _run(machine, _normal(100, rng))
    level, spread = machine.level, math.sqrt(machine.level_var)
    assert abs(level - 20.0) < 0.5 and 0.5 < spread < 1.5
    _run(machine, [(30.0, 0.9)] + [(30.0, 0.1)] * 10, start=100)
    assert (machine.level, math.sqrt(machine.level_var)) == (level, spread)
    twin = machine.copy()
    assert twin.state_dict() == machine.state_dict()
    assert _run(twin, [(20.0, 0.1)] * 3, start=111) == [("resolved", 113)]
    assert machine.state == "firing"


def test_absurd_values_do_not_break_the_level():
    machine = _machine()
    for i, value in enumerate([20.0, 21.0, 1e300, -1e300, float("nan"), 20.5] * 20):
        machine.step(float(i), value, 0.1, {})
    assert math.isfinite(machine.level) and math.isfinite(machine.level_var)


def _shift_episode(settings):
    """A stream at N(20, 1) for 1,000 readings, 300 readings 6 std higher, then back."""
    rng = random.Random(7)
    engine = Engine(settings)
    events = []
    for i in range(1600):
        value = rng.gauss(20.0, 1.0) + (6.0 if 1000 <= i < 1300 else 0.0)
        outcome = engine.process("s", "d", "flow", float(i), value)
        if outcome.event is not None:
            events.append((outcome.event.state, i))
    return events


def test_engine_keeps_a_level_shift_alert_until_the_value_returns():
    with_return = _shift_episode(EngineSettings())
    fired = [i for state, i in with_return if state == "firing"]
    resolved = [i for state, i in with_return if state == "resolved"]
    assert fired and 1000 <= fired[0] < 1010
    # one alert for the episode, resolved once the value is back (plus the hysteresis)
    assert len(fired) == 1 and 1300 <= resolved[0] < 1300 + 100
    without = _shift_episode(EngineSettings(decision=DecisionSettings(resolve_return=None)))
    assert [i for state, i in without if state == "resolved"][0] < 1300


def test_device_alerts_do_not_wait_for_a_return():
    engine = Engine(EngineSettings())
    engine.process_device("s", "d", 0.0, {"a": 1.0, "b": 2.0})
    machine = engine._streams["s/d/_device"].machine
    assert machine.settings.resolve_return is None
    assert engine._streams["s/d/_device"].machine.settings.resolve_readings == 300
