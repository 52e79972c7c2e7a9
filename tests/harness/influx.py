"""A real InfluxDB 1.x (Debian's ``influxd``, v1 HTTP API) for tests.

Every port is free and on 127.0.0.1 (HTTP, and the RPC service that defaults to
8088), all data lives in a temporary directory, and nothing phones home.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from .process import HarnessError, ServerProcess, find_binary, free_port, http_ready

CONFIG_TEMPLATE = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root}/meta"
  logging-enabled = false

[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
  index-version = "inmem"

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = false
  log-enabled = false
  pprof-enabled = false

[continuous_queries]
  enabled = false

[subscriber]
  enabled = false

[[graphite]]
  enabled = false
[[collectd]]
  enabled = false
[[opentsdb]]
  enabled = false
[[udp]]
  enabled = false
"""


class InfluxDB1:
    """An InfluxDB reachable over the 1.x HTTP API, with one fresh database to use."""

    def __init__(self, url: str, database: str, server: Any = None) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.server = server  # None for an external InfluxDB the tests do not control

    def __repr__(self) -> str:
        return f"<InfluxDB1 {self.url} db={self.database} server={self.server!r}>"

    def create_database(self, name: str | None = None) -> str:
        """Create a database (a unique name when none is given) and return its name."""
        name = name or f"test_{uuid.uuid4().hex[:12]}"
        self._post_query(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self._post_query(f'DROP DATABASE "{name}"')

    def write(self, lines: str | Iterable[str], db: str | None = None,
              precision: str = "ns") -> None:
        """Write line protocol (one string or an iterable of lines)."""
        body = lines if isinstance(lines, str) else "\n".join(lines)
        params = urllib.parse.urlencode({"db": db or self.database, "precision": precision})
        self._request(f"/write?{params}", body.encode())

    def query(self, influxql: str, db: str | None = None,
              epoch: str = "ms") -> list[dict[str, Any]]:
        """Rows of every series as dicts: columns plus the series' tags; time in ``epoch``
        units (ms, or u / ns to see finer times)."""
        params = {"q": influxql, "db": db or self.database, "epoch": epoch}
        answer = self._request("/query", urllib.parse.urlencode(params).encode(),
                               content_type="application/x-www-form-urlencoded")
        rows: list[dict[str, Any]] = []
        for result in answer.get("results", []):
            if "error" in result:
                raise HarnessError(f"InfluxDB query {influxql!r} failed: {result['error']}")
            for series in result.get("series", []):
                tags = series.get("tags", {})
                for values in series.get("values", []):
                    rows.append({**tags, **dict(zip(series["columns"], values, strict=True))})
        return rows

    def count(self, measurement: str, where: str = "", db: str | None = None) -> int:
        """Points in ``measurement`` (optionally ``WHERE where``): the largest field count."""
        clause = f" WHERE {where}" if where else ""
        rows = self.query(f'SELECT COUNT(*) FROM "{measurement}"{clause}', db=db)
        counts = [value for row in rows for key, value in row.items()
                  if key.startswith("count_") and isinstance(value, int)]
        return max(counts, default=0)

    def is_running(self) -> bool:
        if self.server is None:
            return http_ready(f"{self.url}/ping")
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
            raise HarnessError("the tests use an external InfluxDB (IOTWATCH_TEST_INFLUXDB_URL); "
                               "it cannot be stopped or started: use fresh_influxdb")
        return self.server

    def _post_query(self, influxql: str) -> None:
        self._request("/query", urllib.parse.urlencode({"q": influxql}).encode(),
                      content_type="application/x-www-form-urlencoded")

    def _request(self, path: str, body: bytes,
                 content_type: str = "text/plain; charset=utf-8") -> dict[str, Any]:
        request = urllib.request.Request(f"{self.url}{path}", data=body, method="POST",
                                         headers={"Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise HarnessError(f"InfluxDB {path.split('?')[0]} answered {exc.code}: {detail}") \
                from None
        except OSError as exc:
            raise HarnessError(f"InfluxDB at {self.url} unreachable: {exc}") from exc
        return orjson.loads(text) if text.strip() else {}


def start_local_influxdb(workdir: Path, attempts: int = 3) -> InfluxDB1:
    """Run Debian's ``influxd`` on free loopback ports with its data in ``workdir``."""
    binary = find_binary("influxd", "influxdb")
    workdir.mkdir(parents=True, exist_ok=True)
    for attempt in range(attempts):
        http_port, rpc_port = free_port(), free_port()
        conf = workdir / "influxdb.conf"
        conf.write_text(CONFIG_TEMPLATE.format(root=workdir, http_port=http_port,
                                               rpc_port=rpc_port))
        url = f"http://127.0.0.1:{http_port}"
        server = ServerProcess("influxd", [binary, "-config", str(conf)],
                               workdir / "influxd.log", ready=lambda url=url: http_ready(
                                   f"{url}/ping"))
        try:
            server.start()
        except HarnessError as exc:
            if "address already in use" not in str(exc).lower() or attempt == attempts - 1:
                raise
            continue
        influx = InfluxDB1(url, database="", server=server)
        influx.database = influx.create_database("iotwatch_test")
        return influx
    raise AssertionError("unreachable")
