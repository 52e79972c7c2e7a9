"""The service's SQLite database: received alerts, notification log, silences (and the outbox).

One file in WAL mode with ``synchronous=FULL``: a transaction that returned is on disk,
so an alert acknowledged to the broker after ``AlertStore.upsert`` survives SIGKILL and
power loss. One connection behind a lock: alert traffic is small, and a single writer
keeps every multi-table change (notification log + outbox) atomic. A lock file keeps a
second service from using the same database (it would deliver everything twice).

>>> import tempfile, pathlib
>>> from iotwatch.contracts import Alert
>>> db = Database(pathlib.Path(tempfile.mkdtemp()) / "alerting.sqlite3")
>>> alerts = AlertStore(db)
>>> alert = Alert("fp1", "firing", "critical", "s", "d", "m", "anomaly", 9.0, 0.9, 0.5, 10.0, 12.0)
>>> alerts.upsert(alert, received_at=13.0), alerts.upsert(alert, received_at=14.0)
(True, False)
>>> [a.fingerprint for a in alerts.load()]
['fp1']
>>> db.close()
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import sqlite3
import threading
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from alerting.dedup import LogEntry
from alerting.notification import Target
from alerting.silences import Silence
from iotwatch import IotwatchError
from iotwatch.contracts import Alert, Rejected
from iotwatch.parse import parse_alert

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    fingerprint TEXT PRIMARY KEY,
    ts REAL NOT NULL,
    state TEXT NOT NULL,
    payload BLOB NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS nflog (
    target TEXT NOT NULL,
    group_key TEXT NOT NULL,
    firing TEXT NOT NULL,
    resolved TEXT NOT NULL,
    sent_at REAL NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (target, group_key)
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    record BLOB NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    finished_at REAL,
    reason TEXT,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (target, status, next_attempt_at, id);
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY,
    body BLOB NOT NULL
);
"""


class StoreError(IotwatchError):
    """The database cannot be opened or used."""


class Database:
    """One SQLite connection shared by the service's threads, one transaction at a time."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(self.path.with_name(self.path.name + ".lock"), "w")  # noqa: SIM115
        except OSError as exc:
            raise StoreError(f"cannot create the database directory for {self.path}: "
                             f"{exc.strerror}") from exc
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            raise StoreError(f"{self.path} is in use by another alerting service; give each "
                             "service its own alerting.database") from None
        try:
            self._conn = sqlite3.connect(str(self.path), check_same_thread=False,
                                         isolation_level=None, timeout=30.0)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(SCHEMA)
            self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            self._lock_file.close()
            raise StoreError(f"cannot open {self.path}: {exc}") from exc
        self._lock = threading.RLock()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Everything inside commits together (or not at all)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            self._lock_file.close()


class AlertStore:
    """Received alerts, newest version per fingerprint, until no group needs them."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def upsert(self, alert: Alert, received_at: float) -> bool:
        """Store ``alert`` unless a newer or identical version is stored; True if stored."""
        payload = alert.to_payload()
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO alerts (fingerprint, ts, state, payload, received_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (fingerprint) DO UPDATE SET "
                "ts = excluded.ts, state = excluded.state, payload = excluded.payload, "
                "received_at = excluded.received_at "
                "WHERE excluded.ts > alerts.ts OR (excluded.ts = alerts.ts "
                "AND excluded.payload != alerts.payload)",
                (alert.fingerprint, alert.ts, alert.state, payload, received_at))
            return cursor.rowcount > 0

    def forget(self, resolved: Iterable[Alert]) -> None:
        """Delete these resolved alerts, unless a newer version was stored meanwhile."""
        with self.db.transaction() as conn:
            conn.executemany("DELETE FROM alerts WHERE fingerprint = ? AND ts = ? "
                             "AND state = 'resolved'",
                             [(a.fingerprint, a.ts) for a in resolved])

    def load(self) -> list[Alert]:
        """The stored alerts; one an older version stored but that no longer parses (e.g. a
        time beyond the year 9999) is logged and deleted rather than failing every start."""
        alerts = []
        rows = self.db.query("SELECT fingerprint, payload FROM alerts ORDER BY received_at")
        for fingerprint, payload in rows:
            try:
                alerts.append(parse_alert(bytes(payload)))
            except Rejected as exc:
                log.error("stored alert %s is invalid (%s); deleted", fingerprint, exc.detail)
                with self.db.transaction() as conn:
                    conn.execute("DELETE FROM alerts WHERE fingerprint = ?", (fingerprint,))
        return alerts


class NotificationLog:
    """The last notification per target and group (see ``alerting.dedup``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, target: Target, group_key: str) -> LogEntry | None:
        rows = self.db.query("SELECT firing, resolved, sent_at, seq FROM nflog "
                             "WHERE target = ? AND group_key = ?", (target.name, group_key))
        if not rows:
            return None
        firing, resolved, sent_at, seq = rows[0]
        return LogEntry(frozenset(orjson.loads(firing)), frozenset(orjson.loads(resolved)),
                        sent_at, seq)

    def told_firing(self, target: Target, fingerprints: Collection[str]
                    ) -> dict[str, set[str]]:
        """Per fingerprint, the groups whose last notification to ``target`` had it firing."""
        fingerprints = sorted(fingerprints)
        if not fingerprints:
            return {}
        marks = ",".join("?" * len(fingerprints))
        rows = self.db.query(
            "SELECT nflog.group_key, fired.value FROM nflog, json_each(nflog.firing) AS fired "
            f"WHERE nflog.target = ? AND fired.value IN ({marks})",
            (target.name, *fingerprints))
        told: dict[str, set[str]] = {}
        for group_key, fingerprint in rows:
            told.setdefault(fingerprint, set()).add(group_key)
        return told

    @staticmethod
    def put(conn: sqlite3.Connection, target: Target, group_key: str, entry: LogEntry) -> None:
        """Write ``entry`` inside the caller's transaction."""
        conn.execute(
            "INSERT INTO nflog (target, group_key, firing, resolved, sent_at, seq) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (target, group_key) DO UPDATE SET "
            "firing = excluded.firing, resolved = excluded.resolved, "
            "sent_at = excluded.sent_at, seq = excluded.seq",
            (target.name, group_key, orjson.dumps(sorted(entry.firing)).decode(),
             orjson.dumps(sorted(entry.resolved)).decode(), entry.sent_at, entry.seq))

    def prune(self, before: float) -> int:
        """Forget groups not notified since ``before`` and holding nothing firing."""
        with self.db.transaction() as conn:
            return conn.execute("DELETE FROM nflog WHERE sent_at < ? AND firing = '[]'",
                                (before,)).rowcount


class SilenceStore:
    """Silences added over HTTP, kept across restarts."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def save(self, silence: Silence) -> None:
        with self.db.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO silences (id, body) VALUES (?, ?)",
                         (silence.id, orjson.dumps(silence.to_dict())))

    def delete(self, silence_id: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM silences WHERE id = ?", (silence_id,))

    def load(self) -> list[Silence]:
        return [Silence.from_dict(orjson.loads(body))
                for (body,) in self.db.query("SELECT body FROM silences ORDER BY id")]
