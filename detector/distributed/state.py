"""The engine state of the partitions this instance owns: one engine per partition.

``PartitionedHandler`` looks to the worker and the HTTP API like one
``detector.handler.MessageHandler``: each message goes to the handler of its device's
partition. A partition's engine is added when the instance takes the partition (restored
from its checkpoint) and removed when it gives it up, so a checkpoint is exactly one
partition's streams and can be handed to any other instance.

>>> from detector.engine import Engine, EngineSettings
>>> from iotwatch.parse import ReadingParser
>>> from iotwatch.topics import Topics
>>> state = PartitionedHandler(ReadingParser(Topics("iotwatch")), partitions=4,
...                            make_engine=lambda: Engine(EngineSettings(enabled=["zscore"])))
>>> state.add(1, Engine(EngineSettings(enabled=["zscore"])))
>>> state.partition_of_topic("iotwatch/readings/s/d1/t")
1
>>> state.handle("iotwatch/readings/s/d1/t", b'{"ts": 1768905000, "value": 1}',
...              received_at=1768905001.0).readings
1
>>> state.take_dirty(), state.stream_count()
(['s/d1/t'], 1)
>>> [key for key, _sealed in state.partition_records(1)]
['s/d1/t']
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from detector.distributed.partitioncheck import wrong_partition_detail
from detector.distributed.partitions import partition_of
from detector.distributed.streamlimits import InstanceGate, OwnedStreams
from detector.engine import Engine, snapshot
from detector.handler import Handled, MessageHandler
from detector.metrics import Metrics
from detector.sequence import SequenceTracker
from detector.streamlimit import StreamLimits
from iotwatch.contracts import Reading, Reason, Rejected
from iotwatch.parse import ReadingParser

log = logging.getLogger(__name__)

_TOPIC_CACHE = 1_000_000  # topics remembered with their partition (one per stream)


class MisroutedTopic(str):
    """The topic of a message that came through ``subject_partition``, which is not its
    device's partition: the worker hands it to ``handle_into`` like any topic (and to the
    dead letter), and the handler rejects it as ``wrong_partition``."""

    __slots__ = ("subject_partition",)

    def __new__(cls, topic: str, subject_partition: int) -> MisroutedTopic:
        marked = super().__new__(cls, topic)
        marked.subject_partition = subject_partition
        return marked


class PartitionedHandler:
    """Routes each message to its partition's ``MessageHandler``; one lock for all."""

    def __init__(self, parser: ReadingParser, partitions: int,
                 make_engine: Callable[[], Engine], *, measurement: str = "readings",
                 alert_measurement: str = "alerts", device_points: bool = True,
                 precision: str = "us", sequences: SequenceTracker | None = None,
                 limits: StreamLimits | None = None, metrics: Metrics | None = None) -> None:
        self.parser = parser
        self.partitions = partitions
        self.precision = precision
        self.sequences = sequences
        self.lock = threading.Lock()
        self._make_engine = make_engine
        self._options = {"measurement": measurement, "alert_measurement": alert_measurement,
                         "device_points": device_points, "precision": precision,
                         "sequences": sequences}
        self._handlers: dict[int, MessageHandler] = {}
        self._topics: dict[str, int] = {}
        settings = make_engine().settings
        # limits.max_streams etc. over every owned partition (not evicting: streamlimits).
        self.gate = None if limits is None else InstanceGate(
            limits, OwnedStreams(lambda: [h.engine for h in self._handlers.values()],
                                 settings), metrics)
        # Messages whose topic has no device: the parser rejects them; any handler will do.
        self._rejecter = self._handler(make_engine())
        # Readings of a partition given up or lost while they waited in the queue: stored
        # (the new owner's copies are the same points) but learned by nobody here.
        self._stray = self._handler(make_engine())
        self.stray_readings = 0
        # Topics of messages that came through a partition other than partition_of's (the
        # server's mapping and nats.partitions disagree): topic -> the subject's partition.
        self.misrouted: dict[str, int] = {}
        self.misrouted_messages = 0

    def _handler(self, engine: Engine, gate: InstanceGate | None = None) -> MessageHandler:
        handler = MessageHandler(engine, self.parser, gate=gate, **self._options)
        # One lock for every partition: the sequence tracker is shared, and /streams
        # reads all partitions at once.
        handler.lock = self.lock
        return handler

    # -- ownership (the coordinator) ---------------------------------------------------------

    def add(self, partition: int, engine: Engine) -> None:
        with self.lock:
            self._handlers[partition] = self._handler(engine, self.gate)

    def remove(self, partition: int) -> None:
        """Forget a partition given up or lost (its final snapshot was taken before)."""
        with self.lock:
            self._handlers.pop(partition, None)

    def owned(self) -> list[int]:
        with self.lock:
            return sorted(self._handlers)

    def partition_records(self, partition: int) -> list[tuple[str, bytes]]:
        """Every stream of ``partition`` as (key, sealed state), for its final checkpoint
        when it is given up. The engine lock is held for one stream at a time (the
        partition gets no more messages by then; the other partitions go on)."""
        with self.lock:
            handler = self._handlers.get(partition)
            keys = [] if handler is None else handler.stream_keys()
        records = []
        for key in keys:
            with self.lock:
                body = handler.stream_state_bytes(key)
            if body is not None:
                records.append((key, snapshot.seal(body)))  # zlib: outside the lock
        return records

    # -- the MessageHandler interface --------------------------------------------------------

    def partition_of_topic(self, topic: str) -> int | None:
        partition = self._topics.get(topic)
        if partition is None:
            levels = topic.split("/")
            if len(levels) < 4:
                return None
            partition = partition_of(levels[2], levels[3], self.partitions)
            if len(self._topics) < _TOPIC_CACHE:
                self._topics[topic] = partition
        return partition

    def note_subject(self, topic: str, subject_partition: int) -> str:
        """From the intake, per fetched message: the topic to hand the worker, marked
        (``MisroutedTopic``) when the message came through a partition other than
        ``partition_of``'s; such a message is dead-lettered, not learned."""
        expected = self.partition_of_topic(topic)
        if expected is None or expected == subject_partition:
            return topic
        if topic not in self.misrouted:
            log.warning("%s", wrong_partition_detail(topic, subject_partition, expected,
                                                     self.partitions))
        if len(self.misrouted) < _TOPIC_CACHE:
            self.misrouted[topic] = subject_partition
        return MisroutedTopic(topic, subject_partition)

    def handle(self, topic: str, payload: bytes, received_at: float) -> Handled:
        done = Handled()
        with self.lock:
            done.rejected = self.handle_into(done, topic, payload, received_at)
        return done

    def handle_into(self, done: Handled, topic: str, payload: bytes,
                    received_at: float) -> Rejected | None:
        """``MessageHandler.handle_into`` of the message's partition (caller holds ``lock``)."""
        if type(topic) is MisroutedTopic:
            self.misrouted_messages += 1
            expected = self.partition_of_topic(topic)
            return Rejected(Reason.WRONG_PARTITION, wrong_partition_detail(
                topic, topic.subject_partition, -1 if expected is None else expected,
                self.partitions))
        return self._route(topic).handle_into(done, topic, payload, received_at)

    def _route(self, topic: str) -> MessageHandler:
        partition = self.partition_of_topic(topic)
        handler = self._rejecter if partition is None else self._handlers.get(partition)
        if handler is None:
            if not self.stray_readings:
                log.warning("reading of partition %s, which this instance no longer owns "
                            "(its lease was lost): stored, not learned here: %s",
                            partition, topic)
            self.stray_readings += 1
            if len(self._stray.engine) > _TOPIC_CACHE // 10:  # nothing here is kept
                self._stray = self._handler(self._make_engine())
            handler = self._stray
        return handler

    # -- checkpoints, a few streams at a time (worker.Worker; the caller holds ``lock``) ------

    def take_dirty(self) -> list[str]:
        """The streams of the owned partitions changed since the last call."""
        return [key for handler in self._handlers.values() for key in handler.take_dirty()]

    def stream_keys(self) -> list[str]:
        return [key for handler in self._handlers.values() for key in handler.stream_keys()]

    def stream_state_bytes(self, key: str) -> bytes | None:
        """A stream's ``snapshot.plain_bytes`` (None: not held, e.g. its partition went)."""
        handler = self._handlers.get(self.partition_of_key(key))
        return None if handler is None else handler.stream_state_bytes(key)

    def partition_of_key(self, key: str) -> int:
        """The partition of a stream key ``site/device/metric``."""
        site, device, _metric = key.split("/", 2)
        return partition_of(site, device, self.partitions)

    def checkpointed(self, keys: set[str] | None = None) -> None:
        """The worker's hook after a checkpoint round: nothing to do in this mode, where
        no stream is evicted."""

    def summaries(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            handlers = list(self._handlers.items())
        merged: dict[str, dict[str, Any]] = {}
        for partition, handler in handlers:
            for key, summary in handler.summaries().items():
                summary["partition"] = partition
                merged[key] = summary
        return merged

    def stream_count(self) -> int:
        with self.lock:
            return sum(len(h.engine) for h in self._handlers.values())

    def peek(self, readings: list[Reading]) -> list[dict[str, Any]]:
        answers = []
        for reading in readings:
            partition = partition_of(reading.site, reading.device, self.partitions)
            with self.lock:
                handler = self._handlers.get(partition)
            if handler is None:
                handler = self._handler(self._make_engine())  # answers "unknown stream"
            answers.extend(handler.peek([reading]))
        return answers
