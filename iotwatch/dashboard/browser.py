"""Headless Chromium for looking at the page: the browser test and the screenshot script.

Debian's ``chromium`` package driven by Playwright (``pip install playwright``, a test
extra); Playwright's own browser download is never used (``executable_path``). Nothing
here reaches beyond loopback: background networking, component updates and sync are off.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from typing import Any

CHROMIUM = os.environ.get("IOTWATCH_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def unavailable() -> str | None:
    """Why a browser cannot be started here, or None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; a test extra)"
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"{CHROMIUM} not found (Debian: apt-get install chromium)"
    return None


@contextlib.contextmanager
def chromium_page(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A Playwright page in headless Chromium; closed (browser too) on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            browser.close()
