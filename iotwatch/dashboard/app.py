"""The dashboard, wired in one place: readers -> page -> callbacks -> a local web server.

    points     InfluxDB 1.x / 2.x or the file sink's file       sources
    services   the detector's and alerting service's HTTP APIs  services
    dead letters  <prefix>/deadletter/# on the broker (optional)  deadletters
    page       layout; refreshed by callbacks                   layout, callbacks
    server     werkzeug's threaded WSGI server on loopback, in a thread of this process

``iotwatch.dashboard.cli`` and the demo call ``start``; nothing else imports this module.
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from dash import Dash
from werkzeug.serving import BaseWSGIServer, make_server

from iotwatch.config import InfluxSettings, MqttSettings
from iotwatch.dashboard import callbacks, layout
from iotwatch.dashboard.deadletters import DeadLetterTail
from iotwatch.dashboard.services import AlertingApi, DetectorApi
from iotwatch.dashboard.sources import open_source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DashboardOptions:
    influxdb: InfluxSettings | None = None   # where the detector writes (v1 or v2)
    points_file: Path | None = None          # the file sink's file instead of InfluxDB
    detector_url: str | None = None
    alerting_url: str | None = None
    mqtt: MqttSettings | None = None         # a user that may read <prefix>/deadletter/#
    host: str = "127.0.0.1"
    port: int = 8050
    refresh_s: float = 2.0


class Dashboard:
    """A running dashboard: ``url``, ``close()``; ``serve_forever()`` blocks."""

    def __init__(self, server: BaseWSGIServer, url: str,
                 dead_letters: DeadLetterTail | None = None) -> None:
        self._server = server
        self.url = url
        self._dead_letters = dead_letters
        self._thread: threading.Thread | None = None

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def in_background(self) -> Dashboard:
        self._thread = threading.Thread(target=self._server.serve_forever, name="dashboard",
                                        daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(10)
        self._server.server_close()
        if self._dead_letters is not None:
            self._dead_letters.close()


def build_app(options: DashboardOptions, dead_letters: DeadLetterTail | None = None) -> Dash:
    """The Dash app reading where ``options`` says."""
    readers = callbacks.Readers(
        points=open_source(options.influxdb, options.points_file),
        detector=DetectorApi(options.detector_url),
        alerting=AlertingApi(options.alerting_url), dead_letters=dead_letters)
    app = Dash(__name__, title="iotwatch", update_title=None)
    app.layout = layout.page(readers.points.describe(), int(options.refresh_s * 1000))
    callbacks.register(app, readers)
    return app


def start(options: DashboardOptions) -> Dashboard:
    """Bind the server (port 0: any free port); serve with ``serve_forever`` or
    ``in_background``. OSError when the address cannot be bound, MqttError when the
    broker (``options.mqtt``) refuses."""
    dead_letters = DeadLetterTail(options.mqtt).start() if options.mqtt else None
    try:
        return _serve(build_app(options, dead_letters), options, dead_letters)
    except BaseException:
        if dead_letters is not None:
            dead_letters.close()
        raise


def _serve(app: Dash, options: DashboardOptions,
           dead_letters: DeadLetterTail | None) -> Dashboard:
    # Each request is one log line on werkzeug's logger: too chatty for a page that polls.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # Bound here, not by werkzeug: it answers a taken port with sys.exit(1).
    family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
    with socket.create_server((options.host, options.port), family=family) as listener:
        server = make_server(options.host, listener.getsockname()[1], app.server,
                             threaded=True, fd=listener.fileno())
    url = f"http://{options.host}:{server.port}/"
    log.info("dashboard on %s", url)
    return Dashboard(server, url, dead_letters)
