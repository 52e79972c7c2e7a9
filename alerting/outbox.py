"""The durable outbox: notifications waiting to be delivered, and what became of them.

A notification enters together with its notification-log entry (one transaction), so
after a crash the service neither forgets a notification it decided to send nor sends
one it already queued. Each row is delivered by its target's worker until it is
``delivered`` or ``failed`` (not retryable, or retried past the deadline). The
idempotency key is unique: queueing the same notification twice keeps one row.

>>> import tempfile, pathlib
>>> from alerting.dedup import Decision, LogEntry
>>> from alerting.notification import Notification, Target
>>> from alerting.store import Database
>>> outbox = Outbox(Database(pathlib.Path(tempfile.mkdtemp()) / "a.sqlite3"))
>>> target = Target("ops", "webhook")
>>> note = Notification(target, "{}:{}", {}, (), seq=1, created_at=100.0)
>>> outbox.enqueue([Decision(target, "{}:{}", note, LogEntry(frozenset(), frozenset(), 100.0, 1))])
1
>>> [item.attempts for item in outbox.due(target, now=100.0)], outbox.depth()
([0], {'ops/webhook': 1})
>>> item = outbox.due(target, now=100.0)[0]
>>> outbox.retry(item.id, at=160.0, reason="http_500", error="HTTP 500")
>>> outbox.due(target, now=150.0), outbox.next_attempt_at(target)
([], 160.0)
>>> outbox.delivered(item.id, now=160.5); outbox.depth()
{}
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from alerting.dedup import Decision
from alerting.notification import Notification, Target
from alerting.store import Database, NotificationLog
from iotwatch.timeparse import format_rfc3339

MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class OutboxItem:
    id: int
    notification: Notification
    attempts: int
    created_at: float


class Outbox:
    def __init__(self, db: Database) -> None:
        self.db = db

    def enqueue(self, decisions: Iterable[Decision]) -> int:
        """Log every decision and queue its notification; returns how many were queued."""
        queued = 0
        with self.db.transaction() as conn:
            for decision in decisions:
                NotificationLog.put(conn, decision.target, decision.group_key, decision.entry)
                for group_key, entry in decision.released:
                    NotificationLog.put(conn, decision.target, group_key, entry)
                note = decision.notification
                if note is None:
                    continue
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO outbox (target, idempotency_key, record, created_at, "
                    "next_attempt_at) VALUES (?, ?, ?, ?, ?)",
                    (note.target.name, note.idempotency_key, note.to_record(), note.created_at,
                     note.created_at))
                queued += cursor.rowcount
        return queued

    def due(self, target: Target, now: float, limit: int = 1) -> list[OutboxItem]:
        """The oldest pending notifications of ``target`` whose attempt time has come."""
        rows = self.db.query(
            "SELECT id, record, attempts, created_at FROM outbox WHERE target = ? "
            "AND status = 'pending' AND next_attempt_at <= ? ORDER BY id LIMIT ?",
            (target.name, now, limit))
        items = []
        for row_id, record, attempts, created in rows:
            try:
                note = Notification.from_record(bytes(record))
            except Exception as exc:  # one unreadable row must not block the target
                self.failed(row_id, now, "unreadable", f"cannot read the stored notification: "
                            f"{type(exc).__name__}: {exc}")
                continue
            items.append(OutboxItem(row_id, note, attempts, created))
        return items

    def next_attempt_at(self, target: Target) -> float | None:
        rows = self.db.query("SELECT MIN(next_attempt_at) FROM outbox WHERE target = ? "
                             "AND status = 'pending'", (target.name,))
        return rows[0][0]

    def delivered(self, item_id: int, now: float) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE outbox SET status = 'delivered', attempts = attempts + 1, "
                         "finished_at = ?, reason = NULL WHERE id = ?", (now, item_id))

    def retry(self, item_id: int, at: float, reason: str, error: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, "
                         "reason = ?, last_error = ? WHERE id = ?",
                         (at, reason, error[:MAX_ERROR_CHARS], item_id))

    def failed(self, item_id: int, now: float, reason: str, error: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE outbox SET status = 'failed', attempts = attempts + 1, "
                         "finished_at = ?, reason = ?, last_error = ? WHERE id = ?",
                         (now, reason, error[:MAX_ERROR_CHARS], item_id))

    def fail_pending(self, target_name: str, now: float, reason: str, error: str) -> int:
        """Give up every pending row of a target (say, a receiver removed from the config)."""
        with self.db.transaction() as conn:
            return conn.execute(
                "UPDATE outbox SET status = 'failed', finished_at = ?, reason = ?, "
                "last_error = ? WHERE target = ? AND status = 'pending'",
                (now, reason, error, target_name)).rowcount

    def depth(self) -> dict[str, int]:
        """Pending notifications per target name."""
        return dict(self.db.query("SELECT target, COUNT(*) FROM outbox WHERE status = 'pending' "
                                  "GROUP BY target ORDER BY target"))

    def pending_targets(self) -> set[str]:
        return set(self.depth())

    def listing(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Rows for ``GET /deliveries``, newest first."""
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        rows = self.db.query(
            "SELECT id, target, idempotency_key, record, status, attempts, created_at, "
            f"next_attempt_at, finished_at, reason, last_error FROM outbox {where} "
            "ORDER BY id DESC LIMIT ?", (*params, limit))
        listing = []
        for (row_id, target, key, record, row_status, attempts, created, next_at, finished,
             reason, error) in rows:
            note = Notification.from_record(bytes(record))
            listing.append({
                "id": row_id, "target": target, "idempotency_key": key,
                "group_key": note.group_key, "status": row_status, "attempts": attempts,
                "alerts": [{"fingerprint": a.fingerprint, "state": a.state}
                           for a in note.alerts],
                "created_at": format_rfc3339(created),
                "next_attempt_at": format_rfc3339(next_at) if row_status == "pending" else None,
                "finished_at": None if finished is None else format_rfc3339(finished),
                "reason": reason, "last_error": error})
        return listing

    def prune(self, before: float) -> int:
        """Forget delivered and failed rows finished before ``before``."""
        with self.db.transaction() as conn:
            return conn.execute("DELETE FROM outbox WHERE status != 'pending' "
                                "AND finished_at < ?", (before,)).rowcount
