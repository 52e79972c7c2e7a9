"""Where the demo's detector writes its points: a throwaway InfluxDB 1.x, or a local file.

``influxd`` (Debian package ``influxdb``) is used when installed: a fresh data directory,
loopback ports chosen free. Without it, ``LocalStore`` answers the InfluxDB v1/v2 write API
on loopback and appends the line protocol it receives to ``points.lp``, so the demo still
records every point the detector wrote and the detector needs no special mode.

>>> import tempfile
>>> store = LocalStore(Path(tempfile.mkdtemp()) / "points.lp")
>>> store.append(b"readings,site=a,device=b,metric=c value=1 1\\nalerts,site=a x=1 2\\n")
>>> store.counts()
{'readings': 1, 'alerts': 1}
"""

from __future__ import annotations

import gzip
import json
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from iotwatch.demo.netutil import free_port
from iotwatch.demo.processes import ProcessGroup
from iotwatch.httpserver import Request, Response, Server, serve

DATABASE = "iotwatch"


class StoreError(Exception):
    """The point store could not be started."""


@dataclass
class PointStore:
    """A running store: the detector writes to ``url`` (v1 API, ``database``)."""

    kind: str                       # "influxdb" or "local file"
    url: str
    database: str
    local: LocalStore | None = None
    server: Server | None = None

    def counts(self) -> dict[str, int]:
        """Points stored per measurement."""
        if self.local is not None:
            return self.local.counts()
        found: dict[str, int] = {}
        for measurement, field in (("readings", "value"), ("alerts", "score")):
            answer = _influxql(self.url, self.database, f'SELECT count("{field}") FROM "{measurement}"')
            series = answer.get("series") or []
            found[measurement] = int(series[0]["values"][0][1]) if series else 0
        return found

    def describe(self) -> str:
        if self.local is not None:
            return f"local file {self.local.path} (InfluxDB write API on {self.url})"
        return f"InfluxDB at {self.url}, database {self.database}"

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


class LocalStore:
    """Line protocol appended to one file, counted per measurement."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def append(self, body: bytes) -> None:
        lines = [line for line in body.splitlines() if line.strip() and not line.startswith(b"#")]
        with self._lock, open(self.path, "ab") as out:
            for line in lines:
                out.write(line + b"\n")
                self._counts[_measurement(line)] += 1

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def start_influxd(group: ProcessGroup, workdir: Path, timeout_s: float = 30.0) -> PointStore:
    """Start a throwaway ``influxd`` under ``group``; return once its database exists."""
    binary = shutil.which("influxd")
    if binary is None:
        raise StoreError("influxd is not installed (Debian package: influxdb)")
    root = workdir / "influxdb"
    root.mkdir(parents=True, exist_ok=True)
    http_port, rpc_port = free_port(), free_port()
    config = root / "influxdb.conf"
    config.write_text(
        'reporting-disabled = true\n'
        f'bind-address = "127.0.0.1:{rpc_port}"\n'
        f'[meta]\n  dir = "{root}/meta"\n'
        f'[data]\n  dir = "{root}/data"\n  wal-dir = "{root}/wal"\n'
        '  query-log-enabled = false\n'
        '[monitor]\n  store-enabled = false\n'
        f'[http]\n  bind-address = "127.0.0.1:{http_port}"\n  log-enabled = false\n',
        encoding="utf-8")
    child = group.start("influxdb", [binary, "-config", str(config)])
    url = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _influxql(url, "", f'CREATE DATABASE "{DATABASE}"')
            return PointStore("influxdb", url, DATABASE)
        except (OSError, urllib.error.URLError):
            if not child.running() or time.monotonic() > deadline:
                raise StoreError(f"influxd did not start: {child.log_tail()}") from None
            time.sleep(0.2)


def start_local_store(workdir: Path) -> PointStore:
    """Serve the InfluxDB write API on loopback, appending to ``workdir/points.lp``."""
    store = LocalStore(workdir / "points.lp")

    def write(request: Request) -> Response:
        body = request.body
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        store.append(body)
        return Response(204)

    def query(_request: Request) -> Response:
        # Enough for a client that creates its database or checks it on start.
        return Response.json({"results": [{"statement_id": 0}]})

    routes = {("POST", "/write"): write, ("POST", "/api/v2/write"): write,
              ("GET", "/ping"): lambda _r: Response(204),
              ("GET", "/health"): lambda _r: Response.json({"status": "pass"}),
              ("GET", "/query"): query, ("POST", "/query"): query}
    server = serve("127.0.0.1", 0, routes)
    return PointStore("local file", f"http://127.0.0.1:{server.port}", DATABASE, store, server)


def _influxql(url: str, database: str, query: str) -> dict:
    body = urllib.parse.urlencode({"db": database, "q": query}).encode()
    with urllib.request.urlopen(f"{url}/query", data=body, timeout=10) as response:
        answer = json.load(response)
    result = answer["results"][0]
    if "error" in result:
        raise StoreError(f"InfluxDB rejected {query!r}: {result['error']}")
    return result


def _measurement(line: bytes) -> str:
    head = line.split(b" ", 1)[0]
    return head.split(b",", 1)[0].decode("utf-8", errors="replace")


__all__ = ["LocalStore", "PointStore", "StoreError", "start_influxd", "start_local_store"]
