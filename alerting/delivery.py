"""The delivery stage: one worker per target takes notifications from the outbox and retries.

Retries live here and only here: a notifier says whether an error is retryable, and
``RetryPolicy`` (pure, capped exponential backoff with jitter from ``iotwatch.retry``,
Retry-After honoured, a deadline) says when to try again or that it is time to give up.
Each target has its own thread, so a receiver that is down delays only itself. After a
retryable failure the worker pauses the whole target until the retry time (a receiver
that is down is not hammered with every queued notification), then resumes oldest first.

>>> from alerting.config import RetrySettings
>>> from alerting.receivers.base import NotifyError
>>> policy = RetryPolicy(RetrySettings(initial_s=1, max_s=60, jitter=0, give_up_after_s=600))
>>> policy.after_failure(NotifyError("http_503", "busy", retryable=True), attempts=3,
...                      created_at=0.0, now=100.0)
Step(action='retry', at=108.0, reason='http_503')
>>> policy.after_failure(NotifyError("http_429", "slow down", retryable=True, retry_after_s=30),
...                      attempts=0, created_at=0.0, now=100.0)
Step(action='retry', at=130.0, reason='http_429')
>>> policy.after_failure(NotifyError("http_400", "bad", retryable=False), 0, 0.0, 100.0)
Step(action='failed', at=None, reason='http_400')
>>> policy.after_failure(NotifyError("network", "refused", retryable=True), 9, 0.0, 590.0)
Step(action='failed', at=None, reason='expired')
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from alerting.config import RetrySettings
from alerting.metrics import Metrics
from alerting.outbox import Outbox, OutboxItem
from alerting.receivers import TargetSpec
from alerting.receivers.base import NotifyError
from iotwatch.retry import Backoff

log = logging.getLogger(__name__)

IDLE_POLL_S = 5.0  # re-check the outbox at least this often (rows added by hand, clock jumps)


@dataclass(frozen=True)
class Step:
    action: Literal["retry", "failed"]
    at: float | None
    reason: str


class RetryPolicy:
    """When to try a failed delivery again, or that it has failed for good."""

    def __init__(self, settings: RetrySettings, rng: random.Random | None = None) -> None:
        self.backoff = Backoff(settings.initial_s, settings.max_s, settings.multiplier,
                               settings.jitter, rng)
        self.give_up_after_s = settings.give_up_after_s

    def after_failure(self, error: NotifyError, attempts: int, created_at: float,
                      now: float) -> Step:
        """``attempts``: failed attempts before this one; ``created_at``: when queued."""
        if not error.retryable:
            return Step("failed", None, error.reason)
        delay = self.backoff.delay_for(attempts)
        if error.retry_after_s is not None:
            delay = max(delay, error.retry_after_s)
        at = now + delay
        if at > created_at + self.give_up_after_s:
            return Step("failed", None, "expired")
        return Step("retry", at, error.reason)


class DeliveryWorker:
    """Delivers one target's notifications, in order, on its own thread."""

    def __init__(self, spec: TargetSpec, outbox: Outbox, policy: RetryPolicy, metrics: Metrics,
                 clock: Callable[[], float] = time.time) -> None:
        self.spec = spec
        self.target = spec.target
        self.outbox = outbox
        self.policy = policy
        self.metrics = metrics
        self.clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._paused_until = 0.0
        self._thread = threading.Thread(target=self._run, name=f"deliver-{self.target.name}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def thread(self) -> threading.Thread:
        """For ``/health/live``."""
        return self._thread

    def wake(self) -> None:
        """Something new is in the outbox for this target."""
        self._wake.set()

    def stop(self, timeout: float) -> None:
        """Finish the attempt in progress (bounded by the notifier's timeout) and stop."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        labels = (self.target.receiver, self.target.integration)
        while not self._stop.is_set():
            now = self.clock()
            if now < self._paused_until:
                self._stop.wait(self._paused_until - now)
                continue
            self._wake.clear()
            try:
                items = self.outbox.due(self.target, now)
                if items:
                    self.deliver(items[0])
                    continue
                next_at = self.outbox.next_attempt_at(self.target)
            except Exception:  # a database error must not end deliveries for good
                log.exception("delivery to %s: outbox error; trying again shortly",
                              self.target.name)
                self.metrics.attempts_failed.labels(*labels, "internal").inc()
                self._stop.wait(IDLE_POLL_S)
                continue
            wait = IDLE_POLL_S if next_at is None else min(IDLE_POLL_S, max(0.0, next_at - now))
            self._wake.wait(wait)

    def deliver(self, item: OutboxItem) -> None:
        """One attempt at one notification, and its bookkeeping."""
        labels = (self.target.receiver, self.target.integration)
        note = item.notification
        try:
            self.spec.notifier.send(note)
        except NotifyError as exc:
            error = exc
        except Exception as exc:  # a notifier bug: keep the notification, retry later
            log.exception("delivery to %s: unexpected error", self.target.name)
            error = NotifyError("internal", f"{type(exc).__name__}: {exc}", retryable=True)
        else:
            now = self.clock()
            self.outbox.delivered(item.id, now)
            self.metrics.delivered.labels(*labels).inc()
            self.metrics.latency.labels(*labels).observe(max(0.0, now - item.created_at))
            self._paused_until = 0.0
            log.info("delivered %s notification of %d alert(s) to %s (%s), group %s, key %s",
                     note.status, len(note.alerts), self.target.name, self.spec.notifier.describe(),
                     note.group_key, note.idempotency_key[:12])
            return
        now = self.clock()
        self.metrics.attempts_failed.labels(*labels, error.reason).inc()
        step = self.policy.after_failure(error, item.attempts, item.created_at, now)
        if step.action == "retry":
            assert step.at is not None
            self.outbox.retry(item.id, step.at, error.reason, error.detail)
            self._paused_until = step.at
            log.warning("delivery to %s (%s) failed (attempt %d, %s), retrying in %.1fs: %s",
                        self.target.name, self.spec.notifier.describe(), item.attempts + 1,
                        error.reason, step.at - now, error.detail)
            return
        self.outbox.failed(item.id, now, step.reason, error.detail)
        self.metrics.failed.labels(*labels, step.reason).inc()
        why = ("not retryable" if step.reason != "expired" else
               f"still failing after {now - item.created_at:.0f}s")
        log.error("delivery to %s (%s) failed for good (%s, attempt %d, %s): %s; group %s, "
                  "key %s", self.target.name, self.spec.notifier.describe(), why,
                  item.attempts + 1, error.reason, error.detail, note.group_key,
                  note.idempotency_key[:12])
