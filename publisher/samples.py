"""What every source (the simulated fleet, a replayed file) produces: time-ordered samples."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading to send.

    ``offset_s`` is the source's own clock (seconds since its start) that pacing follows;
    ``malformed`` names how the payload is to be broken (a ``garbage`` fault), else None.
    """

    site: str
    device: str
    metric: str
    ts: float
    offset_s: float
    value: float
    seq: int
    unit: str | None = None
    malformed: str | None = None
