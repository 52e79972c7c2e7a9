"""Where the demo's detector writes its points: a throwaway InfluxDB 1.x, or a local file.

``influxd`` (Debian package ``influxdb``) is used when installed: a fresh data directory,
loopback ports chosen free. Without it the detector's own ``file`` sink appends line
protocol to a file in the run's directory, so the demo still records every point.

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "points.lp"
>>> _ = path.write_text("readings,site=a,device=b,metric=c value=1 1\\nalerts,site=a x=1 2\\n")
>>> store = file_store(path)
>>> store.counts(), store.describe()  # doctest: +ELLIPSIS
({'readings': 1, 'alerts': 1}, 'line-protocol file ... (timestamps in us)')
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from iotwatch.demo.processes import ProcessGroup
from iotwatch.ports import free_port

DATABASE = "iotwatch"
# The detector writes timestamps in microseconds (influxdb.precision): readings of a
# stream a fraction of a millisecond apart stay two points, in InfluxDB and in the file.
PRECISION = "us"


class StoreError(Exception):
    """The point store could not be started."""


@dataclass
class PointStore:
    """A running store: the detector writes to ``url`` (v1 API, ``database``)."""

    kind: str                       # "influxdb" or "local file"
    url: str | None
    database: str
    local: Path | None = None       # the line-protocol file of the file sink
    precision: str = PRECISION      # of the timestamps the detector writes here

    def counts(self) -> dict[str, int]:
        """Points stored per measurement."""
        if self.local is not None:
            return _count_lines(self.local)
        found: dict[str, int] = {}
        for measurement, field in (("readings", "value"), ("alerts", "score")):
            answer = _influxql(self.url, self.database, f'SELECT count("{field}") FROM "{measurement}"')
            series = answer.get("series") or []
            found[measurement] = int(series[0]["values"][0][1]) if series else 0
        return found

    def describe(self) -> str:
        if self.local is not None:
            return f"line-protocol file {self.local} (timestamps in {self.precision})"
        return f"InfluxDB 1.x at {self.url}, database {self.database}"


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


def file_store(path: Path) -> PointStore:
    """The detector's line-protocol file (``detector.output.sink: file``)."""
    return PointStore("local file", None, DATABASE, path)


def _influxql(url: str, database: str, query: str) -> dict:
    body = urllib.parse.urlencode({"db": database, "q": query}).encode()
    with urllib.request.urlopen(f"{url}/query", data=body, timeout=10) as response:
        answer = json.load(response)
    result = answer["results"][0]
    if "error" in result:
        raise StoreError(f"InfluxDB rejected {query!r}: {result['error']}")
    return result


def _count_lines(path: Path) -> dict[str, int]:
    counts: Counter[str] = Counter()
    if path.exists():
        with open(path, "rb") as lines:
            for line in lines:
                if line.strip() and not line.startswith(b"#"):
                    counts[line.split(b" ", 1)[0].split(b",", 1)[0].decode(errors="replace")] += 1
    return dict(counts)
