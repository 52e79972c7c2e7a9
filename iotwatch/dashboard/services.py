"""The services' HTTP APIs as the dashboard reads them: health, metrics, streams, alerts.

Each read answers even when the service is down (``reachable`` false, the reason in
``problems``), so one stopped service never blanks the page. Throughput is the change of
the service's Prometheus counters between two reads of this process.

>>> counters = parse_metrics('# TYPE x_total counter\\nx_total{reason="bad_json"} 3.0\\n'
...                          'x_total{reason="too_large"} 1.0\\nup 1\\n')
>>> counters[("x_total", (("reason", "bad_json"),))], counters[("up", ())]
(3.0, 1.0)
>>> by_label(counters, "x_total", "reason")
{'bad_json': 3.0, 'too_large': 1.0}
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Sample = tuple[str, tuple[tuple[str, str], ...]]

DETECTOR_READINGS = "iotwatch_detector_readings_total"
DETECTOR_REJECTED = "iotwatch_detector_rejected_total"
DETECTOR_WRITTEN = "iotwatch_detector_points_written_total"
ALERTING_REJECTED = "iotwatch_alerting_alerts_rejected_total"
ALERTING_DELIVERED = "iotwatch_alerting_notifications_delivered_total"
ALERTING_FAILED = "iotwatch_alerting_notifications_failed_total"


@dataclass
class ServiceStatus:
    """One service as read just now."""

    name: str
    url: str | None
    reachable: bool = False
    healthy: bool = False
    problems: list[str] = field(default_factory=list)
    health: dict[str, Any] = field(default_factory=dict)
    counters: dict[Sample, float] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)   # per second since the last read

    @property
    def state(self) -> str:
        if self.url is None:
            return "not configured"
        if not self.reachable:
            return "unreachable"
        return "ok" if self.healthy else "degraded"


def parse_metrics(text: str) -> dict[Sample, float]:
    """Prometheus exposition text -> ``{(sample name, sorted labels): value}``."""
    samples: dict[Sample, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return samples


def by_label(counters: dict[Sample, float], name: str, label: str) -> dict[str, float]:
    """The samples of ``name`` keyed by one label's value."""
    return {dict(labels).get(label, ""): value for (sample, labels), value in counters.items()
            if sample == name}


def total(counters: dict[Sample, float], name: str) -> float:
    return sum(value for (sample, _), value in counters.items() if sample == name)


class ServiceApi:
    """Reads one service's ``/health`` and ``/metrics`` (and more, by ``get``)."""

    def __init__(self, name: str, url: str | None, rate_of: dict[str, str],
                 timeout_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.url = url.rstrip("/") if url else None
        self.rate_of = rate_of          # rate name -> counter sample name
        self.timeout_s = timeout_s
        self.clock = clock
        self._lock = threading.Lock()
        self._previous: tuple[float, dict[str, float]] | None = None

    def get(self, path: str) -> tuple[int, Any]:
        """``(status, decoded body)``; status 0 when the service cannot be reached."""
        if self.url is None:
            return 0, None
        try:
            with urllib.request.urlopen(self.url + path, timeout=self.timeout_s) as response:
                return response.status, _decode(response.read(), response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, _decode(exc.read(), exc.headers)
        except (OSError, ValueError) as exc:
            return 0, str(getattr(exc, "reason", exc))

    def status(self) -> ServiceStatus:
        status = ServiceStatus(self.name, self.url)
        if self.url is None:
            return status
        code, health = self.get("/health")
        if code == 0:
            status.problems = [f"no answer from {self.url}/health: {health}"]
            return status
        status.reachable = True
        status.health = health if isinstance(health, dict) else {}
        status.healthy = code == 200
        status.problems = [str(p) for p in status.health.get("problems") or []]
        if not status.healthy and not status.problems:
            status.problems = [f"/health answered {code}"]
        code, text = self.get("/metrics")
        if code == 200 and isinstance(text, str):
            status.counters = parse_metrics(text)
            status.rates = self._rates(status.counters)
        return status

    def _rates(self, counters: dict[Sample, float]) -> dict[str, float]:
        now = self.clock()
        totals = {rate: total(counters, sample) for rate, sample in self.rate_of.items()}
        with self._lock:
            previous, self._previous = self._previous, (now, totals)
        if previous is None or now <= previous[0]:
            return {}
        elapsed = now - previous[0]
        return {rate: max(0.0, (value - previous[1].get(rate, 0.0)) / elapsed)
                for rate, value in totals.items()}


class DetectorApi(ServiceApi):
    def __init__(self, url: str | None, **kwargs: Any) -> None:
        super().__init__("detector", url, {"readings/s": DETECTOR_READINGS,
                                           "points/s": DETECTOR_WRITTEN}, **kwargs)

    def streams(self) -> dict[str, dict[str, Any]] | None:
        """``/streams``: the engine's state per stream, None when unreachable."""
        code, body = self.get("/streams")
        return body.get("streams") if code == 200 and isinstance(body, dict) else None


class AlertingApi(ServiceApi):
    def __init__(self, url: str | None, **kwargs: Any) -> None:
        super().__init__("alerting", url, {"notifications/s": ALERTING_DELIVERED}, **kwargs)

    def alerts(self) -> list[dict[str, Any]] | None:
        """``/alerts``: what the alerting service holds, with receivers and silences."""
        code, body = self.get("/alerts")
        return body if code == 200 and isinstance(body, list) else None


def _decode(body: bytes, headers: Any) -> Any:
    text = body.decode("utf-8", errors="replace")
    if "json" in (headers.get("Content-Type") or ""):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text
