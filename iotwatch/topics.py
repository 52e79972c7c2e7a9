"""The topic layout, in one place.

>>> topics = Topics("iotwatch")
>>> topics.reading("plant-1", "boiler-1", "temperature")
'iotwatch/readings/plant-1/boiler-1/temperature'
>>> topics.parse_reading("iotwatch/readings/plant-1/boiler-1")
('plant-1', 'boiler-1', None)
"""

from __future__ import annotations

import re

from iotwatch.contracts import Reason, Rejected

# \Z, not $: "$" also matches before a final newline ("dev-1\n" would pass).
SEGMENT = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def safe_segment(text: str) -> str:
    """A topic level made from any name (a CSV column, a file name): characters outside
    ``[A-Za-z0-9_.-]`` become ``_``, cut to 64.

    >>> safe_segment("Volume Flow RateRMS")
    'Volume_Flow_RateRMS'
    """
    return _UNSAFE.sub("_", text.strip())[:64] or "_"


class Topics:
    """Builds and parses every topic under one prefix."""

    def __init__(self, prefix: str = "iotwatch") -> None:
        self.prefix = prefix.rstrip("/")
        self._readings_root = f"{self.prefix}/readings/"
        self._alerts_root = f"{self.prefix}/alerts/"

    # Subscriptions
    @property
    def readings_filter(self) -> str:
        return f"{self.prefix}/readings/#"

    @property
    def alerts_filter(self) -> str:
        return f"{self.prefix}/alerts/#"

    @property
    def alert_state_filter(self) -> str:
        return f"{self.prefix}/alert-state/#"

    # Builders
    def reading(self, site: str, device: str, metric: str | None = None) -> str:
        base = f"{self._readings_root}{site}/{device}"
        return base if metric is None else f"{base}/{metric}"

    def alert(self, site: str, device: str, metric: str) -> str:
        return f"{self._alerts_root}{site}/{device}/{metric}"

    def alert_state(self, site: str, device: str, metric: str) -> str:
        return f"{self.prefix}/alert-state/{site}/{device}/{metric}"

    def truth(self, site: str, device: str, metric: str) -> str:
        return f"{self.prefix}/truth/{site}/{device}/{metric}"

    def deadletter(self, service: str) -> str:
        return f"{self.prefix}/deadletter/{service}"

    def status(self, service: str) -> str:
        return f"{self.prefix}/status/{service}"

    # Parsers
    def parse_reading(self, topic: str) -> tuple[str, str, str | None]:
        """Return (site, device, metric or None for the per-device form)."""
        return self._parse(topic, self._readings_root, (2, 3),
                           "<prefix>/readings/<site>/<device>[/<metric>]")  # type: ignore[return-value]

    def parse_alert(self, topic: str) -> tuple[str, str, str]:
        return self._parse(topic, self._alerts_root, (3,),
                           "<prefix>/alerts/<site>/<device>/<metric>")  # type: ignore[return-value]

    def _parse(self, topic: str, root: str, lengths: tuple[int, ...], layout: str):
        if not topic.startswith(root):
            raise Rejected(Reason.BAD_TOPIC, f"topic {topic[:200]!r} is not under {root!r}")
        levels = topic[len(root):].split("/")
        if len(levels) not in lengths or not all(SEGMENT.match(level) for level in levels):
            raise Rejected(Reason.BAD_TOPIC,
                           f"topic {topic[:200]!r} does not match {layout.replace('<prefix>', self.prefix)} "
                           "with levels of [A-Za-z0-9_.-]{1,64}")
        if len(levels) == 2 and 3 in lengths and 2 in lengths:
            return levels[0], levels[1], None
        return tuple(levels)
