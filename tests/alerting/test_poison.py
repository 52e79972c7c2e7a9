"""Alerts with absurd times, and bugs on one message: rejected, dead-lettered, counted,
acknowledged; the service carries on.

An alert whose ``ts`` or ``starts_at`` was 1e17, -1e11 or 1e300 used to be stored and
then fail every notification with ValueError/OverflowError: nothing delivered, nothing
dead-lettered.
"""

from __future__ import annotations

import threading
import uuid

import orjson
import pytest
from harness import wait_until

from alerting.active import ActiveAlerts
from alerting.intake import Intake, MqttIntake
from alerting.metrics import Metrics
from alerting.store import AlertStore, Database
from iotwatch.config import MqttSettings
from iotwatch.topics import Topics

ABSURD = (1e17, -1e11, 1e300)


def test_alerts_with_absurd_times_are_dead_lettered_and_good_ones_still_delivered(
        mosquitto, mqtt_collector, webhook, make_alert, publish_alert, service_config,
        start_service, unique_site):
    service = start_service(service_config(mosquitto, {"hook": {"webhook": {"url": webhook.url}}}))
    letters = mqtt_collector(mosquitto, Topics("iotwatch").deadletter("alerting"))
    sent = []
    for key in ("ts", "starts_at"):
        for value in ABSURD:
            alert = make_alert(site=unique_site, device=f"dev-{len(sent)}")
            body = {**alert.to_dict(), key: value}
            publish_alert(mosquitto, alert, payload=orjson.dumps(body))
            sent.append(key)
    good = make_alert(site=unique_site, device="boiler-ok")
    publish_alert(mosquitto, good)

    assert webhook.wait_for(1)[0].alerts == [(good.fingerprint, "firing")]
    letters.wait_for(len(sent))
    dead = letters.json()
    assert [letter["reason"] for letter in dead] == ["bad_alert"] * len(sent)
    assert [letter["detail"].split(":")[0] for letter in dead] == [f'"{k}"' for k in sent]
    assert "outside the years 1-9999" in dead[0]["detail"]
    metrics = service.metrics()
    assert f'iotwatch_alerting_alerts_rejected_total{{reason="bad_alert"}} {len(sent)}.0' \
        in metrics
    assert service.request("GET", "/health")[0] == 200
    assert len(webhook.requests) == 1


class Consumer:
    """The alerting intake on a real broker, with a routing stage that has a bug."""

    def __init__(self, mosquitto, tmp_path, client_id: str) -> None:
        self.received: list[str] = []
        self.db = Database(tmp_path / "alerting.sqlite3")
        self.metrics = Metrics()
        self.intake = Intake(Topics("iotwatch"), AlertStore(self.db), ActiveAlerts(),
                             self.route, self.metrics)
        settings = MqttSettings.model_validate({
            **mosquitto.mqtt_section("alerting", client_id=client_id),
            "password": mosquitto.password("alerting")})
        self.mqtt = MqttIntake(settings, self.intake)
        self.lock = threading.Lock()

    def route(self, alert) -> None:
        with self.lock:
            self.received.append(alert.device)
        if alert.device == "buggy":
            raise RuntimeError("a routing bug")

    def close(self) -> None:
        self.mqtt.stop()
        self.db.close()


@pytest.fixture
def consumers(mosquitto, tmp_path):
    made: list[Consumer] = []

    def make(client_id: str) -> Consumer:
        consumer = Consumer(mosquitto, tmp_path / str(len(made)), client_id)
        made.append(consumer)
        consumer.mqtt.start()
        wait_until(consumer.mqtt.connected.is_set, 30, what="subscribed")
        return consumer

    (tmp_path / "0").mkdir()
    (tmp_path / "1").mkdir()
    yield make
    for consumer in made:
        consumer.close()


def test_an_exception_on_one_alert_dead_letters_and_acknowledges_it(
        mosquitto, mqtt_collector, make_alert, publish_alert, consumers, unique_site):
    letters = mqtt_collector(mosquitto, Topics("iotwatch").deadletter("alerting"))
    client_id = f"alerting-poison-{uuid.uuid4().hex[:8]}"
    first = consumers(client_id)
    publish_alert(mosquitto, make_alert(site=unique_site, device="buggy"))
    publish_alert(mosquitto, make_alert(site=unique_site, device="after"))
    wait_until(lambda: first.received == ["buggy", "after"], 30, what="both alerts handled")
    letters.wait_for(1)
    [letter] = letters.json()
    assert (letter["reason"], letter["detail"]) == ("internal_error",
                                                    "RuntimeError: a routing bug")
    assert b'iotwatch_alerting_alerts_rejected_total{reason="internal_error"} 1.0' \
        in first.metrics.exposition()
    first.close()

    # Acknowledged: the same session, reconnected, gets only what came after.
    publish_alert(mosquitto, make_alert(site=unique_site, device="marker"))
    second = consumers(client_id)
    wait_until(lambda: second.received == ["marker"] or len(second.received) > 1, 30,
               what="the marker alert")
    assert second.received == ["marker"]


def test_an_alert_an_older_version_stored_with_an_absurd_time_does_not_stop_a_start(
        tmp_path, make_alert):
    db = Database(tmp_path / "alerting.sqlite3")
    store = AlertStore(db)
    good = make_alert(device="ok")
    store.upsert(good, received_at=1.0)
    absurd = {**make_alert(device="absurd").to_dict(), "ts": 1e17}  # what was accepted before
    with db.transaction() as conn:
        conn.execute("INSERT INTO alerts VALUES (?, ?, ?, ?, ?)",
                     (absurd["fingerprint"], 1e14, "firing", orjson.dumps(absurd), 2.0))
    assert [a.device for a in store.load()] == ["ok"]
    assert db.query("SELECT count(*) FROM alerts") == [(1,)]
    db.close()
