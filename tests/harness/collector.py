"""Record everything published on a topic filter, to check what was (not) delivered.

    collector = collect(broker, "iotwatch/alerts/#")
    ... publish ...
    topic, payload, retain = collector.wait_for(1)[0]
    collector.close()
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import orjson
import paho.mqtt.client as mqtt

from .process import HarnessError, wait_until

Message = tuple[str, bytes, bool]  # (topic, payload, retain)


class Collector:
    """A subscriber that keeps every message it receives, in arrival order."""

    def __init__(self, client: mqtt.Client, topic_filter: str, qos: int) -> None:
        self.client = client
        self.topic_filter = topic_filter
        self.qos = qos
        self._messages: list[Message] = []
        self._lock = threading.Lock()

    @property
    def messages(self) -> list[Message]:
        """A snapshot of the messages received so far: (topic, payload bytes, retain)."""
        with self._lock:
            return list(self._messages)

    def payloads(self, topic: str | None = None) -> list[bytes]:
        """Payloads received so far, all or only those on ``topic``."""
        return [payload for t, payload, _ in self.messages if topic is None or t == topic]

    def json(self, topic: str | None = None) -> list[Any]:
        """Payloads received so far decoded as JSON."""
        return [orjson.loads(payload) for payload in self.payloads(topic)]

    def wait_for(self, n: int, timeout: float = 30.0) -> list[Message]:
        """Wait until at least ``n`` messages arrived; return them all."""
        try:
            wait_until(lambda: len(self._messages) >= n, timeout,
                       what=f"{n} message(s) on {self.topic_filter!r}")
        except TimeoutError as exc:
            seen = self.messages
            shown = "\n".join(f"  {t} {p[:200]!r}" for t, p, _ in seen[-10:])
            raise TimeoutError(f"{exc}; got {len(seen)}, last ones:\n{shown}") from None
        return self.messages

    def wait_for_message(self, topic: str, payload: bytes,
                         timeout: float = 30.0) -> Message:
        """Wait until this exact message arrived (other traffic, e.g. retained, is ignored)."""
        def seen() -> Message | None:
            return next((m for m in self.messages if m[0] == topic and m[1] == payload), None)
        try:
            return wait_until(seen, timeout, what=f"{payload[:100]!r} on {topic!r}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; got {len(self.messages)} other message(s)") from None

    def sync(self, timeout: float = 30.0) -> None:
        """Return once every message the broker routed to us before this call has arrived.

        A round trip on our own connection: the broker answers our SUBSCRIBE only after
        what it already queued for us, and paho handles packets in order. This is how
        to check that something was NOT delivered (the broker drops messages a reader
        may not see without telling anyone).
        """
        acked = threading.Event()
        previous = self.client.on_subscribe
        self.client.on_subscribe = lambda *_args: acked.set()
        sync_topic = f"iotwatch/harness-sync/{uuid.uuid4().hex}"
        try:
            self.client.subscribe(sync_topic, 0)
            if not acked.wait(timeout):
                raise TimeoutError(f"no SUBACK within {timeout:g}s on {self.topic_filter!r}")
        finally:
            self.client.on_subscribe = previous
        self.client.unsubscribe(sync_topic)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _record(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self._messages.append((message.topic, bytes(message.payload), bool(message.retain)))


def collect(broker: Any, topic_filter: str, role: str = "monitor", qos: int = 1,
            timeout: float = 30.0) -> Collector:
    """Subscribe as ``role`` and record; returns once the broker confirmed the subscription,
    so every message published after this call returns is seen. Raises HarnessError
    if the broker refuses the subscription (the role's ACL)."""
    client = broker.connect(role)
    collector = Collector(client, topic_filter, qos)
    acked = threading.Event()
    outcome: dict[str, Any] = {}

    def on_subscribe(_client, _userdata, _mid, reason_codes, _properties):
        outcome["codes"] = reason_codes
        acked.set()

    def on_connect(_client, _userdata, _flags, reason_code, _properties):
        if not reason_code.is_failure:  # resubscribe after the broker restarted
            client.subscribe(topic_filter, qos)

    client.on_message = collector._record
    client.on_subscribe = on_subscribe
    client.subscribe(topic_filter, qos)
    if not acked.wait(timeout):
        collector.close()
        raise HarnessError(f"no SUBACK for {topic_filter!r} as {role!r} within {timeout:g}s")
    failures = [code for code in outcome["codes"] if code.is_failure]
    if failures:
        collector.close()
        raise HarnessError(f"subscription to {topic_filter!r} as {role!r} refused: {failures[0]}")
    client.on_subscribe = None
    client.on_connect = on_connect
    return collector
