"""Publishing what the detector concludes: alerts, current alert state, dead letters.

Every message goes out at QoS 1; the caller keeps the returned ``MQTTMessageInfo``s and
acknowledges the reading behind them only once the broker has confirmed each one.

- ``<prefix>/alerts/<site>/<device>/<metric>``: every firing and resolved alert, not retained.
- ``<prefix>/alert-state/<site>/<device>/<metric>``: retained (the anomaly alert, not the
  early warnings of ``stateless_rules``); the firing alert while it
  fires, then cleared (an empty retained message) on resolve, or the resolved alert with
  ``output.alert_state_on_resolve: resolved``.
- ``<prefix>/deadletter/detector``: every rejected message with its reason.
"""

from __future__ import annotations

import logging
from typing import Literal

import paho.mqtt.client as paho

from detector.lineprotocol import parse_tags
from iotwatch.contracts import Alert, DeadLetter, Reason
from iotwatch.topics import Topics

log = logging.getLogger(__name__)

SERVICE = "detector"
# paho queues QoS 1 messages while disconnected and sends them on reconnect.
_QUEUED = (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN)


class Emitter:
    """Publishes alerts and dead letters through one paho client (paho is thread-safe)."""

    def __init__(self, client: paho.Client, topics: Topics,
                 on_resolve: Literal["clear", "resolved"] = "clear",
                 stateless_rules: frozenset[str] = frozenset()) -> None:
        self.client = client
        self.topics = topics
        self.on_resolve = on_resolve
        # Rules whose alerts do not take the stream's retained alert-state topic, which
        # holds its anomaly alert (early warnings: their state is in the checkpoint).
        self.stateless_rules = stateless_rules

    def alert(self, alert: Alert) -> list[paho.MQTTMessageInfo]:
        payload = alert.to_payload()
        sent = [self._publish(self.topics.alert(alert.site, alert.device, alert.metric),
                              payload, retain=False)]
        if alert.rule in self.stateless_rules:
            return [info for info in sent if info is not None]
        state_topic = self.topics.alert_state(alert.site, alert.device, alert.metric)
        if alert.state == "resolved" and self.on_resolve == "clear":
            sent.append(self._publish(state_topic, b"", retain=True))
        else:
            sent.append(self._publish(state_topic, payload, retain=True))
        return [info for info in sent if info is not None]

    def dead_letter(self, topic: str, payload: bytes, reason: str, detail: str,
                    ts: float) -> paho.MQTTMessageInfo | None:
        letter = DeadLetter(SERVICE, topic, reason, detail, payload, ts)
        return self._publish(self.topics.deadletter(SERVICE), letter.to_payload(), retain=False)

    def refused_point(self, line: str, message: str, ts: float) -> paho.MQTTMessageInfo | None:
        """Dead-letter a point the database refused, under its stream's readings topic."""
        tags = parse_tags(line)
        try:
            topic = self.topics.reading(tags["site"], tags["device"], tags["metric"])
        except KeyError:
            topic = ""
        return self.dead_letter(topic, line.encode(), Reason.WRITE_REJECTED.value, message, ts)

    def _publish(self, topic: str, payload: bytes, retain: bool) -> paho.MQTTMessageInfo | None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in _QUEUED:
            # Not queued (e.g. over the broker's packet size): waiting for it would stall acks.
            log.error("cannot publish to %s: %s", topic, paho.error_string(info.rc))
            return None
        return info
