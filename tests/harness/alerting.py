"""The alerting service for tests: its configuration, its secrets and ``python -m alerting``
as a process (for kill and restart tests). Shared by tests/alerting and tests/drills.

    raw = alerting_config(tmp_path, broker, {"hook": {"webhook": {"url": hook.url}}})
    service = ServiceProcess(raw, secrets_env(broker, raw), tmp_path)
    service.start()                      # returns once /health answers 200
    service.get("/health")["outbox"]     # pending notifications per target
    service.kill()                       # SIGKILL
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
import yaml

from .process import free_port, wait_until

PROJECT = Path(__file__).resolve().parents[2]
SMTP_USER = "alerting-test"
SMTP_PASSWORD = "smtp-test-password-7f3a"  # test-only credentials of the test SMTP server
WEBHOOK_SECRET = "webhook-test-secret-91c2"


def alerting_config(tmp_path: Path, broker: Any, receivers: dict[str, dict[str, Any]], *,
                    http_port: int | None = None, route: dict[str, Any] | None = None,
                    **alerting: Any) -> dict[str, Any]:
    """A raw ``config/alerting.yaml`` mapping for the service against ``broker``.

    ``receivers`` maps names to receiver sections; the root route sends to every one of
    them (a ``continue`` child per receiver); timings are short for tests.
    """
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


def email_section(server: Any, ca_file: Path, **overrides: Any) -> dict[str, Any]:
    """The ``email:`` section (without the password) for an ``SmtpCatcher`` started with
    ``users={SMTP_USER: SMTP_PASSWORD}`` and a certificate whose file is ``ca_file``."""
    section = {"to": ["ops@example.com", "oncall@example.com"],
               "from": "iotwatch@example.com", "host": server.host, "port": server.port,
               "tls": "starttls", "ca_file": str(ca_file), "username": SMTP_USER,
               "timeout_s": 10}
    section.update(overrides)
    return section


def secrets_env(broker: Any, raw: dict[str, Any]) -> dict[str, str]:
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
                       or http_status(self.base + "/health") == 200,
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

    def close(self) -> None:
        """SIGKILL the process if it still runs (a fixture's teardown)."""
        if self.process is not None and self.process.poll() is None:
            self.kill()

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")[-6000:]


def http_status(url: str) -> int | None:
    """The status GET ``url`` answers with, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None
