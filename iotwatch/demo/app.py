"""``iotwatch demo``, wired in one place.

    broker       Mosquitto with the project's config (or embedded amqtt)      brokers
    point store  throwaway influxd (or the detector's line-protocol file)     stores
    receivers    local SMTP catcher + webhook receiver that record deliveries receivers
    services     detector, alerting, publisher as subprocesses               processes
    monitor      an MQTT client (monitor role) counting what goes by          observe
    dashboard    the live web page over the store and the services' APIs     iotwatch.dashboard
    live view    one frame a second; summary and verdict at the end           view, score

Nothing imports this module; ``iotwatch.demo.cli`` calls ``run_demo``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import yaml

from iotwatch.config import MqttSettings
from iotwatch.demo import configs
from iotwatch.demo.brokers import BrokerError, DemoBroker, start_broker
from iotwatch.demo.observe import Traffic
from iotwatch.demo.processes import Child, ProcessGroup
from iotwatch.demo.receivers import DemoReceivers, start_receivers
from iotwatch.demo.score import score_deliveries, score_faults
from iotwatch.demo.stores import PointStore, StoreError, file_store, start_influxd
from iotwatch.demo.view import (
    CLEAR_SCREEN,
    LiveState,
    Summary,
    render_line,
    render_live,
    render_summary,
)
from iotwatch.mqtt import MqttError, connect, make_client
from iotwatch.ports import free_port
from iotwatch.topics import Topics

EXIT_PASS, EXIT_FAIL, EXIT_INTERRUPTED = 0, 1, 130
HEALTH_TIMEOUT_S = 60.0
PORT_TRIES = 3  # starts of a service whose free HTTP port was taken before it bound it
# After the publisher stops: time for the last alerts to be delivered, and how long no new
# alert must appear before the run counts as settled.
DRAIN_TIMEOUT_S = 30.0
QUIET_S = 3.0
# A publisher still running this long after the duration is reported as a problem.
PUBLISHER_OVERRUN_S = 20.0
LINE_EVERY_S = 5.0
LAST_DELIVERIES = 6
# Alerts may come this long (plant time) after a fault's end and still count as detecting it.
DETECTION_GRACE_S = 120.0


@dataclass(frozen=True)
class DemoOptions:
    duration_s: float = 45.0
    seed: int = 7
    embedded_broker: bool = False
    file_store: bool = False
    keep: bool = False
    live: bool | None = None      # None: a redrawn screen on a terminal, log lines otherwise
    dashboard: bool = True


def run_demo(options: DemoOptions, out: TextIO = sys.stdout) -> int:
    """Run the whole pipeline for ``options.duration_s`` seconds; 0 when everything passed."""
    stop = threading.Event()
    restore = _stop_on_signals(stop)
    workdir = Path(tempfile.mkdtemp(prefix="iotwatch-demo-"))
    (workdir / "logs").mkdir()
    unlog = _log_to(workdir / "logs" / "demo.log")

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    summary: Summary | None = None
    try:
        summary = _run(options, workdir, stop, say, out)
        if summary is not None:
            say(render_summary(summary))
    except DemoError as exc:
        say(f"demo failed: {exc}")
    finally:
        restore()
        unlog()
        if options.keep or summary is None or not summary.passed:
            say(f"files and logs of this run: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if stop.is_set():
        return EXIT_INTERRUPTED
    return EXIT_PASS if summary is not None and summary.passed else EXIT_FAIL


class DemoError(Exception):
    """A part of the pipeline could not be started."""


def _run(options: DemoOptions, workdir: Path, stop: threading.Event,
         say: Callable[[str], None], out: TextIO) -> Summary | None:
    """Start everything, show it, stop everything (newest first), then score the run."""
    with ProcessGroup(workdir / "logs") as group:
        try:
            broker, fallback = start_broker(group, workdir, options.embedded_broker)
        except BrokerError as exc:
            raise DemoError(str(exc)) from exc
        say(f"broker:    {broker.describe()}" + (f"  ({fallback})" if fallback else ""))
        store = _start_store(group, workdir, options.file_store, say)
        receivers = start_receivers(workdir)
        say(f"receivers: {receivers.describe()}")
        traffic = Traffic(Topics(configs.TOPIC_PREFIX))
        monitor = _watch(broker, traffic)
        dashboard = None
        try:
            detector_url = _start_service(
                group, workdir, broker, "detector", "detect", stop,
                lambda port: configs.detector_config(
                    workdir, http_port=port, sink="file" if store.local else "influxdb",
                    influx_url=store.url, precision=store.precision))
            alerting_url = _start_service(
                group, workdir, broker, "alerting", "alert", stop,
                lambda port: configs.alerting_config(
                    workdir, http_port=port, smtp_port=receivers.smtp.port,
                    webhook_url=receivers.webhook.url),
                {configs.ALERTING_WEBHOOK_SECRET_ENV: receivers.webhook_secret})
            say(f"services:  detector {detector_url}   alerting {alerting_url}")
            if options.dashboard:
                dashboard = _start_dashboard(store, broker, detector_url, alerting_url, say)
            if stop.is_set():
                return None
            publisher = _start_publisher(group, workdir, broker, options)
            say(f"publisher: {configs.FLEET_DESCRIPTION}")
            _live(traffic, receivers, publisher, options, stop, out,
                  f"dashboard: {dashboard.url}\n" if dashboard is not None else "")
            problems = _drain(traffic, receivers, publisher, stop, group)
            if stop.is_set():
                return None
            _save_metrics(workdir / "logs", {"detector": detector_url, "alerting": alerting_url})
            points = store.counts()
            delivered = receivers.lines()
        finally:
            if dashboard is not None:
                dashboard.close()
            monitor.disconnect()
            monitor.loop_stop()
            receivers.close()
    for line in delivered:
        say(f"  received: {line}")
    alerts = traffic.snapshot_alerts()
    return Summary(
        faults=score_faults(traffic.snapshot_faults(), alerts, DETECTION_GRACE_S,
                            traffic.snapshot_rejected()),
        deliveries=score_deliveries(alerts, receivers.delivered()),
        readings_seen=traffic.readings_total, streams=len(traffic.streams),
        points_stored=points, store=store.describe(), speed=configs.SPEED,
        problems=problems)


def _start_store(group: ProcessGroup, workdir: Path, want_file: bool,
                 say: Callable[[str], None]) -> PointStore:
    reason = "--file-store was given" if want_file else None
    if reason is None:
        try:
            store = start_influxd(group, workdir)
            say(f"store:     {store.describe()}")
            return store
        except StoreError as exc:
            reason = str(exc)
    store = file_store(workdir / "detector-state" / "points.lp")
    say(f"store:     {store.describe()}  ({reason})")
    return store


def _start_dashboard(store: PointStore, broker: DemoBroker, detector_url: str,
                     alerting_url: str, say: Callable[[str], None]):
    """The web page, served from a thread of this process while the demo runs."""
    try:
        from iotwatch.config import InfluxSettings
        from iotwatch.dashboard.app import DashboardOptions, start
    except ImportError as exc:     # dash not installed: the demo runs without the page
        say(f"dashboard: not started ({exc})")
        return None
    where = {} if store.url is None else {"url": store.url, "database": store.database}
    influxdb = InfluxSettings(precision=store.precision, **where)
    # The monitor role reads the dead letters, as the demo's own monitor does.
    mqtt = MqttSettings(host=broker.host, port=broker.port, username="monitor",
                        password=broker.passwords["monitor"], topic_prefix=configs.TOPIC_PREFIX)
    try:
        dashboard = start(DashboardOptions(influxdb=influxdb, points_file=store.local,
                                           detector_url=detector_url,
                                           alerting_url=alerting_url, mqtt=mqtt, port=0,
                                           refresh_s=1.0)).in_background()
    except (OSError, MqttError) as exc:
        say(f"dashboard: not started ({exc})")
        return None
    say(f"dashboard: {dashboard.url}  (live while the demo runs)")
    return dashboard


def _watch(broker: DemoBroker, traffic: Traffic):
    settings = MqttSettings(host=broker.host, port=broker.port, username="monitor",
                            password=broker.passwords["monitor"], client_id="iotwatch-demo-monitor",
                            topic_prefix=configs.TOPIC_PREFIX)
    client = make_client(settings, "demo", persistent=False,
                         subscriptions=[(f"{configs.TOPIC_PREFIX}/#", 1)])
    client.on_message = lambda _c, _u, message: traffic.on_message(
        message.topic, message.payload, time.monotonic())
    connect(client, settings)
    return client


def _start_service(group: ProcessGroup, workdir: Path, broker: DemoBroker, name: str,
                   command: str, stop: threading.Event, make_config: Callable[[int], dict],
                   extra_env: dict[str, str] | None = None) -> str:
    """Write the service's config, start it, and wait until its /health answers 200.

    The HTTP port is chosen free, but another process's outgoing connection can take it
    before the service binds it; a service that exits on that is started again on a new
    port (three tries).
    """
    for attempt in range(1, PORT_TRIES + 1):
        port = free_port()
        path = workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(make_config(port), sort_keys=False), encoding="utf-8")
        child = group.start(name, [sys.executable, "-m", "iotwatch.cli", command, "--config",
                                   str(path)], env=_service_env(broker, name, extra_env),
                            cwd=workdir)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(child, f"{url}/health", stop)
            return url
        except DemoError as exc:
            taken = not child.running() and "Address already in use" in str(exc)
            if not taken or attempt == PORT_TRIES:
                raise
    raise DemoError(f"{name}: no free HTTP port in {PORT_TRIES} tries")


def _start_publisher(group: ProcessGroup, workdir: Path, broker: DemoBroker,
                     options: DemoOptions) -> Child:
    path = workdir / "publisher.yaml"
    config = configs.publisher_config(configs.demo_fleet(options.duration_s),
                                      duration_s=options.duration_s, seed=options.seed,
                                      now=time.time())
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return group.start("publisher", [sys.executable, "-m", "iotwatch.cli", "publish",
                                     "--config", str(path)],
                       env=_service_env(broker, "publisher"), cwd=workdir)


def _service_env(broker: DemoBroker, role: str,
                 extra: dict[str, str] | None = None) -> dict[str, str]:
    # The user's own IOTWATCH__ overrides are meant for their services, not the demo's.
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTWATCH__")}
    env.update(broker.mqtt_env(role))
    env.update(extra or {})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _wait_healthy(child: Child, url: str, stop: threading.Event) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while not stop.is_set():
        if not child.running():
            raise DemoError(f"{child.name} exited with {child.process.returncode}:\n"
                            f"{child.log_tail()}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        if time.monotonic() > deadline:
            raise DemoError(f"{child.name} not healthy after {HEALTH_TIMEOUT_S:.0f} s "
                            f"({url}):\n{child.log_tail()}")
        stop.wait(0.3)


def _live(traffic: Traffic, receivers: DemoReceivers, publisher: Child, options: DemoOptions,
          stop: threading.Event, out: TextIO, header: str = "") -> None:
    """Show the live view until the publisher finishes (or overruns), or Ctrl-C."""
    redraw = out.isatty() if options.live is None else options.live
    started = last_line = time.monotonic()
    while not stop.is_set():
        now = time.monotonic()
        elapsed = now - started
        state = _live_state(traffic, receivers, elapsed, options.duration_s, now)
        if redraw:
            out.write(CLEAR_SCREEN + header + render_live(state) + "\n")
            out.flush()
        elif now - last_line >= LINE_EVERY_S:
            print(render_line(state), file=out, flush=True)
            last_line = now
        if not publisher.running() or elapsed >= options.duration_s + PUBLISHER_OVERRUN_S:
            return
        stop.wait(1.0)


def _live_state(traffic: Traffic, receivers: DemoReceivers, elapsed: float,
                duration: float | None, now: float) -> LiveState:
    streams = {s: (st.count, st.last_value, st.firing) for s, st in list(traffic.streams.items())}
    return LiveState(elapsed, duration, traffic.readings_total, traffic.rate(now), streams,
                     traffic.firing(), len(traffic.snapshot_alerts()),
                     len(traffic.snapshot_faults()),
                     {name: len(items) for name, items in receivers.delivered().items()},
                     dict(traffic.statuses), sum(traffic.dead_letters.values()),
                     receivers.lines()[-LAST_DELIVERIES:])


def _drain(traffic: Traffic, receivers: DemoReceivers, publisher: Child, stop: threading.Event,
           group: ProcessGroup) -> list[str]:
    """Let the pipeline settle: every alert published so far delivered, and no new alert for
    a few seconds (the detector may still be working through its queue)."""
    problems = []
    if publisher.running():
        problems.append("the publisher did not finish within the duration")
    elif publisher.process.returncode != 0:
        problems.append(f"the publisher exited with {publisher.process.returncode}:\n"
                        f"{publisher.log_tail(10)}")
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    seen, quiet_since = -1, time.monotonic()
    while not stop.is_set() and time.monotonic() < deadline:
        alerts = traffic.snapshot_alerts()
        if len(alerts) != seen:
            seen, quiet_since = len(alerts), time.monotonic()
        complete = score_deliveries(alerts, receivers.delivered()).complete or not alerts
        if complete and time.monotonic() - quiet_since >= QUIET_S:
            break
        stop.wait(0.5)
    for child in group.children:
        if child.name in ("detector", "alerting") and not child.running():
            problems.append(f"{child.name} stopped early:\n{child.log_tail(10)}")
    return problems


def _save_metrics(log_dir: Path, services: dict[str, str]) -> None:
    """Each service's /metrics at the end of the run, kept with the logs for a post-mortem."""
    for name, url in services.items():
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/metrics",
                                                                  timeout=5) as response:
            (log_dir / f"{name}.metrics.txt").write_bytes(response.read())


def _log_to(path: Path) -> Callable[[], None]:
    """The demo's own log (its MQTT client, receivers) goes to a file, not over the view."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s demo %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    previous = (root.handlers[:], root.level)
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)

    def restore() -> None:
        root.handlers[:], level = previous
        root.setLevel(level)
        handler.close()
    return restore


def _stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """SIGINT/SIGTERM set ``stop``; returns a function restoring the previous handlers."""
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, lambda *_: stop.set())

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return restore
