"""The detector's HTTP endpoints (served by ``iotwatch.httpserver``).

- ``GET /health`` (and ``/health/ready``): readiness, 200 when the broker is connected
  and the sink writable, else 503; JSON either way, with the reasons, warnings (e.g.
  the stream limit), spool depth and backlog. ``status`` is "ok", "unavailable", or
  "degraded" (503 too) when the service runs but loses readings (sequence gaps above
  ``detector.sequence.max_gap_rate``).
- ``GET /health/live``: liveness, 200 while the processing and write threads run and
  their loops turn, else 503: restart on this one; an outage only makes it unready.
- ``GET /metrics``: Prometheus text format.
- ``GET /streams``: what the engine holds per stream (``?match=+/+/temperature`` filters).
- ``POST /predict``: scores a reading against the live stream model without learning it.
  Body: the contract's reading plus where it is from, ``{"site", "device", "metric",
  "ts", "value"}``, or the per-device form ``{"site", "device", "ts", "<metric>": value,
  ...}``. Answers ``{"results": [{"site", "device", "metric", "scores", "score",
  "threshold", "anomaly", "would_alert"}, ...]}``, or 400 with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST

from detector.engine.streams import matches
from detector.handler import MessageHandler
from iotwatch.contracts import Reason, Rejected
from iotwatch.httpserver import Handler, Request, Response
from iotwatch.parse import ReadingParser
from iotwatch.topics import SEGMENT, Topics

Health = Callable[[], tuple[bool, dict[str, Any]]]


def routes(handler: MessageHandler, parser: ReadingParser, topics: Topics, health: Health,
           exposition: Callable[[], bytes],
           clock: Callable[[], float] = time.time, *,
           live: Health | None = None) -> dict[tuple[str, str], Handler]:
    """The route table for ``iotwatch.httpserver.serve``."""

    def get_health(_request: Request) -> Response:
        ok, body = health()
        status = "ok" if ok else body.pop("status", "unavailable")
        return Response.json({**body, "status": status}, 200 if ok else 503)

    def get_live(_request: Request) -> Response:
        ok, body = live() if live is not None else (True, {"status": "ok"})
        return Response.json(body, 200 if ok else 503)

    def get_metrics(_request: Request) -> Response:
        return Response(200, exposition(), CONTENT_TYPE_LATEST)

    def get_streams(request: Request) -> Response:
        summaries = handler.summaries()
        pattern = (request.query.get("match") or [None])[0]
        if pattern:
            summaries = {k: v for k, v in summaries.items() if matches(pattern, k)}
        return Response.json({"count": len(summaries), "streams": summaries})

    def post_predict(request: Request) -> Response:
        try:
            topic, payload = predict_request(request.body, topics)
            readings = parser.parse(topic, payload, received_at=clock())
        except Rejected as exc:
            return Response.json({"error": exc.reason.value, "detail": exc.detail}, 400)
        return Response.json({"results": handler.peek(readings)})

    return {("GET", "/health"): get_health, ("GET", "/health/ready"): get_health,
            ("GET", "/health/live"): get_live, ("GET", "/metrics"): get_metrics,
            ("GET", "/streams"): get_streams, ("POST", "/predict"): post_predict}


def predict_request(body: bytes, topics: Topics) -> tuple[str, bytes]:
    """The reading topic and payload a ``/predict`` body stands for.

    >>> predict_request(b'{"site": "s", "device": "d", "metric": "t", "value": 1}', Topics())
    ('iotwatch/readings/s/d/t', b'{"value":1}')
    >>> predict_request(b'{"site": "s", "value": 1}', Topics())
    Traceback (most recent call last):
    ...
    iotwatch.contracts.Rejected: bad_field: "device" must be a string of [A-Za-z0-9_.-]{1,64}, got None
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Rejected(Reason.BAD_JSON, f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Rejected(Reason.NOT_OBJECT, "body must be a JSON object")
    levels = []
    for key in ("site", "device", "metric"):
        value = data.pop(key, None)
        if value is None and key == "metric":
            continue
        if not isinstance(value, str) or not SEGMENT.match(value):
            raise Rejected(Reason.BAD_FIELD,
                           f'"{key}" must be a string of [A-Za-z0-9_.-]{{1,64}}, got {value!r}')
        levels.append(value)
    return topics.reading(*levels), orjson.dumps(data)
