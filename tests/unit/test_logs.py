"""Both log formats: UTC with the zone, and the service named."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from datetime import UTC, datetime

import pytest

from iotwatch.config import LogSettings
from iotwatch.logs import setup_logging

UTC_STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


@pytest.fixture
def captured(monkeypatch):
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # local time 5:30 away from UTC
    time.tzset()
    yield stream
    monkeypatch.undo()
    time.tzset()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_both_formats_stamp_utc_with_the_zone_and_name_the_service(captured, fmt):
    setup_logging(LogSettings(format=fmt), "publisher")
    logging.getLogger().handlers[0].setStream(captured)  # stderr, as set up, to a buffer
    logging.getLogger("publisher.app").warning("broker away")
    line = captured.getvalue().strip()
    if fmt == "json":
        record = json.loads(line)
        stamp, service = record["ts"], record["service"]
    else:
        stamp, service = line.split(" ")[:2]
    assert re.fullmatch(UTC_STAMP, stamp), line
    assert service == "publisher"
    logged = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - logged).total_seconds()) < 60
