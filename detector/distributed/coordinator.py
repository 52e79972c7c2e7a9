"""Who owns which partition, acted on: take, renew, give up.

Every heartbeat (a third of the lease TTL) the coordinator writes its member key and
renews its leases; every tick (a second, or the heartbeat if shorter) it works out from the live members which partitions it
should own (rendezvous hashing, ``partitions.assignment``) and then

- gives up those it should no longer own (an instance joined): stop fetching, wait until
  what was fetched is stored and acknowledged, store the partition's final checkpoint,
  forget its engine, delete the lease;
- takes those it should own and nobody holds (an instance left, or died and its lease
  expired): create the lease, restore the partition's checkpoint into a new engine,
  consume from the partition's acknowledged floor; then close every retained firing
  alert of those partitions that the restored engines do not hold as open (it fired
  after the previous owner's last checkpoint: ``detector.reconcile``).

A lease it failed to renew (this process stalled past the TTL) is dropped without a
checkpoint: another instance may own the partition now.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from detector.distributed.checkpoints_kv import PartitionCheckpoints, records_of
from detector.distributed.intake_nats import NatsIntake
from detector.distributed.leases import Leases
from detector.distributed.partitions import assignment
from detector.distributed.state import PartitionedHandler
from detector.engine import Engine

log = logging.getLogger(__name__)

TICK_S = 1.0

Restore = Callable[[int, bytes | None], Engine]
Reconcile = Callable[[list[int]], None]


class Coordinator:
    """The ownership loop of one instance (runs on the NATS loop)."""

    def __init__(self, leases: Leases, intake: NatsIntake, state: PartitionedHandler,
                 checkpoints: PartitionCheckpoints, restore: Restore, partitions: int,
                 lease_ttl_s: float, release_timeout_s: float,
                 reconcile: Reconcile | None = None) -> None:
        self.leases = leases
        self.intake = intake
        self.state = state
        self.checkpoints = checkpoints
        self.restore = restore
        self.partitions = partitions
        self.interval_s = lease_ttl_s / 3
        self.tick_s = min(self.interval_s, TICK_S)
        self.release_timeout_s = release_timeout_s
        self.reconcile = reconcile
        self.owned: set[int] = set()
        self._busy: set[int] = set()  # being taken or given up
        self.members: list[str] = []
        self.lag: dict[int, tuple[int, int]] = {}
        self.taken = 0
        self.released = 0
        self.lost = 0
        self._stop = asyncio.Event()

    @property
    def instance(self) -> str:
        return self.leases.instance

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        heartbeat = asyncio.get_running_loop().create_task(self._heartbeats())
        try:
            # One heartbeat interval first, so instances starting together see each other
            # before they take partitions.
            await self._sleep(self.interval_s)
            while not self._stop.is_set():
                try:
                    await self.tick()
                except Exception:
                    log.exception("ownership tick failed; trying again")
                await self._sleep(self.tick_s)
        finally:
            heartbeat.cancel()

    async def _heartbeats(self) -> None:
        while not self._stop.is_set():
            try:
                # All at once: one slow round trip must not make the others miss the TTL.
                held = sorted(self.owned - self._busy)
                results = await asyncio.gather(self.leases.heartbeat(),
                                               *(self.leases.renew(p) for p in held))
                for partition, renewed in zip(held, results[1:], strict=True):
                    if not renewed and partition in self.owned and partition not in self._busy:
                        log.warning("partition %d: lease lost (not renewed within the TTL); "
                                    "dropping it without a checkpoint", partition)
                        await self._drop(partition)
            except Exception:
                log.exception("heartbeat failed")
            await self._sleep(self.interval_s)

    async def tick(self) -> None:
        members = await self.leases.members()
        if self.instance not in members:
            members = sorted({*members, self.instance})
        self.members = members
        mine = {p for p, who in assignment(members, self.partitions).items()
                if who == self.instance}
        for partition in sorted(self.owned - mine):
            await self._release(partition)
        taken = []
        for partition in sorted(mine - self.owned):
            if self._stop.is_set():
                break
            if await self.leases.acquire(partition):
                await self._take(partition)
                taken.append(partition)
        if taken and self.reconcile is not None:
            # Alerts the previous owner fired after its last checkpoint: close them.
            try:
                await asyncio.get_running_loop().run_in_executor(None, self.reconcile, taken)
            except Exception as exc:
                log.error("cannot check the retained alert states of partitions %s: %s",
                          taken, exc)
        for partition in sorted(self.owned):
            lag = await self.intake.lag(partition)
            if lag is not None:
                self.lag[partition] = lag

    async def _take(self, partition: int) -> None:
        self._busy.add(partition)
        try:
            started = time.monotonic()
            data = await self.checkpoints.load(partition)
            engine = await asyncio.get_running_loop().run_in_executor(
                None, self.restore, partition, data)
            records = await asyncio.get_running_loop().run_in_executor(
                None, records_of, data, engine)
            self.checkpoints.adopt(partition, records)  # before the worker can add to it
            self.state.add(partition, engine)
            self.owned.add(partition)
            first = await self.intake.start(partition)
            self.taken += 1
            log.info("partition %d taken: %d streams restored (%d bytes of checkpoint), "
                     "consuming from stream sequence %d, in %.2f s", partition, len(engine),
                     len(data or b""), first, time.monotonic() - started)
        finally:
            self._busy.discard(partition)

    async def _release(self, partition: int) -> None:
        self._busy.add(partition)
        try:
            await self.intake.stop_fetching(partition)
            if not await self.intake.drained(partition, self.release_timeout_s):
                log.warning("partition %d: %d messages not acknowledged within %g s; the next "
                            "owner gets them again", partition,
                            self.intake.pending.get(partition, 0), self.release_timeout_s)
            # Every stream encoded afresh, off the worker (which goes on with the others).
            records = await asyncio.get_running_loop().run_in_executor(
                None, self.state.partition_records, partition)
            size = await self.checkpoints.replace(partition, records)
            self.state.remove(partition)
            self.checkpoints.forget(partition)
            self.intake.forget(partition)
            self.owned.discard(partition)
            self.lag.pop(partition, None)
            await self.leases.release(partition)
            self.released += 1
            log.info("partition %d given up after its final checkpoint (%d streams, %d bytes)",
                     partition, len(records), size)
        finally:
            self._busy.discard(partition)

    async def _drop(self, partition: int) -> None:
        await self.intake.stop_fetching(partition)
        self.state.remove(partition)
        self.checkpoints.forget(partition)
        self.intake.forget(partition)
        self.owned.discard(partition)
        self.lag.pop(partition, None)
        self.lost += 1

    async def shutdown(self) -> None:
        """After the worker's final checkpoint was handed over: store it, free the leases."""
        await self.checkpoints.wait_idle()
        for partition in sorted(self.owned):
            await self.intake.stop_fetching(partition)
        for partition in sorted(self.owned):
            await self.leases.release(partition)
        self.owned.clear()
        await self.leases.leave()
        await self.checkpoints.close()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
