"""The HTTP API: health, metrics, active alerts, silences and deliveries.

- ``GET /health`` (and ``/health/ready``): readiness, 200 while the service runs and is
  connected to the broker, else 503.
- ``GET /health/live``: liveness, 200 while its dispatch and delivery threads run, else
  503: restart on this one (a broker outage only makes it unready).
- ``GET /metrics``: Prometheus exposition.
- ``GET /alerts``: alerts held now, with the receivers they route to and what mutes them.
- ``GET /silences``; ``POST /silences`` with ``{"matchers": ["site=plant-2"],
  "duration_s": 3600, "comment": "..."}`` (or ``"ends_at"``) answers 201 and the id;
  ``DELETE /silences/<id>`` removes one (silences from the configuration cannot be).
- ``GET /deliveries?status=failed&limit=50``: the outbox, newest first.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from alerting.active import ActiveAlerts
from alerting.dispatch import Dispatcher
from alerting.inhibit import Inhibitor
from alerting.metrics import Metrics
from alerting.outbox import Outbox
from alerting.silences import Silences, silence_from_request
from alerting.store import SilenceStore
from iotwatch.httpserver import Handler, Request, Response

log = logging.getLogger(__name__)

DELIVERY_STATES = ("pending", "delivered", "failed")


class Api:
    def __init__(self, *, metrics: Metrics, healthy: Callable[[], dict[str, Any]],
                 active: ActiveAlerts, silences: Silences, silence_store: SilenceStore,
                 dispatcher: Dispatcher, inhibitor: Inhibitor, outbox: Outbox,
                 clock: Callable[[], float],
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
                 live: Callable[[], tuple[bool, dict[str, Any]]] | None = None) -> None:
        self.metrics = metrics
        self.healthy = healthy
        self.live = live
        self.active = active
        self.silences = silences
        self.silence_store = silence_store
        self.dispatcher = dispatcher
        self.inhibitor = inhibitor
        self.outbox = outbox
        self.clock = clock
        self.new_id = new_id

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {
            ("GET", "/health"): self.health,
            ("GET", "/health/ready"): self.health,
            ("GET", "/health/live"): self.liveness,
            ("GET", "/metrics"): lambda _request: Response.metrics(self.metrics.registry),
            ("GET", "/alerts"): self.alerts,
            ("GET", "/silences"): self.list_silences,
            ("POST", "/silences"): self.add_silence,
            ("DELETE", "/silences/*"): self.delete_silence,
            ("GET", "/deliveries"): self.deliveries,
        }

    def health(self, _request: Request) -> Response:
        status = self.healthy()
        return Response.json(status, 200 if status.get("status") == "ok" else 503)

    def liveness(self, _request: Request) -> Response:
        ok, body = self.live() if self.live is not None else (True, {"status": "ok"})
        return Response.json(body, 200 if ok else 503)

    def alerts(self, _request: Request) -> Response:
        now = self.clock()
        firing = self.active.firing()
        listing = []
        for alert in sorted(self.active.all(), key=lambda a: (a.site, a.device, a.metric)):
            body = alert.to_dict()
            labels = alert.all_labels
            body["receivers"] = self.dispatcher.receivers_of(alert.fingerprint)
            body["silenced_by"] = self.silences.silenced_by(labels, now)
            body["inhibited_by"] = self.inhibitor.inhibited_by(labels, alert.fingerprint, firing)
            listing.append(body)
        return Response.json(listing)

    def list_silences(self, _request: Request) -> Response:
        now = self.clock()
        return Response.json([s.to_dict(now) for s in self.silences.all()])

    def add_silence(self, request: Request) -> Response:
        try:
            body = orjson.loads(request.body or b"null")
        except orjson.JSONDecodeError as exc:
            return Response.json({"error": f"body is not valid JSON: {exc}"}, 400)
        try:
            silence = silence_from_request(body, self.clock(), self.new_id())
        except ValueError as exc:
            return Response.json({"error": str(exc)}, 400)
        self.silence_store.save(silence)
        self.silences.add(silence)
        log.info("silence %s added: %s until %s (%s)", silence.id,
                 ", ".join(str(m) for m in silence.matchers), silence.to_dict()["ends_at"],
                 silence.comment or "no comment")
        return Response.json({"id": silence.id, **silence.to_dict(self.clock())}, 201)

    def delete_silence(self, request: Request) -> Response:
        silence_id = request.path.rsplit("/", 1)[-1]
        silence = self.silences.get(silence_id)
        if silence is None:
            return Response.json({"error": f"no silence {silence_id!r}"}, 404)
        if silence.source == "config":
            return Response.json({"error": f"silence {silence_id!r} comes from the "
                                  "configuration file; remove it there"}, 409)
        self.silence_store.delete(silence_id)
        self.silences.remove(silence_id)
        log.info("silence %s removed", silence_id)
        return Response.json({"id": silence_id, "removed": True})

    def deliveries(self, request: Request) -> Response:
        status = (request.query.get("status") or [None])[0]
        if status is not None and status not in DELIVERY_STATES:
            return Response.json({"error": f"status must be one of {', '.join(DELIVERY_STATES)}"},
                                 400)
        try:
            limit = int((request.query.get("limit") or ["100"])[0])
        except ValueError:
            return Response.json({"error": "limit must be an integer"}, 400)
        return Response.json(self.outbox.listing(status, max(1, min(limit, 1000))))
