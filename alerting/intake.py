"""The receive stage: alert messages from MQTT, validated and stored before they are acknowledged.

``Intake.handle`` parses one message with the shared parser, checks that the payload's
stream is the topic's, stores the alert in SQLite (durable on return) and hands it on.
``MqttIntake`` acknowledges the message (PUBACK) only after ``handle`` returned: a crash
before that leaves the message with the broker, which sends it again to our persistent
session. Invalid messages are counted, logged, dead-lettered and acknowledged; a message
that could not be stored is left unacknowledged and never crashes the service. Anything
else raised while handling one message is a bug: that message is dead-lettered as
``internal_error`` with the exception's text, counted and acknowledged (redelivering it
would only fail again).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as paho

from alerting.active import ActiveAlerts
from alerting.metrics import Metrics
from alerting.store import AlertStore, StoreError
from iotwatch.config import MqttSettings
from iotwatch.contracts import Alert, DeadLetter, Reason, Rejected
from iotwatch.mqtt import connect, make_client, publish_status
from iotwatch.parse import parse_alert
from iotwatch.topics import Topics

log = logging.getLogger(__name__)

SERVICE = "alerting"
# The database failing: the message stays with the broker for a later try.
STORAGE_ERRORS = (sqlite3.Error, StoreError, OSError)


class Intake:
    """Validate, store durably, hand on; returns the rejection of an invalid message."""

    def __init__(self, topics: Topics, store: AlertStore, active: ActiveAlerts,
                 on_alert: Callable[[Alert], None], metrics: Metrics,
                 max_payload_bytes: int = 65_536, clock: Callable[[], float] = time.time) -> None:
        self.topics = topics
        self.store = store
        self.active = active
        self.on_alert = on_alert
        self.metrics = metrics
        self.max_payload_bytes = max_payload_bytes
        self.clock = clock

    def handle(self, topic: str, payload: bytes) -> Rejected | None:
        """Raises only when the store fails (then the message must not be acknowledged)."""
        try:
            alert = self.parse(topic, payload)
        except Rejected as rejected:
            self.metrics.rejected.labels(rejected.reason.value).inc()
            return rejected
        self.metrics.received.labels(alert.state).inc()
        if not self.store.upsert(alert, received_at=self.clock()):
            self.metrics.stale.inc()
            return None
        if self.active.upsert(alert):
            self.on_alert(alert)
        return None

    def parse(self, topic: str, payload: bytes) -> Alert:
        site, device, metric = self.topics.parse_alert(topic)
        alert = parse_alert(payload, self.max_payload_bytes)
        if (alert.site, alert.device, alert.metric) != (site, device, metric):
            raise Rejected(Reason.BAD_ALERT,
                           f"payload is about {alert.site}/{alert.device}/{alert.metric} but "
                           f"was published on the topic of {site}/{device}/{metric}")
        return alert


class MqttIntake:
    """The MQTT side: persistent QoS 1 session on the alert topics, manual acknowledgement."""

    def __init__(self, settings: MqttSettings, intake: Intake) -> None:
        self.settings = settings
        self.intake = intake
        self.topics = Topics(settings.topic_prefix)
        # Set once the broker confirmed the subscription (SUBACK), not at CONNACK: only
        # then is every alert published afterwards sure to reach us.
        self.connected = threading.Event()
        self.client = make_client(settings, SERVICE, persistent=True, manual_ack=True,
                                  subscriptions=[(self.topics.alerts_filter, 1)])
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        on_disconnect = self.client.on_disconnect

        def disconnected(*args) -> None:
            self.connected.clear()
            on_disconnect(*args)

        self.client.on_disconnect = disconnected

    def start(self) -> None:
        """Connect (raises iotwatch.mqtt.MqttError when the broker cannot be used)."""
        connect(self.client, self.settings)

    def stop(self, reason: str = "shutdown") -> None:
        """Stop consuming: offline status, then disconnect (unacknowledged messages stay
        with the broker for the next start)."""
        if self.client.is_connected():
            try:
                info = publish_status(self.client, self.settings, SERVICE, "offline", reason)
                info.wait_for_publish(5.0)
            except (RuntimeError, ValueError) as exc:
                log.warning("could not publish the offline status: %s", exc)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_subscribe(self, _client, _userdata, _mid, reason_codes, _props) -> None:
        failures = [code for code in reason_codes if code.is_failure]
        if failures:
            log.error("the broker refused the subscription to %s: %s (check the ACL of "
                      "user %r)", self.topics.alerts_filter, failures[0], self.settings.username)
            return
        self.connected.set()

    def _on_message(self, client: paho.Client, _userdata, message: paho.MQTTMessage) -> None:
        payload = bytes(message.payload)
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = repr(message._topic)[2:-1]  # noqa: SLF001 - paho has no raw accessor
        try:
            rejected = self.intake.handle(topic, payload)
        except STORAGE_ERRORS:  # the broker keeps the message for a later try
            self.intake.metrics.store_errors.inc()
            log.exception("could not store the alert from %s; it stays unacknowledged and the "
                          "broker sends it again after a reconnect", topic[:200])
            return
        except Exception as exc:  # a bug on one message: dead-letter it, never a crash loop
            log.exception("handling the alert from %s failed; dead-lettered as %s",
                          topic[:200], Reason.INTERNAL_ERROR.value)
            self.intake.metrics.rejected.labels(Reason.INTERNAL_ERROR.value).inc()
            rejected = Rejected(Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"[:1000])
        if rejected is not None:
            log.warning("rejected alert message on %s: %s", topic[:200], rejected)
            letter = DeadLetter(SERVICE, topic, rejected.reason.value, rejected.detail,
                                payload, time.time())
            client.publish(self.topics.deadletter(SERVICE), letter.to_payload(), qos=1)
        client.ack(message.mid, message.qos)
