"""The publisher, wired in one place.

    source: FleetSimulation (signals + faults)  or  Replay (CSV files)
      -> samples in time order
      -> batches (one reading, or one device and instant)      payloads.batches
      -> paced to the wall clock at --speed                    pacing.Pacer
      -> --out: readings.csv + labels.jsonl                    outfiles
         MQTT:  messages -> bounded in flight + ordered FIFO   payloads, sender.MqttSender
                fault labels -> truth topic (+ labels file)
    plus the progress line, /health and /metrics (http.enabled), the final summary.

Nothing imports this module; ``publisher.cli`` calls ``run``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

from iotwatch.httpserver import serve
from iotwatch.mqtt import connect, make_client, publish_status
from iotwatch.timeparse import format_rfc3339, parse_timestamp
from iotwatch.topics import Topics
from publisher.api import routes
from publisher.config import PublisherFile, PublisherSettings
from publisher.faults import FaultLabel
from publisher.fleet import FleetSpec
from publisher.outfiles import LABELS_FILE, READINGS_FILE, LabelsJsonl, ReadingsCsv
from publisher.pacing import Pacer
from publisher.payloads import MessageBuilder, batches
from publisher.progress import Progress, ProgressReporter
from publisher.replay import Replay, read_windows
from publisher.samples import Sample
from publisher.sender import MqttSender
from publisher.simulation import FleetSimulation, default_start, span_s

if TYPE_CHECKING:
    from publisher.audio import AudioOptions

log = logging.getLogger(__name__)

SERVICE = "publisher"
# --out files start here unless told otherwise, so the same seed gives the same bytes.
FILE_START = "2026-01-01T00:00:00Z"
# The detector rejects readings more than this far ahead of its clock.
FUTURE_LIMIT_S = 86_400.0


class Source(Protocol):
    def __iter__(self) -> Iterator[Sample]: ...
    def take_labels(self) -> list[FaultLabel]: ...
    def stop(self) -> None: ...
    def finish(self) -> list[FaultLabel]: ...


def run(config: PublisherFile, *, fleet: FleetSpec | None, replay: Path | None = None,
        out_dir: Path | None = None, stop: threading.Event | None = None,
        abort: threading.Event | None = None, audio: AudioOptions | None = None) -> int:
    """Run to the end of the source (or until SIGINT/SIGTERM or ``stop``); return the exit
    status: 0 when every reading was delivered or written, 1 when some were not."""
    if stop is None:
        stop, abort = _stop_on_signals()
    settings = config.publisher
    if audio is not None:
        source: Source = _audio_source(settings, audio, to_files=out_dir is not None)
    else:
        source = _source(settings, fleet, replay, to_files=out_dir is not None)
    if out_dir is not None:
        return _write_files(source, out_dir, stop)
    return _publish(config, source, stop, abort or threading.Event())


def _source(settings: PublisherSettings, fleet: FleetSpec | None, replay: Path | None,
            to_files: bool) -> Source:
    if replay is not None:
        windows = settings.replay.windows
        recording = Replay(replay, settings.replay.site, settings.replay.metric,
                           count=settings.count, duration_s=settings.duration_s,
                           windows=read_windows(windows) if windows is not None else None)
        log.info("replaying %d file(s) from %s as site %s", len(recording.recordings), replay,
                 recording.site)
        return recording
    assert fleet is not None
    span = span_s(fleet, settings.count, settings.duration_s)
    if settings.start is not None:
        start = parse_timestamp(settings.start)
    elif to_files:
        start = parse_timestamp(FILE_START)
    else:
        start = default_start(time.time(), settings.speed, span)
    simulation = FleetSimulation(fleet, start, settings.seed, settings.count,
                                 settings.duration_s)
    if not to_files and settings.speed:
        ahead = start + (span if span is not None else float("inf")) - time.time()
        if ahead > FUTURE_LIMIT_S and settings.speed > 1:
            log.warning("simulated time will run more than a day ahead of the clock; the "
                        "detector rejects such readings (set --start in the past, or bound "
                        "the run with --duration)")
    log.info("fleet: %d streams, seed %d, starting at %s, %s", len(simulation.streams),
             settings.seed, format_rfc3339(start),
             f"{span:g} simulated seconds" if span is not None else "until stopped")
    return simulation


def _audio_source(settings: PublisherSettings, audio: AudioOptions, to_files: bool) -> Source:
    from publisher.audio import AudioSource  # numpy's FFT only when sound is asked for

    site = settings.replay.site if settings.replay.site != "replay" else "audio"
    if settings.start is not None:
        start = parse_timestamp(settings.start)
    elif to_files:
        start = parse_timestamp(FILE_START)
    else:
        start = 0.0  # set below, once the recordings' length is known
    source = AudioSource(audio.path, site, start, frame_ms=audio.frame_ms, bands=audio.bands)
    if settings.start is None and not to_files:
        source.start = default_start(time.time(), settings.speed, source.span_s)
    log.info("sound features of %d file(s) from %s as site %s, %g ms frames, from %s",
             len(source.files), audio.path, source.site, audio.frame_ms,
             format_rfc3339(source.start))
    return source


def _write_files(source: Source, out_dir: Path, stop: threading.Event) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = skipped = faults = 0
    with (out_dir / READINGS_FILE).open("w", encoding="utf-8", newline="") as readings_file, \
            (out_dir / LABELS_FILE).open("wb") as labels_file:
        readings, labels = ReadingsCsv(readings_file), LabelsJsonl(labels_file)
        try:
            for sample in source:
                if stop.is_set():
                    source.stop()
                if readings.write(sample):
                    written += 1
                else:
                    skipped += 1
        finally:
            for label in source.take_labels() + source.finish():
                labels.write(label)
                faults += 1
    log.info("wrote %d readings to %s and %d faults to %s%s", written,
             out_dir / READINGS_FILE, faults, out_dir / LABELS_FILE,
             f" ({skipped} malformed readings have no row)" if skipped else "")
    return 0


def _publish(config: PublisherFile, source: Source, stop: threading.Event,
             abort: threading.Event) -> int:
    settings, mqtt = config.publisher, config.mqtt
    topics = Topics(mqtt.topic_prefix)
    # A clean session is enough (paho resends in-flight QoS 1 messages itself); a unique
    # id lets several publishers run side by side.
    client_id = mqtt.client_id or f"iotwatch-publisher-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    holder: list[MqttSender] = []
    client = make_client(mqtt, SERVICE, persistent=False, client_id=client_id,
                         on_connected=lambda c: holder[0].on_connected(c))
    sender = MqttSender(client, mqtt.qos, mqtt.max_inflight, settings.buffer_size,
                        overflow="wait" if settings.speed == 0 else "drop", stop=abort)
    holder.append(sender)
    builder = MessageBuilder(topics, settings.payload)
    pacer = Pacer(settings.speed, stop=stop)
    labels_out: IO[bytes] | None = None
    if settings.labels_file is not None:
        settings.labels_file.parent.mkdir(parents=True, exist_ok=True)
        labels_out = settings.labels_file.open("wb")
    labels_writer = LabelsJsonl(labels_out) if labels_out is not None else None
    readings = faults = 0

    def emit_labels(labels: list[FaultLabel]) -> None:
        nonlocal faults
        for label in labels:
            faults += 1
            if labels_writer is not None:
                labels_writer.write(label)
            if settings.truth:
                sender.send(topics.truth(label.site, label.device, label.metric),
                            label.to_json())

    def snapshot() -> Progress:
        stats = sender.stats
        return Progress(stats.sent, stats.in_flight, stats.buffered, stats.dropped,
                        stats.reconnects, faults)

    connect(client, mqtt)
    server = None
    if config.http.enabled:
        server = serve(config.http.host, config.http.port,
                       routes(snapshot, lambda: sender.connected, lambda: readings))
        log.info("http on %s:%s (/health /metrics)", server.host, server.port)
    log.info("publishing to %s:%s as %s, QoS %d, %s payloads, speed %s", mqtt.host, mqtt.port,
             mqtt.username or "anonymous", mqtt.qos, settings.payload,
             settings.speed or "max")
    progress = ProgressReporter(snapshot, settings.progress_interval_s).start()
    started = time.monotonic()
    undelivered = 0
    try:
        for batch in batches(source, settings.payload):
            pacer.wait_for(batch[0].offset_s)
            if stop.is_set():
                # Send what was produced (labels cover it), then the source ends.
                source.stop()
            for topic, payload in builder.messages(batch):
                sender.send(topic, payload)
            readings += len(batch)
            emit_labels(source.take_labels())
    finally:
        emit_labels(source.take_labels() + source.finish())
        undelivered = sender.flush(settings.drain_timeout_s)
        progress.stop()
        with contextlib.suppress(Exception):
            publish_status(client, mqtt, SERVICE, "offline", reason="finished").wait_for_publish(5.0)
        client.disconnect()
        client.loop_stop()
        if server is not None:
            server.close()
        if labels_out is not None:
            labels_out.close()
    elapsed = time.monotonic() - started
    stats = sender.stats
    log.info("summary: %d readings in %d messages, %d acknowledged (%.0f/s over %.2f s), "
             "%d dropped while the broker was away (buffer %d, peak %d), %d undelivered, "
             "%d faults injected, %d reconnects", readings, stats.produced, stats.sent,
             stats.sent / max(elapsed, 1e-9), elapsed, stats.dropped, settings.buffer_size,
             stats.peak_buffered, undelivered, faults, stats.reconnects)
    return 1 if stats.dropped or undelivered else 0


def _stop_on_signals() -> tuple[threading.Event, threading.Event]:
    """First SIGINT/SIGTERM: stop producing and deliver what is queued; second: give up."""
    stop, abort = threading.Event(), threading.Event()

    def handle(signum, _frame) -> None:
        if stop.is_set():
            log.warning("second signal: not waiting for the broker any longer")
            abort.set()
        else:
            log.info("signal %d: finishing (sending what is queued)", signum)
            stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
    return stop, abort
