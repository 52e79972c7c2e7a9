"""The alerting service's liveness and readiness endpoints."""

from __future__ import annotations

import urllib.error
import urllib.request

import orjson


def answer(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def test_live_names_the_threads_and_ready_is_health(mosquitto, webhook, service_config,
                                                   start_service):
    service = start_service(service_config(mosquitto, {"hook": {"webhook": {"url": webhook.url}}}))
    status, live = answer(service.base + "/health/live")
    assert status == 200, live
    assert set(live["threads"]) == {"dispatch", "deliver-hook/webhook"}
    status, ready = answer(service.base + "/health/ready")
    assert status == 200 and ready["mqtt"] == "connected"
    assert answer(service.base + "/health")[1].keys() == ready.keys()
