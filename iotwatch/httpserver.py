"""A tiny threaded HTTP server for service endpoints (/health, /metrics, ...).

Built on the standard library's ThreadingHTTPServer: the services need a handful of
routes, not a web framework.

>>> server = serve("127.0.0.1", 0, {("GET", "/health"): lambda req: Response.json({"ok": True})})
>>> import urllib.request
>>> urllib.request.urlopen(f"http://127.0.0.1:{server.port}/health").read()
b'{"ok":true}'
>>> server.close()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Response:
        return cls(status, orjson.dumps(data), "application/json")

    @classmethod
    def metrics(cls, registry: CollectorRegistry) -> Response:
        return cls(200, generate_latest(registry), CONTENT_TYPE_LATEST)


Handler = Callable[[Request], Response]
MAX_BODY_BYTES = 1_048_576


class Server:
    """A running server; ``port`` is the bound port (useful with port 0)."""

    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        self.host, self.port = httpd.server_address[:2]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def serve(host: str, port: int, routes: dict[tuple[str, str], Handler]) -> Server:
    """Serve ``routes`` ((method, path) -> handler) on a daemon thread.

    A path ending in ``/*`` matches every path below it (``/silences/*`` matches
    ``/silences/abc``); the handler reads the rest from ``request.path``.
    """

    class RouteHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _dispatch(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._send(Response.json({"error": f"body over {MAX_BODY_BYTES} bytes"}, 413))
                return
            body = self.rfile.read(length) if length else b""
            handler = routes.get((self.command, url.path)) or _prefix_route(
                routes, self.command, url.path)
            if handler is None:
                allowed = sorted(m for m, p in routes if _path_matches(p, url.path))
                status = 405 if allowed else 404
                self._send(Response.json({"error": "not found" if status == 404 else
                                          f"method not allowed, use {', '.join(allowed)}"},
                                         status))
                return
            request = Request(self.command, url.path, parse_qs(url.query),
                              {k.lower(): v for k, v in self.headers.items()}, body)
            try:
                response = handler(request)
            except Exception:  # an endpoint bug must not take the service down
                log.exception("error in %s %s", self.command, url.path)
                response = Response.json({"error": "internal error"}, 500)
            self._send(response)

        do_GET = do_POST = do_DELETE = do_PUT = _dispatch

        def _send(self, response: Response) -> None:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http " + format, *args)

    httpd = ThreadingHTTPServer((host, port), RouteHandler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name=f"http-{port}", daemon=True)
    thread.start()
    return Server(httpd, thread)


def _path_matches(pattern: str, path: str) -> bool:
    if pattern.endswith("/*"):
        return path.startswith(pattern[:-1]) and len(path) > len(pattern) - 1
    return pattern == path


def _prefix_route(routes: dict[tuple[str, str], Handler], method: str,
                  path: str) -> Handler | None:
    for (route_method, pattern), handler in routes.items():
        if route_method == method and pattern.endswith("/*") and _path_matches(pattern, path):
            return handler
    return None
