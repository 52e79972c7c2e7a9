"""MQTT intake: paho's network thread appends messages to a bounded intake, nothing more.

``on_message`` runs on paho's network thread, so it only stamps the arrival time and
appends the message; parsing and scoring happen on the processing thread, which takes
everything waiting in one call (``take``) rather than one queue hand-off per message.
When the intake holds ``queue_size`` messages the network thread waits (TCP
back-pressure to the broker). Each (re)connection starts a new generation: an ack is only
sent on the connection its message came on.

>>> intake = Intake(queue_size=2)
>>> for mid in (1, 2):
...     intake.on_message(None, None, mid)
>>> [message for _generation, message, _at in intake.take(10, timeout=0)], len(intake)
([1, 2], 0)
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho

log = logging.getLogger(__name__)

Received = tuple[int, paho.MQTTMessage, float]  # generation, message, arrival (epoch s)


class Intake:
    """Receives messages for the processing thread and tracks the connection.

    One producer (paho's thread) and one consumer (the processing thread). ``deque``'s
    append and popleft are atomic, so the only synchronisation is two events, each set
    only when the other side may be waiting on it.
    """

    def __init__(self, queue_size: int, clock: Callable[[], float] = time.time) -> None:
        self._items: deque[Received] = deque()
        self._limit = queue_size
        self._clock = clock
        self._arrived = threading.Event()  # the consumer waits on it when empty
        self._room = threading.Event()     # the producer waits on it when full
        self.generation = 0
        self.connected = False
        self._stopping = threading.Event()

    def attach(self, client: paho.Client) -> None:
        """Install the callbacks on a client made by ``iotwatch.mqtt.make_client``."""
        client.on_message = self.on_message
        previous = client.on_disconnect

        def on_disconnect(*args: Any) -> None:
            self.connected = False
            if previous is not None:
                previous(*args)

        client.on_disconnect = on_disconnect

    def on_connected(self, _client: paho.Client) -> None:
        """Pass to ``make_client(on_connected=...)``: called after every successful connect."""
        self.generation += 1
        self.connected = True

    def on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        items = self._items
        while len(items) >= self._limit:
            if self._stopping.is_set():
                return  # left unacknowledged; the broker sends it again after the restart
            self._room.clear()
            if len(items) < self._limit:
                break
            self._room.wait(0.2)
        if self._stopping.is_set():
            return
        items.append((self.generation, message, self._clock()))
        if not self._arrived.is_set():
            self._arrived.set()

    def take(self, limit: int, timeout: float) -> list[Received]:
        """Up to ``limit`` messages, oldest first; waits up to ``timeout`` s for the first."""
        items = self._items
        if not items:
            self._arrived.clear()
            if not items:  # checked again: a message appended before the clear is seen here
                self._arrived.wait(timeout)
        popleft = items.popleft
        taken = [popleft() for _ in range(min(limit, len(items)))]
        if taken and not self._room.is_set():
            self._room.set()
        return taken

    def __len__(self) -> int:
        return len(self._items)

    def stop(self) -> None:
        """Take no more messages (those still arriving are left for the next run)."""
        self._stopping.set()
        self._room.set()


class QueueIntake:
    """``Intake.take`` over a ``queue.Queue`` (an intake that hands over one message at a
    time, e.g. ``detector.distributed.intake_nats``)."""

    def __init__(self, source: queue.Queue[Received]) -> None:
        self.queue = source

    def take(self, limit: int, timeout: float) -> list[Received]:
        try:
            taken = [self.queue.get(timeout=timeout) if timeout > 0 else self.queue.get_nowait()]
        except queue.Empty:
            return []
        try:
            while len(taken) < limit:
                taken.append(self.queue.get_nowait())
        except queue.Empty:
            pass
        return taken

    def __len__(self) -> int:
        return self.queue.qsize()
