"""Fixtures for the alerting tests: real SMTP and webhook servers (the project's catchers),
alert payloads, service configurations, and the service run in-process or as a process.

- ``smtp_server``: aiosmtpd requiring STARTTLS and AUTH (a self-signed certificate made
  by openssl for the session); ``smtp_settings(server)`` is the matching ``email:`` section.
- ``webhook``: a webhook catcher checking the HMAC signature with ``WEBHOOK_SECRET``.
- ``make_alert(...)``: an ``Alert``; ``publish_alert(broker, alert)`` publishes it as the
  detector would.
- ``service_config(...)``: a raw ``config/alerting.yaml`` mapping; ``start_service(raw)``
  runs the service in a thread and returns a handle with its HTTP API.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from harness import wait_until
from harness.alerting import (
    SMTP_PASSWORD,
    SMTP_USER,
    WEBHOOK_SECRET,
    ServiceProcess,
    alerting_config,
    email_section,
    http_status,
    secrets_env,
)

from alerting.catchers import SmtpCatcher, WebhookCatcher, make_dev_cert
from alerting.config import AlertingFile
from iotwatch.config import build_config
from iotwatch.contracts import Alert, alert_fingerprint
from iotwatch.topics import Topics

T0 = 1_768_905_000.0  # 2026-01-20T10:30:00Z


@pytest.fixture(scope="session")
def smtp_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_dev_cert(tmp_path_factory.mktemp("smtp-cert"))


@pytest.fixture
def smtp_server(smtp_cert: tuple[Path, Path]) -> Iterator[SmtpCatcher]:
    with SmtpCatcher(users={SMTP_USER: SMTP_PASSWORD}, cert=smtp_cert,
                     require_tls=True) as server:
        yield server


@pytest.fixture
def smtp_settings(smtp_cert: tuple[Path, Path]) -> Callable[..., dict[str, Any]]:
    """The ``email:`` section (without the password) for an SMTP catcher."""
    def make(server: SmtpCatcher, **overrides: Any) -> dict[str, Any]:
        return email_section(server, smtp_cert[0], **overrides)
    return make


@pytest.fixture
def webhook() -> Iterator[WebhookCatcher]:
    with WebhookCatcher(secret=WEBHOOK_SECRET.encode()) as hook:
        yield hook


@pytest.fixture
def make_alert() -> Callable[..., Alert]:
    def make(site: str = "plant-1", device: str = "boiler-1", metric: str = "temperature",
             state: str = "firing", severity: str = "critical", *, ts: float = T0,
             starts_at: float | None = None, rule: str = "anomaly",
             value: float = 93.4) -> Alert:
        return Alert(alert_fingerprint(site, device, metric, rule), state, severity,  # type: ignore[arg-type]
                     site, device, metric, rule, value, 0.999, 0.99,
                     starts_at if starts_at is not None else ts - 20, ts,
                     ends_at=ts if state == "resolved" else None,
                     scores={"zscore": 7.8, "hst": 0.94},
                     annotations={"summary": f"{metric} on {site}/{device} is {state}"})
    return make


@pytest.fixture
def publish_alert() -> Callable[..., None]:
    def publish(broker, alert: Alert, payload: bytes | None = None,
                topic: str | None = None) -> None:
        topic = topic or Topics("iotwatch").alert(alert.site, alert.device, alert.metric)
        broker.publish("detector", topic, payload if payload is not None else alert.to_payload())
    return publish


@pytest.fixture
def unique_site() -> str:
    """A site name of this test's own: tests share the session broker's alert topics."""
    return f"site-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def service_config(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """A raw configuration mapping for the service against ``broker`` (see
    ``harness.alerting.alerting_config``)."""
    def make(broker, receivers: dict[str, dict[str, Any]], **options: Any) -> dict[str, Any]:
        return alerting_config(tmp_path, broker, receivers, **options)
    return make


class Service:
    """The service running in a thread of the test process."""

    def __init__(self, raw: dict[str, Any], environ: dict[str, str]) -> None:
        from alerting import app

        self.config = build_config(raw, AlertingFile, environ=environ)
        self.base = f"http://127.0.0.1:{self.config.http.port}"
        self.stop_event = threading.Event()
        self.result: list[Any] = []

        def target() -> None:
            try:
                self.result.append(app.run(self.config, self.stop_event))
            except BaseException as exc:  # shown by wait_ready / stop
                self.result.append(exc)

        self.thread = threading.Thread(target=target, name="alerting-service", daemon=True)
        self.thread.start()
        wait_until(lambda: self.result or http_status(self.base + "/health") == 200, timeout=30,
                   what="the alerting service to be healthy")
        if self.result:
            raise AssertionError(f"the service ended at start-up: {self.result[0]!r}")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=10) as response:
            return orjson.loads(response.read())

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else orjson.dumps(body)
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, orjson.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, orjson.loads(exc.read())

    def metrics(self) -> str:
        with urllib.request.urlopen(self.base + "/metrics", timeout=10) as response:
            return response.read().decode()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the service did not stop within 30 s"


@pytest.fixture
def start_service(mosquitto) -> Iterator[Callable[..., Service]]:
    started: list[Service] = []

    def start(raw: dict[str, Any], environ: dict[str, str] | None = None) -> Service:
        service = Service(raw, environ if environ is not None else secrets_env(mosquitto, raw))
        started.append(service)
        return service

    yield start
    for service in started:
        if service.thread.is_alive():
            service.stop()


@pytest.fixture
def service_process(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    made: list[ServiceProcess] = []

    def make(raw: dict[str, Any], environ: dict[str, str]) -> ServiceProcess:
        process = ServiceProcess(raw, environ, tmp_path)
        made.append(process)
        return process

    yield make
    for process in made:
        if process.process is not None and process.process.poll() is None:
            process.kill()
