"""The demo's MQTT broker: the project's Mosquitto set-up if installed, else embedded amqtt.

With Mosquitto the demo runs the project's own ``mosquitto/mosquitto.conf`` and ACL with
passwords made for this run by ``mosquitto/make-passwd.sh``; only the listener (one plain
listener on a free loopback port, no TLS) and the file paths change. So the demo exercises
the same authentication and least-privilege ACL as production.

>>> conf = "allow_anonymous false\\nlistener 1883\\nlistener 8883\\ncafile /c/ca.crt\\n" \\
...        "password_file /mosquitto/config/passwd\\n"
>>> print(demo_config(conf, port=2000, paths={"password_file": "/t/passwd"}), end="")
allow_anonymous false
listener 2000 127.0.0.1
password_file /t/passwd
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from iotwatch.demo.processes import ProcessGroup
from iotwatch.ports import free_port, wait_for_port

PROJECT_DIR = Path(__file__).resolve().parents[2]
MOSQUITTO_DIR = PROJECT_DIR / "mosquitto"
ROLES = ("publisher", "detector", "alerting", "monitor")
HOST = "127.0.0.1"
# Options of the TLS listener: the demo runs plain MQTT on loopback only.
_TLS_OPTIONS = frozenset({"cafile", "capath", "certfile", "keyfile", "tls_version",
                          "require_certificate", "use_identity_as_username", "crlfile"})


class BrokerError(Exception):
    """The broker could not be started."""


@dataclass
class DemoBroker:
    kind: str
    host: str
    port: int
    passwords: dict[str, str] = field(default_factory=dict)

    def mqtt_env(self, role: str) -> dict[str, str]:
        """Environment overrides that point a service's ``mqtt:`` section at this broker."""
        return {"IOTWATCH__MQTT__HOST": self.host, "IOTWATCH__MQTT__PORT": str(self.port),
                "IOTWATCH__MQTT__USERNAME": role,
                "IOTWATCH__MQTT__PASSWORD": self.passwords.get(role, "demo")}

    def describe(self) -> str:
        return f"{self.kind} on {self.host}:{self.port}"


def mosquitto_available() -> str | None:
    """Why the project's Mosquitto set-up cannot be used, or None when it can."""
    if shutil.which("mosquitto") is None or shutil.which("mosquitto_passwd") is None:
        return "mosquitto is not installed (Debian package: mosquitto)"
    if not (MOSQUITTO_DIR / "mosquitto.conf").exists():
        return f"the project's broker configuration is not at {MOSQUITTO_DIR}"
    return None


def start_broker(group: ProcessGroup, workdir: Path, prefer_embedded: bool = False,
                 timeout_s: float = 20.0) -> tuple[DemoBroker, str | None]:
    """Start Mosquitto when possible, else the embedded broker; say why when falling back."""
    why_not = "--embedded-broker was given" if prefer_embedded else mosquitto_available()
    if why_not is None:
        return start_mosquitto(group, workdir, timeout_s), None
    return start_embedded(group, timeout_s), why_not


def start_mosquitto(group: ProcessGroup, workdir: Path, timeout_s: float = 20.0) -> DemoBroker:
    root = workdir / "mosquitto"
    (root / "data").mkdir(parents=True, exist_ok=True)
    passwords = {role: secrets.token_urlsafe(12) for role in ROLES}
    env = {**os.environ, **{f"MQTT_{r.upper()}_PASSWORD": p for r, p in passwords.items()}}
    result = subprocess.run(["sh", str(MOSQUITTO_DIR / "make-passwd.sh"), str(root / "passwd")],
                            env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BrokerError(f"make-passwd.sh failed: {result.stderr.strip()}")
    shutil.copyfile(MOSQUITTO_DIR / "acl", root / "acl")
    port = free_port()
    conf = demo_config((MOSQUITTO_DIR / "mosquitto.conf").read_text(encoding="utf-8"),
                       port=port, paths={"password_file": str(root / "passwd"),
                                         "acl_file": str(root / "acl"),
                                         "persistence_location": f"{root / 'data'}/"})
    (root / "mosquitto.conf").write_text(conf, encoding="utf-8")
    _readable_by_broker(workdir, root)
    child = group.start("mosquitto", [shutil.which("mosquitto") or "mosquitto", "-c",
                                      str(root / "mosquitto.conf")])
    if not wait_for_port(HOST, port, timeout_s, alive=child.running):
        raise BrokerError(f"mosquitto did not start:\n{child.log_tail()}")
    return DemoBroker("Mosquitto (project config, auth and ACL)", HOST, port, passwords)


def start_embedded(group: ProcessGroup, timeout_s: float = 20.0) -> DemoBroker:
    port = free_port()
    child = group.start("embedded-broker", [sys.executable, "-m", "iotwatch.demo.embedded_broker",
                                            "--host", HOST, "--port", str(port)])
    if not wait_for_port(HOST, port, timeout_s, alive=child.running):
        raise BrokerError(f"embedded broker did not start:\n{child.log_tail()}")
    # amqtt checks usernames, not passwords; any password is accepted.
    return DemoBroker("embedded amqtt broker (no ACL)", HOST, port,
                      {role: "demo" for role in ROLES})


def demo_config(text: str, *, port: int, paths: dict[str, str]) -> str:
    """The project's mosquitto.conf with one loopback listener on ``port`` and new paths."""
    lines, listeners = [], 0
    for line in text.splitlines():
        words = line.split()
        option = words[0] if words and not words[0].startswith("#") else ""
        if option == "listener":
            listeners += 1
            if listeners > 1:
                continue
            line = f"listener {port} {HOST}"
        elif option in _TLS_OPTIONS:
            continue
        elif option in paths:
            line = f"{option} {paths[option]}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _readable_by_broker(workdir: Path, root: Path) -> None:
    # Started as root, Mosquitto drops to the "mosquitto" user before reading its files.
    if os.geteuid() != 0:
        return
    try:
        user = pwd.getpwnam("mosquitto")
    except KeyError:
        return
    workdir.chmod(0o711)
    for path in (root, root / "data", root / "passwd", root / "acl", root / "mosquitto.conf"):
        os.chown(path, user.pw_uid, -1)
