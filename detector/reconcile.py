"""Start-up check of the retained alert states against the restored engine.

A checkpoint can be older than the last alert the detector published (it crashed between
an alert and the next checkpoint). An alert that fired after the checkpoint would then
stay open for ever: the restored engine does not know it fired, so it never resolves it.
At start the detector reads its own retained ``alert-state`` topics and resolves every
firing alert the engine does not hold as firing, saying why. (An alert the engine holds
as firing but that was resolved after the checkpoint resolves again later: receivers see
a second "resolved" with the same fingerprint, which they de-duplicate.)

>>> from iotwatch.contracts import Alert
>>> firing = Alert("fp", "firing", "critical", "s", "d", "m", "anomaly", 9.0, 0.97, 0.5, 10.0, 12.0)
>>> [a.state for a in stale_alerts([firing], {"s/d/m": {"alert_state": "normal"}}, now=20.0)]
['resolved']
>>> stale_alerts([firing], {"s/d/m": {"alert_state": "firing"}}, now=20.0)
[]
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from iotwatch.config import MqttSettings
from iotwatch.contracts import Alert, Rejected
from iotwatch.mqtt import connect, make_client
from iotwatch.parse import parse_alert

log = logging.getLogger(__name__)

STILL_OPEN = frozenset({"firing", "suppressed"})


def stale_alerts(retained: Iterable[Alert], summaries: dict[str, dict[str, Any]],
                 now: float) -> list[Alert]:
    """Resolved alerts for each retained firing alert the engine does not hold as open."""
    stale = []
    for alert in retained:
        if alert.state != "firing":
            continue
        summary = summaries.get(f"{alert.site}/{alert.device}/{alert.metric}")
        if summary is not None and summary.get("alert_state") in STILL_OPEN:
            continue
        where = f"{alert.metric} on {alert.site}/{alert.device}"
        stale.append(dataclasses.replace(
            alert, state="resolved", ts=now, ends_at=now,
            annotations={**alert.annotations,
                         "summary": f"{where}: alert closed at detector restart (its state "
                                    "was newer than the restored checkpoint)"}))
    return stale


def read_retained_alerts(settings: MqttSettings, topic_filter: str, *, quiet_s: float = 0.5,
                         max_s: float = 5.0) -> list[Alert]:
    """The retained alert states under ``topic_filter`` (a short-lived, clean session)."""
    found: dict[str, Alert] = {}
    last_seen = [time.monotonic()]
    subscribed = threading.Event()
    # This client must not speak for the service: it announces itself under a status topic
    # the broker's ACL does not let the detector write (dropped), and leaves no last will.
    client = make_client(settings, "detector-startup", persistent=False,
                         client_id=f"{settings.client_id or 'iotwatch-detector'}-startup",
                         subscriptions=[(topic_filter, 1)])
    client.will_clear()

    def on_message(_client, _userdata, message) -> None:
        last_seen[0] = time.monotonic()
        if not message.retain or not message.payload:
            return
        try:
            found[message.topic] = parse_alert(message.payload)
        except Rejected as exc:
            log.warning("ignoring retained %s: %s", message.topic, exc)

    def on_subscribe(*_args) -> None:
        last_seen[0] = time.monotonic()
        subscribed.set()

    client.on_message = on_message
    client.on_subscribe = on_subscribe
    connect(client, settings)
    try:
        deadline = time.monotonic() + max_s
        subscribed.wait(max_s)
        while time.monotonic() < deadline and time.monotonic() - last_seen[0] < quiet_s:
            time.sleep(0.05)
    finally:
        client.disconnect()
        client.loop_stop()
    return list(found.values())
