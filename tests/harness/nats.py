"""A real NATS server with JetStream and its MQTT listener, running the project's
``config/nats/nats-server.conf`` (subject mapping included) with only the listeners and
the store directory rewritten (``detector.distributed.natsconf``).
"""

from __future__ import annotations

from pathlib import Path

from detector.distributed.natsconf import PROJECT_CONF, render_config

from .process import HarnessError, ServerProcess, find_binary, free_port, http_ready


class NatsServer:
    """A running nats-server: ``.url`` (NATS), ``.mqtt_port``, ``.monitor_url``."""

    def __init__(self, server: ServerProcess, port: int, mqtt_port: int,
                 monitor_port: int) -> None:
        self.server = server
        self.port = port
        self.mqtt_port = mqtt_port
        self.monitor_port = monitor_port
        self.host = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}"

    def mqtt_section(self, **overrides: object) -> dict[str, object]:
        """An ``mqtt:`` config dict for a service talking MQTT to this server."""
        return {"host": "127.0.0.1", "port": self.mqtt_port, **overrides}

    def is_running(self) -> bool:
        return self.server.is_running()

    def close(self) -> None:
        self.server.close()


def start_nats(workdir: Path, attempts: int = 3) -> NatsServer:
    """Run Debian's ``nats-server`` with the project's configuration on free ports."""
    binary = find_binary("nats-server", "nats-server")
    workdir.mkdir(parents=True, exist_ok=True)
    for attempt in range(attempts):
        client, monitor, mqtt = free_port(), free_port(), free_port()
        conf = workdir / "nats-server.conf"
        conf.write_text(render_config(PROJECT_CONF.read_text(), client=client,
                                      monitor=monitor, mqtt=mqtt, store=str(workdir / "js")))
        url = f"http://127.0.0.1:{monitor}/healthz?js-enabled-only=true"
        server = ServerProcess("nats-server", [binary, "-c", str(conf)],
                               workdir / "nats-server.log", ready=lambda url=url: http_ready(url))
        try:
            server.start()
        except HarnessError as exc:
            if "address already in use" not in str(exc).lower() or attempt == attempts - 1:
                raise
            continue
        return NatsServer(server, client, mqtt, monitor)
    raise AssertionError("unreachable")
