"""The server's partition mapping and ``nats.partitions`` must agree: an instance refuses to
start when they differ, and a message found in the wrong partition is dead-lettered with
/health degraded (real nats-server, the project's mapping of 16 partitions)."""

from __future__ import annotations

import asyncio

import nats
import pytest
from harness import wait_until

from detector.distributed.partitions import partition_of

from .cluster import (
    PARTITIONS,
    DeadLetters,
    Instance,
    Publisher,
    instance_config,
    wait_for_ownership,
)


@pytest.mark.parametrize("configured", [8, 32])
def test_an_instance_refuses_to_start_when_nats_partitions_differs_from_the_mapping(
        nats_server, influxdb, tmp_path, configured):
    config = instance_config(tmp_path, nats_server, "wrong",
                             influx={"url": influxdb.url, "database": "unused"})
    config["nats"]["partitions"] = configured
    instance = Instance(tmp_path, config).start()
    try:
        assert instance.process.wait(60) == 2
    finally:
        instance.close()
    lines = [line for line in instance.log_path.read_text().splitlines()
             if "partition count mismatch" in line]
    assert len(lines) == 1, instance.log_tail()
    assert (f"puts devices into {PARTITIONS} partitions" in lines[0]
            and f"nats.partitions is {configured}" in lines[0]
            and "config/nats/nats-server.conf" in lines[0]), lines[0]


def test_a_reading_in_the_wrong_partition_is_dead_lettered_and_health_is_degraded(
        nats_server, influxdb, tmp_path):
    db = influxdb.create_database()
    dead_letters = DeadLetters(nats_server)
    letters = dead_letters.letters
    instance = Instance(tmp_path, instance_config(
        tmp_path, nats_server, "a", influx={"url": influxdb.url, "database": db}))
    try:
        instance.start()
        wait_for_ownership([instance])
        assert instance.health()["status"] != "degraded"
        right = partition_of("site-0", "dev-1", PARTITIONS)
        wrong = (right + 1) % PARTITIONS

        async def publish_straight_to_a_partition() -> None:
            # As a mapping of another partition count (changed and reloaded) would put it.
            nc = await nats.connect(nats_server.url)
            await nc.jetstream().publish(f"iotwatch.part.{wrong}.site-0.dev-1.temp",
                                         b'{"ts": 1768905000, "value": 1.5}')
            await nc.close()

        asyncio.run(publish_straight_to_a_partition())
        publisher = Publisher(nats_server)  # and one reading through the server's mapping
        publisher.reading("site-0", "dev-1", "temp", 1, 2.5)
        publisher.close()
        wait_until(lambda: influxdb.count("readings", db=db) >= 1 and letters, 60,
                   what=f"the mapped reading stored, the other dead-lettered\n"
                        f"{instance.log_tail()}")
        assert [x["reason"] for x in letters] == ["wrong_partition"]
        assert f"partition {wrong} but partition_of gives {right}" in letters[0]["detail"]
        status, health = instance.get("/health")
        assert status == 503 and health["status"] == "degraded", health
        assert any("wrong_partition" in p for p in health["problems"]), health
        wait_until(lambda: instance.metric("iotwatch_detector_acks_total") >= 2, 30,
                   what="both messages acknowledged")
        assert influxdb.count("readings", db=db) == 1
        assert instance.terminate() == 0, instance.log_tail()
    finally:
        dead_letters.close()
        instance.close()
