"""``limits.max_streams`` and ``limits.max_new_streams_per_minute`` per instance in the
distributed mode: the single-node ``detector.streamlimit.StreamGate`` over the streams of
every partition this instance owns.

Each owned partition has its own engine (``state.PartitionedHandler``); the gate counts
and looks up streams across all of them (``OwnedStreams``), so the bound is on the
instance, whichever partitions it holds. Streams of a partition taken over are always
kept (their learned state is never dropped), even when that puts the instance above the
bound; only new streams are refused, dead-lettered as ``stream_limit``.

Idle streams are not evicted in this mode (``limits.evict_idle_s`` does not apply): an
evicted stream's state would have to move with its partition to the next owner, and the
single-node store of evicted streams is a local directory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path

from detector.engine import Engine, EngineSettings
from detector.metrics import Metrics
from detector.streamlimit import StreamGate, StreamLimits
from detector.streamstore import StreamStore
from iotwatch.contracts import Reading, Rejected


class OwnedStreams:
    """The engines of the owned partitions, seen by the gate as one engine: its length is
    every owned stream; a key is looked up in the engine of the message being admitted
    (all streams of one message are one device's, so in that partition)."""

    def __init__(self, engines: Callable[[], Iterable[Engine]], settings: EngineSettings) -> None:
        self._engines = engines
        self.settings = settings
        self.current: Engine | None = None  # the partition engine of the message admitted

    def __len__(self) -> int:
        return sum(len(engine) for engine in self._engines())

    def __contains__(self, key: object) -> bool:
        return self.current is not None and key in self.current


class InstanceGate:
    """What a partition's ``MessageHandler`` calls as its gate: admits against the whole
    instance instead of the partition's engine alone."""

    def __init__(self, limits: StreamLimits, streams: OwnedStreams,
                 metrics: Metrics | None = None) -> None:
        self.streams = streams
        # The gate's store of evicted streams stays empty: nothing is evicted.
        self.gate = _WithoutEviction(
            StreamLimits(limits.max_streams, limits.max_new_per_minute, math.inf),
            StreamStore(Path("/nonexistent/iotwatch-evicts-nothing")), metrics)

    def admit(self, engine: Engine, readings: list[Reading], now: float) -> Rejected | None:
        """Under the engine lock, as every gate call (one lock for all partitions)."""
        self.streams.current = engine
        return self.gate.admit(self.streams, readings, now)  # type: ignore[arg-type]

    def checkpointed(self, _engine: Engine, _keys: set[str] | None = None) -> None:
        """Nothing: no stream is evicted, so no evicted copy waits for a checkpoint."""

    def warning(self, now: float) -> str | None:
        return self.gate.warning(now)


class _WithoutEviction(StreamGate):
    def evict_idle(self, engine: Engine, now: float) -> int:
        return 0

    def _refuse(self, now: float, detail: str) -> Rejected:
        return super()._refuse(now, detail.replace(
            " and none idle for inf s", " on this instance (idle streams are not evicted "
            "in the distributed mode)"))
