"""Servers named by environment variables, used instead of starting our own.

- ``IOTWATCH_TEST_MQTT_URL=mqtt://HOST:PORT``: a broker configured with the project's
  mosquitto/ files. Its passwords come from the variables make-passwd.sh reads
  (``MQTT_PUBLISHER_PASSWORD``, ``MQTT_DETECTOR_PASSWORD``, ``MQTT_ALERTING_PASSWORD``,
  ``MQTT_MONITOR_PASSWORD``, ``MQTT_SENSORS`` with ``sensor-a`` and ``sensor-b``).
  Optional ``IOTWATCH_TEST_MQTT_TLS_PORT`` and ``IOTWATCH_TEST_MQTT_CERT_DIR`` (a
  directory made by make-dev-certs.sh) for the TLS listener.
- ``IOTWATCH_TEST_INFLUXDB_URL=http://HOST:8086``: an InfluxDB with the 1.x HTTP API;
  the session creates (and drops) its own database there.
- ``IOTWATCH_TEST_VM_URL=http://HOST:8428``: a VictoriaMetrics.

>>> parse_mqtt_url("mqtt://10.0.0.5:1884")
('10.0.0.5', 1884)
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from .mosquitto import SENSORS, SERVICE_ROLES, Broker, Credentials
from .process import HarnessError

MQTT_URL = "IOTWATCH_TEST_MQTT_URL"
INFLUXDB_URL = "IOTWATCH_TEST_INFLUXDB_URL"
VM_URL = "IOTWATCH_TEST_VM_URL"


def parse_mqtt_url(url: str) -> tuple[str, int]:
    """Host and port of ``mqtt://HOST[:PORT]``."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise HarnessError(f"{MQTT_URL}={url!r}: expected mqtt://HOST:PORT")
    return parts.hostname, parts.port or 1883


def external_broker() -> Broker | None:
    """The broker named by IOTWATCH_TEST_MQTT_URL, or None when it is not set."""
    url = os.environ.get(MQTT_URL)
    if not url:
        return None
    host, port = parse_mqtt_url(url)
    passwords = {role: os.environ.get(f"MQTT_{role.upper()}_PASSWORD", "")
                 for role in SERVICE_ROLES}
    for entry in os.environ.get("MQTT_SENSORS", "").split():
        device, _, password = entry.partition(":")
        passwords[device] = password
    missing = [name for name in (*SERVICE_ROLES, *SENSORS) if not passwords.get(name)]
    if missing:
        raise HarnessError(f"{MQTT_URL} is set but there is no password for: {', '.join(missing)} "
                           "(set MQTT_<ROLE>_PASSWORD and MQTT_SENSORS as for make-passwd.sh)")
    tls_port = os.environ.get("IOTWATCH_TEST_MQTT_TLS_PORT")
    cert_dir = Path(os.environ.get("IOTWATCH_TEST_MQTT_CERT_DIR", "/nonexistent"))
    credentials = Credentials(passwords, password_file=Path("/nonexistent"), cert_dir=cert_dir)
    return Broker(host=host, port=port, tls_port=int(tls_port) if tls_port else None,
                  credentials=credentials)
