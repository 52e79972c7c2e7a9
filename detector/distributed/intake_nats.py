"""NATS JetStream intake: one durable pull consumer (explicit acks) per owned partition.

Each partition is a JetStream stream of its own, ``<nats.stream>_<p>`` capturing
``<prefix>.part.<p>.>``, and its consumer has no subject filter. (With one stream and a
wildcard filter per consumer, nats-server 2.9 spent seconds per pull at 10,000 streams:
it looks for a filtered consumer's next message subject by subject. Separate streams
also let a cluster place partitions on different servers.)

Fetched messages go on the same bounded queue the worker reads in the single-node
service, as ``NatsMessage`` objects that look to it like paho messages (``topic``,
``payload``, ``qos``, ``mid``). ``ack(mid, qos)`` (called by ``acks.Acker`` from the
delivery thread once a message's points are stored or spooled) acknowledges it to the
consumer on the loop.

Taking a partition recreates its consumer to start right after the consumer's
acknowledged floor: everything the previous owner had not acknowledged is delivered again
at once (not after ``ack_wait``), and the previous owner's subscription stops working,
so a stale owner that did not notice it lost the lease cannot go on consuming.

"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from detector.consumer import Received
from detector.distributed.partitions import partition_subject, reading_topic

log = logging.getLogger(__name__)

GENERATION = 1  # acks are never stale by connection here: a consumer, not a session
FETCH_TIMEOUT_S = 1.0


@dataclass(slots=True)
class NatsMessage:
    """What the worker reads of a message (the fields of a paho ``MQTTMessage`` it uses)."""

    topic: str
    payload: bytes
    mid: int
    partition: int
    qos: int = 1


def consumer_name(partition: int) -> str:
    """The durable consumer of a partition.

    >>> consumer_name(4)
    'detector-p4'
    """
    return f"detector-p{partition}"


class NatsIntake:
    """Fetches the owned partitions into ``queue``; sends acks; counts what is in flight."""

    def __init__(self, js: JetStreamContext, stream: str, subject_prefix: str,
                 topic_prefix: str, queue_size: int, *, fetch_batch: int = 500,
                 ack_wait_s: float = 60.0, max_ack_pending: int = 20_000,
                 clock: Callable[[], float] = time.time,
                 note_subject: Callable[[str, int], str] | None = None) -> None:
        self.js = js
        self.stream = stream
        self.subject_prefix = subject_prefix
        self.topic_prefix = topic_prefix
        self.queue: queue.Queue[Received] = queue.Queue(maxsize=queue_size)
        self.fetch_batch = fetch_batch
        self.ack_wait_s = ack_wait_s
        self.max_ack_pending = max_ack_pending
        self._clock = clock
        # Each message's topic and subject partition -> the topic to queue (marked when
        # they disagree: the run-time partition check, ``state.PartitionedHandler``).
        self._note_subject = note_subject
        self._ids = itertools.count(1)
        self._inflight: dict[int, Msg] = {}  # mid -> message, until acked
        self.pending: dict[int, int] = {}  # partition -> messages fetched, not acked
        self._fetchers: dict[int, asyncio.Task[None]] = {}
        self._halted: set[int] = set()
        # One thread puts fetched batches on the worker's queue, blocking while it is full.
        self._feeder = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="feeder")
        self._acks: list[int] = []
        self._ack_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.connected = True
        self.stopping = False

    # -- partitions (on the loop) ------------------------------------------------------------

    def stream_of(self, partition: int) -> str:
        return f"{self.stream}_{partition}"

    async def ensure_streams(self, partitions: int, max_age_s: float) -> None:
        """Create each partition's stream if it does not exist (the first instance does)."""
        for partition in range(partitions):
            name = self.stream_of(partition)
            try:
                await self.js.stream_info(name)
            except nats.js.errors.NotFoundError:
                await self.js.add_stream(api.StreamConfig(
                    name=name, subjects=[partition_subject(self.subject_prefix, partition)],
                    retention=api.RetentionPolicy.LIMITS, storage=api.StorageType.FILE,
                    max_age=max_age_s, discard=api.DiscardPolicy.OLD))
                log.info("created JetStream stream %s for %s", name,
                         partition_subject(self.subject_prefix, partition))

    async def start(self, partition: int) -> int:
        """Consume ``partition`` from after its acknowledged floor; return the first sequence."""
        self._loop = asyncio.get_running_loop()
        name = consumer_name(partition)
        stream = self.stream_of(partition)
        start = 0
        try:
            info = await self.js.consumer_info(stream, name)
        except nats.js.errors.NotFoundError:
            pass
        else:
            start = max(info.ack_floor.stream_seq + 1 if info.ack_floor else 1,
                        info.config.opt_start_seq or 1)
            await self.js.delete_consumer(stream, name)
        config = api.ConsumerConfig(
            durable_name=name, name=name,
            ack_policy=api.AckPolicy.EXPLICIT, ack_wait=self.ack_wait_s,
            max_ack_pending=self.max_ack_pending, max_deliver=-1,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE if start
            else api.DeliverPolicy.ALL, opt_start_seq=start or None)
        await self.js.add_consumer(stream, config)
        subscription = await self.js.pull_subscribe_bind(durable=name, stream=stream)
        self.pending.setdefault(partition, 0)
        self._fetchers[partition] = asyncio.get_running_loop().create_task(
            self._fetch(partition, subscription), name=f"fetch-p{partition}")
        return start or 1

    async def stop_fetching(self, partition: int) -> None:
        """Fetch no more of ``partition``; what was fetched is still queued (and counted)."""
        task = self._fetchers.pop(partition, None)
        if task is None:
            return
        self._halted.add(partition)
        try:
            await asyncio.wait_for(task, FETCH_TIMEOUT_S * 10)
        except (TimeoutError, asyncio.CancelledError):
            pass
        except Exception as exc:
            log.warning("partition %d: fetcher ended with %s", partition, exc)
        finally:
            self._halted.discard(partition)

    async def drained(self, partition: int, timeout_s: float) -> bool:
        """Wait until every fetched message of ``partition`` was acknowledged."""
        deadline = time.monotonic() + timeout_s
        while self.pending.get(partition, 0) > 0:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    def forget(self, partition: int) -> None:
        """After a partition was given up or lost: its un-acked messages are not ours."""
        for mid in [m for m, msg in self._inflight.items() if _partition(msg) == partition]:
            del self._inflight[mid]
        self.pending.pop(partition, None)

    async def lag(self, partition: int) -> tuple[int, int] | None:
        """(not yet delivered, delivered but not acknowledged) of the partition's consumer."""
        try:
            info = await self.js.consumer_info(self.stream_of(partition),
                                               consumer_name(partition))
        except (TimeoutError, nats.js.errors.Error, nats.errors.Error):
            return None
        return info.num_pending or 0, info.num_ack_pending or 0

    def stop(self) -> None:
        """Take no more messages (from any thread; fetchers finish their current batch)."""
        self.stopping = True

    # -- acks (from the delivery thread) -----------------------------------------------------

    @property
    def ack_backlog(self) -> bool:
        return bool(self._acks) or self._ack_scheduled

    def ack(self, mid: int, _qos: int) -> None:
        self._acks.append(mid)  # list.append is atomic; drained on the loop
        loop = self._loop
        if not self._ack_scheduled and loop is not None and not loop.is_closed():
            self._ack_scheduled = True
            loop.call_soon_threadsafe(self._schedule_acks)

    def _schedule_acks(self) -> None:
        self._loop.create_task(self._send_acks())  # type: ignore[union-attr]

    async def _send_acks(self) -> None:
        self._ack_scheduled = False
        acks, self._acks = self._acks, []
        # One explicit ack per message. (AckPolicy.ALL needs one per batch; in the one
        # benchmark run with it, nats-server 2.9 logged read loops of 2-9 s on our
        # connection and heartbeats timed out. Not investigated further.)
        for mid in acks:
            msg = self._inflight.pop(mid, None)
            if msg is None:
                continue  # its partition was given up or lost: the next owner has it
            partition = _partition(msg)
            try:
                await msg.ack()
            except Exception as exc:  # redelivered to the partition's owner: a duplicate
                log.warning("cannot acknowledge a message of partition %d: %s", partition, exc)
            if partition in self.pending:
                self.pending[partition] -= 1

    # -- the fetch loop ----------------------------------------------------------------------

    async def _fetch(self, partition: int, subscription: JetStreamContext.PullSubscription
                     ) -> None:
        pause = 0.1
        while not self.stopping and partition not in self._halted:
            try:
                messages = await subscription.fetch(self.fetch_batch, timeout=FETCH_TIMEOUT_S)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # e.g. the consumer was taken over: the lease tells
                log.warning("partition %d: fetch failed: %s: %s", partition,
                            type(exc).__name__, exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
                continue
            pause = 0.1
            items = []
            now = self._clock()
            note = self._note_subject
            for msg in messages:
                mid = next(self._ids)
                msg._iotwatch_partition = partition  # type: ignore[attr-defined]
                self._inflight[mid] = msg
                subject_partition, topic = reading_topic(msg.subject, self.topic_prefix)
                if note is not None:
                    topic = note(topic, subject_partition)
                items.append((GENERATION, NatsMessage(topic, msg.data, mid, partition), now))
            self.pending[partition] = self.pending.get(partition, 0) + len(items)
            # The feeder thread blocks on the full queue (back-pressure: this partition
            # fetches no more meanwhile); the loop stays free for acks and heartbeats.
            await asyncio.get_running_loop().run_in_executor(self._feeder, self._put_all,
                                                             items)

    def _put_all(self, items: list[Received]) -> None:
        for item in items:
            while not self.stopping:
                try:
                    self.queue.put(item, timeout=0.2)
                    break
                except queue.Full:
                    continue
            # Stopping: the rest stays unacknowledged for the partition's next owner.


def _partition(msg: Msg) -> int:
    return getattr(msg, "_iotwatch_partition", -1)
