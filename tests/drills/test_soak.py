"""The soak: a steady rate over 1,000 streams, the detector's resident memory sampled.

Two variants, both with the detectors a user runs (``config/detector.yaml``'s list):

- short (default, part of every test run): 60 s, with the engine's per-stream windows
  scaled down (``hst.window_size`` 10, calibration ``short_windows`` [2, 10] and
  ``warmup`` 20) so that every per-stream buffer is full after about 30 readings: warm at
  ``SHORT_WARM_S``.
- long: ``IOTWATCH_SOAK_S=600 pytest -m drill -k soak -s`` (at least ``LONG_WARM_S`` + 120),
  the shipped windows unchanged: a stream's state keeps growing until its second
  half-space-tree window (250 readings; RSS levelled off near 285 s in the measured run),
  so it is warm at ``LONG_WARM_S``.

Once warm, the detector's RSS may not grow by more than ``RSS_GROWTH_BOUND_MB`` (the
peak of the samples after the warm window against the warm window's median); every
reading published must be stored. See docs/drills.md.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from detector_service.service import PROJECT, series
from drills.pipeline import Drill, record
from harness import wait_until

pytestmark = pytest.mark.drill

LONG = "IOTWATCH_SOAK_S" in os.environ
SOAK_S = int(os.environ.get("IOTWATCH_SOAK_S", "60"))
SHORT_WARM_S, LONG_WARM_S = 30, 300
WARM_S = LONG_WARM_S if LONG else SHORT_WARM_S
STREAMS = 1_000
RATE_PER_STREAM_S = 1.0     # one reading per stream per second: 1,000 readings/s
RSS_GROWTH_BOUND_MB = 16.0  # once warm (~16 bytes per stream and reading over 1,000 s)
SAMPLE_EVERY_S = 2.0
SCALED_DOWN: dict[str, Any] = {"detectors": {"hst": {"window_size": 10}},
                               "calibration": {"short_windows": [2, 10], "warmup": 20}}


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def test_soak_1000_streams_steady_memory(start_pipeline):
    assert SOAK_S >= WARM_S + 20, f"IOTWATCH_SOAK_S must be at least {WARM_S + 20}"
    # The detectors a user runs (config/detector.yaml), not the tests' cheap z-score only.
    shipped = yaml.safe_load((PROJECT / "config" / "detector.yaml").read_text())["detector"]
    engine: dict[str, Any] = {"enabled": shipped["enabled"],
                              "detectors": {"hst": dict(shipped["detectors"]["hst"])},
                              "calibration": dict(shipped["calibration"])}
    if not LONG:
        engine["detectors"]["hst"].update(SCALED_DOWN["detectors"]["hst"])
        engine["calibration"].update(SCALED_DOWN["calibration"])
    pipeline = start_pipeline(alerting=False, detector=engine)
    detector = pipeline.detector
    pid = detector.process.pid
    drill = Drill(pipeline, f"soak-{SOAK_S}s", n_streams=STREAMS, spiked=())
    feeder = drill.feeder()
    samples: list[tuple[float, float]] = []   # (seconds since start, RSS MiB)
    start = time.monotonic()
    seq = 0
    while (elapsed := time.monotonic() - start) < SOAK_S:
        for site, device, metric, ts, value in series(STREAMS, 1, start=seq,
                                                      site=pipeline.site):
            feeder.reading(site, device, metric, ts, value, seq=seq)
        feeder.flush()
        drill.published.update((f"dev-{s}", seq) for s in range(STREAMS))
        seq += 1
        if not samples or elapsed - samples[-1][0] >= SAMPLE_EVERY_S:
            samples.append((elapsed, rss_mb(pid)))
            if len(samples) % 5 == 1:
                print(f"soak: {elapsed:5.0f}/{SOAK_S} s, {len(drill.published)} published, "
                      f"detector RSS {samples[-1][1]:.1f} MiB", flush=True)
        # Steady: the next second's readings at the next second (never a burst to catch up).
        time.sleep(max(0.0, start + seq / RATE_PER_STREAM_S - time.monotonic()))
    drill.next_seq = seq
    drill.disconnect()

    total = len(drill.published)
    wait_until(lambda: pipeline.influx.count("readings", db=pipeline.db) >= total, 120,
               what=f"{total} points in InfluxDB\n{detector.log_tail()}")
    stored = pipeline.influx.count("readings", db=pipeline.db)
    samples.append((time.monotonic() - start, rss_mb(pid)))
    warm = [rss for t, rss in samples if WARM_S <= t < WARM_S + 10]
    late = [rss for t, rss in samples if t >= WARM_S + 10]
    assert warm and late, samples
    baseline, peak = statistics.median(warm), max(late)
    growth = peak - baseline
    _, health = detector.get("/health")
    variant = "long, shipped windows" if LONG else "short, windows scaled down"
    record(f"DRILL soak-{SOAK_S}s ({variant}): published {total}, stored {stored}, lost {total - stored}, "
           f"streams {health['streams']}, rate {total / (samples[-1][0] or 1):.0f}/s; "
           f"detector RSS warm {baseline:.1f} MiB, peak after {peak:.1f} MiB, "
           f"warm from {WARM_S} s, growth {growth:+.1f} MiB (bound {RSS_GROWTH_BOUND_MB:g}), "
           f"{len(samples)} samples")
    assert stored == total, f"{total - stored} readings lost"
    assert health["streams"] == STREAMS
    assert growth <= RSS_GROWTH_BOUND_MB, samples
    assert detector.process.poll() is None
