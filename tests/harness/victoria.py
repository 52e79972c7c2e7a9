"""A real VictoriaMetrics for tests (Debian's ``victoria-metrics``), written to over the
InfluxDB line protocol (``/api/v2/write``) and read back with PromQL or ``/api/v1/export``.

VictoriaMetrics maps measurement ``m`` with field ``f`` to the metric ``m_f``; tags
become labels.
"""

from __future__ import annotations

import math
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson

from .process import HarnessError, ServerProcess, find_binary, free_port, http_ready, wait_until

FLUSH_MARKER = "iotwatch_harness_flush"

# Written data must be queryable at once: no 30 s latency offset, no response cache,
# and any timestamp accepted (tests write fixed dates; the default keeps one month).
FLAGS = ("-search.latencyOffset=0s", "-search.disableCache", "-retentionPeriod=100y",
         "-loggerLevel=WARN")


class VictoriaMetrics:
    """A VictoriaMetrics reachable over HTTP."""

    def __init__(self, url: str, server: Any = None) -> None:
        self.url = url.rstrip("/")
        self.server = server  # None for an external one the tests do not control

    def __repr__(self) -> str:
        return f"<VictoriaMetrics {self.url} server={self.server!r}>"

    @property
    def write_url_v2(self) -> str:
        """The InfluxDB v2 write endpoint (any org/bucket/token is accepted)."""
        return f"{self.url}/api/v2/write"

    def flush(self, timeout: float = 30.0) -> None:
        """Make everything written so far visible to queries (takes about a second).

        VictoriaMetrics keeps new rows in per-CPU buffers it moves to storage every
        second, and the Debian version's ``/internal/force_flush`` only flushes what
        has been moved (without it, new data showed up after ~10 s). So we write a
        marker series through each buffer (round robin, several per CPU), force
        flushes until every marker is visible, then delete the markers.
        """
        token = uuid.uuid4().hex
        markers = 4 * (os.cpu_count() or 2)
        for index in range(markers):
            self._post("/api/v2/write",
                       f"{FLUSH_MARKER},flush={token},n={index} seen=1".encode())
        selector = f'{FLUSH_MARKER}_seen{{flush="{token}"}}'

        def all_markers_visible() -> bool:
            self._get("/internal/force_flush")
            return len(self._export(selector)) >= markers

        wait_until(all_markers_visible, timeout, interval=0.1,
                   what="VictoriaMetrics to make written data visible")
        self._get("/api/v1/admin/tsdb/delete_series", {"match[]": selector})

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant-query result list: ``[{"metric": {...}, "value": [ts, "v"]}, ...]``.

        Evaluated at the next whole second (VictoriaMetrics evaluates at whole seconds,
        so "now" would miss a sample written in the current second) with ``nocache=1``
        (without it, samples of the last second were missed about half the time even
        with -search.disableCache).
        """
        self.flush()
        params = {"query": promql, "time": str(math.ceil(time.time())), "nocache": "1"}
        answer = orjson.loads(self._get("/api/v1/query", params))
        if answer.get("status") != "success":
            raise HarnessError(f"VictoriaMetrics query {promql!r} failed: {answer}")
        return answer["data"]["result"]

    def export(self, match: str) -> list[dict[str, Any]]:
        """Raw series matching the selector: ``{"metric", "values", "timestamps"}`` each."""
        self.flush()
        return self._export(match)

    def is_running(self) -> bool:
        if self.server is None:
            return http_ready(f"{self.url}/health")
        return self.server.is_running()

    def start(self) -> None:
        self._controlled().start()

    def stop(self) -> None:
        self._controlled().stop()

    def close(self) -> None:
        """Stop for good and release the server (the fixtures' teardown)."""
        if self.server is not None:
            self.server.close()

    def _controlled(self) -> Any:
        if self.server is None:
            raise HarnessError("the tests use an external VictoriaMetrics (IOTWATCH_TEST_VM_URL); "
                               "it cannot be stopped or started")
        return self.server

    def _export(self, match: str) -> list[dict[str, Any]]:
        text = self._get("/api/v1/export", {"match[]": match})
        return [orjson.loads(line) for line in text.splitlines() if line.strip()]

    def _post(self, path: str, body: bytes) -> None:
        request = urllib.request.Request(f"{self.url}{path}", data=body, method="POST")
        self._open(request, path)

    def _get(self, path: str, params: dict[str, str] | None = None) -> bytes:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        return self._open(f"{self.url}{path}{query}", path)

    def _open(self, request: str | urllib.request.Request, path: str) -> bytes:
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise HarnessError(f"VictoriaMetrics {path} answered {exc.code}: {detail}") from None
        except OSError as exc:
            raise HarnessError(f"VictoriaMetrics at {self.url} unreachable: {exc}") from exc


def start_local_victoria_metrics(workdir: Path, attempts: int = 3) -> VictoriaMetrics:
    """Run Debian's ``victoria-metrics`` on a free loopback port with data in ``workdir``."""
    binary = find_binary("victoria-metrics", "victoria-metrics")
    workdir.mkdir(parents=True, exist_ok=True)
    for attempt in range(attempts):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = ServerProcess(
            "victoria-metrics",
            [binary, f"-httpListenAddr=127.0.0.1:{port}", f"-storageDataPath={workdir}/data",
             *FLAGS],
            workdir / "victoria-metrics.log", ready=lambda url=url: http_ready(f"{url}/health"))
        try:
            server.start()
        except HarnessError as exc:
            if "address already in use" not in str(exc).lower() or attempt == attempts - 1:
                raise
            continue
        return VictoriaMetrics(url, server=server)
    raise AssertionError("unreachable")
