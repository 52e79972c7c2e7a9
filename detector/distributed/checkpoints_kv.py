"""Per-partition engine checkpoints in a JetStream object store every instance can read.

A partition's checkpoint is object ``partition-<n>`` (the object store chunks it, so size
is no limit) holding one record per stream in the checkpoint file's format
(``detector.checkpoint``: ``magic | length | crc32 | key length | key | sealed state``).
It is written the way the single-node service writes its file, off the processing thread:

- the worker encodes the streams changed since the last round a few at a time between
  batches (``worker.Worker``, ``CHECKPOINT_SLICE_S``) and hands them to its checkpoint
  thread, which compresses them and calls ``append`` here;
- ``append`` keeps each held partition's latest record per stream in memory (seeded from
  the checkpoint restored when the partition was taken), and queues the touched
  partitions' objects for writing, whole: any instance can restore one object alone;
- the writes happen on the NATS loop, one after the other in the order queued (a later
  object is never overwritten by an earlier one), and only for partitions still held.

A partition given up (an instance joined, or this one drains) gets a final object with
every stream encoded afresh (``replace``), one stream per hold of the engine lock.
Records of a partition this instance no longer holds are ignored: its next owner writes
that object now. The records kept in memory cost about the checkpoint's size (~3.75 KB a
stream with the default engine).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.object_store import ObjectStore

from detector.checkpoint import Record, pack_record, scan_records
from detector.distributed.loop import LoopThread
from detector.engine import Engine, snapshot

log = logging.getLogger(__name__)


def object_name(partition: int) -> str:
    """The object holding a partition's checkpoint.

    >>> object_name(3)
    'partition-3'
    """
    return f"partition-{partition}"


def packed_records(data: bytes) -> dict[str, bytes]:
    """key -> its latest whole record (``pack_record`` bytes) in records ``data``; streams
    whose latest record says they are gone are left out.

    >>> data = pack_record("s/d/a", b"x") + pack_record("s/d/b", b"y") + pack_record("s/d/a", None)
    >>> sorted(packed_records(data)), packed_records(data)["s/d/b"] == pack_record("s/d/b", b"y")
    (['s/d/b'], True)
    """
    latest, _end = scan_records(data)
    return {key: data[offset:offset + length] for key, (offset, length) in latest.items()
            if length > len(pack_record(key, None))}


def records_of(data: bytes | None, engine: Engine) -> dict[str, bytes]:
    """The records a taken partition starts from: its checkpoint's, or (a checkpoint in
    an older version's format, one whole snapshot, or unreadable) the restored engine's."""
    if data and not data.startswith(snapshot.MAGIC):
        try:
            return {key: record for key, record in packed_records(data).items()
                    if key in engine}
        except (snapshot.SnapshotError, ValueError):
            pass
    return {key: pack_record(key, snapshot.encode(engine.stream_state(key)))
            for key in engine.stream_keys()}


class PartitionCheckpoints:
    """Loads partition checkpoints; stores them from records (``detector.checkpoint.RecordStore``)."""

    def __init__(self, store: ObjectStore, bucket: str, loop: LoopThread,
                 holds: Callable[[int], bool], partition_of_key: Callable[[str], int]) -> None:
        self.store = store
        self.path = f"nats object store {bucket}"  # named in the worker's error messages
        self._loop = loop
        self._holds = holds
        self._partition_of_key = partition_of_key
        # Held partitions' latest record per stream (the checkpoint thread adds, the loop
        # seeds and forgets partitions).
        self._records: dict[int, dict[str, bytes]] = {}
        self._lock = threading.Lock()
        self._queue: asyncio.Queue[tuple[int, bytes]] | None = None
        self._idle = asyncio.Event()
        self.written = 0
        self.last_seconds = 0.0  # time of the last object write
        self.last_bytes = 0
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, js: JetStreamContext, bucket: str, loop: LoopThread,
                   holds: Callable[[int], bool],
                   partition_of_key: Callable[[str], int]) -> PartitionCheckpoints:
        try:
            store = await js.object_store(bucket)
        except nats.js.errors.BucketNotFoundError:
            store = await js.create_object_store(bucket)
        checkpoints = cls(store, bucket, loop, holds, partition_of_key)
        checkpoints._queue = asyncio.Queue()
        checkpoints._idle.set()
        checkpoints._task = asyncio.get_running_loop().create_task(checkpoints._writer())
        return checkpoints

    async def load(self, partition: int) -> bytes | None:
        try:
            result = await self.store.get(object_name(partition))
        except nats.js.errors.ObjectNotFoundError:
            return None
        return result.data

    # -- the partitions held (from the coordinator) ----------------------------------------

    def adopt(self, partition: int, records: dict[str, bytes]) -> None:
        """A partition taken: its checkpoint's records (``packed_records``) are the start."""
        with self._lock:
            self._records[partition] = dict(records)

    def forget(self, partition: int) -> None:
        """A partition given up or lost: its records are another instance's to write."""
        with self._lock:
            self._records.pop(partition, None)

    async def replace(self, partition: int, records: Iterable[Record]) -> int:
        """From the loop: the partition's final object, from ``records`` (sealed state of
        every stream); waits until it (and all before) is stored. Returns its size."""
        packed = {key: pack_record(key, body) for key, body in records if body}
        with self._lock:
            self._records[partition] = packed
            data = b"".join(packed.values())
        self._enqueue(partition, data)
        await self.wait_idle()
        return len(data)

    # -- the RecordStore the worker's checkpoint thread appends to ---------------------------

    def keys(self) -> set[str]:
        with self._lock:
            return {key for records in self._records.values() for key in records}

    def append(self, records: Iterable[Record]) -> None:
        """Streams' sealed states (None: gone) into their partitions' objects, queued."""
        touched: set[int] = set()
        with self._lock:
            for key, body in records:
                partition = self._partition_of_key(key)
                held = self._records.get(partition)
                if held is None:
                    continue  # given up or lost meanwhile: not ours to write
                if body:
                    held[key] = pack_record(key, body)
                else:
                    held.pop(key, None)
                touched.add(partition)
            objects = {p: b"".join(self._records[p].values()) for p in sorted(touched)}
        if self._loop.loop.is_closed():
            return
        for partition, data in objects.items():
            self._loop.loop.call_soon_threadsafe(self._enqueue, partition, data)

    # -- writing (on the loop) -------------------------------------------------------------

    async def wait_idle(self) -> None:
        await asyncio.sleep(0)
        await self._idle.wait()

    async def close(self) -> None:
        """After the last ``wait_idle``: end the writer task."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _enqueue(self, partition: int, data: bytes) -> None:
        assert self._queue is not None
        self._idle.clear()
        self._queue.put_nowait((partition, data))

    async def _writer(self) -> None:
        assert self._queue is not None
        while True:
            partition, data = await self._queue.get()
            if self._holds(partition):
                started = time.monotonic()
                try:
                    await self.store.put(object_name(partition), data)
                except Exception as exc:  # keep the last good one; the next round retries
                    log.error("cannot store checkpoint of partition %d: %s: %s", partition,
                              type(exc).__name__, exc)
                else:
                    self.written += 1
                    self.last_seconds = time.monotonic() - started
                    self.last_bytes = len(data)
            if self._queue.empty():
                self._idle.set()
