"""Silences and inhibition, as tables with explicit times (pure)."""

from __future__ import annotations

import pytest

from alerting.config import InhibitRuleSettings, SilenceSettings
from alerting.inhibit import Inhibitor
from alerting.silences import Silence, Silences, silence_from_request, silences_from_config

NOW = 1_768_905_000.0
LABELS = {"site": "plant-1", "device": "boiler-1", "metric": "temperature",
          "severity": "warning"}


@pytest.mark.parametrize(("body", "error"), [
    (None, 'body must be a JSON object'),
    ({"matchers": "site=a", "duration_s": 60}, '"matchers" must be a non-empty list'),
    ({"matchers": ["site"], "duration_s": 60}, "must look like label=value"),
    ({"matchers": ["site=a"]}, 'needs "ends_at" or "duration_s"'),
    ({"matchers": ["site=a"], "duration_s": -5}, '"duration_s" must be a positive number'),
    ({"matchers": ["site=a"], "duration_s": True}, '"duration_s" must be a positive number'),
    ({"matchers": ["site=a"], "ends_at": "2020-01-01T00:00:00Z"}, '"ends_at" must be after'),
    ({"matchers": ["site=a"], "ends_at": "soon"}, '"ends_at": expected RFC 3339'),
    ({"matchers": ["site=a"], "duration_s": 400 * 86400}, "at most 365 days"),
    ({"matchers": ["site=a"], "duration_s": 60, "until": 1}, "unknown keys until"),
    ({"matchers": ["site=a"], "duration_s": 60, "comment": 5}, '"comment" must be a string'),
])
def test_bad_silence_requests_say_what_is_wrong(body, error):
    with pytest.raises(ValueError, match=error):
        silence_from_request(body, NOW, "id")


def test_silence_window_and_state():
    silence = silence_from_request({"matchers": ["device=~boiler-.*"],
                                    "starts_at": "2026-01-20T10:40:00Z", "duration_s": 600},
                                   NOW, "s1")
    assert [silence.state(t) for t in (NOW, NOW + 600, NOW + 1199, NOW + 1200)] == [
        "pending", "active", "active", "expired"]
    assert not silence.mutes(LABELS, NOW) and silence.mutes(LABELS, NOW + 600)
    assert Silence.from_dict(silence.to_dict()) == silence


def test_configured_silences_may_be_open_ended_and_are_not_removable_by_cleanup():
    [silence] = silences_from_config([SilenceSettings(matchers=["site=plant-1"])])
    silences = Silences([silence])
    assert silences.silenced_by(LABELS, NOW) == ["config-0"]
    assert silences.expired_before(NOW * 2) == []


RULES = Inhibitor.from_settings([
    InhibitRuleSettings(source_matchers=["severity=critical"],
                        target_matchers=["severity=warning"], equal=["site", "device"]),
    InhibitRuleSettings(source_matchers=["metric=power", "severity=critical"],
                        target_matchers=["metric=~temperature|pressure"], equal=["site"]),
])


@pytest.mark.parametrize(("target", "sources", "inhibited_by"), [
    (LABELS, [("c", {**LABELS, "severity": "critical", "metric": "pressure"})], "c"),
    (LABELS, [("c", {**LABELS, "severity": "critical", "device": "pump-1"})], None),
    (LABELS, [("c", {**LABELS, "severity": "critical", "site": "plant-2"})], None),
    (LABELS, [("w", {**LABELS, "metric": "pressure"})], None),        # warnings mute nothing
    ({**LABELS, "severity": "critical"},
     [("c", {**LABELS, "severity": "critical", "metric": "pressure"})], None),
    ({**LABELS, "severity": "critical"},                                 # the second rule
     [("p", {"site": "plant-1", "device": "meter-1", "metric": "power",
             "severity": "critical"})], "p"),
    (LABELS, [("self", {**LABELS, "severity": "critical"})], "self"),
    ({**LABELS, "severity": "critical"}, [("x", {**LABELS, "severity": "critical"})], None),
])
def test_inhibition(target, sources, inhibited_by):
    assert RULES.inhibited_by(target, "target-fp", sources) == inhibited_by


def test_an_alert_does_not_inhibit_itself():
    rules = Inhibitor.from_settings([InhibitRuleSettings(
        source_matchers=["site=plant-1"], target_matchers=["site=plant-1"])])
    assert rules.inhibited_by(LABELS, "fp", [("fp", LABELS)]) is None
    assert rules.inhibited_by(LABELS, "fp", [("other", LABELS)]) == "other"
