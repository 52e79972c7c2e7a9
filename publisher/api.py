"""The publisher's HTTP endpoints (served by ``iotwatch.httpserver`` when ``http.enabled``).

- ``GET /health`` (and ``/health/ready``): 200 while connected to the broker, else 503;
  JSON with the counters.
- ``GET /health/live``: 200 while the publishing (main) thread runs: restart on this one.
- ``GET /metrics``: the same counters in Prometheus text format.

>>> from publisher.progress import Progress
>>> table = routes(lambda: Progress(sent=5, faults=1), connected=lambda: True, readings=lambda: 5)
>>> response = table[("GET", "/health")](None)
>>> response.status, response.body
(200, b'{"status":"ok","mqtt_connected":true,"readings":5,"sent":5,"in_flight":0,"buffered":0,"dropped":0,"reconnects":0,"faults":1}')
>>> b"iotwatch_publisher_messages_sent_total 5.0" in table[("GET", "/metrics")](None).body
True
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from iotwatch.httpserver import Handler, Request, Response
from iotwatch.liveness import Vital, check_liveness
from publisher.progress import Progress


def routes(snapshot: Callable[[], Progress], connected: Callable[[], bool],
           readings: Callable[[], int]) -> dict[tuple[str, str], Handler]:
    """The route table for ``iotwatch.httpserver.serve``."""
    registry = CollectorRegistry()
    registry.register(_Collector(snapshot, connected, readings))

    def health(_request: Request) -> Response:
        progress, up = snapshot(), connected()
        return Response.json({"status": "ok" if up else "unavailable", "mqtt_connected": up,
                              "readings": readings(), "sent": progress.sent,
                              "in_flight": progress.in_flight, "buffered": progress.buffered,
                              "dropped": progress.dropped, "reconnects": progress.reconnects,
                              "faults": progress.faults}, 200 if up else 503)

    def live(_request: Request) -> Response:
        ok, body = check_liveness([Vital("main", threading.main_thread())])
        return Response.json(body, 200 if ok else 503)

    return {("GET", "/health"): health, ("GET", "/health/ready"): health,
            ("GET", "/health/live"): live,
            ("GET", "/metrics"): lambda _request: Response.metrics(registry)}


class _Collector:
    """Reads the counters at scrape time: nothing to keep in step."""

    def __init__(self, snapshot: Callable[[], Progress], connected: Callable[[], bool],
                 readings: Callable[[], int]) -> None:
        self._snapshot = snapshot
        self._connected = connected
        self._readings = readings

    def collect(self) -> Iterator[Metric]:
        progress = self._snapshot()
        prefix = "iotwatch_publisher_"
        yield CounterMetricFamily(prefix + "readings", "Readings produced",
                                  value=self._readings())
        yield CounterMetricFamily(prefix + "messages_sent", "Messages the broker acknowledged",
                                  value=progress.sent)
        yield CounterMetricFamily(prefix + "messages_dropped",
                                  "Messages dropped: buffer full while the broker was away",
                                  value=progress.dropped)
        yield CounterMetricFamily(prefix + "reconnects", "Reconnections to the broker",
                                  value=progress.reconnects)
        yield CounterMetricFamily(prefix + "faults_injected", "Faults injected (labels)",
                                  value=progress.faults)
        yield GaugeMetricFamily(prefix + "in_flight", "Messages awaiting their PUBACK",
                                value=progress.in_flight)
        yield GaugeMetricFamily(prefix + "buffered", "Messages waiting for the broker",
                                value=progress.buffered)
        yield GaugeMetricFamily(prefix + "mqtt_connected", "1 while connected to the broker",
                                value=float(self._connected()))
