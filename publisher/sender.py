"""Sending to the broker: bounded in flight, bounded and ordered while the broker is away.

Every message goes through one FIFO and leaves it in order:

- Connected: it is handed to paho once fewer than ``max_in_flight`` of ours wait for
  their PUBACK; otherwise ``send`` waits (back-pressure instead of paho's unbounded
  queue, which also stops at 65,535 outstanding QoS 1 messages).
- Disconnected: it waits in the FIFO, up to ``buffer_size`` messages; when the FIFO is
  full, new messages are dropped and counted (``overflow="drop"``, for paced runs whose
  clock cannot stop) or ``send`` waits for the broker (``overflow="wait"``, for runs
  as fast as possible).
- Reconnected: paho resends the QoS 1 messages that were in flight (it keeps them and
  resends them even on a clean session, marked DUP); the FIFO waits until those are
  acknowledged, then drains in order. So a broker restart loses no QoS 1 message while
  the FIFO bound is not exceeded (a message whose PUBACK was lost may arrive twice; its
  ``seq`` tells).

paho callbacks only record events (under a lock, except acknowledgements, which go to
a deque and wake the producer only when it waits); paho is never called with that lock
held (paho holds its own lock while calling ``on_publish``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import paho.mqtt.client as paho

log = logging.getLogger(__name__)

Overflow = Literal["drop", "wait"]
_POLL_S = 0.5


@dataclass
class SendStats:
    """Counters shown in the progress line and the summary."""

    produced: int = 0      # messages given to send()
    sent: int = 0          # acknowledged by the broker (QoS 1) or written (QoS 0)
    dropped: int = 0       # refused because the FIFO was full while disconnected
    in_flight: int = 0     # handed to paho, not yet acknowledged
    buffered: int = 0      # waiting in the FIFO
    peak_buffered: int = 0
    reconnects: int = 0


class MqttSender:
    """Sends (topic, payload) messages at one QoS through a connected paho client."""

    def __init__(self, client: paho.Client, qos: int, max_in_flight: int, buffer_size: int,
                 overflow: Overflow = "drop", stop: threading.Event | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.qos = qos
        self.max_in_flight = max_in_flight
        self.buffer_size = buffer_size
        self.overflow = overflow
        self.stats = SendStats()
        self._stop = stop or threading.Event()
        self._clock = clock
        self._fifo: deque[tuple[str, bytes]] = deque()
        self._pending: set[int] = set()   # our mids awaiting PUBACK (producer thread only)
        self._acks: deque[int] = deque()  # mids acknowledged, from paho's thread
        self._cond = threading.Condition()
        self._connected = False
        self._settling = False            # after a reconnect: old in-flight ones first
        self._waiting = False             # the producer sleeps on _cond
        self._connects = 0
        self._outage_drops = 0
        self._attach(client)

    # -- producer side -------------------------------------------------------------------

    def send(self, topic: str, payload: bytes) -> None:
        """Queue one message and send what the connection and the in-flight bound allow."""
        stats = self.stats
        stats.produced += 1
        if len(self._fifo) >= self.buffer_size and self.overflow == "wait":
            self._drain(wait_for_broker=True)
        if len(self._fifo) >= self.buffer_size:
            stats.dropped += 1
            self._outage_drops += 1
            if self._outage_drops == 1:
                log.warning("broker unreachable and %d messages buffered: dropping new "
                            "readings until it is back", len(self._fifo))
            return
        self._fifo.append((topic, payload))
        stats.buffered = len(self._fifo)
        stats.peak_buffered = max(stats.peak_buffered, stats.buffered)
        self._drain(wait_for_broker=False)

    def flush(self, timeout_s: float) -> int:
        """Send everything queued and wait for its acknowledgements, up to ``timeout_s``
        (waiting for the broker to come back if needed). Return how many messages are
        still undelivered."""
        deadline = self._clock() + timeout_s
        while self._clock() < deadline and not self._stop.is_set():
            self._drain(wait_for_broker=True, deadline=deadline)
            with self._cond:
                self._absorb_acks()
                if not self._fifo and not self._pending:
                    return 0
                self._waiting = True
                self._cond.wait(min(_POLL_S, max(0.0, deadline - self._clock())))
                self._waiting = False
        with self._cond:
            self._absorb_acks()
            return len(self._fifo) + len(self._pending)

    @property
    def connected(self) -> bool:
        return self._connected

    def _drain(self, wait_for_broker: bool, deadline: float | None = None) -> None:
        fifo, stats = self._fifo, self.stats
        while fifo:
            if not self._wait_for_room(wait_for_broker, deadline):
                break
            topic, payload = fifo[0]
            info = self.client.publish(topic, payload, qos=self.qos)
            if self.qos == 0:
                if info.rc != paho.MQTT_ERR_SUCCESS:
                    break  # not on the wire; stays first in line
                stats.sent += 1
            elif info.rc in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
                # NO_CONN: paho keeps a QoS 1 message and sends it on reconnect.
                self._pending.add(info.mid)
                stats.in_flight = len(self._pending)
            else:
                log.error("paho refused a message (%s); retrying", paho.error_string(info.rc))
                with self._cond:
                    self._cond.wait(_POLL_S)
                break
            fifo.popleft()
        stats.buffered = len(fifo)

    def _wait_for_room(self, wait_for_broker: bool, deadline: float | None) -> bool:
        with self._cond:
            while True:
                self._absorb_acks()
                if self._connected and not self._settling and (
                        self.qos == 0 or len(self._pending) < self.max_in_flight):
                    return True
                if self._stop.is_set():
                    return False
                if not self._connected and not wait_for_broker:
                    return False
                wait = _POLL_S
                if deadline is not None:
                    wait = min(wait, deadline - self._clock())
                    if wait <= 0:
                        return False
                self._waiting = True
                self._cond.wait(wait)
                self._waiting = False

    def _absorb_acks(self) -> None:
        # Runs in the producer thread only, always after the mids it publishes are
        # registered, so an early PUBACK is never mistaken for someone else's.
        acks, pending = self._acks, self._pending
        while acks:
            mid = acks.popleft()
            if mid in pending:
                pending.discard(mid)
                self.stats.sent += 1
        self.stats.in_flight = len(pending)
        if self._settling and not pending:
            self._settling = False
            log.info("messages in flight before the reconnect are acknowledged; sending %d "
                     "buffered", len(self._fifo))

    # -- paho's network thread -------------------------------------------------------------

    def _attach(self, client: paho.Client) -> None:
        previous_disconnect = client.on_disconnect

        def on_disconnect(*args) -> None:
            if previous_disconnect is not None:
                previous_disconnect(*args)
            with self._cond:
                self._connected = False
                self._cond.notify_all()

        def on_publish(_client, _userdata, mid, _reason_code, _properties) -> None:
            # Lock-free unless the producer sleeps: it sets _waiting under the lock
            # before it looks at _acks, so an ack it did not see wakes it.
            self._acks.append(mid)
            if self._waiting:
                with self._cond:
                    self._cond.notify_all()

        client.on_disconnect = on_disconnect
        client.on_publish = on_publish

    def on_connected(self, _client: paho.Client) -> None:
        """Give this to ``iotwatch.mqtt.make_client(on_connected=...)``."""
        with self._cond:
            self._connects += 1
            if self._connects > 1:
                self.stats.reconnects += 1
                log.info("reconnected: %d in flight to resend, %d buffered, %d dropped "
                         "meanwhile", len(self._pending), len(self._fifo), self._outage_drops)
            self._connected = True
            self._settling = bool(self._pending)
            self._outage_drops = 0
            self._cond.notify_all()
