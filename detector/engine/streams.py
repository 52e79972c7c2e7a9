"""Stream patterns: ``site/device/metric`` with MQTT wildcards ``+`` (one level) and ``#`` (rest).

>>> matches("+/+/temperature", "plant-1/boiler-1/temperature")
True
>>> matches("plant-1/#", "plant-2/boiler-1/temperature")
False
>>> check_pattern("a/#/b")
Traceback (most recent call last):
...
ValueError: '#' must be the last level of a pattern, got 'a/#/b'
"""

from __future__ import annotations

import re

_LEVEL = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
LEVELS = 3


def check_pattern(pattern: str) -> None:
    """Raise ValueError saying what is wrong when ``pattern`` cannot match any stream."""
    levels = pattern.split("/")
    for index, level in enumerate(levels):
        if level == "#":
            if index != len(levels) - 1:
                raise ValueError(f"'#' must be the last level of a pattern, got {pattern!r}")
        elif level != "+" and not _LEVEL.match(level):
            raise ValueError(f"levels must be '+', '#' or [A-Za-z0-9_.-]{{1,64}}, got {pattern!r}")
    if "#" not in levels and len(levels) != LEVELS:
        raise ValueError(f"must have 3 levels site/device/metric (or end in '#'), got {pattern!r}")
    if len(levels) > LEVELS:
        raise ValueError(f"must have at most 3 levels site/device/metric, got {pattern!r}")


def matches(pattern: str, stream: str) -> bool:
    """True when ``stream`` (``site/device/metric``) matches ``pattern``."""
    wanted = pattern.split("/")
    levels = stream.split("/")
    for index, level in enumerate(wanted):
        if level == "#":
            return True
        if index >= len(levels) or (level != "+" and level != levels[index]):
            return False
    return len(wanted) == len(levels)
