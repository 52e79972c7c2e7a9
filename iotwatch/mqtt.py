"""MQTT connection set-up shared by the services (paho-mqtt 2.x).

Every client: MQTT 3.1.1, authentication and TLS from config, Nagle off (MEASURED.md:
p99 42 ms -> 4 ms), capped reconnect backoff, a retained online/offline status with
the offline one as last will, and subscriptions made inside on_connect so every
reconnect re-subscribes.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Sequence

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from iotwatch import IotwatchError
from iotwatch.config import MqttSettings
from iotwatch.contracts import Status
from iotwatch.topics import Topics

log = logging.getLogger(__name__)
_PUBACK = struct.Struct("!BBH")  # fixed header, remaining length 2, packet id


class MqttError(IotwatchError):
    """The broker could not be reached or refused us."""


def make_client(settings: MqttSettings, service: str, *, persistent: bool = True,
                client_id: str | None = None, manual_ack: bool = False,
                subscriptions: Sequence[tuple[str, int]] = (),
                on_connected: Callable[[paho.Client], None] | None = None) -> paho.Client:
    """Build (not connect) a client for ``service``.

    ``persistent`` keeps the broker session (and its queued QoS 1 messages) across
    disconnects, so it needs a stable client id: ``settings.client_id`` or
    ``iotwatch-<service>``. ``subscriptions`` are (re)made on every connect.
    """
    cid = client_id or settings.client_id or f"iotwatch-{service}"
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=cid,
                         clean_session=not persistent, protocol=paho.MQTTv311,
                         manual_ack=manual_ack)
    if settings.username:
        password = settings.password.get_secret_value() if settings.password else None
        client.username_pw_set(settings.username, password)
    if settings.tls is not None:
        tls = settings.tls
        client.tls_set(ca_certs=str(tls.ca_file) if tls.ca_file else None,
                       certfile=str(tls.cert_file) if tls.cert_file else None,
                       keyfile=str(tls.key_file) if tls.key_file else None,
                       cert_reqs=ssl.CERT_REQUIRED if tls.verify else ssl.CERT_NONE)
        client.tls_insecure_set(not tls.verify)
    topics = Topics(settings.topic_prefix)
    client.will_set(topics.status(service),
                    Status(service, "offline", reason="connection lost").to_payload(),
                    qos=1, retain=True)
    client.reconnect_delay_set(min_delay=max(1, round(settings.reconnect_min_s)),
                               max_delay=max(1, round(settings.reconnect_max_s)))
    client.max_inflight_messages_set(settings.max_inflight)
    client.on_socket_open = _disable_nagle

    def handle_connect(client: paho.Client, _userdata, _flags, reason_code, _props) -> None:
        if reason_code.is_failure:
            log.warning("mqtt connect refused: %s", refusal_message(settings, str(reason_code)))
            return
        log.info("mqtt connected to %s:%s as %s", settings.host, settings.port, cid)
        for topic, qos in subscriptions:
            client.subscribe(topic, qos=qos)
        client.publish(topics.status(service),
                       Status(service, "online", ts=time.time()).to_payload(), qos=1, retain=True)
        if on_connected is not None:
            on_connected(client)

    def handle_disconnect(_client, _userdata, _flags, reason_code, _props) -> None:
        log.warning("mqtt disconnected from %s:%s: %s", settings.host, settings.port,
                    reason_code)

    client.on_connect = handle_connect
    client.on_disconnect = handle_disconnect
    return client


def connect(client: paho.Client, settings: MqttSettings, timeout_s: float = 10.0) -> None:
    """Connect and start the network thread; wait for CONNACK or raise MqttError.

    The first connection must succeed (a typo in the host should fail fast); later
    disconnects are retried by paho with the configured capped backoff.
    """
    connected = threading.Event()
    refused: list[str] = []
    previous = client.on_connect

    def on_first_connect(c, userdata, flags, reason_code, props) -> None:
        if reason_code.is_failure:
            refused.append(str(reason_code))
        if previous is not None:
            previous(c, userdata, flags, reason_code, props)
        connected.set()

    client.on_connect = on_first_connect
    try:
        client.connect(settings.host, settings.port, keepalive=settings.keepalive_s)
    except (OSError, ssl.SSLError) as exc:
        client.on_connect = previous
        raise MqttError(f"cannot connect to MQTT broker at {settings.host}:{settings.port}: "
                        f"{exc}") from exc
    client.loop_start()
    ok = connected.wait(timeout_s)
    client.on_connect = previous
    if refused or not ok:
        client.loop_stop()
        client.disconnect()
        if not refused:
            raise MqttError(f"MQTT broker at {settings.host}:{settings.port} did not answer "
                            f"the connection of {settings.username or 'anonymous'} within "
                            f"{timeout_s:.0f} s")
        raise MqttError(refusal_message(settings, refused[0]))


def refusal_message(settings: MqttSettings, reason: str) -> str:
    """Why the broker said no, and what to change; a missing password is not a wrong one.

    MQTT 3.1.1 answers both with "Not authorized", so what we sent tells them apart.

    >>> from pydantic import SecretStr
    >>> print(refusal_message(MqttSettings(username="alerting"), "Not authorized"))
    MQTT broker at 127.0.0.1:1883 refused alerting: Not authorized: no password is set for user 'alerting' (set IOTWATCH__MQTT__PASSWORD or mqtt.password_file)
    >>> print(refusal_message(MqttSettings(username="alerting", password=SecretStr("x")),
    ...                       "Not authorized"))
    MQTT broker at 127.0.0.1:1883 refused alerting: Not authorized: the password of user 'alerting' is wrong, or the broker does not know that user
    """
    where = f"MQTT broker at {settings.host}:{settings.port}"
    user = settings.username
    if user is None:
        hint = "no mqtt.username is set and the broker does not allow anonymous clients"
    elif settings.password is None or not settings.password.get_secret_value():
        hint = (f"no password is set for user {user!r} (set IOTWATCH__MQTT__PASSWORD or "
                "mqtt.password_file)")
    elif reason.lower() in ("not authorized", "bad user name or password"):
        hint = f"the password of user {user!r} is wrong, or the broker does not know that user"
    else:
        return f"{where} refused {user}: {reason}"
    return f"{where} refused {user or 'anonymous'}: {reason}: {hint}"


def publish_status(client: paho.Client, settings: MqttSettings, service: str,
                   state: str, reason: str | None = None) -> paho.MQTTMessageInfo:
    """Publish the retained status of ``service`` (``online`` or ``offline``)."""
    topic = Topics(settings.topic_prefix).status(service)
    payload = Status(service, state, ts=time.time(), reason=reason).to_payload()  # type: ignore[arg-type]
    return client.publish(topic, payload, qos=1, retain=True)


def _disable_nagle(_client, _userdata, sock) -> None:
    # A non-TCP socket has nothing to tune.
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def ack_many(client: paho.Client, acks: Sequence[tuple[int, int]]) -> None:
    """Acknowledge received messages, ``(mid, qos)`` each, with manual acks.

    ``Client.ack`` queues one packet per message and wakes the network thread with a
    syscall each time: at ~8,000 messages/s that was ~45 % of the detector's write thread
    (py-spy). QoS 1 acks of an MQTT 3.1.1 client go as one queued write of all their
    PUBACK packets (4 bytes each) instead; anything else goes through ``Client.ack``.
    """
    puback = [mid for mid, qos in acks if qos == 1]
    queue = getattr(client, "_packet_queue", None)
    if puback and client.protocol == paho.MQTTv311 and client._manual_ack and queue:  # noqa: SLF001
        packet = b"".join([_PUBACK.pack(paho.PUBACK, 2, mid) for mid in puback])
        queue(paho.PUBACK, packet, puback[-1], 1)
    else:
        for mid in puback:
            client.ack(mid, 1)
    for mid, qos in acks:
        if qos != 1:
            client.ack(mid, qos)
