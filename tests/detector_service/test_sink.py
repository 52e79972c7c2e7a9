"""Writers against real servers: InfluxDB 1.x, VictoriaMetrics (v2 API), and a real HTTP
server answering as told."""

from __future__ import annotations

import gzip
import socket
import threading
import uuid

import pytest

from detector.sink import (
    FileWriter,
    HttpWriter,
    InfluxV2Writer,
    NullWriter,
    RejectedWriteError,
    RetryableWriteError,
    SinkConfigError,
    make_writer,
)
from iotwatch.config import InfluxSettings
from iotwatch.httpserver import Response, serve


def v1(influxdb, **overrides) -> InfluxSettings:
    return InfluxSettings(url=influxdb.url, database=overrides.pop("database", influxdb.database),
                          **overrides)


def test_v1_writes_gzip_line_protocol_at_the_configured_precision(influxdb, tmp_path):
    db = influxdb.create_database()
    writer = make_writer(v1(influxdb, database=db, precision="ms"), "influxdb", tmp_path / "x")
    writer.write(b"readings,site=s,device=d,metric=m value=1.5 1768905000123\n"
                 b"readings,site=s,device=d,metric=m value=2.5 1768905000124")
    rows = influxdb.query('SELECT value FROM "readings"', db=db)
    assert [(r["time"], r["value"]) for r in rows] == [(1768905000123, 1.5), (1768905000124, 2.5)]
    writer.close()


def test_refused_data_carries_the_servers_message(influxdb, tmp_path):
    db = influxdb.create_database()
    influxdb.write('readings,site=s value="text" 1768905000000', db=db, precision="ms")
    writer = make_writer(v1(influxdb, database=db), "influxdb", tmp_path / "x")
    with pytest.raises(RejectedWriteError) as refused:
        writer.write(b"readings,site=s value=1.5 1768905000001000")
    assert refused.value.status == 400
    assert "field type conflict" in str(refused.value)


def test_missing_database_is_retryable_not_data_loss(influxdb, tmp_path):
    writer = make_writer(v1(influxdb, database="no_such_db"), "influxdb", tmp_path / "x")
    with pytest.raises(RetryableWriteError) as failed:
        writer.write(b"m v=1 1")
    assert failed.value.status == 404 and "database not found" in str(failed.value)


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_unreachable_server_is_retryable(tmp_path, api):
    from harness import free_port

    writer = make_writer(InfluxSettings(api=api, url=f"http://127.0.0.1:{free_port()}"),
                         "influxdb", tmp_path / "x")
    with pytest.raises(RetryableWriteError, match="unreachable") as failed:
        writer.write(b"m v=1 1")
    assert failed.value.status is None and failed.value.retry_after is None
    writer.close()


def test_v2_writes_prebuilt_lines_into_victoria_metrics(victoria_metrics, tmp_path):
    device = f"d{uuid.uuid4().hex[:8]}"
    settings = InfluxSettings(api="v2", url=victoria_metrics.url, org="acme", bucket="b",
                              token="any", precision="ms")
    writer = make_writer(settings, "influxdb", tmp_path / "x")
    assert isinstance(writer, InfluxV2Writer)
    writer.write(f"readings,device={device} value=1.5 1768905000123\n"
                 f"readings,device={device} value=2.5 1768905000124".encode())
    writer.close()
    [series] = victoria_metrics.export(f'readings_value{{device="{device}"}}')
    assert series["timestamps"] == [1768905000123, 1768905000124]
    assert series["values"] == [1.5, 2.5]


class Answers:
    """A real HTTP server that answers each write with the next scripted response."""

    def __init__(self, *responses: Response) -> None:
        self.responses = list(responses)
        self.requests = []
        self.lock = threading.Lock()

        def write(request):
            with self.lock:
                self.requests.append(request)
                return self.responses.pop(0) if self.responses else Response(204)

        self.server = serve("127.0.0.1", 0, {("POST", "/api/v2/write"): write,
                                             ("POST", "/write"): write})
        self.url = f"http://127.0.0.1:{self.server.port}"


@pytest.fixture
def answers():
    made = []

    def make(*responses):
        made.append(Answers(*responses))
        return made[-1]

    yield make
    for item in made:
        item.server.close()


def test_v2_sends_token_org_bucket_and_gzip(answers, tmp_path):
    server = answers(Response(204))
    settings = InfluxSettings(api="v2", url=server.url, org="acme", bucket="b1", token="t0k")
    writer = make_writer(settings, "influxdb", tmp_path / "x")
    writer.write(b"m v=1 1\nm v=2 2")
    writer.close()
    request = server.requests[0]
    assert request.path == "/api/v2/write"
    assert request.headers["authorization"] == "Token t0k"
    assert request.headers["content-encoding"] == "gzip"
    assert request.query == {"org": ["acme"], "bucket": ["b1"], "precision": ["us"]}
    assert gzip.decompress(request.body) == b"m v=1 1\nm v=2 2"


def test_v2_without_gzip_or_token_sends_the_lines_as_they_are(answers, tmp_path):
    server = answers(Response(204))
    settings = InfluxSettings(api="v2", url=server.url, gzip=False)
    writer = make_writer(settings, "influxdb", tmp_path / "x")
    writer.write(b"m v=1 1")
    writer.close()
    request = server.requests[0]
    assert "content-encoding" not in request.headers
    assert "authorization" not in request.headers
    assert request.body == b"m v=1 1"


def test_v2_refused_data_carries_the_servers_message(answers, tmp_path):
    server = answers(Response.json({"code": "invalid", "message": "unable to parse 'm v=': "
                                    "missing field value"}, 400))
    writer = make_writer(InfluxSettings(api="v2", url=server.url), "influxdb", tmp_path / "x")
    with pytest.raises(RejectedWriteError) as refused:
        writer.write(b"m v=")
    assert refused.value.status == 400
    assert str(refused.value).endswith("answered 400 Bad Request: unable to parse 'm v=': "
                                       "missing field value")
    writer.close()


def test_v2_makes_one_attempt_per_write(answers, tmp_path):
    """The library's own retries are off: the spool and the delivery backoff retry."""
    server = answers(Response(503, b"busy"), Response(503, b"busy"))
    writer = make_writer(InfluxSettings(api="v2", url=server.url), "influxdb", tmp_path / "x")
    with pytest.raises(RetryableWriteError):
        writer.write(b"m v=1 1")
    assert len(server.requests) == 1
    writer.close()


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_a_server_that_never_answers_times_out(tmp_path, api):
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never answers
    port = silent.getsockname()[1]
    writer = make_writer(InfluxSettings(api=api, url=f"http://127.0.0.1:{port}", timeout_s=0.3),
                         "influxdb", tmp_path / "x")
    outcome = []

    def write():
        try:
            writer.write(b"m v=1 1")
        except RetryableWriteError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=write, daemon=True)
    try:
        thread.start()
        thread.join(60)  # a liveness bound, far above timeout_s; not a timing assertion
        assert not thread.is_alive(), "the write ignored influxdb.timeout_s"
        assert len(outcome) == 1 and "unreachable" in str(outcome[0])
    finally:
        writer.close()
        silent.close()


@pytest.mark.parametrize("api", ["v1", "v2"])
@pytest.mark.parametrize(("status", "headers", "retry_after"), [
    (429, {"Retry-After": "7"}, 7.0),
    (429, {}, None),
    (503, {"Retry-After": "2"}, 2.0),
    (500, {"Retry-After": "3"}, 3.0),
    (500, {}, None),
    (401, {}, None),  # a token an operator can fix: keep the points
    (404, {}, None),  # a bucket not created yet
])
def test_throttling_and_server_errors_are_retryable(answers, tmp_path, api, status, headers,
                                                    retry_after):
    server = answers(Response(status, b'{"message": "slow down"}', "application/json", headers))
    writer = make_writer(InfluxSettings(api=api, url=server.url), "influxdb", tmp_path / "x")
    with pytest.raises(RetryableWriteError) as failed:
        writer.write(b"m v=1 1")
    assert failed.value.status == status
    assert failed.value.retry_after == retry_after
    assert "slow down" in str(failed.value)
    writer.close()


def test_v1_basic_auth_and_retention_policy(answers, tmp_path):
    server = answers(Response(204))
    settings = InfluxSettings(url=server.url, database="db", retention_policy="week",
                              username="u", password="p", gzip=False)
    writer = make_writer(settings, "influxdb", tmp_path / "x")
    assert isinstance(writer, HttpWriter)  # InfluxDB 1.x before 1.8 has no /api/v2/write
    writer.write(b"m v=1 1")
    request = server.requests[0]
    assert request.headers["authorization"] == "Basic dTpw"
    assert request.query == {"db": ["db"], "precision": ["u"], "rp": ["week"]}
    assert request.body == b"m v=1 1"


def test_file_and_none_sinks(tmp_path):
    writer = make_writer(InfluxSettings(), "file", tmp_path / "dir" / "points.lp")
    assert isinstance(writer, FileWriter)
    writer.write(b"m v=1 1")
    assert (tmp_path / "dir" / "points.lp").read_bytes() == b"m v=1 1\n"
    assert isinstance(make_writer(InfluxSettings(), "none", tmp_path), NullWriter)
    assert isinstance(make_writer(InfluxSettings(enabled=False), "influxdb", tmp_path), NullWriter)


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_bad_url_is_a_config_error(api, tmp_path):
    with pytest.raises(SinkConfigError, match="influxdb.url"):
        make_writer(InfluxSettings(api=api, url="influx:8086"), "influxdb", tmp_path / "x")
