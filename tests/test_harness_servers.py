"""The harness's InfluxDB 1.x and VictoriaMetrics, and its promise to leave no server behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest
from harness import HarnessError, wait_until
from harness.process import ServerProcess, find_binary
from influxdb_client import InfluxDBClient, Point
from influxdb_client.client.write_api import SYNCHRONOUS

TESTS_DIR = Path(__file__).resolve().parent


def test_influxdb_line_protocol_round_trip(influxdb):
    db = influxdb.create_database()
    body = "\n".join([
        "readings,site=s1,device=d1,metric=temperature value=21.5,score=0.1 1768905000000000000",
        "readings,site=s1,device=d1,metric=temperature value=22.0,score=0.2 1768905001000000000",
        "readings,site=s1,device=d2,metric=humidity value=48.0,score=0.9 1768905002000000000",
    ]).encode()
    request = urllib.request.Request(f"{influxdb.url}/write?db={db}", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 204

    rows = influxdb.query("SELECT value, score FROM readings WHERE device = 'd1' ORDER BY time",
                          db=db)
    assert rows == [{"time": 1768905000000, "value": 21.5, "score": 0.1},
                    {"time": 1768905001000, "value": 22.0, "score": 0.2}]
    assert influxdb.count("readings", db=db) == 3
    assert influxdb.count("readings", where="metric = 'humidity'", db=db) == 1
    assert influxdb.count("no_such_measurement", db=db) == 0
    grouped = influxdb.query("SELECT last(value) FROM readings GROUP BY device", db=db)
    assert {row["device"]: row["last"] for row in grouped} == {"d1": 22.0, "d2": 48.0}


def test_influxdb_session_database_exists(influxdb):
    influxdb.write("probe value=1 1768905000000000000")
    assert influxdb.count("probe") >= 1


def test_influxdb_query_errors_are_clear(influxdb):
    with pytest.raises(HarnessError, match="InfluxDB"):
        influxdb.query("SELEKT nonsense")


def test_fresh_influxdb_keeps_data_across_stop_and_start(fresh_influxdb):
    fresh_influxdb.write(["m value=1 1768905000000000000", "m value=2 1768905001000000000"])
    fresh_influxdb.stop()
    assert not fresh_influxdb.is_running()
    with pytest.raises(HarnessError, match="unreachable"):
        fresh_influxdb.count("m")
    fresh_influxdb.start()
    assert fresh_influxdb.is_running()
    assert fresh_influxdb.count("m") == 2


def test_victoria_metrics_via_the_influxdb_v2_write_api(victoria_metrics):
    # VictoriaMetrics ignores the token, org and bucket; influxdb_client insists on them.
    with InfluxDBClient(url=victoria_metrics.url, token="ignored", org="any") as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket="any", record=[
                Point("vmtest").tag("site", "s1").tag("device", "d1").field("value", 21.5)
                .time(1768905000000, write_precision="ms"),
                Point("vmtest").tag("site", "s1").tag("device", "d1").field("value", 22.5)
                .time(1768905001000, write_precision="ms"),
            ])

    series = victoria_metrics.export('vmtest_value{device="d1"}')

    assert len(series) == 1
    assert series[0]["metric"]["site"] == "s1"
    assert series[0]["values"] == [21.5, 22.5]
    assert series[0]["timestamps"] == [1768905000000, 1768905001000]


def test_victoria_metrics_query_sees_what_was_just_written(victoria_metrics):
    request = urllib.request.Request(f"{victoria_metrics.write_url_v2}?org=x&bucket=y",
                                     data=b"vmnow,site=s2 value=7", method="POST")
    urllib.request.urlopen(request, timeout=30).close()

    result = victoria_metrics.query('vmnow_value{site="s2"}')

    assert [sample["value"][1] for sample in result] == ["7"]
    assert victoria_metrics.export('{__name__=~"iotwatch_harness_flush.*"}') == []


def test_missing_binary_names_the_debian_package():
    with pytest.raises(HarnessError, match="apt-get install iotwatch-nonexistent-package"):
        find_binary("iotwatch-nonexistent-server", "iotwatch-nonexistent-package")


def test_start_up_failure_shows_the_server_log(tmp_path):
    server = ServerProcess(
        "broken", [sys.executable, "-c", "import sys; print('bad option --frobnicate'); "
                   "sys.exit(3)"], tmp_path / "broken.log", ready=lambda: False)
    with pytest.raises(HarnessError, match=r"(?s)exited with code 3.*bad option --frobnicate"):
        server.start()
    assert not server.is_running()


def test_servers_die_with_a_killed_test_process(tmp_path):
    """Even SIGKILL of the test process (no finalizers, no atexit) leaves no server behind."""
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(TESTS_DIR)!r})
        from harness.process import ServerProcess
        server = ServerProcess("sleeper", [sys.executable, "-c", "import time; time.sleep(600)"],
                               {str(tmp_path / "sleeper.log")!r}, ready=lambda: True)
        server.start()
        print(server._guard.pid, flush=True)
        time.sleep(600)
    """)
    test_process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                    text=True)
    try:
        guard_pid = int(test_process.stdout.readline())
        server_pid = wait_until(lambda: _children(guard_pid), what="the guarded server")[0]
        os.kill(test_process.pid, signal.SIGKILL)
        test_process.wait()
        wait_until(lambda: not _alive(server_pid), timeout=60, what="the server to be stopped")
        wait_until(lambda: not _alive(guard_pid), timeout=60, what="the guard to exit")
    finally:
        if test_process.poll() is None:
            test_process.kill()
        test_process.wait()


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited, it only waits to be reaped by init
