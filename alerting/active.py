"""The alerts the service knows now, newest version of each fingerprint.

Feeds inhibition (which alerts fire) and ``GET /alerts``. A message older than the
version already held (a redelivery after a crash, or out-of-order arrival) is stale and
changes nothing.

>>> from iotwatch.contracts import Alert
>>> alerts = ActiveAlerts()
>>> firing = Alert("fp1", "firing", "critical", "s", "d", "m", "anomaly", 9.0, 0.9, 0.5, 10.0, 12.0)
>>> resolved = Alert("fp1", "resolved", "critical", "s", "d", "m", "anomaly", 1.0, 0.1, 0.5,
...                  10.0, 20.0, ends_at=20.0)
>>> alerts.upsert(resolved), alerts.upsert(firing), alerts.get("fp1").state
(True, False, 'resolved')
"""

from __future__ import annotations

import threading

from iotwatch.contracts import Alert


class ActiveAlerts:
    """Thread-safe map fingerprint -> newest alert."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._alerts: dict[str, Alert] = {}

    def upsert(self, alert: Alert) -> bool:
        """Keep ``alert`` unless the held version is newer or identical; True if kept."""
        with self._lock:
            held = self._alerts.get(alert.fingerprint)
            if held is not None and (held.ts > alert.ts or held == alert):
                return False
            self._alerts[alert.fingerprint] = alert
            return True

    def get(self, fingerprint: str) -> Alert | None:
        with self._lock:
            return self._alerts.get(fingerprint)

    def forget(self, alert: Alert) -> None:
        """Drop ``alert`` unless a newer version replaced it meanwhile."""
        with self._lock:
            if self._alerts.get(alert.fingerprint) == alert:
                del self._alerts[alert.fingerprint]

    def counts(self) -> dict[str, int]:
        """Alerts held per state."""
        with self._lock:
            counts = {"firing": 0, "resolved": 0}
            for alert in self._alerts.values():
                counts[alert.state] += 1
            return counts

    def all(self) -> list[Alert]:
        with self._lock:
            return list(self._alerts.values())

    def firing(self) -> list[tuple[str, dict[str, str]]]:
        """(fingerprint, labels) of every firing alert."""
        with self._lock:
            return [(fp, a.all_labels) for fp, a in self._alerts.items() if a.state == "firing"]

    def __len__(self) -> int:
        with self._lock:
            return len(self._alerts)
