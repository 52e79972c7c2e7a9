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

import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from harness import free_port, wait_until

from alerting.catchers import SmtpCatcher, WebhookCatcher, make_dev_cert
from alerting.config import AlertingFile
from iotwatch.config import build_config
from iotwatch.contracts import Alert, alert_fingerprint
from iotwatch.topics import Topics

PROJECT = Path(__file__).resolve().parents[2]
SMTP_USER = "alerting-test"
SMTP_PASSWORD = "smtp-test-password-7f3a"  # test-only credentials of the test SMTP server
WEBHOOK_SECRET = "webhook-test-secret-91c2"
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
        section = {"to": ["ops@example.com", "oncall@example.com"],
                   "from": "iotwatch@example.com", "host": server.host, "port": server.port,
                   "tls": "starttls", "ca_file": str(smtp_cert[0]), "username": SMTP_USER,
                   "timeout_s": 10}
        section.update(overrides)
        return section
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
    """A raw configuration mapping for the service against ``broker``.

    ``receivers`` maps names to receiver sections; the root route sends to every one of
    them (a ``continue`` child per receiver); timings are short for tests.
    """
    def make(broker, receivers: dict[str, dict[str, Any]], *, http_port: int | None = None,
             route: dict[str, Any] | None = None, **alerting: Any) -> dict[str, Any]:
        names = list(receivers)
        default_route = {
            "receiver": names[0], "group_by": ["site", "device"], "group_wait_s": 0.2,
            "group_interval_s": 0.5, "repeat_interval_s": 3600,
            "routes": [{"receiver": name, "continue": True} for name in names]}
        section = {
            "database": str(tmp_path / "alerting.sqlite3"),
            "route": route or default_route,
            "receivers": receivers,
            "delivery": {"retry": {"initial_s": 0.1, "max_s": 0.5, "jitter": 0.1}},
            **alerting}
        return {
            "mqtt": broker.mqtt_section("alerting",
                                        client_id=f"alerting-test-{uuid.uuid4().hex[:8]}"),
            "http": {"host": "127.0.0.1", "port": http_port or free_port()},
            "log": {"level": "DEBUG"},
            "alerting": section}
    return make


def secrets_env(broker, raw: dict[str, Any]) -> dict[str, str]:
    """The secrets of ``raw``'s receivers "email" and "hook", as the service reads them.

    (An override of a receiver that is not configured would create it, half-empty.)
    """
    env = dict(broker.env("alerting"))
    receivers = raw["alerting"]["receivers"]
    if "email" in receivers.get("email", {}):
        env["IOTWATCH__ALERTING__RECEIVERS__EMAIL__EMAIL__PASSWORD"] = SMTP_PASSWORD
    if "webhook" in receivers.get("hook", {}):
        env["IOTWATCH__ALERTING__RECEIVERS__HOOK__WEBHOOK__SECRET"] = WEBHOOK_SECRET
    return env


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
        wait_until(lambda: self.result or _status(self.base + "/health") == 200, timeout=30,
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


class ServiceProcess:
    """``python -m alerting --config FILE`` as a subprocess (for kill and restart tests)."""

    def __init__(self, raw: dict[str, Any], environ: dict[str, str], workdir: Path) -> None:
        self.config_file = workdir / "alerting.yaml"
        self.config_file.write_text(yaml.safe_dump(raw), encoding="utf-8")
        self.log_file = workdir / "alerting.log"
        self.env = {**os.environ, **environ}
        self.base = f"http://127.0.0.1:{raw['http']['port']}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "alerting", "--config", str(self.config_file)],
                cwd=PROJECT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: self.process.poll() is not None
                       or _status(self.base + "/health") == 200,
                       timeout=60, what="the alerting process to be healthy")
        except TimeoutError:
            self.kill()
            raise AssertionError(f"not healthy in time:\n{self.log()}") from None
        if self.process.poll() is not None:
            raise AssertionError(f"exited with {self.process.returncode}:\n{self.log()}")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=10) as response:
            return orjson.loads(response.read())

    def kill(self, signum: int = 9) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.process.wait(30)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")[-6000:]


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


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None
