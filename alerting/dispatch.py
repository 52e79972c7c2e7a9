"""The dispatcher: runs the grouping timetable on its own thread.

Alerts come in from the receive stage (``insert``); when a group is due its flush goes
to the notify stage, and once that returned (the outcome is durable) the group drops
the resolved alerts it carried. If the notify stage fails, the group is tried again at
its next interval, as in Alertmanager.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from alerting.grouping import Flush, Grouper
from alerting.routing import Route
from iotwatch.contracts import Alert

log = logging.getLogger(__name__)

MAX_SLEEP_S = 1.0  # wake up at least this often (clock jumps, stop requests)


class Dispatcher:
    def __init__(self, grouper: Grouper, notify: Callable[[Flush], None],
                 forget: Callable[[list[Alert]], None],
                 clock: Callable[[], float] = time.time) -> None:
        self.grouper = grouper
        self.notify = notify
        self.forget = forget
        self.clock = clock
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="dispatch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def thread(self) -> threading.Thread:
        """For ``/health/live``."""
        return self._thread

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def insert(self, alert: Alert, labels: Mapping[str, str]) -> list[Route]:
        with self._cond:
            routes = self.grouper.insert(alert, labels, self.clock())
            self._cond.notify_all()
        return routes

    def groups(self) -> list[dict]:
        """A snapshot of the groups for the HTTP API."""
        with self._cond:
            return [{"group_key": g.key, "receiver": g.route.receiver, "labels": dict(g.labels),
                     "alerts": sorted(g.alerts), "next_flush_at": g.next_flush_at}
                    for g in self.grouper.groups()]

    def receivers_of(self, fingerprint: str) -> list[str]:
        with self._cond:
            return sorted({g.route.receiver for g in self.grouper.groups()
                           if fingerprint in g.alerts})

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                now = self.clock()
                flushes = self.grouper.due(now)
                if not flushes:
                    next_at = self.grouper.next_flush_at()
                    wait = MAX_SLEEP_S if next_at is None else min(MAX_SLEEP_S,
                                                                   max(0.0, next_at - now))
                    self._cond.wait(wait)
                    continue
            for flush in flushes:
                try:
                    self.notify(flush)
                except Exception:
                    log.exception("notifying group %s failed; trying again at its next "
                                  "interval", flush.group_key)
                    continue
                with self._cond:
                    forgotten = self.grouper.done(flush)
                if forgotten:
                    alerts = [a for a in flush.alerts if a.fingerprint in forgotten]
                    try:
                        self.forget(alerts)
                    except Exception:
                        log.exception("could not forget %d resolved alert(s)", len(alerts))
