"""The processing stage: messages off the intake, through the handler, into batches.

One thread runs ``Worker.run``. It takes what the intake holds (up to ``input.ack_batch``
messages at a time) and per message parses, scores, learns, decides (``handler``),
publishes its alerts or dead letter, and adds its points and ack token to the open batch.
Anything unexpected raised while handling one message dead-letters that message as
``internal_error`` (with the exception's text), which is counted and acknowledged like
any rejection: no message, however often redelivered, can stop the service.
The batch goes to the write stage when it holds ``influxdb.batch_size`` points or
``input.ack_batch`` messages, is ``influxdb.flush_interval_s`` old, or no message came
for ``input.idle_flush_s`` (so a small broker in-flight window never stalls); while the
write stage is busy a due batch keeps growing instead of waiting (up to
``influxdb.batch_size`` points), so under load writes get fewer and larger. The
service's own counters are added as a point every ``output.stats_interval_s``; the engine
is checkpointed every ``checkpoint.interval_s`` and soon after any alert transition: the
streams changed since the last checkpoint, a few at a time between batches (at most
``CHECKPOINT_SLICE_S`` each), compressed and written by the checkpoint thread
(``detector.checkpoint``), so no pause grows with the number of streams.

Python's cyclic garbage collector would: a full collection walks every object the process
holds (about 50 per stream: ~0.5-0.85 s at 10,000 streams), on whichever thread happens
to allocate. So every ``output.stats_interval_s`` the worker moves the objects alive then
out of the collector's sight (``gc.freeze``): later collections walk only what was made
since. Streams' objects hold no reference cycles, so reference counting still frees them
when a stream goes; only a cycle alive at a freeze that dies later is never reclaimed.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as paho

from detector.acks import Batch
from detector.checkpoint import CheckpointFile, CheckpointWriter, RecordStore
from detector.consumer import Intake, Received
from detector.delivery import Delivery
from detector.emit import Emitter
from detector.handler import Handled, MessageHandler
from detector.lineprotocol import counters_line
from detector.metrics import Metrics
from detector.sidestate import WithSideStates
from iotwatch.contracts import Reason, Rejected
from iotwatch.liveness import Heartbeat

log = logging.getLogger(__name__)

SERVICE_MEASUREMENT = "iotwatch_service"
WAITING_POLL_S = 0.005  # how often a due batch looks for room in the write stage
CHECKPOINT_SLICE_S = 0.005  # checkpoint work between two batches (a stream: ~0.06 ms of CPU;
# the slice's wall time is longer on a busy machine, where the thread waits for a core)
MAX_CHECKPOINT_BACKLOG = 4 << 20  # encoded state waiting for the disk (a few slices: a
# larger backlog is memory the process keeps once it peaked, ~5 KB per stream of a round)
STOP_CHECKPOINT_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class Cadence:
    """How often the worker flushes, reports and checkpoints."""

    batch_points: int = 5000
    batch_messages: int = 200
    flush_interval_s: float = 1.0
    idle_flush_s: float = 0.05
    stats_interval_s: float = 10.0
    checkpoint_interval_s: float = 60.0
    checkpoint_after_alert_s: float = 5.0


class Worker:
    """Runs the processing loop on its own thread until ``stop``."""

    def __init__(self, intake: Intake, handler: MessageHandler,
                 emitter: Emitter, delivery: Delivery, checkpoints: CheckpointFile | WithSideStates,
                 metrics: Metrics, cadence: Cadence, *,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.intake = intake
        self.handler = handler
        self.emitter = emitter
        self.delivery = delivery
        self.checkpoints = checkpoints
        self.metrics = metrics
        self.cadence = cadence
        self._clock = clock
        self._monotonic = monotonic
        self._stop = threading.Event()
        self._batch = self._new_batch()
        self._flush_waiting = False
        now = monotonic()
        self._next_stats = now  # report at once: the first write shows the sink works
        self._next_checkpoint = now + cadence.checkpoint_interval_s
        self.last_checkpoint: float | None = None  # wall clock
        self.longest_pause: dict[str, float] = {}  # kind -> seconds, see Metrics.longest_pause
        self._next_error_log = 0.0
        self._engine_errors = 0
        self._internal_errors = 0
        self._next_internal_log = 0.0
        self.heartbeat = Heartbeat(monotonic)  # for /health/live
        # Checkpoint rounds: the streams still to write, those written this round, and
        # those the file holds.
        # Forecast and summary states (detector.sidestate) are saved after each round.
        self._sides = checkpoints if isinstance(checkpoints, WithSideStates) else None
        store = self._sides.engine if self._sides is not None else checkpoints
        # A store that takes no records (only whole snapshots) gets those.
        self._whole = not isinstance(store, RecordStore)
        self.checkpoint_writer = CheckpointWriter(store) if not self._whole else None
        self._round: deque[str] = deque()
        self._round_keys: set[str] = set()
        self._round_started: float | None = None
        self._round_held = False
        self._unsaved_count = 0
        self._next_unsaved_log = 0.0
        self._recorded: set[str] = set() if self._whole else store.keys()

    def stop(self) -> None:
        self._stop.set()

    @property
    def open_batch(self) -> Batch:
        """The batch being filled (not yet handed to the write stage)."""
        return self._batch

    def run(self) -> None:
        cadence = self.cadence
        while not self._stop.is_set():
            self.heartbeat.beat()
            batch = self._batch
            if self._round and not self._round_held:
                wait = 0.0  # a checkpoint round runs: its slices go between batches
            elif self._flush_waiting or self._round:
                wait = WAITING_POLL_S  # the write stage (or the checkpoint thread) is busy
            else:
                wait = cadence.idle_flush_s if batch.lines or batch.tokens else 0.2
            items = self.intake.take(cadence.batch_messages, wait)
            if items:
                self.process(items)
            now = self._monotonic()
            if self._due_to_flush(now, idle=not items):
                self._flush()
                self._note_pause("write_stage", now)
            if now >= self._next_stats:
                self._add_stats()
                self._next_stats = now + cadence.stats_interval_s
                gc.freeze()  # long-lived state out of the collector's walks (module docstring)
            if self._round:
                started = self._monotonic()
                self._checkpoint_slice(CHECKPOINT_SLICE_S)
                self._note_pause("checkpoint", started)
            elif now >= self._next_checkpoint:
                self._start_round(now)
        # Stopping: everything processed goes to the write stage, then the final checkpoint.
        self._add_stats()
        self._flush()
        self._final_checkpoint()

    # -- per batch of messages ----------------------------------------------------------------

    def process(self, items: list[Received]) -> None:
        """Parse, score, learn and decide ``items`` in order into the open batch.

        The same lines, alerts and dead letters as one message at a time; the engine lock
        is taken once and the Prometheus counters are advanced once per call.
        """
        batch = self._batch
        handler, emitter = self.handler, self.emitter
        done = Handled(lines=batch.lines)
        lines, alerts = done.lines, done.alerts
        tokens, publishes = batch.tokens, batch.publishes
        published_alerts = 0
        rejected: dict[str, int] = {}
        with handler.lock:
            for generation, message, received_at in items:
                marks = len(lines), len(alerts), len(done.engine_errors), done.readings
                try:
                    payload = message.payload
                    try:
                        topic = message.topic
                    except UnicodeDecodeError:
                        topic = _raw_topic(message)
                        why = Rejected(Reason.BAD_TOPIC, "topic is not valid UTF-8")
                    else:
                        why = handler.handle_into(done, topic, payload, received_at)
                    if why is not None:
                        reason = why.reason.value
                        rejected[reason] = rejected.get(reason, 0) + 1
                        info = emitter.dead_letter(topic, payload, reason, why.detail,
                                                   received_at)
                        if info is not None:
                            publishes.append(info)
                    elif len(alerts) > published_alerts:
                        for alert in alerts[published_alerts:]:
                            publishes.extend(emitter.alert(alert))
                        published_alerts = len(alerts)
                except Exception as exc:  # a bug on one message: dead-letter it, never a crash loop
                    # Nothing of what it half produced is kept (as if handled on its own).
                    del lines[marks[0]:], alerts[marks[1]:], done.engine_errors[marks[2]:]
                    done.readings = marks[3]
                    published_alerts = min(published_alerts, len(alerts))
                    self._internal_error(message, received_at, exc)
                # Acknowledged with its batch whatever happened: redelivering it would fail again.
                if message.qos:
                    tokens.append((generation, message.mid, message.qos, received_at))
        batch.messages += len(items)
        self._count(done, rejected, items)

    def _count(self, done: Handled, rejected: dict[str, int], items: list[Received]) -> None:
        metrics = self.metrics
        if done.readings:
            metrics.count_readings(done.readings)
        for reason, n in rejected.items():
            metrics.count_rejected(reason, n)
        if done.alerts:
            for alert in done.alerts:
                metrics.count_alert(alert.state)
            self._next_checkpoint = min(self._next_checkpoint, self._monotonic()
                                        + self.cadence.checkpoint_after_alert_s)
        for error in done.engine_errors:
            self._engine_error(error)
        if done.reading_ts is not None:
            metrics.reading_age.set(items[-1][2] - done.reading_ts)
        # Once per batch, for its oldest message: the worst wait, at a fraction of the cost.
        metrics.processing_lag.observe(max(0.0, self._clock() - items[0][2]))

    def _dead_letter(self, topic: str, payload: bytes, reason: Reason, detail: str,
                     received_at: float) -> None:
        self.metrics.count_rejected(reason.value)
        info = self.emitter.dead_letter(topic, payload, reason.value, detail, received_at)
        if info is not None:
            self._batch.publishes.append(info)

    def _internal_error(self, message: paho.MQTTMessage, received_at: float,
                        exc: Exception) -> None:
        detail = f"{type(exc).__name__}: {exc}"[:1000]
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = _raw_topic(message)
        self._internal_errors += 1
        now = self._monotonic()
        if now >= self._next_internal_log:  # a traceback a minute: the same bug may repeat
            self._next_internal_log = now + 60.0
            log.exception("handling a message on %s failed; dead-lettered as %s (%d so far)",
                          topic[:200], Reason.INTERNAL_ERROR.value, self._internal_errors)
        try:
            self._dead_letter(topic, bytes(message.payload), Reason.INTERNAL_ERROR, detail,
                              received_at)
        except Exception:  # the dead letter too: counted and logged, the message still acked
            log.exception("cannot dead-letter the message from %s", topic[:200])

    def _engine_error(self, error: str) -> None:
        self.metrics.engine_errors.inc()
        self._engine_errors += 1
        now = self._monotonic()
        if now >= self._next_error_log:  # at most one line a minute: it may repeat per reading
            log.error("engine failed on a reading (stored without scores; %d so far): %s",
                      self._engine_errors, error)
            self._next_error_log = now + 60.0

    # -- batches, stats, checkpoints ----------------------------------------------------------

    def _due_to_flush(self, now: float, idle: bool) -> bool:
        batch = self._batch
        if not (batch.lines or batch.tokens or batch.publishes):
            self._flush_waiting = False
            return False
        cadence = self.cadence
        if len(batch.lines) >= cadence.batch_points:
            return True  # full: wait for the write stage (back-pressure)
        due = (idle or batch.messages >= cadence.batch_messages
               or now - batch.started >= cadence.flush_interval_s)
        # While the write stage is busy, keep adding to the open batch rather than wait:
        # under load batches grow (fewer, larger writes); when idle they go at once.
        self._flush_waiting = due and not self.delivery.has_room()
        return due and not self._flush_waiting

    def _flush(self) -> None:
        batch = self._batch
        self._flush_waiting = False
        if not (batch.lines or batch.tokens or batch.publishes):
            return
        self._batch = self._new_batch()
        self._flush_waiting = False
        self.metrics.messages.inc(batch.messages)
        with self.heartbeat.waiting():  # back-pressure: the write stage answers for us
            self.delivery.submit(batch)

    def _new_batch(self) -> Batch:
        return Batch(created=self._clock(), started=self._monotonic())

    def _add_stats(self) -> None:
        self._batch.lines.append(counters_line(SERVICE_MEASUREMENT, {"service": "detector"},
                                               self.metrics.totals(), self._clock(),
                                               self.handler.precision))

    def _note_pause(self, kind: str, started: float) -> None:
        """Keep the longest time readings waited for something other than processing."""
        pause = self._monotonic() - started
        if pause > self.longest_pause.get(kind, 0.0):
            self.longest_pause[kind] = pause
            self.metrics.longest_pause.labels(kind).set(pause)

    def _start_round(self, now: float) -> None:
        """Begin a checkpoint: every stream changed since the last one, plus the removal
        of streams the engine no longer has. Written in slices between batches."""
        self._next_checkpoint = now + self.cadence.checkpoint_interval_s
        if self._whole:
            self._whole_checkpoint()
            return
        with self.handler.lock:
            keys = self.handler.take_dirty()
            gone = self._recorded.difference(self.handler.stream_keys())
        self._round.extend(keys)
        self._round.extend(gone)
        self._round_started = now
        if not self._round:
            self._round_done()

    def _checkpoint_slice(self, budget_s: float | None) -> None:
        """Encode streams of the running round for up to ``budget_s`` (None: all of them)
        and hand them to the checkpoint thread."""
        writer = self.checkpoint_writer
        self._round_held = budget_s is not None and writer.backlog_bytes > MAX_CHECKPOINT_BACKLOG
        if self._round_held:
            return  # the disk is behind: hold on rather than pile state up in memory
        monotonic = self._monotonic
        deadline = monotonic() + (budget_s or 0.0)
        round_, recorded, state_of = self._round, self._recorded, self.handler.stream_state_bytes
        out: list[tuple[str, bytes | None]] = []
        with self.handler.lock:
            while round_:
                key = round_.popleft()
                try:
                    body = state_of(key)
                except Exception as exc:  # keep running on its last good record
                    self._unsaved(key, exc)
                    continue
                out.append((key, body))
                if body is None:
                    recorded.discard(key)
                else:
                    recorded.add(key)
                if budget_s is not None and monotonic() >= deadline:
                    break
        self._round_keys.update(key for key, _body in out)
        writer.submit(out)
        if not round_:
            self._round_done()

    def _unsaved(self, key: str, exc: Exception) -> None:
        self._unsaved_count += 1
        now = self._monotonic()
        if now >= self._next_unsaved_log:  # at most a line a minute: it may repeat per stream
            self._next_unsaved_log = now + 60.0
            log.error("cannot checkpoint stream %s (%d so far; its last record stays): %s: %s",
                      key, self._unsaved_count, type(exc).__name__, exc)

    def _round_done(self) -> None:
        # Once the round is on disk, evicted copies of the streams it holds can go.
        keys, self._round_keys = self._round_keys, set()
        # Taken here, on the only thread that changes them; written with the round.
        sides = [] if self._sides is None else [
            (file, part.snapshot()) for part, file in self._sides.parts.values()]

        def on_disk() -> None:  # on the checkpoint thread, once the round is written
            for file, data in sides:
                file.save(data)
            self.handler.checkpointed(keys)
            self.metrics.checkpoints.inc()
            self.last_checkpoint = self._clock()

        self.checkpoint_writer.then(on_disk)
        if self._round_started is not None:
            log.debug("checkpoint round took %.3f s", self._monotonic() - self._round_started)
        self._round_started = None

    def _whole_checkpoint(self) -> None:
        started = self._monotonic()
        try:
            self.checkpoints.save(self.handler.snapshot())
        except Exception as exc:  # keep running on the last good checkpoint
            log.error("cannot write checkpoint %s: %s: %s", self.checkpoints.path,
                      type(exc).__name__, exc)
        else:
            self.handler.checkpointed()
            self.metrics.checkpoints.inc()
            self.last_checkpoint = self._clock()
            log.debug("checkpoint written in %.3f s", self._monotonic() - started)

    def _final_checkpoint(self) -> None:
        """At a graceful stop: every changed stream, then wait until it is on disk."""
        started = self._monotonic()
        if self._whole:
            self._whole_checkpoint()
            return
        if not self._round:
            self._start_round(started)
        else:
            with self.handler.lock:
                self._round.extend(self.handler.take_dirty())
        if self._round:
            self._checkpoint_slice(None)
        if not self.checkpoint_writer.close(STOP_CHECKPOINT_TIMEOUT_S):
            log.error("checkpoint %s not written within %.0f s", self.checkpoints.path,
                      STOP_CHECKPOINT_TIMEOUT_S)
        log.info("final checkpoint written in %.2f s", self._monotonic() - started)


def _raw_topic(message: paho.MQTTMessage) -> str:
    return repr(message._topic)[2:-1]  # noqa: SLF001 - paho has no raw accessor
