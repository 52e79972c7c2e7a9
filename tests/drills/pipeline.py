"""The whole pipeline for the fault drills, and the ledger that counts what went through it.

A ``Pipeline`` is the real thing on loopback: a Mosquitto of its own running the project's
configuration, the detector (``python -m detector``) writing to InfluxDB 1.x, the alerting
service (``python -m alerting``) delivering to a signed webhook catcher and an SMTP catcher
(STARTTLS + AUTH) from ``alerting.catchers``. Everything is started by the tests' own
helpers (``detector_service.service``, ``harness``, ``harness.alerting``).

A ``Drill`` publishes readings with unique sequence numbers (the ``seq`` field, and the
timestamp ``BASE_TS + seq`` so every stored point names its reading) and counts, at the
end, four things that must agree:

- published: readings the broker acknowledged (PUBACK);
- stored: points queried back from InfluxDB, mapped back to (stream, seq);
- alerted: alerts the detector published on the broker (``iotwatch/alerts/<site>/#``);
- delivered: distinct notifications accepted by each receiver, per (fingerprint, state).

A duplicate is explained only when the system says why it exists: a receiver seeing the
same idempotency key again (an at-least-once retry the key lets it drop) or the detector
republishing an alert after a redelivery (same fingerprint, state and time). A second
distinct notification of the same (fingerprint, state) is never explained.

    pipeline.start()
    drill = Drill(pipeline, "broker-restart")
    drill.fire()           # calm readings, then a spike on the spiked streams
    ... the fault ...
    drill.resolve()        # calm readings until every alert resolves
    drill.settle()         # wait until stored, alerted and delivered are complete
    drill.check()          # print the one-line summary and assert the guarantees
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from detector_service.service import BASE_TS, Detector, Feeder, detector_config, series
from harness import Broker, InfluxDB1, collect, wait_until
from harness.alerting import (
    SMTP_PASSWORD,
    SMTP_USER,
    WEBHOOK_SECRET,
    ServiceProcess,
    alerting_config,
    email_section,
    secrets_env,
)

from alerting.catchers import SmtpCatcher, WebhookCatcher
from iotwatch.contracts import alert_fingerprint
from iotwatch.demo.score import AlertSeen, score_deliveries

METRIC = "temperature"
N_STREAMS = 4
SPIKED = (1, 3)            # streams whose readings spike: each fires once, then resolves
SPIKE_AT = 60              # past the detector's 20-reading calibration warm-up
FIRE_END = SPIKE_AT + 3    # the spike lasts three readings
RESOLVED_BY = FIRE_END + 20  # resolve_readings is 5: resolved well before this
SETTLE_TIMEOUT_S = 120

# Every drill's one-line summary, in run order; printed at the end of the session
# (tests/drills/conftest.py) and appended to $IOTWATCH_DRILL_REPORT when set.
SUMMARIES: list[str] = []


class Pipeline:
    """Broker, detector, InfluxDB database, alerting service and both receivers of one drill."""

    def __init__(self, tmp: Path, broker: Broker, influx: InfluxDB1, smtp_cert: tuple[Path, Path],
                 *, detector: dict[str, Any] | None = None, influx_options: dict[str, Any] | None = None,
                 alerting: bool = True) -> None:
        self.broker, self.influx = broker, influx
        self.site = f"drill-{uuid.uuid4().hex[:8]}"
        self.db = influx.create_database()
        self.alerts = collect(broker, f"iotwatch/alerts/{self.site}/#")
        self.dead = collect(broker, "iotwatch/deadletter/detector")
        (tmp / "detector").mkdir()
        config = detector_config(tmp / "detector", broker, sites=(self.site,),
                                 client_id=f"det-{self.site}", detector=detector,
                                 influx={"url": influx.url, "database": self.db, "timeout_s": 2,
                                         **(influx_options or {})})
        self.detector = Detector(tmp / "detector", config, broker)
        self.webhook = WebhookCatcher(secret=WEBHOOK_SECRET.encode()).start()
        self.smtp = SmtpCatcher(users={SMTP_USER: SMTP_PASSWORD}, cert=smtp_cert,
                                require_tls=True).start()
        self.alerting: ServiceProcess | None = None
        if alerting:
            (tmp / "alerting").mkdir()
            raw = alerting_config(tmp / "alerting", broker, {
                "hook": {"webhook": {"url": self.webhook.url}},
                "email": {"email": email_section(self.smtp, smtp_cert[0])}})
            raw["mqtt"]["reconnect_max_s"] = 2
            self.alerting = ServiceProcess(raw, secrets_env(broker, raw), tmp / "alerting")

    def start(self) -> Pipeline:
        self.detector.start()
        if self.alerting is not None:
            self.alerting.start()
        return self

    def assert_running(self) -> None:
        """Fail at once, with its log, when a service has exited (a drill never stops one
        without starting it again before it waits)."""
        for name, process, log in (
                ("detector", self.detector.process, self.detector.log_tail),
                ("alerting", self.alerting and self.alerting.process,
                 self.alerting and self.alerting.log)):
            if process is not None and process.poll() is not None:
                raise AssertionError(f"the {name} exited with {process.returncode}\n{log()}")

    def deliveries(self) -> list[dict[str, Any]]:
        """The alerting service's outbox (``GET /deliveries``), every state."""
        assert self.alerting is not None
        return self.alerting.get("/deliveries?limit=1000")

    def stored(self) -> list[dict[str, Any]]:
        """Every reading point of this drill's site in InfluxDB."""
        return self.influx.query(f"SELECT \"value\", \"device\" FROM \"readings\" WHERE \"site\" = "
                                 f"'{self.site}'", db=self.db)

    def close(self) -> None:
        for action in (self.detector.close, *( [self.alerting.close] if self.alerting else []),
                       self.webhook.stop, self.smtp.stop, self.alerts.close, self.dead.close):
            with contextlib.suppress(Exception):
                action()


@dataclass(frozen=True)
class Counts:
    """What one drill saw at each stage of the pipeline."""

    published: int
    stored: int
    lost: list[tuple[str, int]]           # published, not stored: (device, seq)
    unexpected: list[tuple[str, int]]     # stored, never published
    alerted: int                          # distinct (fingerprint, state) the detector published
    alert_repeats: int                    # an alert message for a (fingerprint, state) again
    redelivered: int                      # ... of those, the same alert (same ts) again
    expected_notifications: set[tuple[str, str]]
    delivered: dict[str, set[tuple[str, str]]]
    same_key_repeats: dict[str, int]      # a receiver got an idempotency key again
    unexplained: dict[str, int]           # a (fingerprint, state) in two distinct notifications

    def missing(self, receiver: str) -> set[tuple[str, str]]:
        return self.expected_notifications - self.delivered.get(receiver, set())

    def summary(self, name: str, extra: str = "") -> str:
        """The drill's one line, as docs/drills.md quotes it.

        >>> fired = {("f1", "firing"), ("f1", "resolved")}
        >>> Counts(10, 10, [], [], 2, 0, 0, fired, {"webhook": fired}, {"webhook": 1},
        ...        {"webhook": 0}).summary("demo", "webhook answered 500 once")
        'DRILL demo: published 10, stored 10, lost 0, alerted 2 (+0 repeated), delivered webhook 2/2 (+1 same-key retries, 0 unexplained duplicates); webhook answered 500 once'
        """
        delivered = ", ".join(
            f"{receiver} {len(self.expected_notifications - self.missing(receiver))}/"
            f"{len(self.expected_notifications)}" for receiver in sorted(self.delivered))
        repeats = sum(self.same_key_repeats.values())
        line = (f"DRILL {name}: published {self.published}, stored {self.stored}, "
                f"lost {len(self.lost)}, alerted {self.alerted} (+{self.alert_repeats} "
                f"repeated), delivered {delivered or 'n/a'} (+{repeats} same-key retries, "
                f"{sum(self.unexplained.values())} unexplained duplicates)")
        return f"{line}; {extra}" if extra else line


class Drill:
    """Readings with sequence numbers through a pipeline, and the counts at the end."""

    def __init__(self, pipeline: Pipeline, name: str, *, n_streams: int = N_STREAMS,
                 spiked: tuple[int, ...] = SPIKED) -> None:
        self.pipeline = pipeline
        self.name = name
        self.n_streams = n_streams
        self.spiked = spiked
        self.published: set[tuple[str, int]] = set()
        self.next_seq = 0
        self._feeder: Feeder | None = None

    # -- publishing ---------------------------------------------------------------------

    def publish(self, until: int) -> None:
        """Readings ``next_seq .. until - 1`` of every stream, each acknowledged by the broker."""
        feeder = self.feeder()
        start, count = self.next_seq, until - self.next_seq
        rows = list(series(self.n_streams, count, start=start, spike_at=SPIKE_AT,
                           spike_streams=self.spiked, site=self.pipeline.site))
        for site, device, metric, ts, value in rows:
            feeder.reading(site, device, metric, ts, value, seq=round(ts - BASE_TS))
        feeder.flush()
        self.published.update((device, round(ts - BASE_TS)) for _, device, _, ts, _ in rows)
        self.next_seq = until

    def publish_during(self, until: int, fault: Callable[[], object], *,
                       after_rows: int = 100, hold_publisher: bool = False) -> None:
        """Readings up to ``until`` as a steady stream from a thread; ``fault()`` runs in
        this thread once ``after_rows`` readings are out, so it lands mid-stream.

        With ``hold_publisher`` the publisher holds its readings (every one sent so far
        acknowledged) while ``fault()`` runs and until it is connected again, as a sensor
        does while its broker is away (paho cannot confirm a QoS 1 publish made while
        disconnected).
        """
        feeder = self.feeder()
        rows = list(series(self.n_streams, until - self.next_seq, start=self.next_seq,
                           spike_at=SPIKE_AT, spike_streams=self.spiked, site=self.pipeline.site))
        sent, done, failed = [0], threading.Event(), []
        hold, held, resume = threading.Event(), threading.Event(), threading.Event()

        def stream() -> None:
            try:
                for index, (site, device, metric, ts, value) in enumerate(rows):
                    if hold.is_set() and not resume.is_set():
                        feeder.flush()
                        held.set()
                        if not resume.wait(SETTLE_TIMEOUT_S):
                            raise TimeoutError("the drill never let the publisher go on")
                    feeder.reading(site, device, metric, ts, value, seq=round(ts - BASE_TS))
                    sent[0] = index + 1
                    if index % 10 == 9:
                        time.sleep(0.05)
                feeder.flush()
            except BaseException as exc:  # re-raised in the test's thread below
                failed.append(exc)
            finally:
                done.set()

        publisher = threading.Thread(target=stream, name=f"drill-{self.name}", daemon=True)
        publisher.start()
        wait_until(lambda: sent[0] >= after_rows or done.is_set(), 60,
                   what="the stream to be under way")
        assert not done.is_set(), "the stream ended before the fault: nothing mid-stream"
        if hold_publisher:
            hold.set()
            wait_until(lambda: held.is_set() or done.is_set(), 60, what="the publisher to hold")
        try:
            fault()
            if hold_publisher:
                wait_until(feeder.client.is_connected, 60, what="the publisher reconnected")
        finally:
            resume.set()
        assert done.wait(SETTLE_TIMEOUT_S), "the publisher did not finish"
        if failed:
            raise failed[0]
        self.published.update((device, round(ts - BASE_TS)) for _, device, _, ts, _ in rows)
        self.next_seq = until

    def feeder(self) -> Feeder:
        if self._feeder is None:
            self._feeder = Feeder(self.pipeline.broker)
        return self._feeder

    def disconnect(self) -> None:
        """Close the publisher's connection (before the broker goes away)."""
        if self._feeder is not None:
            self._feeder.close()
            self._feeder = None

    def fire(self, *, queued: bool = True) -> None:
        """Calm readings, then the spike; with ``queued``, wait until the alerting service
        has a firing notification in its outbox for every target (so the resolve that
        follows is a notification of its own, not folded into the first)."""
        self.publish(FIRE_END)
        if queued:
            self.wait_queued("firing")

    def resolve(self, *, queued: bool = True) -> None:
        self.publish(max(self.next_seq, RESOLVED_BY))
        if queued:
            self.wait_queued("resolved")

    def wait_queued(self, state: str, timeout: float = 60) -> None:
        wanted = {(fp, state) for fp in self.fingerprints()}
        targets = set(self.pipeline.alerting.get("/health")["targets"])  # type: ignore[union-attr]

        def queued_everywhere() -> bool:
            self.pipeline.assert_running()
            rows = self.pipeline.deliveries()
            return all(wanted <= {(a["fingerprint"], a["state"]) for row in rows
                                  if row["target"] == target for a in row["alerts"]}
                       for target in targets)

        wait_until(queued_everywhere, timeout, what=f"{state} notifications in the outbox "
                                                    f"for {sorted(targets)}")

    def fingerprints(self) -> list[str]:
        return [alert_fingerprint(self.pipeline.site, f"dev-{s}", METRIC, "anomaly")
                for s in self.spiked]

    # -- counting ---------------------------------------------------------------------

    def settle(self, *, deliveries: bool = True, timeout: float = SETTLE_TIMEOUT_S) -> None:
        """Wait until every published reading is stored, every alert has been published
        and, with ``deliveries``, every notification delivered."""
        pipeline = self.pipeline
        self.disconnect()
        wait_until(lambda: pipeline.assert_running() or len(pipeline.stored())
                   >= len(self.published), timeout,
                   what=f"{len(self.published)} points of {self.name} in InfluxDB\n"
                        f"{pipeline.detector.log_tail()}")
        expected = {(fp, state) for fp in self.fingerprints() for state in ("firing", "resolved")}
        wait_until(lambda: expected <= self._alerts_seen(), timeout,
                   what=f"the alerts of {self.name} on the broker")
        if deliveries:
            wait_until(lambda: all(not self.counts().missing(r) for r in ("email", "webhook")),
                       timeout, what=f"every notification of {self.name} delivered")
            wait_until(lambda: not any(pipeline.alerting.get("/health")["outbox"].values()),
                       timeout, what="an empty outbox")

    def _alerts_seen(self) -> set[tuple[str, str]]:
        return {(a["fingerprint"], a["state"]) for a in self.pipeline.alerts.json()}

    def counts(self) -> Counts:
        pipeline = self.pipeline
        stored = {(row["device"], round(row["time"] / 1000 - BASE_TS))
                  for row in pipeline.stored()}
        alerts = pipeline.alerts.json()
        keys = Counter((a["fingerprint"], a["state"]) for a in alerts)
        same = Counter((a["fingerprint"], a["state"], a["ts"]) for a in alerts)
        seen = [AlertSeen((a["site"], a["device"], a["metric"]), a["fingerprint"], a["state"],
                          float(index)) for index, a in enumerate(alerts)]
        receivers = {"webhook": pipeline.webhook, "email": pipeline.smtp} \
            if pipeline.alerting is not None else {}
        expected = score_deliveries(seen, {}).expected
        return Counts(
            published=len(self.published), stored=len(stored),
            lost=sorted(self.published - stored), unexpected=sorted(stored - self.published),
            alerted=len(keys), alert_repeats=sum(keys.values()) - len(keys),
            redelivered=sum(same.values()) - len(same),
            expected_notifications=expected,
            delivered={name: r.notifications() for name, r in receivers.items()},
            same_key_repeats={name: r.duplicates() for name, r in receivers.items()},
            unexplained={name: _pairs_in_two_notifications(r.unique())
                         for name, r in receivers.items()})

    def check(self, extra: str = "", *, repeats_ok: bool = False) -> Counts:
        """Print the drill's summary line and assert: nothing lost, nothing unexpected,
        every spiked stream alerted firing then resolved and nothing else, every
        notification delivered to every receiver, and no unexplained duplicate."""
        counts = self.counts()
        line = counts.summary(self.name, extra)
        record(line)
        assert not counts.lost, f"{len(counts.lost)} readings lost, first {counts.lost[:5]}"
        assert not counts.unexpected, f"points nobody published: {counts.unexpected[:5]}"
        assert counts.stored == counts.published == self.n_streams * self.next_seq
        expected = {(fp, state) for fp in self.fingerprints() for state in ("firing", "resolved")}
        assert self._alerts_seen() == expected, self.pipeline.alerts.json()
        if not repeats_ok:
            assert counts.alert_repeats == 0, f"an alert came twice: {self.pipeline.alerts.json()}"
        if self.pipeline.alerting is not None:
            assert counts.expected_notifications == expected
            for receiver in counts.delivered:
                assert not counts.missing(receiver), (receiver, counts.missing(receiver))
                assert counts.delivered[receiver] == expected, (receiver, counts.delivered)
            assert not any(counts.unexplained.values()), counts.unexplained
        return counts


def _pairs_in_two_notifications(notifications: list[Any]) -> int:
    """How many times a (fingerprint, state) came again in a distinct notification."""
    pairs = Counter(pair for note in notifications for pair in set(note.alerts))
    return sum(n - 1 for n in pairs.values())


def record(line: str) -> None:
    """Print a drill's summary (seen with -s), keep it for the session's end, and append it
    to the file named by $IOTWATCH_DRILL_REPORT."""
    print(line, flush=True)
    SUMMARIES.append(line)
    report = os.environ.get("IOTWATCH_DRILL_REPORT")
    if report:
        with open(report, "a", encoding="utf-8") as out:
            out.write(line + "\n")


def dead_letters(pipeline: Pipeline) -> list[dict[str, Any]]:
    return [orjson.loads(payload) for _, payload, _ in pipeline.dead.messages]
