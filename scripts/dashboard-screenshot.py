#!/usr/bin/env python3
"""Screenshot of the dashboard during the demo, for docs/dashboard.png.

    .venv/bin/python scripts/dashboard-screenshot.py [--out docs/dashboard.png] [--duration 45]

Runs ``iotwatch demo`` (real broker, detector, alerting and store, as a user runs it),
opens the dashboard URL it prints in headless Chromium (Debian's ``chromium`` through
Playwright), waits until an injected fault fires and a few alerts are in the history,
writes a full-page screenshot, then stops the demo (Ctrl-C, which stops everything it
started). Needs the test extras (playwright) and /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from iotwatch.dashboard import browser  # noqa: E402

WAIT_URL_S = 120
WAIT_FIRING_S = 90


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=PROJECT / "docs" / "dashboard.png")
    parser.add_argument("--duration", default="45", help="the demo's --duration")
    parser.add_argument("--min-alerts", type=int, default=3,
                        help="alert transitions in the history before the picture")
    args = parser.parse_args()
    reason = browser.unavailable()
    if reason:
        print(f"dashboard-screenshot: {reason}", file=sys.stderr)
        return 2
    demo = subprocess.Popen([sys.executable, "-m", "iotwatch.cli", "demo", "--no-live",
                             "--duration", args.duration], cwd=PROJECT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(demo.stdout), daemon=True).start()
    try:
        url = _wait(lambda: _url(lines), WAIT_URL_S, "the dashboard URL", lines)
        print(f"demo running; dashboard at {url}", flush=True)
        with browser.chromium_page(width=1400, height=1000) as page:
            page.goto(url)
            print("waiting for a fault to fire ...", flush=True)
            _wait(lambda: page.locator(".firing-table-row").count() > 0
                  and page.locator(".history-table-row").count() >= args.min_alerts,
                  WAIT_FIRING_S, "a firing alert on the page", lines)
            time.sleep(1.5)     # one more refresh, so every panel shows the same moment
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
        print(f"wrote {args.out}", flush=True)
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(60)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait(10)
    return 0


def _url(lines: list[str]) -> str | None:
    found = re.search(r"^dashboard: (http://\S+)", "".join(lines), re.M)
    return found[1] if found else None


def _wait(predicate, timeout_s: float, what: str, lines: list[str]):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise SystemExit(f"dashboard-screenshot: no {what} after {timeout_s:g} s; demo output:\n"
                     + "".join(lines[-30:]))


if __name__ == "__main__":
    sys.exit(main())
