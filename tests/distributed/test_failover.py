"""Three detector instances on a real NATS JetStream (readings in over its MQTT listener)
and a real InfluxDB 1.x: each stream is handled by one instance only; one instance is
SIGKILLed mid-stream; its partitions are taken over, every reading is stored (InfluxDB
keeps one point per series and timestamp, so a redelivered reading is the same point),
and its streams go on learning from their checkpoints instead of from zero."""

from __future__ import annotations

import threading
import time

import pytest
from harness import wait_until

from detector.distributed.partitions import partition_of

from .cluster import (
    PARTITIONS,
    Instance,
    Publisher,
    instance_config,
    streams,
    value,
    wait_for_checkpoints,
    wait_for_ownership,
)

DEVICES, METRICS = 400, 5  # 2,000 streams
BEFORE, AFTER = 30, 10  # readings per stream before the kill, and from just before it on


@pytest.mark.slow
def test_streams_stay_with_one_instance_and_survive_a_sigkill(nats_server, influxdb,
                                                               tmp_path):
    db = influxdb.create_database()
    names = ("a", "b", "c")
    instances = [Instance(tmp_path / n, instance_config(
        tmp_path / n, nats_server, n, influx={"url": influxdb.url, "database": db}))
        for n in names]
    keys = streams(DEVICES, METRICS)
    try:
        for instance in instances:
            instance.start()
        owned = wait_for_ownership(instances)

        # Phase 1: every stream learns BEFORE readings; each goes to one instance only.
        publisher = Publisher(nats_server)
        for index in range(BEFORE):
            for k, (site, device, metric) in enumerate(keys):
                publisher.reading(site, device, metric, index, value(k, index))
        publisher.flush()
        total = len(keys) * BEFORE
        wait_until(lambda: influxdb.count("readings", db=db) >= total, 120, interval=0.5,
                   what=f"{total} points stored")
        seen: dict[str, str] = {}
        fingerprints: dict[str, str] = {}
        for instance in instances:
            for key, summary in instance.streams().items():
                assert key not in seen, f"{key} on {seen[key]} and {instance.name}"
                seen[key] = instance.name
                fingerprints[key] = summary["fingerprint"]
                site, device, _ = key.split("/")
                assert partition_of(site, device, PARTITIONS) in owned[instance.name]
                assert summary["count"] == BEFORE, (key, summary["count"])
        assert len(seen) == len(keys)

        # Checkpoints hold phase 1 (each instance writes the partitions that changed).
        wait_for_checkpoints(instances)

        # Phase 2, published while the victim is SIGKILLed.
        victim, survivors = instances[1], [instances[0], instances[2]]
        victim_streams = {k for k, who in seen.items() if who == victim.name}
        progress = threading.Event()

        def publish_rest() -> None:
            for index in range(BEFORE, BEFORE + AFTER):
                for k, (site, device, metric) in enumerate(keys):
                    publisher.reading(site, device, metric, index, value(k, index))
                if index == BEFORE + 2:
                    progress.set()
            publisher.flush()

        feeder = threading.Thread(target=publish_rest)
        feeder.start()
        progress.wait(60)
        wait_until(lambda: victim.metric("iotwatch_detector_acks_total") > total / 3 + 100,
                   60, what="the victim consuming phase 2")
        killed_at = time.monotonic()
        victim.kill()
        wait_for_ownership(survivors, timeout=60)
        takeover_s = time.monotonic() - killed_at
        print(f"partitions of the SIGKILLed instance taken over in {takeover_s:.2f} s "
              f"(lease TTL 5 s)")
        feeder.join(120)
        publisher.close()

        # Every published reading stored: one point per stream and timestamp.
        total = len(keys) * (BEFORE + AFTER)
        wait_until(lambda: influxdb.count("readings", db=db) >= total, 120, interval=0.5,
                   what=f"{total} points stored")
        rows = influxdb.query('SELECT COUNT("value") FROM "readings" GROUP BY "site", '
                              '"device", "metric"', db=db)
        counts = {f"{r['site']}/{r['device']}/{r['metric']}": r["count"] for r in rows}
        assert len(counts) == len(keys)
        assert set(counts.values()) == {BEFORE + AFTER}

        # The victim's streams continue from their checkpoints: a stream restarted from
        # zero would count at most AFTER readings (twice that with every one redelivered).
        final: dict[str, dict] = {}
        for instance in survivors:
            for key, summary in instance.streams().items():
                assert key not in final, f"{key} on two survivors"
                final[key] = summary
        assert set(final) == set(seen)
        for key in victim_streams:
            assert final[key]["count"] >= BEFORE, (key, final[key]["count"])
        # Alerts of a moved stream keep their fingerprint (the alerting service de-duplicates).
        assert {k: s["fingerprint"] for k, s in final.items()} == fingerprints
        # Graceful stop of the survivors: leases released, exit 0.
        for instance in survivors:
            assert instance.terminate() == 0, instance.log_tail()
    finally:
        for instance in instances:
            instance.close()
