"""Per-partition engine checkpoints in a JetStream object store every instance can read.

A partition's checkpoint is the snapshot of its engine (``Engine.snapshot``), stored as
object ``partition-<n>`` (the object store chunks it, so size is no limit). The worker
calls ``save`` with every owned partition's snapshot; the writes happen on the NATS loop,
one after the other in the order handed over (a later snapshot is never overwritten by an
earlier one), and only for partitions this instance still holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.object_store import ObjectStore

from detector.distributed.loop import LoopThread

log = logging.getLogger(__name__)


def object_name(partition: int) -> str:
    """The object holding a partition's checkpoint.

    >>> object_name(3)
    'partition-3'
    """
    return f"partition-{partition}"


class PartitionCheckpoints:
    """Loads and stores partition snapshots; ``save`` returns at once."""

    def __init__(self, store: ObjectStore, bucket: str, loop: LoopThread,
                 holds: Callable[[int], bool]) -> None:
        self.store = store
        self.path = f"nats object store {bucket}"  # named in the worker's error messages
        self._loop = loop
        self._holds = holds
        self._queue: asyncio.Queue[tuple[int, bytes] | None] | None = None
        self._idle = asyncio.Event()
        self.written = 0
        self.last_seconds = 0.0  # time of the last object write
        self.last_bytes = 0
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, js: JetStreamContext, bucket: str, loop: LoopThread,
                   holds: Callable[[int], bool]) -> PartitionCheckpoints:
        try:
            store = await js.object_store(bucket)
        except nats.js.errors.BucketNotFoundError:
            store = await js.create_object_store(bucket)
        checkpoints = cls(store, bucket, loop, holds)
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

    def save(self, snapshots: dict[int, bytes]) -> None:
        """From the worker thread: queue every snapshot for writing."""
        if self._loop.loop.is_closed():
            return
        for partition, data in snapshots.items():
            self._loop.loop.call_soon_threadsafe(self._enqueue, partition, data)

    async def put(self, partition: int, data: bytes) -> None:
        """From the loop: queue one snapshot and wait until it (and all before) is stored."""
        self._enqueue(partition, data)
        await self.wait_idle()

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
                except Exception as exc:  # keep the last good one; the next save retries
                    log.error("cannot store checkpoint of partition %d: %s: %s", partition,
                              type(exc).__name__, exc)
                else:
                    self.written += 1
                    self.last_seconds = time.monotonic() - started
                    self.last_bytes = len(data)
            if self._queue.empty():
                self._idle.set()
