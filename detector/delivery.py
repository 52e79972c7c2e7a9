"""The write stage: batches to the sink, or to the spool when the sink cannot take them.

One thread runs ``Delivery.run``. For each batch, in order:

- spool empty and sink healthy: write it; stored -> durable.
- otherwise, or when that write fails with a retryable error: append it to the spool
  (fsync'd) -> durable. New batches keep going to the spool while it holds anything, so
  points reach the database in the order they were produced.
- spool full: hold the batch and take no more; the processing stage then blocks, its
  queue fills, and the broker stops getting acks: back-pressure instead of dropping.

Durable batches go to the ``Acker``. The spool is replayed oldest first whenever the
backoff allows (capped exponential, or the server's Retry-After). A batch the database
refuses as data (HTTP 4xx) is split in halves until the offending lines are found; those
are dead-lettered with the server's message and the rest are stored.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from detector.acks import Acker, Batch
from detector.metrics import Metrics
from detector.sink import RejectedWriteError, RetryableWriteError, Writer
from detector.spool import Spool
from iotwatch.liveness import Heartbeat
from iotwatch.retry import Backoff

log = logging.getLogger(__name__)

BATCH_QUEUE = 4
REPLAY_SLICE_S = 0.5  # replay at most this long before looking at new batches again

DeadLetterLine = Callable[[str, str], object]  # (line, server message) -> publish info


@dataclass(frozen=True, slots=True)
class SpoolState:
    points: int = 0
    batches: int = 0
    bytes: int = 0
    oldest_created: float | None = None


class Delivery:
    """Writes batches, spools what cannot be written, replays the spool, releases acks."""

    def __init__(self, writer: Writer, spool: Spool, acker: Acker, metrics: Metrics,
                 dead_letter_line: DeadLetterLine, backoff: Backoff | None = None,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.writer = writer
        self.spool = spool
        self.acker = acker
        self.metrics = metrics
        self._dead_letter_line = dead_letter_line
        self._backoff = backoff or Backoff(initial_s=0.5, max_s=30.0)
        self._clock = clock
        self._monotonic = monotonic
        self._queue: queue.Queue[Batch] = queue.Queue(maxsize=BATCH_QUEUE)
        self._held: Batch | None = None
        self._retry_at = 0.0
        self._stop = threading.Event()
        self._stop_by = float("inf")
        self._full_logged = False
        # Read by other threads (health, metrics): replaced whole, never mutated.
        self.writable: bool | None = None  # None until the first write
        self.last_error = ""
        self.spool_state = SpoolState()
        self._update_spool_state()
        self.heartbeat = Heartbeat(monotonic)  # for /health/live

    # -- used by other threads ---------------------------------------------------------------

    def submit(self, batch: Batch) -> None:
        """Hand over a batch; blocks while the write stage is saturated (back-pressure)."""
        self._queue.put(batch)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish: store or spool every batch handed over, then return from ``run``.

        Batches that still cannot be stored after ``timeout_s`` (sink down and spool full)
        are left unacknowledged: the broker sends their messages again after a restart.
        """
        self._stop_by = self._monotonic() + timeout_s
        self._stop.set()

    def has_room(self) -> bool:
        """Whether ``submit`` would return at once (the processing stage keeps its batch
        growing otherwise)."""
        return not self._queue.full()

    @property
    def backlog(self) -> int:
        return self._queue.qsize() + (self._held is not None)

    # -- the thread --------------------------------------------------------------------------

    def run(self) -> None:
        while True:
            self.heartbeat.beat()
            batch = self._next_batch()
            if batch is not None:
                self._deliver(batch)
            self._replay()
            self.acker.release()
            if self._stop.is_set():
                if self._queue.empty() and self._held is None:
                    break
                if self._monotonic() > self._stop_by:
                    log.warning("stopping with %d batches not stored: their messages stay "
                                "unacknowledged and the broker will send them again",
                                self.backlog)
                    break

    def drain_acks(self, timeout_s: float) -> None:
        """After ``run`` returned: wait (bounded) for pending publishes and send their acks."""
        deadline = self._monotonic() + timeout_s
        while len(self.acker) and self._monotonic() < deadline:
            self.acker.release()
            time.sleep(0.01)

    def _next_batch(self) -> Batch | None:
        if self._held is not None:
            batch, self._held = self._held, None
            if not self.spool.has_room(_size(batch)):
                self._held = batch
                self._sleep_until_retry()
                return None
            return batch
        wait = 0.01 if len(self.acker) or self.spool else 0.2
        try:
            return self._queue.get(timeout=wait)
        except queue.Empty:
            return None

    def _deliver(self, batch: Batch) -> None:
        if batch.lines:
            healthy = not self.spool and self._monotonic() >= self._retry_at
            if healthy and self._write_now(batch):
                self.acker.add(batch)
                return
            body = batch.body()
            if not self.spool.append(body, len(batch.lines), batch.created or self._clock(),
                                     self.writer.precision):
                if not self._full_logged:
                    log.warning("spool full (%d bytes, %d points): holding input until %s "
                                "takes points again", self.spool.bytes, self.spool.points,
                                self.writer.description)
                    self._full_logged = True
                self._held = batch
                return
            self._full_logged = False
            self.metrics.points_spooled.inc(len(batch.lines))
            self._update_spool_state()
        self.acker.add(batch)

    def _write_now(self, batch: Batch) -> bool:
        """Write a live batch; True when stored (bad lines dead-lettered), False to spool it."""
        try:
            published = self._write_lines(batch.lines)
        except RetryableWriteError as exc:
            self._failed(exc)
            return False
        batch.publishes.extend(published)
        return True

    def _replay(self) -> None:
        started = self._monotonic()
        while self.spool and self._monotonic() >= self._retry_at:
            record = self.spool.head()
            if record is None:
                break
            lines = record.body.decode().split("\n")
            try:
                self._write_lines(lines, record.precision)
            except RetryableWriteError as exc:
                self._failed(exc)
                break
            self.spool.pop()
            self.metrics.points_replayed.inc(record.points)
            self._update_spool_state()
            if not self.spool:
                log.info("spool replayed: %s takes points again", self.writer.description)
            if self._monotonic() - started > REPLAY_SLICE_S and not self._queue.empty():
                break

    def _write_lines(self, lines: list[str], precision: str | None = None) -> list[object]:
        """Store ``lines``; dead-letter those the database refuses. Returns their publishes.

        ``precision``: of their timestamps, when not the writer's (a spooled batch).
        """
        started = self._monotonic()
        try:
            self.writer.write("\n".join(lines).encode(), precision)
        except RejectedWriteError as exc:
            self.metrics.write_errors.labels("rejected").inc()
            self._succeeded()
            return self._split(lines, exc, precision)
        finally:
            self.metrics.write_latency.observe(self._monotonic() - started)
        self._succeeded()
        self.metrics.count_written(len(lines))
        return []

    def _split(self, lines: list[str], exc: RejectedWriteError,
               precision: str | None) -> list[object]:
        if len(lines) == 1:
            log.warning("dead-lettering a point %s refused: %s", self.writer.description, exc)
            info = self._dead_letter_line(lines[0], str(exc))
            return [] if info is None else [info]
        middle = len(lines) // 2
        return (self._write_lines(lines[:middle], precision)
                + self._write_lines(lines[middle:], precision))

    def _succeeded(self) -> None:
        if self.writable is not True:
            log.info("%s is writable", self.writer.description)
        self.writable = True
        self.last_error = ""
        self._backoff.reset()

    def _failed(self, exc: RetryableWriteError) -> None:
        kind = "http_" + str(exc.status) if exc.status else "unreachable"
        self.metrics.write_errors.labels(kind).inc()
        delay = exc.retry_after if exc.retry_after is not None else self._backoff.next_delay()
        delay = min(delay, 300.0)
        if self.writable is not False or self.last_error != str(exc):
            log.warning("%s; points go to the spool, retrying in %.1f s", exc, delay)
        self.writable = False
        self.last_error = str(exc)
        self._retry_at = self._monotonic() + delay

    def _sleep_until_retry(self) -> None:
        # Nothing can move until the sink answers; don't spin.
        remaining = self._retry_at - self._monotonic()
        if remaining > 0:
            self._stop.wait(min(remaining, 0.2))

    def _update_spool_state(self) -> None:
        spool = self.spool
        self.spool_state = SpoolState(spool.points, spool.batches, spool.bytes,
                                      spool.oldest_created)


def _size(batch: Batch) -> int:
    return sum(len(line) + 1 for line in batch.lines)

