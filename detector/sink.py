"""Writers that take a body of line protocol and store it, or say why not.

- ``v1``: ``POST /write?db=&rp=&precision=u`` (InfluxDB 1.x; basic auth when a user is set)
  over plain ``http.client``: InfluxDB before 1.8 has no ``/api/v2/write`` endpoint, which
  is all influxdb-client writes to.
- ``v2``: influxdb-client's write service (``/api/v2/write?org=&bucket=&precision=us``
  with ``Authorization: Token``; InfluxDB 2.x, 3.x, Cloud, VictoriaMetrics), handed the
  prebuilt line-protocol body as bytes, never ``Point`` objects (MEASURED.md: 13-17 us per
  ``Point`` against ~2.7 us for prebuilt lines). The library's own retries are off (it
  retries only in batching mode, and urllib3 gets ``retries=False``): the spool and the
  delivery backoff are the one retry policy.
- ``file``: appends the lines to a local file (a store for demos without a database).
- ``none``: stores nothing.

A writer raises ``RetryableWriteError`` when trying again later can succeed (network
errors, 429, 5xx, and 401/403/404: a token, permission or database that an operator can
fix; the points wait in the spool meanwhile) and ``RejectedWriteError`` when the data
itself was refused (other 4xx), carrying the server's message.

Timestamps are in ``influxdb.precision`` (``us`` unless configured: ``ms`` would let two
readings of a stream within one millisecond overwrite each other). ``write`` takes the
precision of the body it is given, so batches spooled by a run with another precision
(or by an older version, which wrote ``ms``) are stored at their own times.

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "points.lp"
>>> writer = FileWriter(path)
>>> writer.write(b"m v=1 1"); writer.write(b"m v=2 2", precision="ms")
>>> path.read_bytes()  # the second body was spooled by a run at ms: rescaled to us
b'm v=1 1\\nm v=2 2000\\n'
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import http.client
import os
import ssl
import time
from pathlib import Path
from typing import Protocol
from urllib.parse import SplitResult, urlencode, urlsplit

import orjson
import urllib3
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.rest import ApiException
from influxdb_client.service.write_service import WriteService

from detector.lineprotocol import rescale_timestamps
from iotwatch.config import InfluxSettings
from iotwatch.retry import parse_retry_after

# The precision parameter of each API: InfluxDB 1.x (and VictoriaMetrics) say "u".
V1_PRECISION = {"ms": "ms", "us": "u", "ns": "ns"}
V2_PRECISION = {"ms": WritePrecision.MS, "us": WritePrecision.US, "ns": WritePrecision.NS}

# Answers an operator can fix without changing the data: keep the points and retry.
RETRY_STATUSES = frozenset({401, 403, 404, 408, 429})
MESSAGE_CHARS = 500


class SinkConfigError(ValueError):
    """The configured sink cannot be used as written (e.g. a malformed URL)."""


class WriteError(Exception):
    """A batch was not stored."""


class RetryableWriteError(WriteError):
    """The sink cannot take points now; ``retry_after`` is the server's hint in seconds."""

    def __init__(self, message: str, retry_after: float | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class RejectedWriteError(WriteError):
    """The sink refused the data itself (HTTP 4xx other than the retryable ones)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Writer(Protocol):
    description: str
    precision: str  # of the timestamps in the bodies it is given, unless told otherwise

    def write(self, body: bytes, precision: str | None = None) -> None: ...

    def close(self) -> None: ...


class HttpWriter:
    """POSTs line protocol to InfluxDB 1.x's ``/write`` over a kept-alive connection.

    ``path`` is the endpoint with its query (``/write?db=iotwatch``); the precision of
    each body is added to it.
    """

    def __init__(self, url: str, path: str, headers: dict[str, str], *, use_gzip: bool,
                 timeout_s: float, verify_tls: bool, description: str,
                 precision: str = "us") -> None:
        parts = _check_url(url)
        self.description = description
        self.precision = precision
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._path = parts.path.rstrip("/") + path
        self._headers = {"Content-Type": "text/plain; charset=utf-8", **headers}
        if use_gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._gzip = use_gzip
        self._timeout = timeout_s
        self._context = None
        if self._https:
            self._context = ssl.create_default_context()
            if not verify_tls:
                self._context.check_hostname = False
                self._context.verify_mode = ssl.CERT_NONE
        self._connection: http.client.HTTPConnection | None = None

    def write(self, body: bytes, precision: str | None = None) -> None:
        payload = _compress(body) if self._gzip else body
        path = f"{self._path}&precision={V1_PRECISION[precision or self.precision]}"
        try:
            status, reason, headers, text = self._post(path, payload)
        except (OSError, http.client.HTTPException) as exc:
            raise RetryableWriteError(f"{self.description} unreachable: {exc}") from None
        if status >= 300:
            raise _answer_error(self.description, status, reason, text,
                                headers.get("retry-after"))

    def _post(self, path: str, payload: bytes) -> tuple[int, str, dict[str, str], bytes]:
        # A kept-alive connection the server closed fails on first use: retry once fresh.
        for attempt in range(2):
            connection = self._connect()
            try:
                connection.request("POST", path, payload, self._headers)
                response = connection.getresponse()
                text = response.read()
            except (OSError, http.client.HTTPException):
                self._drop_connection()
                if attempt == 1:
                    raise
                continue
            headers = {k.lower(): v for k, v in response.getheaders()}
            if response.will_close:
                self._drop_connection()
            return response.status, response.reason, headers, text
        raise AssertionError("unreachable")

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            if self._https:
                self._connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=self._context)
            else:
                self._connection = http.client.HTTPConnection(self._host, self._port,
                                                              timeout=self._timeout)
        return self._connection

    def _drop_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(OSError):
                self._connection.close()
            self._connection = None

    def close(self) -> None:
        self._drop_connection()


class InfluxV2Writer:
    """Writes line protocol through influxdb-client's write service (InfluxDB 2.x+).

    Errors follow the same policy as ``HttpWriter``. One request per ``write``, bounded by
    ``timeout_s``. The body is compressed here at gzip level 1 rather than by the library
    (``enable_gzip`` uses level 9: measured 13-14 us of CPU per point against ~1.8 us, for
    a body only 16% smaller), and posted through the library's own write service, which
    passes ``Content-Encoding`` on (``WriteApi.write`` does not).
    """

    def __init__(self, url: str, token: str | None, org: str, bucket: str, *, use_gzip: bool,
                 timeout_s: float, verify_tls: bool, description: str,
                 precision: str = "us") -> None:
        _check_url(url)
        self.description = description
        self.precision = precision
        self._org = org
        self._bucket = bucket
        # retries=False: urllib3 neither retries nor follows redirects; one attempt per write.
        self._client = InfluxDBClient(url=url, token=token, org=org,
                                      timeout=max(1, round(timeout_s * 1000)),
                                      enable_gzip=False, verify_ssl=verify_tls, retries=False)
        self._service = WriteService(self._client.api_client)
        self._encoding = {"content_encoding": "gzip"} if use_gzip else {}

    def write(self, body: bytes, precision: str | None = None) -> None:
        try:
            self._service.post_write(org=self._org, bucket=self._bucket,
                                     body=_compress(body) if self._encoding else body,
                                     precision=V2_PRECISION[precision or self.precision],
                                     content_type="text/plain; charset=utf-8", **self._encoding)
        except ApiException as exc:
            raise _api_error(self.description, exc) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise RetryableWriteError(f"{self.description} unreachable: {exc}") from None
        except UnicodeDecodeError:
            # The library decodes every answer as UTF-8 before looking at its status.
            raise RetryableWriteError(f"{self.description} answered with a body that is not "
                                      f"UTF-8") from None

    def close(self) -> None:
        self._client.close()


def _compress(body: bytes) -> bytes:
    # Level 1: a fifth of level 6's CPU for a body ~15% larger; the network is loopback-fast.
    return gzip.compress(body, compresslevel=1)


def _api_error(description: str, exc: ApiException) -> WriteError:
    status = exc.status or 0
    if status == 0:  # the library's wrapping of TLS errors: no answer at all
        return RetryableWriteError(f"{description} unreachable: {exc.reason}")
    retry_after = exc.headers.get("Retry-After") if exc.headers is not None else None
    return _answer_error(description, status, exc.reason, exc.body or b"", retry_after)


def _answer_error(description: str, status: int, reason: str, body: bytes | str,
                  retry_after: str | None) -> WriteError:
    """The error for a server's non-2xx answer: retry it later, or the data was refused."""
    message = f"{description} answered {status} {reason}: {_server_message(body)}"
    if status in RETRY_STATUSES or status >= 500:
        return RetryableWriteError(message, parse_retry_after(retry_after, now=time.time()), status)
    return RejectedWriteError(message, status)


class FileWriter:
    """Appends each body (and a newline) to ``path``, fsync'd: the demo's embedded store."""

    def __init__(self, path: Path, precision: str = "us") -> None:
        self.path = Path(path)
        self.description = f"file {self.path}"
        self.precision = precision
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkConfigError(f"detector.output.file: cannot create {self.path.parent}: {exc.strerror}") from exc

    def write(self, body: bytes, precision: str | None = None) -> None:
        # One unit per file: a body spooled at another precision is rescaled to this one.
        if precision is not None and precision != self.precision:
            body = rescale_timestamps(body, precision, self.precision)
        try:
            with open(self.path, "ab") as handle:
                handle.write(body + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise RetryableWriteError(f"{self.description}: {exc.strerror}") from None

    def close(self) -> None:
        pass


class NullWriter:
    """Stores nothing (``detector.output.sink: none``: alerts only)."""

    description = "no point store"

    def __init__(self, precision: str = "us") -> None:
        self.precision = precision

    def write(self, body: bytes, precision: str | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def make_writer(influx: InfluxSettings, sink: str, file: Path) -> Writer:
    """The writer that ``influxdb:`` and ``detector.output`` ask for."""
    if sink == "file":
        return FileWriter(file, influx.precision)
    if sink == "none" or not influx.enabled:
        return NullWriter(influx.precision)
    if influx.api == "v2":
        token = influx.token.get_secret_value() if influx.token is not None else None
        return InfluxV2Writer(influx.url, token, influx.org, influx.bucket,
                              use_gzip=influx.gzip, timeout_s=influx.timeout_s,
                              verify_tls=influx.verify_tls, precision=influx.precision,
                              description=f"InfluxDB v2 {influx.url} bucket={influx.bucket}")
    headers: dict[str, str] = {}
    params = {"db": influx.database}
    if influx.retention_policy:
        params["rp"] = influx.retention_policy
    if influx.username:
        password = influx.password.get_secret_value() if influx.password else ""
        basic = base64.b64encode(f"{influx.username}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {basic}"
    return HttpWriter(influx.url, "/write?" + urlencode(params), headers, use_gzip=influx.gzip,
                      timeout_s=influx.timeout_s, verify_tls=influx.verify_tls,
                      precision=influx.precision,
                      description=f"InfluxDB v1 {influx.url} db={influx.database}")


def _check_url(url: str) -> SplitResult:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SinkConfigError(f"influxdb.url must be http(s)://host[:port][/path], got {url!r}")
    return parts


def _server_message(text: bytes | str) -> str:
    """The server's own words: InfluxDB 1.x ``{"error"}``, 2.x ``{"message"}``, or the text."""
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        for key in ("error", "message"):
            if isinstance(body.get(key), str):
                return body[key][:MESSAGE_CHARS]
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return text.strip()[:MESSAGE_CHARS] or "(no message)"
