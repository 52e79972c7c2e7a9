"""Acknowledging MQTT messages only once what they produced is safe.

A message is acknowledged (PUBACK) once (1) the batch holding its points was stored by the
sink or fsync'd to the spool, and (2) every alert or dead letter it caused was confirmed
by the broker. Batches are released strictly in the order they became durable. A message
is acknowledged only on the connection it arrived on: after a reconnect the broker sends
unacknowledged messages again (with possibly reused packet ids), so stale acks are dropped.

>>> sent = []
>>> acker = Acker(lambda mid, qos: sent.append(mid), lambda: 1)
>>> acker.add(Batch(tokens=[(1, 7, 1, 0.0), (0, 8, 1, 0.0)]))
>>> acker.release(), sent
(1, [7])
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

AckToken = tuple[int, int, int, float]  # connection generation, mid, qos, received_at


@dataclass(slots=True)
class Batch:
    """Points of some messages, the acks they wait for and the publishes they caused."""

    lines: list[str] = field(default_factory=list)
    tokens: list[AckToken] = field(default_factory=list)
    publishes: list[Any] = field(default_factory=list)  # paho MQTTMessageInfo
    messages: int = 0
    created: float = 0.0  # wall clock, for the spool's age
    started: float = 0.0  # monotonic, for the flush interval

    def body(self) -> bytes:
        return "\n".join(self.lines).encode()

    def __len__(self) -> int:
        return self.messages + len(self.lines)


class Acker:
    """Durable batches in, PUBACKs out, in order."""

    def __init__(self, send_ack: Callable[[int, int], Any], generation: Callable[[], int],
                 on_acked: Callable[[list[AckToken]], None] | None = None,
                 clock: Callable[[], float] = time.time, *,
                 send_acks: Callable[[list[tuple[int, int]]], Any] | None = None) -> None:
        # send_acks: (mid, qos) of a whole batch in one call (iotwatch.mqtt.ack_many).
        self._send_ack = send_ack
        self._send_acks = send_acks
        self._generation = generation
        self._on_acked = on_acked
        self._clock = clock
        self._waiting: deque[Batch] = deque()
        self.pending = 0  # messages durable but not acknowledged yet

    def add(self, batch: Batch) -> None:
        self._waiting.append(batch)
        self.pending += len(batch.tokens)

    def release(self) -> int:
        """Acknowledge every batch at the front whose publishes are confirmed; return acks sent."""
        sent = 0
        generation = self._generation()
        while self._waiting:
            batch = self._waiting[0]
            if not all(info.is_published() for info in batch.publishes):
                break
            self._waiting.popleft()
            self.pending -= len(batch.tokens)
            due = [(mid, qos) for token_generation, mid, qos, _received in batch.tokens
                   if qos and token_generation == generation]
            if self._send_acks is not None:
                if due:
                    self._send_acks(due)
            else:
                for mid, qos in due:
                    self._send_ack(mid, qos)
            sent += len(due)
            if self._on_acked is not None and batch.tokens:
                self._on_acked(batch.tokens)
        return sent

    def __len__(self) -> int:
        return len(self._waiting)
