"""A partition's checkpoint is written the single-node way: the worker encodes only the
streams that changed, a few between batches, and the checkpoint thread writes them, so
a checkpoint round costs the processing thread no pause that grows with the partition.
Seen from the object store: one record per stream, and an object is written only for a
partition whose streams changed (before, every owned partition was snapshotted whole on
the worker thread every ``checkpoint.interval_s``)."""

from __future__ import annotations

import asyncio

import nats
import pytest
from harness import wait_until

from detector.checkpoint import sealed_records
from detector.distributed.checkpoints_kv import object_name
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

DEVICES, METRICS, READINGS = 20, 2, 20
BUCKET = "iotwatch_checkpoints"


def _objects(nats_server) -> dict[int, dict[str, bytes]]:
    """Every partition's checkpoint: stream key -> sealed state."""
    async def main() -> dict[int, dict[str, bytes]]:
        nc = await nats.connect(nats_server.url)
        store = await nc.jetstream().object_store(BUCKET)
        found = {}
        for partition in range(PARTITIONS):
            try:
                result = await store.get(object_name(partition))
            except nats.js.errors.ObjectNotFoundError:
                continue
            found[partition] = sealed_records(result.data)
        await nc.close()
        return found

    return asyncio.run(main())


@pytest.mark.slow
def test_only_the_partitions_whose_streams_changed_are_checkpointed_one_record_a_stream(
        nats_server, influxdb, tmp_path):
    db = influxdb.create_database()
    instance = Instance(tmp_path, instance_config(
        tmp_path, nats_server, "a", influx={"url": influxdb.url, "database": db}))
    keys = streams(DEVICES, METRICS)
    try:
        instance.start()
        wait_for_ownership([instance])
        publisher = Publisher(nats_server)
        for index in range(READINGS):
            for k, (site, device, metric) in enumerate(keys):
                publisher.reading(site, device, metric, index, value(k, index))
        publisher.flush()
        wait_until(lambda: influxdb.count("readings", db=db) >= len(keys) * READINGS, 60,
                   what="phase 1 stored")
        wait_for_checkpoints([instance])

        # One record per stream, each in its device's partition's object.
        before = _objects(nats_server)
        assert sorted(k for records in before.values() for k in records) == sorted(
            f"{s}/{d}/{m}" for s, d, m in keys)
        assert all(partition_of(*key.split("/")[:2], PARTITIONS) == partition
                   for partition, records in before.items() for key in records)

        # Nothing changed: rounds go on, no object is written.
        stored = instance.metric("iotwatch_detector_partition_checkpoints_stored_total")
        wait_for_checkpoints([instance])
        assert instance.metric("iotwatch_detector_partition_checkpoints_stored_total") == stored

        # One stream changes: one object is written, its partition's, with that stream's
        # record new and the others as they were.
        site, device, metric = keys[3]
        changed = f"{site}/{device}/{metric}"
        publisher.reading(site, device, metric, READINGS, value(3, READINGS))
        publisher.close()
        wait_until(lambda: instance.streams()[changed]["count"] == READINGS + 1, 30,
                   what="the one reading learned")
        wait_for_checkpoints([instance])
        assert instance.metric("iotwatch_detector_partition_checkpoints_stored_total") \
            == stored + 1
        after = _objects(nats_server)
        partition = partition_of(site, device, PARTITIONS)
        assert after[partition][changed] != before[partition][changed]
        assert {k: v for k, v in after[partition].items() if k != changed} \
            == {k: v for k, v in before[partition].items() if k != changed}
        assert {p: r for p, r in after.items() if p != partition} \
            == {p: r for p, r in before.items() if p != partition}
        assert instance.terminate() == 0, instance.log_tail()
    finally:
        instance.close()
