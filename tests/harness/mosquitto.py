"""A real Mosquitto for tests, running the project's own mosquitto/ configuration.

``render_config`` rewrites only listener ports/addresses and file paths of
``mosquitto/mosquitto.conf``; everything else (authentication, the ACL, queue limits,
nodelay) is what production runs. Users and passwords come from the project's
``make-passwd.sh`` and certificates from ``make-dev-certs.sh``.

>>> conf = "listener 1883\\npassword_file /mosquitto/config/passwd\\nmax_queued_messages 9\\n"
>>> print(render_config(conf, ports={1883: 2000}, paths={"password_file": "/t/passwd"},
...                     host="127.0.0.1"), end="")
listener 2000 127.0.0.1
password_file /t/passwd
max_queued_messages 9
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .process import HarnessError, ServerProcess, find_binary, free_port, port_open

PROJECT_DIR = Path(__file__).resolve().parents[2]
MOSQUITTO_DIR = PROJECT_DIR / "mosquitto"
PROJECT_CONF = MOSQUITTO_DIR / "mosquitto.conf"
PROJECT_ACL = MOSQUITTO_DIR / "acl"

SERVICE_ROLES = ("publisher", "detector", "alerting", "monitor")
SENSORS = ("sensor-a", "sensor-b")
PLAIN_PORT, TLS_PORT = 1883, 8883  # the listeners of the project file
CONNECT_TIMEOUT_S = 30.0

# Mosquitto's own defaults for its queue limits: what a stock mosquitto.conf (or none) runs
# with, and what a new user's broker drops readings at (``stock_mosquitto``).
STOCK_QUEUE_LIMITS = {"max_queued_messages": "1000", "max_queued_bytes": "0",
                      "max_inflight_messages": "20"}

# Options whose value is a path; each must appear in the project file.
_PATH_OPTIONS = ("password_file", "acl_file", "persistence_location",
                 "cafile", "certfile", "keyfile")


@dataclass(frozen=True)
class Credentials:
    """Passwords for every role and sensor, the password file, and TLS material."""

    passwords: dict[str, str]
    password_file: Path
    cert_dir: Path

    @property
    def ca_file(self) -> Path:
        return self.cert_dir / "ca.crt"


def make_credentials(directory: Path) -> Credentials:
    """Random passwords for every role, written by the project's own scripts.

    ``directory`` must be readable by the broker's user: see ``broker_private_dir``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    passwords = {name: secrets.token_urlsafe(16) for name in (*SERVICE_ROLES, *SENSORS)}
    env = dict(os.environ)
    env.update({f"MQTT_{role.upper()}_PASSWORD": passwords[role] for role in SERVICE_ROLES})
    env["MQTT_SENSORS"] = " ".join(f"{name}:{passwords[name]}" for name in SENSORS)
    password_file = directory / "passwd"
    cert_dir = directory / "certs"
    find_binary("mosquitto_passwd", "mosquitto")
    _run([str(MOSQUITTO_DIR / "make-passwd.sh"), str(password_file)], env)
    _run([str(MOSQUITTO_DIR / "make-dev-certs.sh"), str(cert_dir)], env)
    _give_to_broker_user(password_file, cert_dir / "ca.crt", cert_dir / "server.crt",
                         cert_dir / "server.key")
    return Credentials(passwords, password_file, cert_dir)


def render_config(text: str, *, ports: dict[int, int], paths: dict[str, str],
                  host: str) -> str:
    """The project's configuration with listeners on ``host`` and the given paths.

    ``ports`` maps each listener port of the file to the port to use; ``paths`` maps
    option names to new values. Every option in ``paths`` and every listener must be
    found, so a change to the project file cannot silently escape the tests.
    """
    seen_listeners: set[int] = set()
    seen_options: set[str] = set()
    lines = []
    for line in text.splitlines():
        words = line.split()
        option = words[0] if words and not words[0].startswith("#") else ""
        if option == "listener":
            original = int(words[1])
            if original not in ports:
                raise HarnessError(f"{PROJECT_CONF}: listener {original} is not known to the "
                                   "test harness; add it to tests/harness/mosquitto.py")
            seen_listeners.add(original)
            line = f"listener {ports[original]} {host}"
        elif option in paths:
            seen_options.add(option)
            line = f"{option} {paths[option]}"
        lines.append(line)
    missing = [f"listener {p}" for p in ports if p not in seen_listeners]
    missing += [name for name in paths if name not in seen_options]
    if missing:
        raise HarnessError(f"{PROJECT_CONF} no longer has {', '.join(missing)}; "
                           "update tests/harness/mosquitto.py to match")
    return "\n".join(lines) + "\n"


class Broker:
    """A Mosquitto the tests can reach, log in to as any role, stop and restart."""

    host = "127.0.0.1"

    def __init__(self, *, host: str, port: int, tls_port: int | None,
                 credentials: Credentials, server: Any = None,
                 runtime_dir: Path | None = None) -> None:
        self.host = host
        self.port = port
        self.tls_port = tls_port
        self.credentials = credentials
        self.server = server  # None for an external broker the tests do not control
        self.runtime_dir = runtime_dir  # removed by close()

    def __repr__(self) -> str:
        return f"<Broker {self.host}:{self.port} tls={self.tls_port} server={self.server!r}>"

    @property
    def ca_file(self) -> Path:
        return self.credentials.ca_file

    @property
    def client_cert(self) -> Path:
        return self.credentials.cert_dir / "client.crt"

    @property
    def client_key(self) -> Path:
        return self.credentials.cert_dir / "client.key"

    def password(self, role: str) -> str:
        """The password of a service role or sensor user (``sensor-a``, ``sensor-b``)."""
        try:
            return self.credentials.passwords[role]
        except KeyError:
            known = ", ".join(self.credentials.passwords)
            raise HarnessError(f"no MQTT user {role!r} in the test broker; users: {known}") \
                from None

    def mqtt_section(self, role: str, **overrides: Any) -> dict[str, Any]:
        """A ready ``mqtt:`` config section for ``role``, without the password.

        ``tls=True`` points it at the TLS listener with the development CA; any other
        keyword overrides that key (``client_id=..., topic_prefix=...``).
        """
        self.password(role)  # an unknown role fails here, not in the service
        section: dict[str, Any] = {"host": self.host, "port": self.port, "username": role}
        if overrides.pop("tls", False):
            section["port"] = self._tls_port()
            section["tls"] = {"ca_file": str(self.ca_file)}
        section.update(overrides)
        return section

    def env(self, role: str) -> dict[str, str]:
        """Environment for a service subprocess logging in as ``role`` (the password)."""
        return {"IOTWATCH__MQTT__PASSWORD": self.password(role)}

    def connect(self, role: str | None, client_id: str | None = None, clean: bool = True, *,
                tls: bool = False, password: str | None = None,
                protocol: int = mqtt.MQTTv311, keepalive: int = 30,
                on_message: Callable[..., None] | None = None,
                timeout: float = CONNECT_TIMEOUT_S, **client_kwargs: Any) -> mqtt.Client:
        """A paho client logged in as ``role``, connected, its network loop running.

        ``role=None`` connects anonymously; ``password`` replaces the role's password
        (for refusal tests); ``clean=False`` keeps a persistent session (MQTT 3.1.1
        clean session off, or MQTT 5 clean start off with a session that never
        expires). ``on_message`` is set before connecting, so messages the broker
        queued for a persistent session are not missed (paho acknowledges and drops
        messages that arrive with no callback). Other keywords go to
        ``paho.mqtt.client.Client``. Raises
        HarnessError, saying why, when the broker refuses the connection.
        """
        v5 = protocol == mqtt.MQTTv5
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-{role or 'anonymous'}-{uuid.uuid4().hex[:8]}",
            clean_session=None if v5 else clean, protocol=protocol, **client_kwargs)
        if role is not None:
            client.username_pw_set(role, self.password(role) if password is None else password)
        port = self.port
        if tls:
            port = self._tls_port()
            client.tls_set(ca_certs=str(self.ca_file))
        outcome: dict[str, Any] = {}
        connected = threading.Event()

        def on_connect(_client, _userdata, _flags, reason_code, _properties):
            outcome["reason"] = reason_code
            connected.set()

        client.on_connect = on_connect
        if on_message is not None:
            client.on_message = on_message
        extra: dict[str, Any] = {}
        if v5:
            extra["clean_start"] = clean
            if not clean:
                properties = Properties(PacketTypes.CONNECT)
                properties.SessionExpiryInterval = 0xFFFFFFFF
                extra["properties"] = properties
        who = f"as {role!r}" if role else "anonymously"
        where = f"{self.host}:{port}"
        try:
            client.connect(self.host, port, keepalive=keepalive, **extra)
        except OSError as exc:
            raise HarnessError(f"MQTT connection {who} to {where} failed: {exc}") from exc
        client.loop_start()
        if not connected.wait(timeout):
            client.loop_stop()
            client.disconnect()
            raise HarnessError(f"MQTT connection {who} to {where}: no CONNACK in {timeout:g}s")
        reason = outcome["reason"]
        if reason.is_failure:
            client.loop_stop()
            client.disconnect()
            raise HarnessError(f"MQTT connection {who} to {where} refused: {reason}")
        client.on_connect = None
        return client

    def publish(self, role: str, topic: str, payload: bytes | str, qos: int = 1,
                retain: bool = False, timeout: float = CONNECT_TIMEOUT_S) -> None:
        """Publish one message as ``role`` and return once the broker has it (QoS 1: PUBACK).

        A publish the ACL denies is dropped silently by the broker (MQTT 3.1.1) and
        still returns normally.
        """
        client = self.connect(role)
        try:
            info = client.publish(topic, payload, qos=qos, retain=retain)
            info.wait_for_publish(timeout)
            if not info.is_published():
                raise HarnessError(f"publish to {topic!r} as {role!r} not acknowledged "
                                   f"within {timeout:g}s")
        finally:
            client.disconnect()
            client.loop_stop()

    def is_running(self) -> bool:
        if self.server is None:
            return port_open(self.host, self.port)
        return self.server.is_running()

    def start(self) -> None:
        self._controlled().start()

    def stop(self) -> None:
        """Stop the broker; it saves persistent sessions and queued messages first."""
        self._controlled().stop()

    def restart(self) -> None:
        """Stop and start again on the same ports with the same persistence."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop for good and release the server (the fixtures' teardown)."""
        if self.server is not None:
            self.server.close()
        if self.runtime_dir is not None:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)

    def _controlled(self) -> Any:
        if self.server is None:
            raise HarnessError("the tests use an external MQTT broker (IOTWATCH_TEST_MQTT_URL); "
                               "it cannot be stopped or started: use fresh_mosquitto")
        return self.server

    def _tls_port(self) -> int:
        if self.tls_port is None:
            raise HarnessError("this broker has no TLS listener "
                               "(set IOTWATCH_TEST_MQTT_TLS_PORT for an external broker)")
        return self.tls_port


def start_local_broker(workdir: Path, credentials: Credentials, attempts: int = 3,
                       options: dict[str, str] | None = None) -> Broker:
    """Run the Debian ``mosquitto`` with the project configuration.

    ``options`` replaces the values of options of the project file (each must be there),
    e.g. ``STOCK_QUEUE_LIMITS``. The rendered configuration and the log go to ``workdir``; the files the broker
    itself reads and writes (ACL, persistence) go to a private directory of the
    broker's user (see ``broker_private_dir``), removed by ``Broker.close()``.
    """
    binary = find_binary("mosquitto", "mosquitto")
    workdir.mkdir(parents=True, exist_ok=True)
    for attempt in range(attempts):
        port, tls_port = free_port(), free_port()
        broker = _prepare_local(binary, workdir, credentials, port, tls_port, options or {})
        try:
            broker.start()
            return broker
        except HarnessError as exc:
            broker.close()
            # Another process may have taken a port between free_port() and bind().
            if "address already in use" not in str(exc).lower() or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def broker_private_dir(prefix: str) -> Path:
    """A new directory only the broker's user (and root) can enter.

    Started as root, Mosquitto 2.0 drops privileges to the ``mosquitto`` user before it
    reads the password and ACL files, certificates and persistence, so those cannot
    live under pytest's temporary directory (mode 0700, owned by root). Newer 2.0.x
    releases also warn about such files being readable by other users.
    """
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    user = _broker_user()
    if user is not None:
        os.chown(directory, user.pw_uid, user.pw_gid)
    return directory


def _broker_user() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None  # the broker runs as us and reads our files
    try:
        return pwd.getpwnam("mosquitto")
    except KeyError:
        return pwd.getpwnam("nobody")  # what Mosquitto falls back to


def _prepare_local(binary: str, workdir: Path, credentials: Credentials, port: int,
                   tls_port: int, options: dict[str, str]) -> Broker:
    runtime = broker_private_dir("iotwatch-mosquitto-")
    data_dir = runtime / "data"
    data_dir.mkdir()
    acl_file = runtime / "acl"
    shutil.copyfile(PROJECT_ACL, acl_file)
    os.chmod(acl_file, 0o600)
    _give_to_broker_user(acl_file, data_dir)
    certs = credentials.cert_dir
    conf = render_config(
        PROJECT_CONF.read_text(), host=Broker.host, ports={PLAIN_PORT: port, TLS_PORT: tls_port},
        paths={"password_file": str(credentials.password_file), "acl_file": str(acl_file),
               "persistence_location": f"{data_dir}/", "cafile": str(certs / "ca.crt"),
               "certfile": str(certs / "server.crt"), "keyfile": str(certs / "server.key"),
               **options})
    conf_file = workdir / "mosquitto.conf"
    conf_file.write_text(conf)
    server = ServerProcess(
        "mosquitto", [binary, "-c", str(conf_file)], workdir / "mosquitto.log",
        # Mosquitto opens every listener before it accepts on any: one port will do
        # (probing the TLS port with plain TCP only fills the log with SSL errors).
        ready=lambda: port_open(Broker.host, port))
    return Broker(host=Broker.host, port=port, tls_port=tls_port, credentials=credentials,
                  server=server, runtime_dir=runtime)


def _give_to_broker_user(*paths: Path) -> None:
    user = _broker_user()
    if user is not None:
        for path in paths:
            os.chown(path, user.pw_uid, user.pw_gid)


def _run(argv: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise HarnessError(f"{' '.join(argv)} failed (exit {result.returncode}):\n"
                           f"{result.stdout}{result.stderr}")

