"""MQTT intake: paho's network thread puts messages on a bounded queue, nothing more.

``on_message`` runs on paho's network thread, so it only stamps the arrival time and
queues the message; parsing and scoring happen on the processing thread. When the queue
is full the network thread waits (TCP back-pressure to the broker). Each (re)connection
starts a new generation: an ack is only sent on the connection its message came on.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho

log = logging.getLogger(__name__)

Received = tuple[int, paho.MQTTMessage, float]  # generation, message, arrival (epoch s)


class Intake:
    """Receives messages for the processing thread and tracks the connection."""

    def __init__(self, queue_size: int, clock: Callable[[], float] = time.time) -> None:
        self.queue: queue.Queue[Received] = queue.Queue(maxsize=queue_size)
        self._clock = clock
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
        item = (self.generation, message, self._clock())
        while not self._stopping.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
        # Stopping: leave it unacknowledged; the broker sends it again after the restart.

    def stop(self) -> None:
        """Take no more messages (those still arriving are left for the next run)."""
        self._stopping.set()
