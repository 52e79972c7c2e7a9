"""Label matchers in Alertmanager's syntax: ``name op value`` with ``=``, ``!=``, ``=~``, ``!~``.

Regular expressions are anchored at both ends, as in Alertmanager; a label that is
absent matches as the empty string.

>>> matcher = parse_matcher('site=~"plant-[12]"')
>>> matcher.matches({"site": "plant-2"}), matcher.matches({"site": "plant-10"})
(True, False)
>>> matches_all(parse_matchers(["severity=critical", "device!=pump-3"]),
...             {"severity": "critical", "device": "boiler-1"})
True
>>> parse_matcher("severity")
Traceback (most recent call last):
...
ValueError: matcher 'severity' must look like label=value, label!=value, label=~regex or label!~regex
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

Operator = Literal["=", "!=", "=~", "!~"]

_LABEL = r"[A-Za-z_][A-Za-z0-9_]*"
_MATCHER = re.compile(rf"^\s*({_LABEL})\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.DOTALL)


@dataclass(frozen=True)
class Matcher:
    """One condition on one label."""

    name: str
    op: Operator
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def create(cls, name: str, op: Operator, value: str) -> Matcher:
        regex = None
        if op in ("=~", "!~"):
            try:
                regex = re.compile(f"^(?:{value})$")
            except re.error as exc:
                raise ValueError(f"matcher {name}{op}{value!r}: invalid regular expression: "
                                 f"{exc}") from None
        return cls(name, op, value, regex)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self._regex is not None
        found = self._regex.match(actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "op": self.op, "value": self.value}


def parse_matcher(text: str) -> Matcher:
    """Parse ``label=value`` (value optionally in double quotes, with ``\\"`` escapes)."""
    found = _MATCHER.match(text)
    if found is None:
        raise ValueError(f"matcher {text!r} must look like label=value, label!=value, "
                         "label=~regex or label!~regex")
    name, op, value = found.groups()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return Matcher.create(name, op, value)  # type: ignore[arg-type]


def parse_matchers(texts: Iterable[str]) -> tuple[Matcher, ...]:
    return tuple(parse_matcher(text) for text in texts)


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """True when every matcher matches (so no matchers match everything)."""
    return all(m.matches(labels) for m in matchers)
