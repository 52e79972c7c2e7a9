"""The benchmark's parts against real servers: the load generator's wire format and a
short ``iotwatch bench`` run end to end. No timing assertions: rates are reported, and
what is checked is that every reading went where it was sent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import orjson

from detector.benchmark.cli import render
from detector.benchmark.loadgen import is_probe
from detector.benchmark.run import _probe_readings, sustained_rate

PROJECT = Path(__file__).resolve().parents[2]


def test_load_generator_delivers_every_reading_in_contract_form(mosquitto, mqtt_collector):
    collector = mqtt_collector(mosquitto, "iotwatch/readings/lg/#")
    env = {**os.environ, "MQTT_PASSWORD": mosquitto.password("publisher")}
    done = subprocess.run(
        [sys.executable, "-m", "detector.benchmark.loadgen", "--host", mosquitto.host,
         "--port", str(mosquitto.port), "--streams", "7", "--probes", "2", "--count", "3000",
         "--first", "70", "--site", "lg", "--window", "50"],
        env=env, capture_output=True, text=True, timeout=120, cwd=PROJECT, check=True)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["published"] == 3000

    messages = collector.wait_for(3000, timeout=60)
    assert len(messages) == 3000
    topics = {topic for topic, _, _ in messages}
    # probes spread over the cycle: every 7 // 2 = 3rd stream, two of them
    assert topics == {f"iotwatch/readings/lg/dev-{s}/{'probe' if s in (0, 3) else 'temperature'}"
                      for s in range(7)}
    by_topic: dict[str, list[dict]] = {}
    for topic, payload, _ in messages:
        by_topic.setdefault(topic, []).append(orjson.loads(payload))
    for readings in by_topic.values():
        seqs = [r["seq"] for r in readings]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # per stream, in order
        stamps = [r["ts"] for r in readings]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        assert all(isinstance(r["value"], float) for r in readings)
    assert min(r["seq"] for r in by_topic["iotwatch/readings/lg/dev-0/probe"]) == 10  # 70 / 7


def test_bench_short_run_counts_every_reading_back_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "iotwatch.cli", "bench", "--streams", "50", "--duration", "2",
         "--warmup", "5", "--json", str(out)],
        capture_output=True, text=True, timeout=900, cwd=PROJECT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    for key in ("ceiling_msgs_per_s", "detector_msgs_per_s", "ratio", "latency_ms",
                "bytes_per_stream", "cpu_us_per_msg"):
        assert key in results, key
    assert set(results["latency_ms"]) >= {"p50", "p95", "p99"}
    assert results["stored"] == results["published"]  # every reading counted back
    assert results["ratio"] == round(results["detector_msgs_per_s"]
                                     / results["ceiling_msgs_per_s"], 3)
    assert "counted back from the database" in done.stdout


def test_sustained_rate_leaves_out_start_and_tail():
    samples = [(0.0, 0.0), (1.0, 0.0), (2.0, 100.0), (3.0, 200.0), (4.0, 300.0),
               (5.0, 400.0), (6.0, 500.0), (7.0, 500.0)]
    assert sustained_rate(samples) == 100


def test_probe_readings_follow_the_generator_numbering():
    assert _probe_readings(0, 20, streams=10, probes=2) == 4  # streams 0 and 5
    assert _probe_readings(6, 10, streams=10, probes=2) == 2  # readings 10 and 15


def test_probes_are_spread_evenly_over_the_streams():
    probes = [s for s in range(10_000) if is_probe(s, 10_000, 100)]
    assert len(probes) == 100
    assert {b - a for a, b in zip(probes, probes[1:], strict=False)} == {100}


def test_render_marks_the_detector_ratio():
    results = {"streams": 5, "ceiling_msgs_per_s": 1000, "ceiling_offered_msgs_per_s": 4000,
               "c_reference_msgs_per_s": 3000, "detector_msgs_per_s": 500,
               "detector_offered_msgs_per_s": 4000, "ratio": 0.5,
               "latency_ms": {"p50": 1.0, "p95": 2.0, "p99": 3.0, "samples": 9},
               "latency_rate_msgs_per_s": 250, "bytes_per_stream": 1000, "cpu_us_per_msg": 9.0,
               "published": 10, "stored": 10,
               "load_average": {"start": [0.1, 0, 0], "end": [0.2, 0, 0]}}
    text = render(results)
    assert "| mosquitto_sub (C reference) | 3,000 |  | 3.00 |" in text
    assert "**0.500**" in text


def test_scaleout_bench_short_run_stores_every_reading_of_both_phases():
    done = subprocess.run(
        [sys.executable, "-m", "detector.benchmark.scaleout", "--streams", "200",
         "--per-stream", "5"], capture_output=True, text=True, timeout=900, cwd=PROJECT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["per_phase"] == 1000
    assert results["stored"] == results["published_to_detectors"] == 2000
    assert results["one"]["instances"] == 1 and results["two"]["instances"] == 2
    for phase in ("ceiling", "one", "two"):
        assert results[phase]["msgs_per_s"] > 0
