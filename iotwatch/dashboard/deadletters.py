"""The newest dead letters, read from the broker (``<prefix>/deadletter/#``), kept in memory.

Dead letters are MQTT messages, not stored points: the dashboard shows what arrived since
it started (a clean session, nothing queued for it, no storage of its own). It needs a
user allowed to read them, e.g. the ``monitor`` role of ``mosquitto/acl``.

>>> tail = DeadLetterTail(keep=2)
>>> for n in range(3):
...     tail.take(b'{"service": "detector", "topic": "t/%d", "reason": "bad_json", '
...               b'"detail": "d", "ts": "2026-01-20T10:30:00Z"}' % n)
>>> [row["topic"] for row in tail.rows()]
['t/2', 't/1']
>>> tail.take(b"not json")
>>> tail.rows()[0]["reason"]
'unreadable'
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from typing import Any

import orjson

from iotwatch.config import MqttSettings
from iotwatch.topics import Topics

KEEP = 50
DETAIL_CHARS = 200


class DeadLetterTail:
    """Subscribes to every service's dead letters; ``rows()`` are the newest first."""

    def __init__(self, settings: MqttSettings | None = None, keep: int = KEEP) -> None:
        self.settings = settings
        self._letters: deque[dict[str, Any]] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._client = None

    def start(self) -> DeadLetterTail:
        """Connect (MqttError when the broker refuses) and follow the dead-letter topics."""
        from iotwatch.mqtt import connect, make_client

        assert self.settings is not None
        topic = Topics(self.settings.topic_prefix).deadletter("+")
        client = make_client(self.settings, "dashboard", persistent=False,
                             client_id=f"iotwatch-dashboard-{uuid.uuid4().hex[:8]}",
                             subscriptions=[(topic, 1)])
        client.on_message = lambda _c, _u, message: self.take(message.payload)
        connect(client, self.settings)
        self._client = client
        return self

    def take(self, payload: bytes) -> None:
        try:
            letter = orjson.loads(payload)
            if not isinstance(letter, dict):
                raise ValueError("not an object")
        except ValueError:
            letter = {"reason": "unreadable",
                      "detail": f"not a dead-letter object: {payload[:80]!r}"}
        row = {key: str(letter.get(key, "")) for key in ("ts", "service", "reason", "topic")}
        # RFC 3339 as the page's other tables show times: "2026-01-20 10:30:00".
        row["ts"] = row["ts"].replace("T", " ")[:19]
        row["detail"] = str(letter.get("detail", ""))[:DETAIL_CHARS]
        with self._lock:
            self._letters.append(row)

    def rows(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(reversed(self._letters))

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
