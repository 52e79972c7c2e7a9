"""``iotwatch demo`` serves the dashboard: its URL is printed, the page shows the demo's
streams and alerts from the file store (no InfluxDB) and the dead letter from the broker
while the run goes on, and the demo
still passes and leaves nothing behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading

import pytest
from harness import wait_until

from iotwatch.dashboard import browser

pytestmark = pytest.mark.slow


def test_the_demo_prints_the_dashboard_url_and_the_page_shows_the_run():
    reason = browser.unavailable()
    if reason and os.environ.get("CI"):
        pytest.fail(f"CI must run the browser test (.ci/run installs chromium): {reason}")
    if reason:
        pytest.skip(f"no headless browser: {reason}")
    process = subprocess.Popen(
        [sys.executable, "-m", "iotwatch.cli", "demo", "--no-live", "--file-store",
         "--duration", "40"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    try:
        found = wait_until(lambda: re.search(r"^dashboard: (http://127\.0\.0\.1:\d+/)",
                                             "".join(lines), re.M), 120,
                           what=f"the dashboard's URL in the demo's output: {lines}")
        problems: list[str] = []
        with browser.chromium_page() as page:
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.goto(found[1])
            assert "line-protocol file" in page.inner_text("#source")
            stream = "boiler-house/boiler-1/supply_temp"
            wait_until(lambda: stream in page.inner_text("#streams-graph"), 60,
                       what="the demo's streams charted from the file store")
            wait_until(lambda: "firing" in page.inner_text("#alert-history"), 60,
                       what="the demo's first alert in the history")
            wait_until(lambda: "boiler-house/pump-1/power" in page.inner_text(
                ".dead-letter-list"), 60, what="the demo's malformed reading as a dead letter")
            assert page.inner_text("#service-detector .state") == "ok"
            assert page.inner_text("#service-alerting .state") == "ok"
        assert problems == []
        assert process.wait(180) == 0, "".join(lines)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
    reader.join(10)
    assert "RESULT: PASS" in "".join(lines)
