"""Inhibition: a firing alert mutes other alerts (a critical on a device mutes its warnings).

A rule mutes an alert matching ``target_matchers`` while another alert that matches
``source_matchers`` is firing and has the same values for every ``equal`` label
(a label missing on both sides counts as equal, as in Alertmanager). Pure.

>>> from alerting.config import InhibitRuleSettings
>>> inhibitor = Inhibitor.from_settings([InhibitRuleSettings(
...     source_matchers=["severity=critical"], target_matchers=["severity=warning"],
...     equal=["site", "device"])])
>>> critical = {"site": "p1", "device": "boiler-1", "metric": "temperature", "severity": "critical"}
>>> warning = {"site": "p1", "device": "boiler-1", "metric": "pressure", "severity": "warning"}
>>> inhibitor.inhibited_by(warning, "fp-w", [("fp-c", critical)])
'fp-c'
>>> inhibitor.inhibited_by({**warning, "device": "pump-2"}, "fp-w", [("fp-c", critical)]) is None
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from alerting.config import InhibitRuleSettings
from alerting.matchers import Matcher, matches_all, parse_matchers


@dataclass(frozen=True)
class InhibitRule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]

    def mutes(self, target_labels: Mapping[str, str], source_labels: Mapping[str, str]) -> bool:
        return (matches_all(self.target, target_labels)
                and matches_all(self.source, source_labels)
                and all(target_labels.get(n, "") == source_labels.get(n, "")
                        for n in self.equal))


class Inhibitor:
    def __init__(self, rules: Iterable[InhibitRule]) -> None:
        self.rules = tuple(rules)

    @classmethod
    def from_settings(cls, settings: Iterable[InhibitRuleSettings]) -> Inhibitor:
        return cls(InhibitRule(parse_matchers(s.source_matchers),
                               parse_matchers(s.target_matchers), tuple(s.equal))
                   for s in settings)

    def inhibited_by(self, labels: Mapping[str, str], fingerprint: str,
                     firing: Iterable[tuple[str, Mapping[str, str]]]) -> str | None:
        """The fingerprint of a firing alert that mutes this one, or None.

        ``firing`` is (fingerprint, labels) of every alert firing now; an alert never
        mutes itself.
        """
        if not self.rules:
            return None
        candidates = [rule for rule in self.rules if matches_all(rule.target, labels)]
        if not candidates:
            return None
        for source_fp, source_labels in firing:
            if source_fp == fingerprint:
                continue
            if any(rule.mutes(labels, source_labels) for rule in candidates):
                return source_fp
        return None
