"""Logging set-up: plain text for people, one JSON object per line for machines.

Both formats stamp records in UTC with the zone (``2026-01-20T10:30:00.123Z``) and name
the service, so lines from several services (or hosts) sort and merge as they are.

>>> record = logging.LogRecord("detector.app", logging.WARNING, "", 0, "disk %s", ("full",),
...                            None)
>>> record.created, record.msecs = 1768905000.25, 250.0
>>> TextFormatter("detector").format(record)
'2026-01-20T10:30:00.250Z detector WARNING detector.app: disk full'
>>> JsonFormatter("detector").format(record)
'{"ts":"2026-01-20T10:30:00.250Z","level":"warning","service":"detector","logger":"detector.app","msg":"disk full"}'
"""

from __future__ import annotations

import logging
import sys
import time

import orjson

from iotwatch.config import LogSettings

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_json = False  # what setup_logging chose: fatal() writes in the same format


def utc_timestamp(record: logging.LogRecord) -> str:
    """The record's time as RFC 3339 UTC with milliseconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + \
        f".{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    """``<UTC time> <service> <LEVEL> <logger>: <message>``, then the traceback if any."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line = (f"{utc_timestamp(record)} {self.service} {record.levelname} {record.name}: "
                f"{record.getMessage()}")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``extra={...}`` fields become keys."""

    def __init__(self, service: str = "") -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        body = {"ts": utc_timestamp(record), "level": record.levelname.lower()}
        if self.service:
            body["service"] = self.service
        body.update({"logger": record.name, "msg": record.getMessage()})
        body.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(body, default=str).decode()


def setup_logging(settings: LogSettings, service: str) -> None:
    """Configure the root logger once for a service process (logs go to stderr)."""
    global _json
    _json = settings.format == "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if _json else TextFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)


def fatal(command: str, message: str) -> None:
    """Report the error that stops a command: a JSON log line when JSON logs were asked
    for (so log collectors see why the service died), else ``<command>: <message>``."""
    if _json:
        logging.getLogger(command.replace(" ", ".")).critical(message, extra={"fatal": True})
    else:
        print(f"{command}: {message}", file=sys.stderr)
