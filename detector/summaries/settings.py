"""Configuration of hourly and daily summaries: ``detector.summaries`` in detector.yaml.

>>> settings = SummarySettings.model_validate({"enabled": True, "streams": [
...     {"match": "+/+/energy", "counter": True}, {"match": "lab/#", "enabled": False}]})
>>> resolve(settings, "plant/meter/energy"), resolve(settings, "plant/boiler/temp")
(True, False)
>>> resolve(settings, "lab/meter/energy") is None
True
"""

from __future__ import annotations

from pydantic import Field, field_validator

from iotwatch.config import StrictModel


class SummaryRule(StrictModel):
    """Overrides for the streams matching ``match``."""

    match: str
    enabled: bool | None = None
    counter: bool | None = None   # also write the period's ``sum`` (energy, litres, ...)

    @field_validator("match")
    @classmethod
    def _valid_pattern(cls, value: str) -> str:
        from detector.engine.streams import check_pattern

        check_pattern(value)
        return value


class SummarySettings(StrictModel):
    """``detector.summaries``: one point per stream per closed UTC hour and day."""

    enabled: bool = False
    measurement: str = Field(default="summaries", min_length=1)
    streams: list[SummaryRule] = []


def resolve(settings: SummarySettings, stream: str) -> bool | None:
    """None when the stream is not summarised, else whether it is a counter."""
    from detector.engine.streams import matches

    enabled, counter = settings.enabled, False
    for rule in settings.streams:
        if matches(rule.match, stream):
            enabled = enabled if rule.enabled is None else rule.enabled
            counter = counter if rule.counter is None else rule.counter
    return counter if enabled else None
