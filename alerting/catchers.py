"""Local receivers that record what the alerting service sends: an SMTP catcher and a webhook.

For the demo and the tests (real servers on loopback, no mocks)::

    python -m alerting.catchers smtp --port 1025 [--user alerting:secret] [--starttls]
    python -m alerting.catchers webhook --port 9000 [--secret-env WEBHOOK_SECRET]

Each prints one line per notification received (``--json`` for JSON lines). In a test::

    with WebhookCatcher(secret=b"s3cret") as hook:
        hook.respond(500, times=3)          # fail the next three requests
        ...
        hook.wait_for(2)                     # two distinct notifications accepted
        hook.notifications()                 # {(fingerprint, state), ...}

Both drop a second delivery of the same notification (same idempotency key) from
``unique()`` and count it in ``duplicates()``, as a careful receiver would.

>>> with WebhookCatcher() as hook:
...     import urllib.request
...     _ = urllib.request.urlopen(urllib.request.Request(
...         hook.url, data=b'{"alerts": []}', headers={"Idempotency-Key": "k1"}))
...     [r.status for r in hook.wait_for(1)]
[200]
"""

from __future__ import annotations

import argparse
import email
import email.policy
import os
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from alerting.receivers.email import ALERTS_HEADER, IDEMPOTENCY_HEADER
from alerting.receivers.webhook import verify_signature
from iotwatch.ports import free_port, wait_until


def make_dev_cert(directory: Path, hostname: str = "localhost") -> tuple[Path, Path]:
    """A self-signed certificate for ``hostname`` and 127.0.0.1 (cert, key), by openssl.

    Clients trust it by using the certificate file as their CA file.
    """
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "catcher.crt", directory / "catcher.key"
    result = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "7", "-subj", f"/CN={hostname}",
         "-addext", f"subjectAltName=DNS:{hostname},IP:127.0.0.1",
         "-addext", "basicConstraints=critical,CA:TRUE"],
        capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl could not make a development certificate: {result.stderr}")
    return cert, key


# ---------------------------------------------------------------------------
# SMTP
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CaughtEmail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    login: str | None  # the authenticated user, if any
    tls: bool

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def idempotency_key(self) -> str | None:
        return self.message[IDEMPOTENCY_HEADER] or self.message["Message-ID"]

    @property
    def alerts(self) -> list[tuple[str, str]]:
        """(fingerprint, state) of every alert in the message."""
        header = str(self.message[ALERTS_HEADER] or "")
        pairs = [item.strip().partition("=") for item in header.split(",") if item.strip()]
        return [(fp, state) for fp, _, state in pairs]

    def body(self, subtype: str = "plain") -> str:
        part = self.message.get_body(preferencelist=(subtype,))
        return "" if part is None else part.get_content()


class _SmtpHandler:
    def __init__(self, catcher: SmtpCatcher) -> None:
        self.catcher = catcher

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.catcher._next_reply()
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        login = session.auth_data if isinstance(session.auth_data, str) else None
        caught = CaughtEmail(envelope.mail_from, tuple(envelope.rcpt_tos), message, login,
                             session.ssl is not None
                             or server.transport.get_extra_info("ssl_object") is not None)
        self.catcher._record(caught)
        return "250 Message accepted for delivery"


class SmtpCatcher:
    """An aiosmtpd server on loopback that keeps every message.

    ``users`` turns on AUTH (LOGIN/PLAIN) and requires it; ``cert`` (cert, key) offers
    STARTTLS, or implicit TLS with ``implicit_tls``; ``require_tls`` refuses mail
    before STARTTLS.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 users: dict[str, str] | None = None, cert: tuple[Path, Path] | None = None,
                 implicit_tls: bool = False, require_tls: bool = False,
                 echo: bool = False, json_lines: bool = False) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.users = users
        self.cert = cert
        self.implicit_tls = implicit_tls
        self.require_tls = require_tls
        self.echo = echo
        self.json_lines = json_lines
        self._messages: list[CaughtEmail] = []
        self._replies: deque[str] = deque()
        self._lock = threading.Lock()
        self._controller: Any = None

    def __enter__(self) -> SmtpCatcher:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    def start(self) -> SmtpCatcher:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
            login = auth_data.login.decode()
            password = auth_data.password.decode()
            ok = self.users is not None and self.users.get(login) == password
            return AuthResult(success=ok, handled=False, auth_data=login if ok else None)

        kwargs: dict[str, Any] = {}
        context = None
        if self.cert is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(self.cert[0]), str(self.cert[1]))
            if not self.implicit_tls:
                kwargs["tls_context"] = context
                kwargs["require_starttls"] = self.require_tls
        if self.users is not None:
            kwargs.update(authenticator=authenticate, auth_required=True,
                          auth_require_tls=self.cert is not None)
        self._controller = Controller(
            _SmtpHandler(self), hostname=self.host, port=self.port,
            ssl_context=context if self.implicit_tls else None,
            server_hostname="localhost", **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def reply(self, smtp_reply: str, times: int = 1) -> None:
        """Answer the next ``times`` recipients with ``smtp_reply`` (say "451 try later")."""
        with self._lock:
            self._replies.extend([smtp_reply] * times)

    def _next_reply(self) -> str | None:
        with self._lock:
            return self._replies.popleft() if self._replies else None

    def _record(self, caught: CaughtEmail) -> None:
        with self._lock:
            self._messages.append(caught)
        if self.echo:
            _print_email(caught, self.json_lines)

    @property
    def messages(self) -> list[CaughtEmail]:
        with self._lock:
            return list(self._messages)

    def unique(self) -> list[CaughtEmail]:
        """Messages with a second delivery of the same idempotency key dropped."""
        seen, kept = set(), []
        for message in self.messages:
            if message.idempotency_key not in seen:
                seen.add(message.idempotency_key)
                kept.append(message)
        return kept

    def duplicates(self) -> int:
        return len(self.messages) - len(self.unique())

    def notifications(self) -> set[tuple[str, str]]:
        return {pair for message in self.unique() for pair in message.alerts}

    def wait_for(self, n: int, timeout: float = 30.0) -> list[CaughtEmail]:
        """Wait until ``n`` distinct messages arrived; return them."""
        wait_until(lambda: len(self.unique()) >= n, timeout,
                   what=f"{n} e-mail(s) on port {self.port}")
        return self.unique()


# ---------------------------------------------------------------------------
# Webhook
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CaughtRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    payload: Any
    status: int  # what the catcher answered
    signature_ok: bool | None  # None: no secret configured

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")

    @property
    def alerts(self) -> list[tuple[str, str]]:
        alerts = self.payload.get("alerts", []) if isinstance(self.payload, dict) else []
        return [(a.get("fingerprint"), a.get("status")) for a in alerts]


@dataclass
class _Script:
    responses: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)
    default: tuple[int, dict[str, str]] = (200, {})


class WebhookCatcher:
    """A stdlib HTTP server on loopback that records every POST.

    With ``secret``, requests are checked with ``verify_signature`` and a bad signature
    is answered 401; with ``cert`` (cert, key) it serves HTTPS. ``respond`` scripts
    failures.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, secret: bytes | None = None,
                 cert: tuple[Path, Path] | None = None, echo: bool = False,
                 json_lines: bool = False) -> None:
        self.host = host
        self.secret = secret
        self.echo = echo
        self.json_lines = json_lines
        self._requests: list[CaughtRequest] = []
        self._script = _Script()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self.scheme = "http"
        if cert is not None:  # HTTPS with a certificate the client must trust
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(cert[0]), str(cert[1]))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self.port = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/hook"

    def __enter__(self) -> WebhookCatcher:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    def start(self) -> WebhookCatcher:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name=f"webhook-catcher-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def respond(self, status: int, times: int | None = None,
                headers: dict[str, str] | None = None) -> None:
        """Answer the next ``times`` requests with ``status`` (None: from now on)."""
        with self._lock:
            if times is None:
                self._script.responses.clear()
                self._script.default = (status, headers or {})
            else:
                self._script.responses.extend([(status, headers or {})] * times)

    def _answer(self) -> tuple[int, dict[str, str]]:
        with self._lock:
            if self._script.responses:
                return self._script.responses.popleft()
            return self._script.default

    @property
    def requests(self) -> list[CaughtRequest]:
        """Every request, answered 2xx or not."""
        with self._lock:
            return list(self._requests)

    def accepted(self) -> list[CaughtRequest]:
        return [r for r in self.requests if 200 <= r.status < 300]

    def unique(self) -> list[CaughtRequest]:
        """Accepted requests with repeats of an idempotency key dropped."""
        seen, kept = set(), []
        for request in self.accepted():
            if request.idempotency_key not in seen:
                seen.add(request.idempotency_key)
                kept.append(request)
        return kept

    def duplicates(self) -> int:
        return len(self.accepted()) - len(self.unique())

    def notifications(self) -> set[tuple[str, str]]:
        return {pair for request in self.unique() for pair in request.alerts}

    def wait_for(self, n: int, timeout: float = 30.0) -> list[CaughtRequest]:
        """Wait until ``n`` distinct notifications were accepted; return them."""
        wait_until(lambda: len(self.unique()) >= n, timeout,
                   what=f"{n} accepted webhook request(s) on port {self.port}")
        return self.unique()

    def wait_for_requests(self, n: int, timeout: float = 30.0) -> list[CaughtRequest]:
        """Wait until ``n`` requests arrived, whatever they were answered."""
        wait_until(lambda: len(self.requests) >= n, timeout, what=f"{n} webhook request(s)")
        return self.requests

    def _handler_class(self):
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    payload = orjson.loads(body)
                except orjson.JSONDecodeError:
                    payload = None
                signature_ok = None
                if catcher.secret is not None:
                    signature_ok = verify_signature(catcher.secret, headers, body, time.time())
                status, extra = catcher._answer()
                if signature_ok is False:
                    status, extra = 401, {}
                caught = CaughtRequest(self.path, headers, body, payload, status, signature_ok)
                with catcher._lock:
                    catcher._requests.append(caught)
                if catcher.echo:
                    _print_request(caught, catcher.json_lines)
                reply = orjson.dumps({"status": status})
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def _print_email(caught: CaughtEmail, json_lines: bool) -> None:
    if json_lines:
        print(orjson.dumps({"kind": "email", "subject": caught.subject,
                            "to": list(caught.rcpt_tos), "key": caught.idempotency_key,
                            "alerts": caught.alerts}).decode(), flush=True)
    else:
        alerts = " ".join(f"{fp}={state}" for fp, state in caught.alerts)
        print(f"email to {', '.join(caught.rcpt_tos)}: {caught.subject}  [{alerts}]",
              flush=True)


def _print_request(caught: CaughtRequest, json_lines: bool) -> None:
    if json_lines:
        print(orjson.dumps({"kind": "webhook", "status": caught.status, "path": caught.path,
                            "key": caught.idempotency_key, "signature_ok": caught.signature_ok,
                            "alerts": caught.alerts}).decode(), flush=True)
    else:
        status = caught.payload.get("status") if isinstance(caught.payload, dict) else "?"
        alerts = " ".join(f"{fp}={state}" for fp, state in caught.alerts)
        signed = {None: "unsigned", True: "signature ok", False: "BAD SIGNATURE"}
        print(f"webhook {caught.path} -> {caught.status}: {status} [{alerts}] "
              f"({signed[caught.signature_ok]})", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alerting.catchers",
                                     description="Local receivers that print what they get.")
    kinds = parser.add_subparsers(dest="kind", required=True)
    smtp = kinds.add_parser("smtp", help="an SMTP server that prints every e-mail")
    smtp.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD",
                      help="require AUTH with these credentials (repeatable)")
    smtp.add_argument("--starttls", action="store_true",
                      help="offer STARTTLS with a fresh self-signed certificate")
    smtp.add_argument("--implicit-tls", action="store_true", help="TLS from the first byte")
    smtp.add_argument("--cert-dir", type=Path,
                      help="where to write the certificate (clients use it as ca_file)")
    hook = kinds.add_parser("webhook", help="an HTTP server that prints every POST")
    hook.add_argument("--secret-env", metavar="VAR",
                      help="verify X-Iotwatch-Signature with the secret in this variable")
    for sub in (smtp, hook):
        sub.add_argument("--host", default="127.0.0.1")
        sub.add_argument("--port", type=int, default=0)
        sub.add_argument("--json", action="store_true", help="print JSON lines")
    args = parser.parse_args(argv)

    if args.kind == "smtp":
        cert = None
        if args.starttls or args.implicit_tls:
            cert = make_dev_cert(args.cert_dir or Path(tempfile.mkdtemp(prefix="catcher-")))
        users = dict(u.partition(":")[::2] for u in args.user) or None
        server: SmtpCatcher | WebhookCatcher = SmtpCatcher(
            args.host, args.port, users=users, cert=cert, implicit_tls=args.implicit_tls,
            echo=True, json_lines=args.json)
        where = f"smtp://{args.host}:{server.port}"
        if cert is not None:
            where += f" (certificate {cert[0]})"
    else:
        secret = None
        if args.secret_env:
            value = os.environ.get(args.secret_env)
            if not value:
                parser.error(f"environment variable {args.secret_env} is not set")
            secret = value.encode()
        server = WebhookCatcher(args.host, args.port, secret=secret, echo=True,
                                json_lines=args.json)
        where = server.url
    server.start()
    print(f"listening on {where}; Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
