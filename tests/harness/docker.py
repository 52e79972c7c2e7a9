"""The Docker path: the same servers as containers, used only when asked for.

``IOTWATCH_TEST_USE_DOCKER=1`` with a working Docker engine (``docker info``) runs
eclipse-mosquitto:2 with the project's mosquitto/ files mounted unchanged (their
paths are the image's layout), influxdb:1.8 (the 1.x HTTP API the tests speak) and
VictoriaMetrics, each published on 127.0.0.1 only. Everything else in the harness
is the same. Not exercised where there is no Docker engine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .influx import InfluxDB1
from .mosquitto import (
    PLAIN_PORT,
    PROJECT_ACL,
    PROJECT_CONF,
    TLS_PORT,
    Broker,
    Credentials,
    render_config,
)
from .process import HarnessError, free_port, http_ready, port_open
from .victoria import FLAGS as VM_FLAGS
from .victoria import VictoriaMetrics

MOSQUITTO_IMAGE = "eclipse-mosquitto:2"
INFLUXDB_IMAGE = "influxdb:1.8"
VM_IMAGE = "victoriametrics/victoria-metrics:v1.93.16"
STARTUP_TIMEOUT_S = 180.0  # includes pulling the image


def docker_requested() -> bool:
    """True when the environment asks for containers instead of local binaries."""
    if os.environ.get("IOTWATCH_TEST_USE_DOCKER") != "1":
        return False
    try:
        ok = subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        raise HarnessError("IOTWATCH_TEST_USE_DOCKER=1 but `docker info` fails: start the Docker "
                           "engine or unset IOTWATCH_TEST_USE_DOCKER to use local servers")
    return True


class ContainerServer:
    """A container with the start/stop/is_running/close interface of ServerProcess."""

    def __init__(self, name: str, container: Any, ready: Callable[[], bool]) -> None:
        self.name = name
        self.container = container
        self.ready = ready
        self._created = False

    def is_running(self) -> bool:
        if not self._created:
            return False
        wrapped = self.container.get_wrapped_container()
        wrapped.reload()
        return wrapped.status == "running"

    def start(self) -> None:
        if self._created:
            self.container.get_wrapped_container().start()
        else:
            self.container.start()
            self._created = True
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self.ready():
            if time.monotonic() >= deadline:
                logs = b"".join(self.container.get_logs()).decode(errors="replace")
                raise HarnessError(f"{self.name} container not ready\n{logs[-4000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self._created:
            self.container.get_wrapped_container().stop(timeout=30)

    def close(self) -> None:
        if self._created:
            self.container.stop()  # testcontainers: stop and remove
            self._created = False


def _container(image: str) -> Any:
    from testcontainers.core.container import DockerContainer  # only on this path

    return DockerContainer(image)


def start_docker_broker(workdir: Path, credentials: Credentials,
                        options: dict[str, str] | None = None) -> Broker:
    config = workdir / "config"
    (config / "certs").mkdir(parents=True, exist_ok=True)
    text = PROJECT_CONF.read_text()
    if options:  # the same listeners inside the container, these options changed
        text = render_config(text, ports={PLAIN_PORT: PLAIN_PORT, TLS_PORT: TLS_PORT},
                             paths=options, host="0.0.0.0")
    (config / "mosquitto.conf").write_text(text)
    shutil.copyfile(PROJECT_ACL, config / "acl")
    shutil.copyfile(credentials.password_file, config / "passwd")
    for name in ("ca.crt", "server.crt", "server.key"):
        shutil.copyfile(credentials.cert_dir / name, config / "certs" / name)
    port, tls_port = free_port(), free_port()
    container = (_container(MOSQUITTO_IMAGE)
                 .with_volume_mapping(str(config), "/mosquitto/config", "rw")
                 .with_bind_ports(1883, ("127.0.0.1", port))
                 .with_bind_ports(8883, ("127.0.0.1", tls_port)))
    server = ContainerServer("mosquitto", container, lambda: port_open("127.0.0.1", port))
    server.start()
    return Broker(host="127.0.0.1", port=port, tls_port=tls_port, credentials=credentials,
                  server=server)


def start_docker_influxdb(workdir: Path) -> InfluxDB1:
    port = free_port()
    container = (_container(INFLUXDB_IMAGE)
                 .with_env("INFLUXDB_REPORTING_DISABLED", "true")
                 .with_env("INFLUXDB_DATA_QUERY_LOG_ENABLED", "false")
                 .with_bind_ports(8086, ("127.0.0.1", port)))
    url = f"http://127.0.0.1:{port}"
    server = ContainerServer("influxdb", container, lambda: http_ready(f"{url}/ping"))
    server.start()
    influx = InfluxDB1(url, database="", server=server)
    influx.database = influx.create_database("iotwatch_test")
    return influx


def start_docker_victoria_metrics(workdir: Path) -> VictoriaMetrics:
    port = free_port()
    container = (_container(VM_IMAGE).with_command(" ".join(VM_FLAGS))
                 .with_bind_ports(8428, ("127.0.0.1", port)))
    url = f"http://127.0.0.1:{port}"
    server = ContainerServer("victoria-metrics", container, lambda: http_ready(f"{url}/health"))
    server.start()
    return VictoriaMetrics(url, server=server)
