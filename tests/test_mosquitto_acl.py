"""The project's broker configuration, checked with real connections: who may publish
and subscribe where, who may connect at all, TLS, and nothing lost across a restart.

Denied publishes are dropped silently under MQTT 3.1.1, so non-delivery is checked
after a marker that IS delivered: the broker handles the denied message (and
acknowledges it) before the marker is even sent, and a subscriber receives in order.
"""

from __future__ import annotations

import ssl
import threading
import uuid

import orjson
import paho.mqtt.client as mqtt
import pytest
from harness import HarnessError, wait_until
from paho.mqtt.enums import CallbackAPIVersion

from iotwatch.config import MqttSettings, StrictModel, build_config
from iotwatch.mqtt import connect, make_client

MARKER_TOPIC = "iotwatch/readings/acl-test/marker"

# (role, topic, allowed) for publishing. The prefix is the default "iotwatch".
PUBLISH_CASES = [
    ("sensor-a", "iotwatch/readings/site1/sensor-a/temperature", True),
    ("sensor-a", "iotwatch/readings/site2/sensor-a", True),
    ("sensor-a", "iotwatch/readings/site1/sensor-b/temperature", False),
    ("sensor-a", "iotwatch/readings/site1/sensor-b", False),
    ("sensor-a", "iotwatch/readings/site1/sensor-a/temperature/extra", False),
    ("sensor-a", "iotwatch/alerts/site1/sensor-a/temperature", False),
    ("sensor-a", "iotwatch/truth/site1/sensor-a/temperature", False),
    ("sensor-b", "iotwatch/readings/site1/sensor-b/humidity", True),
    ("publisher", "iotwatch/readings/site1/dev9/temperature", True),
    ("publisher", "iotwatch/readings/site1/dev9", True),
    ("publisher", "iotwatch/truth/site1/dev9/temperature", True),
    ("publisher", "iotwatch/status/publisher", True),
    ("publisher", "iotwatch/alerts/site1/dev9/temperature", False),
    ("publisher", "iotwatch/alert-state/site1/dev9/temperature", False),
    ("publisher", "iotwatch/status/detector", False),
    ("detector", "iotwatch/alerts/site1/dev9/temperature", True),
    ("detector", "iotwatch/alert-state/site1/dev9/temperature", True),
    ("detector", "iotwatch/deadletter/detector", True),
    ("detector", "iotwatch/status/detector", True),
    ("detector", "iotwatch/readings/site1/dev9/temperature", False),
    ("detector", "iotwatch/readings/site1/detector", False),  # the sensor pattern
    ("detector", "iotwatch/truth/site1/dev9/temperature", False),
    ("detector", "iotwatch/deadletter/alerting", False),
    ("alerting", "iotwatch/deadletter/alerting", True),
    ("alerting", "iotwatch/status/alerting", True),
    ("alerting", "iotwatch/alerts/site1/dev9/temperature", False),
    ("alerting", "iotwatch/alert-state/site1/dev9/temperature", False),
    ("alerting", "iotwatch/readings/site1/alerting/temperature", False),  # the sensor pattern
    ("monitor", "iotwatch/readings/site1/dev9/temperature", False),
    ("monitor", "iotwatch/readings/site1/monitor", False),  # the sensor pattern
    ("monitor", "iotwatch/alerts/site1/dev9/temperature", False),
    ("monitor", "iotwatch/status/monitor", False),
]


@pytest.mark.parametrize(("role", "topic", "allowed"), PUBLISH_CASES,
                         ids=[f"{r}-{'may' if a else 'not'}-{t.removeprefix('iotwatch/')}"
                              for r, t, a in PUBLISH_CASES])
def test_publish_permissions(mosquitto, mqtt_collector, role, topic, allowed):
    monitor = mqtt_collector(mosquitto, "iotwatch/#")
    body = f"{role} {uuid.uuid4().hex}".encode()
    marker = f"marker {uuid.uuid4().hex}".encode()

    mosquitto.publish(role, topic, body)
    mosquitto.publish("publisher", MARKER_TOPIC, marker)

    monitor.wait_for_message(MARKER_TOPIC, marker)
    delivered = (topic, body, False) in monitor.messages
    assert delivered == allowed, f"{role} publishing to {topic}: expected " + (
        "delivery" if allowed else "the broker to drop it")


# (reader, topic filter, writer, topic, allowed). Mosquitto grants every SUBSCRIBE
# and filters at delivery, so reading is checked by what arrives.
READ_CASES = [
    ("monitor", "iotwatch/#", "sensor-a", "iotwatch/readings/site1/sensor-a/temperature", True),
    ("monitor", "iotwatch/#", "detector", "iotwatch/alerts/site1/dev9/temperature", True),
    ("detector", "iotwatch/readings/#", "publisher", "iotwatch/readings/site1/dev9", True),
    ("detector", "iotwatch/alert-state/#", "detector",
     "iotwatch/alert-state/site1/dev9/temperature", True),
    ("detector", "iotwatch/alerts/#", "detector", "iotwatch/alerts/site1/dev9/temperature", False),
    ("detector", "iotwatch/truth/#", "publisher", "iotwatch/truth/site1/dev9/temperature", False),
    ("alerting", "iotwatch/alerts/#", "detector", "iotwatch/alerts/site1/dev9/temperature", True),
    ("alerting", "iotwatch/readings/#", "publisher", "iotwatch/readings/site1/dev9", False),
    ("sensor-a", "iotwatch/readings/#", "sensor-a", "iotwatch/readings/site1/sensor-a", False),
    ("sensor-a", "iotwatch/#", "detector", "iotwatch/alerts/site1/sensor-a/temperature", False),
    ("publisher", "iotwatch/#", "publisher", "iotwatch/readings/site1/dev9", False),
    ("publisher", "iotwatch/alerts/#", "detector", "iotwatch/alerts/site1/dev9/temperature", False),
]


@pytest.mark.parametrize(("reader", "topic_filter", "writer", "topic", "allowed"), READ_CASES,
                         ids=[f"{r}-{'may' if a else 'not'}-read-{t.removeprefix('iotwatch/')}"
                              for r, _, _, t, a in READ_CASES])
def test_read_permissions(mosquitto, mqtt_collector, reader, topic_filter, writer, topic,
                          allowed):
    monitor = mqtt_collector(mosquitto, "iotwatch/#")
    subscriber = mqtt_collector(mosquitto, topic_filter, role=reader)
    body = f"for {reader} {uuid.uuid4().hex}".encode()

    mosquitto.publish(writer, topic, body)

    monitor.wait_for_message(topic, body)  # it was published
    subscriber.sync()
    assert ((topic, body, False) in subscriber.messages) == allowed


def test_pipeline_roles_pass_messages_along(mosquitto, mqtt_collector):
    detector_in = mqtt_collector(mosquitto, "iotwatch/readings/#", role="detector")
    alerting_in = mqtt_collector(mosquitto, "iotwatch/alerts/#", role="alerting")

    reading = f'{{"value": 99, "id": "{uuid.uuid4().hex}"}}'.encode()
    mosquitto.publish("sensor-a", "iotwatch/readings/site1/sensor-a/temperature", reading)
    detector_in.wait_for_message("iotwatch/readings/site1/sensor-a/temperature", reading)

    alert = f'{{"state": "firing", "id": "{uuid.uuid4().hex}"}}'.encode()
    mosquitto.publish("detector", "iotwatch/alerts/site1/sensor-a/temperature", alert)
    alerting_in.wait_for_message("iotwatch/alerts/site1/sensor-a/temperature", alert)


def test_detector_reads_back_its_retained_alert_state(mosquitto, mqtt_collector):
    topic = f"iotwatch/alert-state/site1/{uuid.uuid4().hex[:8]}/temperature"
    mosquitto.publish("detector", topic, b"firing", retain=True)
    try:
        state = mqtt_collector(mosquitto, topic, role="detector")
        assert state.wait_for(1)[0] == (topic, b"firing", True)
    finally:
        mosquitto.publish("detector", topic, b"", retain=True)  # clear the retained message


@pytest.mark.parametrize(("role", "password"), [
    (None, None),                    # anonymous
    ("monitor", "wrong-password"),
    ("sensor-c", "no-such-user"),
])
def test_connection_refused(mosquitto, role, password):
    with pytest.raises(HarnessError, match="refused: Not authorized"):
        mosquitto.connect(role, password=password)


def test_tls_with_the_development_ca(mosquitto, mqtt_collector):
    if mosquitto.tls_port is None:
        pytest.skip("the external broker given by IOTWATCH_TEST_MQTT_URL has no TLS port set")
    monitor = mqtt_collector(mosquitto, "iotwatch/readings/#")
    client = mosquitto.connect("sensor-a", tls=True)
    try:
        info = client.publish("iotwatch/readings/tls/sensor-a/temperature", b"over tls", qos=1)
        info.wait_for_publish(30)
    finally:
        client.disconnect()
        client.loop_stop()
    monitor.wait_for_message("iotwatch/readings/tls/sensor-a/temperature", b"over tls")


def test_tls_with_a_client_certificate(mosquitto):
    if mosquitto.tls_port is None:
        pytest.skip("the external broker given by IOTWATCH_TEST_MQTT_URL has no TLS port set")
    client = _raw_client(mosquitto, "monitor")
    client.tls_set(ca_certs=str(mosquitto.ca_file), certfile=str(mosquitto.client_cert),
                   keyfile=str(mosquitto.client_key))
    assert client.connect(mosquitto.host, mosquitto.tls_port) == mqtt.MQTT_ERR_SUCCESS
    client.disconnect()


def test_tls_without_the_ca_fails_verification(mosquitto):
    if mosquitto.tls_port is None:
        pytest.skip("the external broker given by IOTWATCH_TEST_MQTT_URL has no TLS port set")
    client = _raw_client(mosquitto, "monitor")
    client.tls_set()  # the system's CAs, which never signed the development certificate
    with pytest.raises(ssl.SSLCertVerificationError):
        client.connect(mosquitto.host, mosquitto.tls_port)


def test_restart_keeps_queued_messages_of_persistent_sessions(fresh_mosquitto):
    """More than the stock 1000-message queue, offline, across a restart: none lost."""
    broker = fresh_mosquitto
    count = 2500
    client_id = "detector-persistent"
    received: list[bytes] = []
    lock = threading.Lock()

    def on_message(_client, _userdata, message):
        with lock:
            received.append(message.payload)

    detector = broker.connect("detector", client_id=client_id, clean=False)
    _subscribe(detector, "iotwatch/readings/#")
    detector.disconnect()
    detector.loop_stop()

    publisher = broker.connect("publisher")
    infos = [publisher.publish("iotwatch/readings/site1/sensor-a/temperature",
                               f'{{"seq": {seq}}}'.encode(), qos=1) for seq in range(count)]
    for info in infos:
        info.wait_for_publish(60)
    publisher.disconnect()
    publisher.loop_stop()

    broker.restart()

    detector = broker.connect("detector", client_id=client_id, clean=False, on_message=on_message)
    try:
        wait_until(lambda: len(received) >= count, timeout=60,
                   what=f"{count} queued messages after the restart")
    except TimeoutError:
        pytest.fail(f"received {len(received)} of {count} queued messages after the restart "
                    "(max_queued_messages too low, or persistence lost them)")
    finally:
        detector.disconnect()
        detector.loop_stop()
    assert sorted(received) == sorted(f'{{"seq": {seq}}}'.encode() for seq in range(count))


def _subscribe(client: mqtt.Client, topic_filter: str) -> None:
    """Subscribe at QoS 1 and wait for the SUBACK."""
    acked = threading.Event()
    client.on_subscribe = lambda *_args: acked.set()
    client.subscribe(topic_filter, qos=1)
    assert acked.wait(30), f"no SUBACK for {topic_filter}"


def _raw_client(broker, role: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-{uuid.uuid4().hex[:8]}")
    client.username_pw_set(role, broker.password(role))
    return client


class _ServiceFile(StrictModel):
    mqtt: MqttSettings


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize("service", ["publisher", "detector", "alerting"])
def test_services_log_in_with_the_harness_config_and_announce_themselves(
        mosquitto, mqtt_collector, service, tls):
    """mqtt_section() + env() make a valid config for iotwatch.mqtt, and the ACL lets each
    service publish its retained status (the topic of its last will too)."""
    if tls and mosquitto.tls_port is None:
        pytest.skip("the external broker given by IOTWATCH_TEST_MQTT_URL has no TLS port set")
    section = mosquitto.mqtt_section(service, tls=tls, client_id=f"test-{uuid.uuid4().hex[:8]}")
    assert "password" not in section
    settings = build_config({"mqtt": section}, _ServiceFile, environ=mosquitto.env(service)).mqtt
    status_topic = f"iotwatch/status/{service}"
    monitor = mqtt_collector(mosquitto, status_topic)

    client = make_client(settings, service, persistent=False)
    connect(client, settings)
    try:
        wait_until(lambda: any(orjson.loads(payload)["state"] == "online"
                               for payload in monitor.payloads(status_topic) if payload),
                   what=f"{service} to announce itself online")
    finally:
        client.disconnect()
        client.loop_stop()
        mosquitto.publish(service, status_topic, b"", retain=True)  # leave no retained status
